/*
 * fuzz_sr_state — the schema registry's log decoder (sr_state_apply): the
 * records it replays from the `_schemas` topic, which any Kafka client can
 * write to. Input: one record per line, "KEY\tVALUE" (no tab = tombstone).
 * After applying them all, the state must keep its invariants whatever the
 * log said:
 *   - every listed subject has versions, strictly ascending, all >= 1, each
 *     with an id >= 1 that resolves to a schema text and is below the next id
 *     (ids are never reused; the next id never overflows: 0 = none left);
 *   - a live version is found again by its schema text;
 *   - the state re-encoded with our own record encoders (sr_key_* /
 *     sr_value_*) is accepted by the decoder and rebuilds the same subjects,
 *     versions, ids, deleted flags and levels (the log is its own backup);
 *   - a compatibility check against whatever schema texts the log carried
 *     answers (they were never validated) rather than crashes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_err.h"
#include "registry/sr_compat.h"
#include "registry/sr_state.h"

static void apply_lines(sr_state_t *st, const char *p, size_t n)
{
    while (n) {
        const char *nl = memchr(p, '\n', n);
        size_t len = nl ? (size_t)(nl - p) : n;
        const char *tab = memchr(p, '\t', len);
        if (tab)
            sr_state_apply(st, p, (size_t)(tab - p), tab + 1, len - (size_t)(tab - p) - 1);
        else
            sr_state_apply(st, p, len, NULL, 0);
        p += len + (nl != NULL);
        n -= len + (nl != NULL);
    }
}

/* Checks one state's invariants; returns the number of subjects listed. */
static int check(const sr_state_t *st)
{
    const char **names;
    int nsub = sr_state_subjects(st, true, &names);
    int next = sr_state_next_id(st);
    for (int i = 0; i < nsub; i++) {
        const sr_version_t *vs;
        int n = sr_state_versions(st, names[i], &vs);
        if (n < 1)
            abort(); /* listed, so it has versions */
        for (int j = 0; j < n; j++) {
            if (vs[j].version < 1 || (j && vs[j].version <= vs[j - 1].version))
                abort(); /* "latest" is the last entry: order is the contract */
            if (vs[j].id < 1 || (next != 0 && vs[j].id >= next) || next < 0)
                abort(); /* next == 0: every id up to INT32_MAX is taken */
            const char *text = sr_state_schema_by_id(st, vs[j].id);
            if (!text)
                abort(); /* the server hands these to the compatibility checker */
            sr_version_t found;
            if (!vs[j].deleted &&
                (!sr_state_find_version(st, names[i], text, &found) || found.deleted))
                abort();
        }
    }
    return nsub;
}

/* Rebuilds st from our own encoding of it and checks both agree. */
static void replay_check(const sr_state_t *st, int nsub)
{
    sr_state_t *b = sr_state_new();
    char *k = sr_key_config(NULL), *v = sr_value_config(sr_state_level(st, NULL, NULL));
    if (sr_state_apply(b, k, strlen(k), v, strlen(v)) != CORE_OK)
        abort();
    free(k);
    free(v);
    const char **names;
    sr_state_subjects(st, true, &names);
    for (int i = 0; i < nsub; i++) {
        const sr_version_t *vs;
        int n = sr_state_versions(st, names[i], &vs);
        for (int j = 0; j < n; j++) {
            k = sr_key_schema(names[i], vs[j].version);
            v = sr_value_schema(names[i], vs[j].version, vs[j].id,
                                sr_state_schema_by_id(st, vs[j].id), vs[j].deleted);
            if (sr_state_apply(b, k, strlen(k), v, strlen(v)) != CORE_OK)
                abort(); /* we wrote a record we cannot read back */
            free(k);
            free(v);
        }
        bool own;
        sr_level_t level = sr_state_level(st, names[i], &own);
        if (own) {
            k = sr_key_config(names[i]);
            v = sr_value_config(level);
            if (sr_state_apply(b, k, strlen(k), v, strlen(v)) != CORE_OK)
                abort();
            free(k);
            free(v);
        }
    }
    const char **bnames;
    if (sr_state_subjects(b, true, &bnames) != nsub)
        abort();
    for (int i = 0; i < nsub; i++) {
        const sr_version_t *va, *vb;
        int na = sr_state_versions(st, names[i], &va);
        int nb = sr_state_versions(b, names[i], &vb);
        if (na != nb)
            abort();
        for (int j = 0; j < na; j++)
            if (va[j].version != vb[j].version || va[j].id != vb[j].id ||
                va[j].deleted != vb[j].deleted ||
                strcmp(sr_state_schema_by_id(st, va[j].id), sr_state_schema_by_id(b, vb[j].id)))
                abort();
        bool own_a, own_b;
        if (sr_state_level(st, names[i], &own_a) != sr_state_level(b, names[i], &own_b) ||
            own_a != own_b)
            abort();
    }
    sr_state_free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 14)
        return 0; /* lookups are linear scans: keep each run quick */
    sr_state_t *st = sr_state_new();
    apply_lines(st, (const char *)data, size);
    int nsub = check(st);
    replay_check(st, nsub);
    /* The first subject's live texts through a transitive check, as a
     * registration against it would do. */
    const char **names;
    if (sr_state_subjects(st, false, &names) > 0) {
        const sr_version_t *vs;
        int n = sr_state_versions(st, names[0], &vs), k = 0;
        const char *live[4];
        for (int j = 0; j < n && k < 4; j++)
            if (!vs[j].deleted)
                live[k++] = sr_state_schema_by_id(st, vs[j].id);
        char why[512] = "";
        if (sr_compat_check(SR_FULL_TRANSITIVE, "\"string\"", live, k, why, sizeof why) != 0 &&
            !why[0])
            abort(); /* a refusal says why */
    }
    sr_state_free(st);
    return 0;
}
