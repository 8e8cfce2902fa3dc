#include "registry/sr_compat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "core/core_alloc.h"
#include "core/core_err.h"

#define SR_MAX_NAMED 4096 /* named types per schema: bounds a hostile schema's table */
#define SR_MAX_DEPTH 64   /* nesting depth of the comparison */

static const char *const level_names[] = {"NONE",    "BACKWARD",           "BACKWARD_TRANSITIVE",
                                          "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                                          "FULL_TRANSITIVE"};

bool sr_level_parse(const char *name, sr_level_t *level)
{
    for (int i = 0; i < (int)(sizeof level_names / sizeof *level_names); i++)
        if (!strcasecmp(name, level_names[i])) {
            *level = (sr_level_t)i;
            return true;
        }
    return false;
}

const char *sr_level_name(sr_level_t level)
{
    return level_names[level];
}

/* ---- named types -------------------------------------------------------------- */
typedef struct named {
    char *fullname;
    json_t *node;
    char *ns; /* namespace in effect inside the type */
} named_t;

typedef struct schema {
    json_t *root;
    named_t named[SR_MAX_NAMED];
    int nnamed;
    bool overflow;
} schema_t;

static bool is_primitive(const char *t)
{
    static const char *const prim[] = {"null", "boolean", "int",   "long",
                                       "float", "double", "bytes", "string", NULL};
    for (int i = 0; prim[i]; i++)
        if (!strcmp(t, prim[i]))
            return true;
    return false;
}

static char *full_name(const char *name, const char *ns)
{
    if (strchr(name, '.') || !ns || !*ns)
        return core_xstrdup(name);
    size_t n = strlen(ns) + strlen(name) + 2;
    char *s = core_xmalloc(n);
    snprintf(s, n, "%s.%s", ns, name);
    return s;
}

static char *ns_of(const char *fullname)
{
    const char *dot = strrchr(fullname, '.');
    return dot ? core_xstrndup(fullname, (size_t)(dot - fullname)) : core_xstrdup("");
}

static const char *unqualified(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot ? dot + 1 : name;
}

static void collect(schema_t *s, json_t *node, const char *ns)
{
    if (json_is_array(node)) {
        size_t i;
        json_t *b;
        json_array_foreach(node, i, b) collect(s, b, ns);
        return;
    }
    if (!json_is_object(node))
        return;
    json_t *type = json_object_get(node, "type");
    if (!json_is_string(type)) {
        collect(s, type, ns);
        return;
    }
    const char *t = json_string_value(type);
    if (!strcmp(t, "record") || !strcmp(t, "error") || !strcmp(t, "enum") || !strcmp(t, "fixed")) {
        const char *name = json_string_value(json_object_get(node, "name"));
        const char *own_ns = json_string_value(json_object_get(node, "namespace"));
        if (!name)
            return;
        if (s->nnamed == SR_MAX_NAMED) {
            s->overflow = true;
            return;
        }
        named_t *n = &s->named[s->nnamed++];
        n->fullname = full_name(name, own_ns ? own_ns : ns);
        n->node = node;
        n->ns = ns_of(n->fullname);
        if (!strcmp(t, "record") || !strcmp(t, "error")) {
            size_t i;
            json_t *f;
            json_array_foreach(json_object_get(node, "fields"), i, f)
                collect(s, json_object_get(f, "type"), n->ns);
        }
    } else if (!strcmp(t, "array")) {
        collect(s, json_object_get(node, "items"), ns);
    } else if (!strcmp(t, "map")) {
        collect(s, json_object_get(node, "values"), ns);
    }
}

static void schema_free(schema_t *s)
{
    for (int i = 0; i < s->nnamed; i++) {
        free(s->named[i].fullname);
        free(s->named[i].ns);
    }
    json_decref(s->root);
    free(s);
}

/* Our own structural checks, run before avro-c sees the text: avro-c leaks
 * memory on some of its error paths (found by fuzz_avro_schema: a name
 * defined twice), so inputs that would take them are refused here first. */
static bool valid_name(const char *name, bool allow_dots)
{
    bool start = true;
    if (!name || !*name)
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (ch == '.' && allow_dots && !start && p[1]) {
            start = true;
            continue;
        }
        bool alpha = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_';
        if (!(alpha || (!start && ch >= '0' && ch <= '9')))
            return false;
        start = false;
    }
    return true;
}

