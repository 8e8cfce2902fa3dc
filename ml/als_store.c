/* als_store — see als_store.h. */
#include "ml/als_store.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_crc.h"
#include "core/core_err.h"

/* ---- events -------------------------------------------------------------------- */

typedef struct {
    const als_engine_t *e;
    als_obs_t *obs;
    als_load_stats_t *st;
    int err;
} load_ctx_t;

static int on_event(const store_event_t *ev, void *opaque)
{
    load_ctx_t *c = opaque;
    c->st->events++;
    const als_event_weight_t *w = NULL;
    for (int j = 0; j < c->e->nevents; j++)
        if (strcmp(c->e->events[j].name, ev->event) == 0) {
            w = &c->e->events[j];
            break;
        }
    if (!w || !ev->target_entity_id) {
        c->st->skipped++;
        return 0;
    }
    double v = w->weight;
    if (w->use_rating) {
        json_t *props = ev->properties ? json_loads(ev->properties, 0, NULL) : NULL;
        json_t *r = json_object_get(props, "rating");
        if (!json_is_number(r)) {
            json_decref(props);
            c->st->skipped++;
            return 0;
        }
        v = json_number_value(r);
        json_decref(props);
    }
    /* a rating past ±ALS_MAX_ABS_VALUE is skipped and counted like any
     * other event training cannot use */
    if (als_obs_add(c->obs, ev->entity_id, strlen(ev->entity_id), ev->target_entity_id,
                    strlen(ev->target_entity_id), v, ev->event_time_ms) != CORE_OK)
        c->st->skipped++;
    return 0;
}

typedef struct {
    als_catlist_t *cats;
    als_load_stats_t *st;
} cat_ctx_t;

static int on_item(const char *entity_id, const store_props_t *props, void *opaque)
{
    cat_ctx_t *c = opaque;
    json_t *root = json_loads(props->properties, 0, NULL);
    json_t *list = json_object_get(root, "categories");
    if (json_is_array(list) && json_array_size(list) > 0) {
        size_t j;
        json_t *v;
        c->st->items_with_categories++;
        json_array_foreach(list, j, v)
        {
            if (json_is_string(v) && j < ALS_MODEL_MAX_ITEM_CATS &&
                json_string_length(v) <= ALS_MAX_ID_LEN)
                als_catlist_add(c->cats, entity_id, json_string_value(v));
        }
    }
    json_decref(root);
    return 0;
}

int als_store_load_events(store_t *s, const char *app, const als_engine_t *e, als_obs_t *obs,
                          als_catlist_t *cats, als_load_stats_t *st, char *errstr,
                          size_t errstr_size)
{
    memset(st, 0, sizeof(*st));
    store_app_t a;
    int err = store_app_get(s, app, &a);
    if (err == CORE_ERR_NOT_FOUND)
        return core_errf(err, errstr, errstr_size, "no app named \"%s\"", app);
    if (err)
        return core_errf(err, errstr, errstr_size, "looking up app %s: %s", app,
                         core_strerror(err));
    const char *names[ALS_ENGINE_MAX_EVENTS];
    for (int j = 0; j < e->nevents; j++)
        names[j] = e->events[j].name;
    store_find_t f;
    store_find_init(&f);
    f.entity_type = "user";
    f.target_entity_type = "item";
    f.events = names;
    f.nevents = e->nevents;
    load_ctx_t c = {e, obs, st, 0};
    if ((err = store_event_find(s, a.id, 0, &f, on_event, &c, NULL)) != CORE_OK)
        return core_errf(err, errstr, errstr_size, "reading events: %s", core_strerror(err));
    cat_ctx_t cc = {cats, st};
    err = store_props_all(s, a.id, 0, "item", INT64_MAX, on_item, &cc);
    if (err != CORE_OK && err != CORE_ERR_NOT_FOUND)
        return core_errf(err, errstr, errstr_size, "reading item properties: %s",
                         core_strerror(err));
    return CORE_OK;
}

