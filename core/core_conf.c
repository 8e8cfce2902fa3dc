#include "core/core_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_err.h"
#include "core/core_fs.h"

int core_parse_int(const char *s, int64_t *out)
{
    if (!s || !*s)
        return CORE_ERR_INVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return CORE_ERR_INVAL;
    *out = v;
    return CORE_OK;
}

/* A number followed by a unit from units[]; mult[] gives each unit's factor. */
static int parse_with_unit(const char *s, const char *const *units, const int64_t *mult,
                           int64_t *out)
{
    if (!s || !*s)
        return CORE_ERR_INVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return CORE_ERR_INVAL;
    while (*end == ' ')
        end++;
    for (int i = 0; units[i]; i++) {
        if (!strcasecmp(end, units[i])) {
            if (mult[i] && v > INT64_MAX / mult[i])
                return CORE_ERR_INVAL;
            *out = v * mult[i];
            return CORE_OK;
        }
    }
    return CORE_ERR_INVAL;
}

int core_parse_size(const char *s, int64_t *out)
{
    static const char *const units[] = {"", "b", "k", "kb", "kib", "m", "mb", "mib",
                                        "g", "gb", "gib", NULL};
    static const int64_t mult[] = {1, 1, 1024, 1000, 1024, 1 << 20, 1000000, 1 << 20,
                                   1 << 30, 1000000000, 1 << 30};
    return parse_with_unit(s, units, mult, out);
}

int core_parse_duration_ms(const char *s, int64_t *out)
{
    static const char *const units[] = {"", "ms", "s", "m", "min", "h", "d", NULL};
    static const int64_t mult[] = {1, 1, 1000, 60000, 60000, 3600000, 86400000};
    return parse_with_unit(s, units, mult, out);
}

int core_parse_hostport(const char *s, char *host, size_t hostsz, int *port)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (!colon || colon == s)
        return CORE_ERR_INVAL;
    size_t hl = (size_t)(colon - s);
    if (hl >= hostsz)
        return CORE_ERR_INVAL;
    int64_t p;
    if (core_parse_int(colon + 1, &p) || p < 0 || p > 65535)
        return CORE_ERR_INVAL;
    memcpy(host, s, hl);
    host[hl] = 0;
    *port = (int)p;
    return CORE_OK;
}

static const core_opt_t *find_opt(const core_opt_t *opts, const char *name, size_t len)
{
    for (const core_opt_t *o = opts; o->name; o++)
        if (strlen(o->name) == len && !memcmp(o->name, name, len))
            return o;
    return NULL;
}

static int set_value(const core_opt_t *o, void *target, const char *value, char *errstr,
                     size_t errstr_size)
{
    char *field = (char *)target + o->offset;
    int64_t v = 0;
    int rc = CORE_OK;
    switch (o->type) {
    case CORE_OPT_STR: {
        char **sp = (char **)field;
        free(*sp);
        *sp = value ? core_xstrdup(value) : NULL;
        return CORE_OK;
    }
    case CORE_OPT_LIST: {
        core_strlist_t *l = (core_strlist_t *)field;
        l->v = core_xrealloc(l->v, sizeof(char *) * (size_t)(l->n + 1));
        l->v[l->n++] = core_xstrdup(value);
        return CORE_OK;
    }
    case CORE_OPT_BOOL:
        if (!value || !strcmp(value, "true") || !strcmp(value, "1") || !strcmp(value, "yes"))
            *(bool *)field = true;
        else if (!strcmp(value, "false") || !strcmp(value, "0") || !strcmp(value, "no"))
            *(bool *)field = false;
        else
            rc = CORE_ERR_INVAL;
        break;
    case CORE_OPT_INT:
        rc = core_parse_int(value, &v);
        if (!rc)
            *(int64_t *)field = v;
        break;
    case CORE_OPT_SIZE:
        rc = core_parse_size(value, &v);
        if (!rc)
            *(int64_t *)field = v;
        break;
    case CORE_OPT_DURATION:
        rc = core_parse_duration_ms(value, &v);
        if (!rc)
            *(int64_t *)field = v;
        break;
    }
    if (rc)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "invalid value '%s' for --%s",
                         value ? value : "", o->name);
    return CORE_OK;
}

int core_conf_set(const core_opt_t *opts, void *target, const char *name, const char *value,
                  char *errstr, size_t errstr_size)
{
    const core_opt_t *o = find_opt(opts, name, strlen(name));
    if (!o)
        return core_errf(CORE_ERR_NOT_FOUND, errstr, errstr_size, "unknown setting '%s'", name);
    return set_value(o, target, value, errstr, errstr_size);
}