static const named_t *lookup(const schema_t *s, const char *name, const char *ns);

/* Every named type has a valid name; every reference names a defined type. */
static int check_refs(const schema_t *s, json_t *node, const char *ns, int depth, char *reason,
                      size_t rs)
{
    if (depth > SR_MAX_DEPTH)
        return core_errf(CORE_ERR_TOO_LARGE, reason, rs, "schema nests deeper than %d", SR_MAX_DEPTH);
    if (json_is_string(node)) {
        const char *t = json_string_value(node);
        if (is_primitive(t) || lookup(s, t, ns))
            return CORE_OK;
        return core_errf(CORE_ERR_MALFORMED, reason, rs, "invalid Avro schema: unknown type '%s'", t);
    }
    size_t i;
    json_t *b;
    int rc = CORE_OK;
    if (json_is_array(node)) {
        json_array_foreach(node, i, b) if ((rc = check_refs(s, b, ns, depth + 1, reason, rs))) return rc;
        return CORE_OK;
    }
    json_t *type = json_object_get(node, "type");
    if (!json_is_string(type))
        return type ? check_refs(s, type, ns, depth + 1, reason, rs) : CORE_OK;
    const char *t = json_string_value(type);
    if (!strcmp(t, "record") || !strcmp(t, "error") || !strcmp(t, "enum") || !strcmp(t, "fixed")) {
        const char *name = json_string_value(json_object_get(node, "name"));
        const char *own_ns = json_string_value(json_object_get(node, "namespace"));
        if (!valid_name(name, true) || (own_ns && *own_ns && !valid_name(own_ns, true)))
            return core_errf(CORE_ERR_MALFORMED, reason, rs, "invalid Avro schema: bad name '%s'",
                             name ? name : "");
        const named_t *n = lookup(s, name, own_ns ? own_ns : ns);
        if (n && (!strcmp(t, "record") || !strcmp(t, "error")))
            json_array_foreach(json_object_get(node, "fields"), i, b)
            {
                const char *fname = json_string_value(json_object_get(b, "name"));
                if (!valid_name(fname, false))
                    return core_errf(CORE_ERR_MALFORMED, reason, rs,
                                     "invalid Avro schema: bad field name in '%s'", name);
                for (size_t j = 0; j < i; j++)
                    if (!strcmp(fname, json_string_value(json_object_get(
                                           json_array_get(json_object_get(node, "fields"), j), "name"))))
                        return core_errf(CORE_ERR_MALFORMED, reason, rs,
                                         "invalid Avro schema: field '%s' appears twice in '%s'",
                                         fname, name);
                if ((rc = check_refs(s, json_object_get(b, "type"), n->ns, depth + 1, reason, rs)))
                    return rc;
            }
        if (!strcmp(t, "enum"))
            json_array_foreach(json_object_get(node, "symbols"), i, b)
            {
                const char *sym = json_string_value(b);
                if (!valid_name(sym, false))
                    return core_errf(CORE_ERR_MALFORMED, reason, rs,
                                     "invalid Avro schema: bad symbol in enum '%s'", name);
                for (size_t j = 0; j < i; j++)
                    if (!strcmp(sym, json_string_value(json_array_get(json_object_get(node, "symbols"), j))))
                        return core_errf(CORE_ERR_MALFORMED, reason, rs,
                                         "invalid Avro schema: symbol '%s' appears twice in '%s'",
                                         sym, name);
            }
        return CORE_OK;
    }
    if (!strcmp(t, "array"))
        return check_refs(s, json_object_get(node, "items"), ns, depth + 1, reason, rs);
    if (!strcmp(t, "map"))
        return check_refs(s, json_object_get(node, "values"), ns, depth + 1, reason, rs);
    return CORE_OK;
}