/* ---- models -------------------------------------------------------------------- */

static int key_latest(char *k, size_t n, const char *app, const char *engine)
{
    return snprintf(k, n, "ml/als/%s/%s/latest", app, engine);
}
static int key_meta(char *k, size_t n, const char *app, const char *engine, int64_t v)
{
    return snprintf(k, n, "ml/als/%s/%s/v/%020lld/meta", app, engine, (long long)v);
}
static int key_chunk(char *k, size_t n, const char *app, const char *engine, int64_t v,
                     uint32_t c)
{
    return snprintf(k, n, "ml/als/%s/%s/v/%020lld/c/%06u", app, engine, (long long)v, c);
}

int als_store_latest_version(store_t *s, const char *app, const char *engine, int64_t *version)
{
    char k[512];
    int kl = key_latest(k, sizeof(k), app, engine);
    void *val = NULL;
    size_t vl = 0;
    *version = 0;
    int err = store_kv_get(s, k, (size_t)kl, &val, &vl);
    if (err == CORE_ERR_NOT_FOUND)
        return CORE_OK;
    if (err)
        return err;
    if (vl != 8) {
        free(val);
        return CORE_ERR_CORRUPT;
    }
    *version = (int64_t)core_be64(val);
    free(val);
    return CORE_OK;
}

typedef struct {
    uint32_t chunks;
    uint64_t len;
    uint32_t crc;
} meta_t;

static int read_meta(store_t *s, const char *app, const char *engine, int64_t v, meta_t *m)
{
    char k[512];
    int kl = key_meta(k, sizeof(k), app, engine, v);
    void *val = NULL;
    size_t vl = 0;
    int err = store_kv_get(s, k, (size_t)kl, &val, &vl);
    if (err)
        return err;
    if (vl != 16) {
        free(val);
        return CORE_ERR_CORRUPT;
    }
    const uint8_t *p = val;
    m->chunks = core_be32(p);
    m->len = core_be64(p + 4);
    m->crc = core_be32(p + 12);
    free(val);
    /* The chunk count must match the length exactly. */
    if (m->len > ALS_STORE_MAX_MODEL ||
        m->chunks != (uint32_t)((m->len + ALS_STORE_CHUNK - 1) / ALS_STORE_CHUNK))
        return CORE_ERR_CORRUPT;
    return CORE_OK;
}

int als_store_model_load(store_t *s, const char *app, const char *engine, als_model_t **out,
                         char *errstr, size_t errstr_size)
{
    *out = NULL;
    int64_t v;
    int err = als_store_latest_version(s, app, engine, &v);
    if (err)
        return core_errf(err, errstr, errstr_size, "reading the latest model pointer: %s",
                         core_strerror(err));
    if (v == 0)
        return core_errf(CORE_ERR_NOT_FOUND, errstr, errstr_size,
                         "no model trained for app %s, engine %s", app, engine);
    meta_t meta;
    if ((err = read_meta(s, app, engine, v, &meta)) != CORE_OK)
        return core_errf(err, errstr, errstr_size, "model v%lld metadata: %s", (long long)v,
                         core_strerror(err));
    uint8_t *blob = core_trymalloc(meta.len ? meta.len : 1);
    if (!blob)
        return core_errf(CORE_ERR_NOMEM, errstr, errstr_size, "model of %llu bytes",
                         (unsigned long long)meta.len);
    uint64_t off = 0;
    for (uint32_t c = 0; c < meta.chunks; c++) {
        char k[512];
        int kl = key_chunk(k, sizeof(k), app, engine, v, c);
        void *val = NULL;
        size_t vl = 0;
        if ((err = store_kv_get(s, k, (size_t)kl, &val, &vl)) != CORE_OK) {
            free(blob);
            return core_errf(err == CORE_ERR_NOT_FOUND ? CORE_ERR_CORRUPT : err, errstr,
                             errstr_size, "model v%lld chunk %u: %s", (long long)v, c,
                             core_strerror(err));
        }
        if (vl > meta.len - off) {
            free(val);
            free(blob);
            return core_errf(CORE_ERR_CORRUPT, errstr, errstr_size,
                             "model v%lld chunk %u is longer than its metadata says",
                             (long long)v, c);
        }
        memcpy(blob + off, val, vl);
        off += vl;
        free(val);
    }
    if (off != meta.len || core_crc32c(0, blob, meta.len) != meta.crc) {
        free(blob);
        return core_errf(CORE_ERR_CORRUPT, errstr, errstr_size,
                         "model v%lld: chunks do not match their metadata", (long long)v);
    }
    err = als_model_decode(blob, meta.len, out, errstr, errstr_size);
    free(blob);
    return err;
}

