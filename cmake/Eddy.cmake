# Helpers shared by every module's CMakeLists.txt.

# eddy_cli(SOURCES a.c b.c LIBS lib...) — adds command implementations and the
# libraries they need to the `eddy` executable (built in cli/).
function(eddy_cli)
  cmake_parse_arguments(A "" "" "SOURCES;LIBS" ${ARGN})
  foreach(s ${A_SOURCES})
    get_filename_component(abs ${s} ABSOLUTE)
    set_property(GLOBAL APPEND PROPERTY EDDY_CLI_SOURCES ${abs})
  endforeach()
  set_property(GLOBAL APPEND PROPERTY EDDY_CLI_LIBS ${A_LIBS})
endfunction()

# eddy_unit_test(NAME n LABEL area SOURCES ... LIBS ... [TIMEOUT s])
# A cmocka test binary registered with ctest, labelled with its area.
function(eddy_unit_test)
  cmake_parse_arguments(A "" "NAME;LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 60)
  endif()
  add_executable(${A_NAME} ${A_SOURCES})
  target_link_libraries(${A_NAME} PRIVATE ${A_LIBS} eddy_core PkgConfig::CMOCKA)
  set_target_properties(${A_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME ${A_NAME} COMMAND ${A_NAME})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABEL}" TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "EDDY_SOURCE_DIR=${CMAKE_SOURCE_DIR};EDDY_BINARY_DIR=${CMAKE_BINARY_DIR}")
endfunction()

# eddy_script_test(NAME n LABEL area TIMEOUT s COMMAND cmd args...)
# An integration test (shell or python3). It gets EDDY (path of the eddy
# executable), EDDY_SOURCE_DIR and EDDY_BINARY_DIR in its environment.
function(eddy_script_test)
  cmake_parse_arguments(A "" "NAME;LABEL;TIMEOUT" "COMMAND" ${ARGN})
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 120)
  endif()
  add_test(NAME ${A_NAME} COMMAND ${A_COMMAND} WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  set_tests_properties(${A_NAME} PROPERTIES LABELS "${A_LABEL}" TIMEOUT ${A_TIMEOUT}
    ENVIRONMENT "EDDY=${CMAKE_BINARY_DIR}/eddy;EDDY_SOURCE_DIR=${CMAKE_SOURCE_DIR};EDDY_BINARY_DIR=${CMAKE_BINARY_DIR}")
endfunction()