static int schema_precheck(const schema_t *s, char *reason, size_t rs)
{
    int rc = check_refs(s, s->root, "", 0, reason, rs);
    if (rc)
        return rc;
    for (int i = 0; i < s->nnamed; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(s->named[i].fullname, s->named[j].fullname))
                return core_errf(CORE_ERR_MALFORMED, reason, rs,
                                 "invalid Avro schema: name '%s' is defined twice",
                                 s->named[i].fullname);
    return CORE_OK;
}

static int schema_load(const char *text, size_t len, schema_t **out, char *reason, size_t rs)
{
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return core_errf(CORE_ERR_MALFORMED, reason, rs, "invalid JSON: %s", jerr.text);
    schema_t *s = core_xcalloc(1, sizeof *s);
    s->root = root;
    collect(s, root, "");
    int rc = CORE_OK;
    if (s->overflow)
        rc = core_errf(CORE_ERR_TOO_LARGE, reason, rs, "schema has more than %d named types",
                       SR_MAX_NAMED);
    else
        rc = schema_precheck(s, reason, rs);
    avro_schema_t as;
    if (!rc && avro_schema_from_json_length(text, len, &as))
        rc = core_errf(CORE_ERR_MALFORMED, reason, rs, "invalid Avro schema: %s", avro_strerror());
    else if (!rc)
        avro_schema_decref(as);
    if (rc) {
        schema_free(s);
        return rc;
    }
    *out = s;
    return CORE_OK;
}

/* A schema node with the namespace it is read in. */
typedef struct ref {
    json_t *node;
    const char *ns;
} ref_t;

static const named_t *lookup(const schema_t *s, const char *name, const char *ns)
{
    char *fn = full_name(name, ns);
    const named_t *found = NULL;
    for (int pass = 0; pass < 2 && !found; pass++)
        for (int i = 0; i < s->nnamed && !found; i++)
            if (!strcmp(s->named[i].fullname, pass ? name : fn))
                found = &s->named[i];
    free(fn);
    return found;
}

/* Follows a named reference ("Foo" or "a.b.Foo") to its definition. */
static ref_t resolve(const schema_t *s, ref_t r)
{
    /* {"type": X} where X is not a complex-type keyword is just X */
    for (int hops = 0; json_is_object(r.node) && hops < SR_MAX_DEPTH; hops++) {
        json_t *t = json_object_get(r.node, "type");
        const char *k = json_string_value(t);
        if (k && (!strcmp(k, "record") || !strcmp(k, "error") || !strcmp(k, "enum") ||
                  !strcmp(k, "fixed") || !strcmp(k, "array") || !strcmp(k, "map")))
            break;
        if (!t)
            break;
        r.node = t;
    }
    if (json_is_object(r.node)) { /* an inline definition: read inside its own namespace */
        for (int i = 0; i < s->nnamed; i++)
            if (s->named[i].node == r.node)
                return (ref_t){r.node, s->named[i].ns};
        return r;
    }
    const char *name = json_string_value(r.node);
    if (!name || is_primitive(name))
        return r;
    const named_t *n = lookup(s, name, r.ns);
    return n ? (ref_t){n->node, n->ns} : r; /* unknown names were refused at load */
}

/* The kind of a resolved node: a primitive name, "record", "enum", "fixed",
 * "array", "map", or "union". */
static const char *kind_of(json_t *node)
{
    if (json_is_array(node))
        return "union";
    if (json_is_string(node))
        return json_string_value(node);
    json_t *t = json_object_get(node, "type");
    if (json_is_string(t)) {
        const char *k = json_string_value(t);
        return strcmp(k, "error") ? k : "record";
    }
    return "?";
}

static bool promotes(const char *w, const char *r)
{
    if (!strcmp(w, r))
        return true;
    if (!strcmp(w, "int"))
        return !strcmp(r, "long") || !strcmp(r, "float") || !strcmp(r, "double");
    if (!strcmp(w, "long"))
        return !strcmp(r, "float") || !strcmp(r, "double");
    if (!strcmp(w, "float"))
        return !strcmp(r, "double");
    if (!strcmp(w, "string"))
        return !strcmp(r, "bytes");
    if (!strcmp(w, "bytes"))
        return !strcmp(r, "string");
    return false;
}

