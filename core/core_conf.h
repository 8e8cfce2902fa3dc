/*
 * core_conf — the one configuration vocabulary (DESIGN-NOTES §5).
 *
 * Each command describes its settings once, as a table of core_opt_t
 * (name, type, default, help, where to store it). The same table drives:
 *   - the flag parser:       --name VALUE, --name=VALUE, --flag (bool)
 *   - the properties reader: "prefix.name=value" lines (Kafka-style), for `eddy up --config`
 *   - `--help`:              generated from the table, so help never drifts
 * so a setting cannot exist in one form and not the other.
 * A command starts with core_conf_begin (defaults, flags, --help, usage
 * errors in one call), so every command answers --help and bad flags alike.
 *
 * Values are stored into a caller-owned struct at the given offsets:
 *   CORE_OPT_STR      char *        (heap copy; core_conf_free releases it)
 *   CORE_OPT_INT      int64_t
 *   CORE_OPT_BOOL     bool          (--flag, --flag=true|false)
 *   CORE_OPT_SIZE     int64_t bytes (suffixes: K, M, G, KiB, MiB, GiB, KB, MB, GB)
 *   CORE_OPT_DURATION int64_t ms    (suffixes: ms, s, m, h, d; bare number = ms)
 *   CORE_OPT_LIST     core_strlist_t (repeatable flag; each use appends)
 * Positional arguments are returned in order; "--" ends flag parsing.
 * Flags given later win over earlier ones and over the properties file when the
 * file is loaded first (the caller's order decides; `eddy up` loads the file first).
 */
#ifndef EDDY_CORE_CONF_H
#define EDDY_CORE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CORE_OPT_STR,
    CORE_OPT_INT,
    CORE_OPT_BOOL,
    CORE_OPT_SIZE,
    CORE_OPT_DURATION,
    CORE_OPT_LIST,
} core_opt_type_t;

typedef struct core_strlist {
    char **v;
    int n;
} core_strlist_t;

typedef struct core_opt {
    const char *name; /* flag name without dashes, e.g. "listen" */
    core_opt_type_t type;
    const char *def;  /* default as text; NULL = none (STR stays NULL) */
    const char *help;
    size_t offset;    /* offsetof(target struct, field) */
} core_opt_t;

#define CORE_OPT_END {NULL, 0, NULL, NULL, 0}

/* Applies every default in opts to target. Returns 0 or an error (bad default). */
int core_conf_defaults(const core_opt_t *opts, void *target, char *errstr, size_t errstr_size);

/* Parses argv[0..argc) (argv[0] is the first argument after the subcommand).
 * Positional arguments go to pos/npos (pos is an array of at least argc
 * pointers, borrowed from argv). Sets *want_help when -h/--help appears.
 * Returns 0, or CORE_ERR_INVAL with a message naming the flag. */
int core_conf_parse_args(const core_opt_t *opts, void *target, int argc, char **argv, char **pos,
                         int *npos, bool *want_help, char *errstr, size_t errstr_size);

/* Sets one option by name from text (used by both readers). CORE_ERR_NOT_FOUND
 * for an unknown name. */
int core_conf_set(const core_opt_t *opts, void *target, const char *name, const char *value,
                  char *errstr, size_t errstr_size);

/* Reads a properties file: "key = value" lines, '#' or '!' comments. Keys are
 * "<prefix>.<name>" (or just "<name>" when prefix is NULL); keys for other
 * prefixes are ignored, unknown keys under this prefix are an error. */
int core_conf_load_file(const core_opt_t *opts, void *target, const char *path,
                        const char *prefix, char *errstr, size_t errstr_size);
/* A properties file larger than this is refused (it is a hand-written config). */
#define CORE_CONF_MAX_FILE (1 << 20)
/* core_conf_load_file on text already in memory (name stands for the path in
 * messages; a NUL byte is an error). Exists for tests and fuzzing
 * (fuzz/fuzz_conf.c). */
int core_conf__load_text(const core_opt_t *opts, void *target, const char *text, size_t len,
                         const char *name, const char *prefix, char *errstr,
                         size_t errstr_size);

/* Prints "usage" then one line per option with its default. */
void core_conf_usage(FILE *out, const char *usage, const char *summary, const core_opt_t *opts);

/* One command's face: its settings table and what --help and usage errors say. */
typedef struct core_cmd {
    const char *name;    /* starts every error line: "eddy import" */
    const char *usage;   /* the usage line, without "usage: " */
    const char *summary; /* what the command does; --help prints it under the usage line */
    const core_opt_t *opts;
    bool takes_args; /* false: a positional argument is a usage error */
} core_cmd_t;

/* core_conf_begin's "go on and run the command" (any other return is an exit status). */
#define CORE_CONF_RUN (-1)

/* The start every command shares, so that each says --help and usage errors
 * the same way: applies cmd->opts' defaults to target, parses argv into it
 * (positional arguments to pos/npos as core_conf_parse_args does) and
 * answers --help.
 * Returns CORE_CONF_RUN when the command should run; otherwise the exit
 * status to return: 0 after --help was printed to stdout, 2 after
 * "NAME: ERROR" and "usage: USAGE" were printed to stderr (bad flag or value,
 * or a positional argument when !cmd->takes_args). --help wins over a bad
 * flag after it: the user asked what the flags are.
 * On every return the caller releases target with core_conf_free(cmd->opts, target). */
int core_conf_begin(const core_cmd_t *cmd, void *target, int argc, char **argv, char **pos,
                    int *npos);

/* Frees heap strings and lists stored in target. */
void core_conf_free(const core_opt_t *opts, void *target);

/* Value parsers shared with other readers (return 0 or CORE_ERR_INVAL). */
int core_parse_size(const char *s, int64_t *out);
int core_parse_duration_ms(const char *s, int64_t *out);
int core_parse_int(const char *s, int64_t *out);
/* "HOST:PORT" → host (copied into host, size hostsz) and port. */
int core_parse_hostport(const char *s, char *host, size_t hostsz, int *port);

#endif
