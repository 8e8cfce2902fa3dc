#include "registry/sr_state.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core_alloc.h"
#include "core/core_err.h"

typedef struct sr_schema {
    int id;
    char *text; /* canonical */
} sr_schema_t;

typedef struct sr_subject {
    char *name;
    sr_version_t *versions; /* ascending by version */
    int nversions;
    bool has_level;
    sr_level_t level;
} sr_subject_t;

struct sr_state {
    sr_schema_t *schemas;
    int nschemas;
    sr_subject_t *subjects;
    int nsubjects;
    int max_id;
    bool has_global;
    sr_level_t global;
    const char **names_scratch; /* for sr_state_subjects */
};

sr_state_t *sr_state_new(void)
{
    return core_xcalloc(1, sizeof(sr_state_t));
}

void sr_state_free(sr_state_t *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->nschemas; i++)
        free(st->schemas[i].text);
    for (int i = 0; i < st->nsubjects; i++) {
        free(st->subjects[i].name);
        free(st->subjects[i].versions);
    }
    free(st->schemas);
    free(st->subjects);
    free(st->names_scratch);
    free(st);
}

static sr_subject_t *subject_get(const sr_state_t *st, const char *name)
{
    for (int i = 0; i < st->nsubjects; i++)
        if (!strcmp(st->subjects[i].name, name))
            return &st->subjects[i];
    return NULL;
}

static sr_subject_t *subject_add(sr_state_t *st, const char *name)
{
    sr_subject_t *s = subject_get(st, name);
    if (s)
        return s;
    st->subjects = core_xrealloc(st->subjects, sizeof *st->subjects * (size_t)(st->nsubjects + 1));
    s = &st->subjects[st->nsubjects++];
    memset(s, 0, sizeof *s);
    s->name = core_xstrdup(name);
    return s;
}

const char *sr_state_schema_by_id(const sr_state_t *st, int id)
{
    for (int i = 0; i < st->nschemas; i++)
        if (st->schemas[i].id == id)
            return st->schemas[i].text;
    return NULL;
}

int sr_state_find_id(const sr_state_t *st, const char *canonical)
{
    for (int i = 0; i < st->nschemas; i++)
        if (!strcmp(st->schemas[i].text, canonical))
            return st->schemas[i].id;
    return 0;
}

int sr_state_next_id(const sr_state_t *st)
{
    return st->max_id == INT32_MAX ? 0 : st->max_id + 1;
}

static void schema_remember(sr_state_t *st, int id, const char *text)
{
    if (id > st->max_id)
        st->max_id = id;
    if (sr_state_schema_by_id(st, id))
        return;
    st->schemas = core_xrealloc(st->schemas, sizeof *st->schemas * (size_t)(st->nschemas + 1));
    st->schemas[st->nschemas].id = id;
    st->schemas[st->nschemas].text = core_xstrdup(text);
    st->nschemas++;
}

static int apply_schema(sr_state_t *st, json_t *key, json_t *val)
{
    const char *subject = json_string_value(json_object_get(key, "subject"));
    json_int_t version = json_integer_value(json_object_get(key, "version"));
    /* Versions and ids are Java ints in Confluent's records: anything wider
     * would be truncated into a duplicate or negative version. */
    if (!subject || version < 1 || version > INT32_MAX)
        return CORE_ERR_MALFORMED;
    sr_subject_t *s = subject_get(st, subject);
    if (!val) { /* hard delete of one version */
        for (int i = 0; s && i < s->nversions; i++)
            if (s->versions[i].version == version) {
                memmove(&s->versions[i], &s->versions[i + 1],
                        sizeof *s->versions * (size_t)(s->nversions - i - 1));
                s->nversions--;
                break;
            }
        return CORE_OK;
    }
    json_int_t id = json_integer_value(json_object_get(val, "id"));
    const char *schema = json_string_value(json_object_get(val, "schema"));
    if (id < 1 || id > INT32_MAX || !schema)
        return CORE_ERR_MALFORMED;
    schema_remember(st, (int)id, schema);
    s = subject_add(st, subject);
    bool deleted = json_is_true(json_object_get(val, "deleted"));
    for (int i = 0; i < s->nversions; i++)
        if (s->versions[i].version == version) {
            s->versions[i].deleted = deleted;
            return CORE_OK;
        }
    s->versions = core_xrealloc(s->versions, sizeof *s->versions * (size_t)(s->nversions + 1));
    int at = s->nversions;
    while (at > 0 && s->versions[at - 1].version > version)
        at--;
    memmove(&s->versions[at + 1], &s->versions[at], sizeof *s->versions * (size_t)(s->nversions - at));
    s->versions[at] = (sr_version_t){(int)version, (int)id, deleted};
    s->nversions++;
    return CORE_OK;
}