typedef struct cmp {
    const schema_t *ws, *rs;
    json_t *stack_w[SR_MAX_DEPTH], *stack_r[SR_MAX_DEPTH];
    int depth;
    char *reason;
    size_t rs_size;
} cmp_t;

static int mismatch(cmp_t *c, const char *path, const char *fmt, const char *a, const char *b)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a, b);
    return core_errf(CORE_ERR_CONFLICT, c->reason, c->rs_size, "%s%s%s", path, *path ? ": " : "",
                     msg);
}

static bool has_alias(json_t *node, const char *name)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(node, "aliases"), i, a) if (json_is_string(a) &&
                                                                   !strcmp(unqualified(json_string_value(a)),
                                                                           unqualified(name))) return true;
    return false;
}

static bool names_match(json_t *w, json_t *r)
{
    const char *wn = json_string_value(json_object_get(w, "name"));
    const char *rn = json_string_value(json_object_get(r, "name"));
    if (!wn || !rn)
        return false;
    return !strcmp(unqualified(wn), unqualified(rn)) || has_alias(r, wn);
}

static int compat(cmp_t *c, ref_t w, ref_t r, const char *path);

static int compat_record(cmp_t *c, ref_t w, ref_t r, const char *path)
{
    json_t *wf = json_object_get(w.node, "fields"), *rf = json_object_get(r.node, "fields");
    size_t i, j;
    json_t *f, *g;
    json_array_foreach(rf, i, f)
    {
        const char *fname = json_string_value(json_object_get(f, "name"));
        json_t *match = NULL;
        json_array_foreach(wf, j, g)
        {
            const char *gname = json_string_value(json_object_get(g, "name"));
            if (fname && gname && (!strcmp(fname, gname) || has_alias(f, gname))) {
                match = g;
                break;
            }
        }
        char sub[512];
        snprintf(sub, sizeof sub, "%s%sfield '%s'", path, *path ? "." : "", fname ? fname : "?");
        if (!match) {
            if (json_object_get(f, "default"))
                continue;
            return mismatch(c, sub, "%s%sreader field has no default and is missing from the writer",
                            "", "");
        }
        int rc = compat(c, (ref_t){json_object_get(match, "type"), w.ns},
                        (ref_t){json_object_get(f, "type"), r.ns}, sub);
        if (rc)
            return rc;
    }
    return CORE_OK;
}

static bool has_symbol(json_t *symbols, const char *s)
{
    size_t i;
    json_t *x;
    json_array_foreach(symbols, i, x) if (json_is_string(x) && !strcmp(json_string_value(x), s)) return true;
    return false;
}