int als_store_model_save(store_t *s, als_model_t *m, char *errstr, size_t errstr_size)
{
    int64_t latest;
    int err = als_store_latest_version(s, m->app, m->engine, &latest);
    if (err)
        return core_errf(err, errstr, errstr_size, "reading the latest model pointer: %s",
                         core_strerror(err));
    m->version = latest + 1;
    core_buf_t b;
    core_buf_init(&b);
    als_model_encode(m, &b);
    store_batch_t *batch;
    if ((err = store_batch_begin(s, 0, &batch)) != CORE_OK) {
        core_buf_fini(&b);
        return core_errf(err, errstr, errstr_size, "store batch: %s", core_strerror(err));
    }
    char k[512];
    int kl;
    uint32_t nchunks = (uint32_t)((b.len + ALS_STORE_CHUNK - 1) / ALS_STORE_CHUNK);
    for (uint32_t c = 0; c < nchunks && !err; c++) {
        size_t off = (size_t)c * ALS_STORE_CHUNK;
        size_t n = b.len - off < ALS_STORE_CHUNK ? b.len - off : ALS_STORE_CHUNK;
        kl = key_chunk(k, sizeof(k), m->app, m->engine, m->version, c);
        err = store_batch_put_kv(batch, k, (size_t)kl, b.data + off, n);
    }
    uint8_t meta[16];
    core_put_be32(meta, nchunks);
    core_put_be64(meta + 4, b.len);
    core_put_be32(meta + 12, core_crc32c(0, b.data, b.len));
    kl = key_meta(k, sizeof(k), m->app, m->engine, m->version);
    if (!err)
        err = store_batch_put_kv(batch, k, (size_t)kl, meta, sizeof(meta));
    uint8_t ver[8];
    core_put_be64(ver, (uint64_t)m->version);
    kl = key_latest(k, sizeof(k), m->app, m->engine);
    if (!err)
        err = store_batch_put_kv(batch, k, (size_t)kl, ver, sizeof(ver));
    /* Retention: drop the version ALS_STORE_KEEP saves back. */
    int64_t old = m->version - ALS_STORE_KEEP;
    meta_t om;
    if (!err && old >= 1 && read_meta(s, m->app, m->engine, old, &om) == CORE_OK) {
        for (uint32_t c = 0; c < om.chunks && !err; c++) {
            kl = key_chunk(k, sizeof(k), m->app, m->engine, old, c);
            err = store_batch_delete_kv(batch, k, (size_t)kl);
        }
        kl = key_meta(k, sizeof(k), m->app, m->engine, old);
        if (!err)
            err = store_batch_delete_kv(batch, k, (size_t)kl);
    }
    core_buf_fini(&b);
    if (err) {
        store_batch_abort(batch);
        return core_errf(err, errstr, errstr_size, "building the model batch: %s",
                         core_strerror(err));
    }
    char why[256] = "";
    if ((err = store_batch_commit(batch, NULL, why, sizeof(why))) != CORE_OK)
        return core_errf(err, errstr, errstr_size, "storing model v%lld: %s",
                         (long long)m->version, why[0] ? why : core_strerror(err));
    return CORE_OK;
}