static int apply_config(sr_state_t *st, json_t *key, json_t *val)
{
    const char *subject = json_string_value(json_object_get(key, "subject"));
    sr_level_t level = SR_BACKWARD;
    bool set = false;
    if (val) {
        const char *name = json_string_value(json_object_get(val, "compatibilityLevel"));
        if (!name || !sr_level_parse(name, &level))
            return CORE_ERR_MALFORMED;
        set = true;
    }
    if (!subject) {
        st->has_global = set;
        st->global = level;
        return CORE_OK;
    }
    sr_subject_t *s = set ? subject_add(st, subject) : subject_get(st, subject);
    if (s) {
        s->has_level = set;
        s->level = level;
    }
    return CORE_OK;
}

int sr_state_apply(sr_state_t *st, const char *key, size_t klen, const char *value, size_t vlen)
{
    json_t *k = json_loadb(key, klen, 0, NULL);
    json_t *v = value ? json_loadb(value, vlen, 0, NULL) : NULL;
    int rc = CORE_ERR_MALFORMED;
    const char *type = json_string_value(json_object_get(k, "keytype"));
    if (k && (!value || v) && type) {
        if (!strcmp(type, "SCHEMA"))
            rc = apply_schema(st, k, v);
        else if (!strcmp(type, "CONFIG"))
            rc = apply_config(st, k, v);
        else
            rc = CORE_OK; /* other Confluent record types (NOOP, MODE...) carry nothing for us */
    }
    json_decref(k);
    json_decref(v);
    return rc;
}

int sr_state_subjects(const sr_state_t *st, bool include_deleted, const char ***names)
{
    sr_state_t *mst = (sr_state_t *)st;
    mst->names_scratch = core_xrealloc(mst->names_scratch,
                                       sizeof(char *) * (size_t)(st->nsubjects + 1));
    int n = 0;
    for (int i = 0; i < st->nsubjects; i++) {
        const sr_subject_t *s = &st->subjects[i];
        bool live = false, any = s->nversions > 0;
        for (int j = 0; j < s->nversions; j++)
            live |= !s->versions[j].deleted;
        if (live || (include_deleted && any))
            mst->names_scratch[n++] = s->name;
    }
    *names = mst->names_scratch;
    return n;
}

int sr_state_versions(const sr_state_t *st, const char *subject, const sr_version_t **versions)
{
    const sr_subject_t *s = subject_get(st, subject);
    if (!s || !s->nversions)
        return -1;
    *versions = s->versions;
    return s->nversions;
}

int sr_state_find_version(const sr_state_t *st, const char *subject, const char *canonical,
                          sr_version_t *out)
{
    const sr_subject_t *s = subject_get(st, subject);
    for (int i = 0; s && i < s->nversions; i++) {
        if (s->versions[i].deleted)
            continue;
        const char *text = sr_state_schema_by_id(st, s->versions[i].id);
        if (text && !strcmp(text, canonical)) {
            *out = s->versions[i];
            return 1;
        }
    }
    return 0;
}

sr_level_t sr_state_level(const sr_state_t *st, const char *subject, bool *own)
{
    const sr_subject_t *s = subject ? subject_get(st, subject) : NULL;
    if (own)
        *own = s && s->has_level;
    if (s && s->has_level)
        return s->level;
    return st->has_global ? st->global : SR_BACKWARD;
}

int sr_state_id_uses(const sr_state_t *st, int id, const char **subjects, int *versions, int max)
{
    int n = 0;
    for (int i = 0; i < st->nsubjects; i++)
        for (int j = 0; j < st->subjects[i].nversions; j++)
            if (st->subjects[i].versions[j].id == id && !st->subjects[i].versions[j].deleted) {
                if (n < max) {
                    subjects[n] = st->subjects[i].name;
                    versions[n] = st->subjects[i].versions[j].version;
                }
                n++;
            }
    return n;
}

static char *dump(json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!s)
        abort(); /* only on OOM */
    return s;
}

char *sr_key_schema(const char *subject, int version)
{
    return dump(json_pack("{s:s, s:s, s:i, s:i}", "keytype", "SCHEMA", "subject", subject, "version",
                          version, "magic", 1));
}

char *sr_value_schema(const char *subject, int version, int id, const char *schema, bool deleted)
{
    return dump(json_pack("{s:s, s:i, s:i, s:s, s:b}", "subject", subject, "version", version, "id",
                          id, "schema", schema, "deleted", deleted));
}

char *sr_key_config(const char *subject)
{
    return dump(json_pack("{s:s, s:s?, s:i}", "keytype", "CONFIG", "subject", subject, "magic", 0));
}

char *sr_value_config(sr_level_t level)
{
    return dump(json_pack("{s:s}", "compatibilityLevel", sr_level_name(level)));
}
