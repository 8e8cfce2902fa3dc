/*
 * core_log — one line per notable event, to stderr.
 *
 * Format: "2026-11-25T15:40:01.123Z INFO  broker: created topic clicks (8 partitions)".
 * Lines are written with one write(2) so concurrent threads never interleave
 * within a line. The level threshold comes from EDDY_LOG_LEVEL
 * (debug|info|warn|error; default info) and can be set by core_log_set_level.
 */
#ifndef EDDY_CORE_LOG_H
#define EDDY_CORE_LOG_H

typedef enum { CORE_LOG_DEBUG = 0, CORE_LOG_INFO, CORE_LOG_WARN, CORE_LOG_ERROR } core_log_level_t;

void core_log_set_level(core_log_level_t level);
int core_log_enabled(core_log_level_t level);
void core_log(core_log_level_t level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CORE_DEBUG(mod, ...)                                                             \
    do {                                                                                 \
        if (core_log_enabled(CORE_LOG_DEBUG))                                            \
            core_log(CORE_LOG_DEBUG, mod, __VA_ARGS__);                                  \
    } while (0)
#define CORE_INFO(mod, ...) core_log(CORE_LOG_INFO, mod, __VA_ARGS__)
#define CORE_WARN(mod, ...) core_log(CORE_LOG_WARN, mod, __VA_ARGS__)
#define CORE_ERROR(mod, ...) core_log(CORE_LOG_ERROR, mod, __VA_ARGS__)

#endif