int core_conf_defaults(const core_opt_t *opts, void *target, char *errstr, size_t errstr_size)
{
    for (const core_opt_t *o = opts; o->name; o++) {
        if (o->type == CORE_OPT_LIST) {
            core_strlist_t *l = (core_strlist_t *)((char *)target + o->offset);
            l->v = NULL;
            l->n = 0;
            continue;
        }
        if (o->type == CORE_OPT_STR)
            *(char **)((char *)target + o->offset) = NULL;
        if (o->type == CORE_OPT_BOOL && !o->def) {
            *(bool *)((char *)target + o->offset) = false;
            continue;
        }
        if (!o->def)
            continue;
        int rc = set_value(o, target, o->def, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return CORE_OK;
}

int core_conf_parse_args(const core_opt_t *opts, void *target, int argc, char **argv, char **pos,
                         int *npos, bool *want_help, char *errstr, size_t errstr_size)
{
    *npos = 0;
    *want_help = false;
    bool flags_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (flags_done || a[0] != '-' || !a[1]) {
            pos[(*npos)++] = argv[i];
            continue;
        }
        if (!strcmp(a, "--")) {
            flags_done = true;
            continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            *want_help = true;
            continue;
        }
        if (a[1] != '-')
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                             "unknown option '%s' (options are spelled --name)", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const core_opt_t *o = find_opt(opts, name, nlen);
        if (!o)
            return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "unknown option '--%.*s'",
                             (int)nlen, name);
        const char *value = eq ? eq + 1 : NULL;
        if (!value && o->type != CORE_OPT_BOOL) {
            if (i + 1 >= argc)
                return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "--%s needs a value",
                                 o->name);
            value = argv[++i];
        }
        int rc = set_value(o, target, value, errstr, errstr_size);
        if (rc)
            return rc;
    }
    return CORE_OK;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = 0;
    return s;
}

int core_conf__load_text(const core_opt_t *opts, void *target, const char *text, size_t len,
                         const char *name, const char *prefix, char *errstr,
                         size_t errstr_size)
{
    int lineno = 0, rc = CORE_OK;
    size_t plen = prefix ? strlen(prefix) : 0;
    const char *p = text, *end = text + len;
    while (p < end && !rc) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        lineno++;
        if (memchr(p, '\0', n)) {
            rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s:%d: NUL byte", name, lineno);
            break;
        }
        char *line = core_xmalloc(n + 1); /* any length: no line is cut in two */
        memcpy(line, p, n);
        line[n] = 0;
        p += n + (nl != NULL);
        char *s = trim(line);
        if (!*s || *s == '#' || *s == '!') {
            free(line);
            continue;
        }
        char *sep = strpbrk(s, "=:");
        if (!sep) {
            rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s:%d: expected key=value",
                           name, lineno);
            free(line);
            break;
        }
        *sep = 0;
        char *key = trim(s), *value = trim(sep + 1);
        if (prefix) {
            if (strncmp(key, prefix, plen) || key[plen] != '.') {
                free(line);
                continue; /* belongs to another role */
            }
            key += plen + 1;
        }
        /* property keys may use '.' or '-' between words; flags use '-' */
        for (char *k = key; *k; k++)
            if (*k == '.')
                *k = '-';
        char msg[256];
        if (core_conf_set(opts, target, key, value, msg, sizeof msg))
            rc = core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s:%d: %s", name, lineno, msg);
        free(line);
    }
    return rc;
}

int core_conf_load_file(const core_opt_t *opts, void *target, const char *path,
                        const char *prefix, char *errstr, size_t errstr_size)
{
    char *text;
    size_t len;
    int e = core_fs_read_file(path, CORE_CONF_MAX_FILE, &text, &len);
    if (e == CORE_ERR_TOO_LARGE)
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "%s: larger than %d bytes", path,
                         CORE_CONF_MAX_FILE);
    if (e)
        return core_errf(e, errstr, errstr_size, "cannot open %s: %s", path, strerror(e));
    int rc = core_conf__load_text(opts, target, text, len, path, prefix, errstr, errstr_size);
    free(text);
    return rc;
}

void core_conf_usage(FILE *out, const char *usage, const char *summary, const core_opt_t *opts)
{
    fprintf(out, "usage: %s\n\n%s\n", usage, summary);
    if (opts && opts->name)
        fprintf(out, "\noptions:\n");
    for (const core_opt_t *o = opts; o && o->name; o++) {
        static const char *tn[] = {"STR", "N", "", "SIZE", "DURATION", "VALUE"};
        char flag[64];
        snprintf(flag, sizeof flag, "--%s %s", o->name, tn[o->type]);
        fprintf(out, "  %-32s %s", flag, o->help);
        if (o->def && o->type != CORE_OPT_BOOL)
            fprintf(out, " (default %s)", o->def);
        if (o->type == CORE_OPT_LIST)
            fprintf(out, " (repeatable)");
        fputc('\n', out);
    }
}

int core_conf_begin(const core_cmd_t *cmd, void *target, int argc, char **argv, char **pos,
                    int *npos)
{
    char err[512];
    bool help = false;
    *npos = 0;
    int rc = core_conf_defaults(cmd->opts, target, err, sizeof err);
    if (!rc)
        rc = core_conf_parse_args(cmd->opts, target, argc, argv, pos, npos, &help, err, sizeof err);
    if (help) {
        core_conf_usage(stdout, cmd->usage, cmd->summary, cmd->opts);
        return 0;
    }
    if (!rc && *npos > 0 && !cmd->takes_args)
        rc = core_errf(CORE_ERR_INVAL, err, sizeof err, "unexpected argument '%s'", pos[0]);
    if (rc) {
        fprintf(stderr, "%s: %s\nusage: %s\n", cmd->name, err, cmd->usage);
        return 2;
    }
    return CORE_CONF_RUN;
}

void core_conf_free(const core_opt_t *opts, void *target)
{
    for (const core_opt_t *o = opts; o->name; o++) {
        char *field = (char *)target + o->offset;
        if (o->type == CORE_OPT_STR) {
            free(*(char **)field);
            *(char **)field = NULL;
        } else if (o->type == CORE_OPT_LIST) {
            core_strlist_t *l = (core_strlist_t *)field;
            for (int i = 0; i < l->n; i++)
                free(l->v[i]);
            free(l->v);
            l->v = NULL;
            l->n = 0;
        }
    }
}
