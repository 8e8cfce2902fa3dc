/*
 * eddy — entry point. Dispatches `eddy COMMAND ...` through the table in
 * commands.def. Every command prints its own --help from its settings table.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

#ifndef EDDY_VERSION
#define EDDY_VERSION "0.0.0"
#endif

typedef struct eddy_cmd {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} eddy_cmd_t;

static const eddy_cmd_t commands[] = {
#define EDDY_CMD(name, fn, summary) {name, fn, summary},
#include "cli/commands.def"
#undef EDDY_CMD
    {NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: eddy COMMAND [OPTIONS]\n\n"
                 "Eddy: a Kafka-protocol log, a micro-batch runtime, an event store and a\n"
                 "recommender, in one small native program.\n\ncommands:\n");
    for (const eddy_cmd_t *c = commands; c->name; c++)
        fprintf(out, "  %-14s %s\n", c->name, c->summary);
    fprintf(out, "\nRun `eddy COMMAND --help` for a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("eddy %s\n", EDDY_VERSION);
        return 0;
    }
    for (const eddy_cmd_t *c = commands; c->name; c++)
        if (!strcmp(c->name, argv[1]))
            return c->fn(argc - 2, argv + 2);
    fprintf(stderr, "eddy: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