static int compat(cmp_t *c, ref_t w, ref_t r, const char *path)
{
    w = resolve(c->ws, w);
    r = resolve(c->rs, r);
    const char *wk = kind_of(w.node), *rk = kind_of(r.node);
    if (!strcmp(wk, "union")) { /* any writer branch may have been written */
        size_t i;
        json_t *b;
        json_array_foreach(w.node, i, b)
        {
            int rc = compat(c, (ref_t){b, w.ns}, r, path);
            if (rc)
                return rc;
        }
        return CORE_OK;
    }
    if (!strcmp(rk, "union")) {
        size_t i;
        json_t *b;
        json_array_foreach(r.node, i, b)
        {
            char scratch[8];
            cmp_t probe = *c;
            probe.reason = scratch;
            probe.rs_size = sizeof scratch;
            if (!compat(&probe, w, (ref_t){b, r.ns}, path))
                return CORE_OK;
        }
        return mismatch(c, path, "writer type %s matches no branch of the reader's union%s", wk, "");
    }
    if (is_primitive(wk) || is_primitive(rk)) {
        if (is_primitive(wk) && is_primitive(rk) && promotes(wk, rk))
            return CORE_OK;
        return mismatch(c, path, "cannot read %s as %s", wk, rk);
    }
    if (strcmp(wk, rk))
        return mismatch(c, path, "cannot read %s as %s", wk, rk);
    if (!strcmp(wk, "array"))
        return compat(c, (ref_t){json_object_get(w.node, "items"), w.ns},
                      (ref_t){json_object_get(r.node, "items"), r.ns}, path);
    if (!strcmp(wk, "map"))
        return compat(c, (ref_t){json_object_get(w.node, "values"), w.ns},
                      (ref_t){json_object_get(r.node, "values"), r.ns}, path);
    /* named types */
    if (!names_match(w.node, r.node))
        return mismatch(c, path, "%s name '%s' differs from the reader's", wk,
                        json_string_value(json_object_get(w.node, "name")));
    if (!strcmp(wk, "fixed")) {
        if (json_integer_value(json_object_get(w.node, "size")) !=
            json_integer_value(json_object_get(r.node, "size")))
            return mismatch(c, path, "fixed sizes differ%s%s", "", "");
        return CORE_OK;
    }
    if (!strcmp(wk, "enum")) {
        if (json_object_get(r.node, "default"))
            return CORE_OK;
        size_t i;
        json_t *sym;
        json_array_foreach(json_object_get(w.node, "symbols"), i, sym) if (
            !has_symbol(json_object_get(r.node, "symbols"), json_string_value(sym))) return mismatch(c, path, "writer enum symbol %s is missing from the reader%s", json_string_value(sym), "");
        return CORE_OK;
    }
    /* record: a pair already under comparison is assumed compatible (recursion) */
    for (int i = 0; i < c->depth; i++)
        if (c->stack_w[i] == w.node && c->stack_r[i] == r.node)
            return CORE_OK;
    if (c->depth == SR_MAX_DEPTH)
        return mismatch(c, path, "schemas nest deeper than %s%s", "64", "");
    c->stack_w[c->depth] = w.node;
    c->stack_r[c->depth] = r.node;
    c->depth++;
    int rc = compat_record(c, w, r, path);
    c->depth--;
    return rc;
}

int sr_compat_reader_writer(const char *reader, const char *writer, char *reason, size_t rs)
{
    schema_t *ws = NULL, *rsch = NULL;
    int rc = schema_load(writer, strlen(writer), &ws, reason, rs);
    if (!rc)
        rc = schema_load(reader, strlen(reader), &rsch, reason, rs);
    if (!rc) {
        cmp_t c = {.ws = ws, .rs = rsch, .reason = reason, .rs_size = rs};
        rc = compat(&c, (ref_t){ws->root, ""}, (ref_t){rsch->root, ""}, "");
    }
    if (ws)
        schema_free(ws);
    if (rsch)
        schema_free(rsch);
    return rc;
}

int sr_compat_check(sr_level_t level, const char *candidate, const char *const *existing,
                    int nexisting, char *reason, size_t rs)
{
    if (level == SR_NONE || nexisting == 0)
        return CORE_OK;
    bool transitive = level == SR_BACKWARD_TRANSITIVE || level == SR_FORWARD_TRANSITIVE ||
                      level == SR_FULL_TRANSITIVE;
    bool backward = level != SR_FORWARD && level != SR_FORWARD_TRANSITIVE;
    bool forward = level != SR_BACKWARD && level != SR_BACKWARD_TRANSITIVE;
    for (int i = transitive ? 0 : nexisting - 1; i < nexisting; i++) {
        char why[384];
        int rc;
        if (backward && (rc = sr_compat_reader_writer(candidate, existing[i], why, sizeof why)))
            return core_errf(rc, reason, rs, "new schema cannot read data written with version %d (%s)",
                             i + 1, why);
        if (forward && (rc = sr_compat_reader_writer(existing[i], candidate, why, sizeof why)))
            return core_errf(rc, reason, rs, "version %d cannot read data written with the new schema (%s)",
                             i + 1, why);
    }
    return CORE_OK;
}

int sr_schema_canonical(const char *text, size_t len, char **canonical, char *reason, size_t rs)
{
    schema_t *s;
    int rc = schema_load(text, len, &s, reason, rs);
    if (rc)
        return rc;
    char *out = json_dumps(s->root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    schema_free(s);
    if (!out)
        return core_errf(CORE_ERR_NOMEM, reason, rs, "out of memory");
    *canonical = out;
    return CORE_OK;
}
