/*
 * cli — the `eddy` command-line entry: one executable, many subcommands.
 * Sits above every module (DESIGN: the CLI and supervisor depend on all
 * modules; no module depends on the CLI).
 */
#ifndef EDDY_CLI_H
#define EDDY_CLI_H

#define EDDY_CMD(name, fn, summary) int fn(int argc, char **argv);
#include "cli/commands.def"
#undef EDDY_CMD

#endif
