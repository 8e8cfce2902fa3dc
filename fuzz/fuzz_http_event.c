/*
 * fuzz_http_event — the Event API's decoders of outside input:
 *   first byte % 3 == 0: one event body (POST /events.json): parse + validate
 *                        (store_event_from_json), and for accepted events
 *                        check that the JSON we print parses back to the
 *                        same event (GET answers what POST stored);
 *                   == 1: a batch body (POST /batch/events.json): the array
 *                        walk and per-item validation the handler runs,
 *                        and the fast path (store_event_batch_parse_fast)
 *                        checked against it: same items, same events;
 *                   == 2: an internal store request (POST /internal/store,
 *                        store_remote_serve) against an engine that accepts
 *                        everything, so only the decoder is exercised.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core_buf.h"
#include "storage/store_event_json.h"
#include "storage/store_int.h"
#include "storage/store_remote.h"

#define NOW_MS 1700000000000LL

static void event_roundtrip(const uint8_t *data, size_t size)
{
    store_event_t ev;
    char err[512];
    if (store_event_from_json((const char *)data, size, NOW_MS, &ev, err, sizeof err) != 0)
        return;
    /* What GET prints is a stored event: it always has an id. */
    if (!ev.event_id[0])
        strcpy(ev.event_id, "fuzz-assigned-id");
    ev.creation_time_ms = NOW_MS;
    core_buf_t b;
    core_buf_init(&b);
    store_event_to_json(&ev, &b);
    store_event_t back;
    if (store_event_from_json((const char *)b.data, b.len, NOW_MS, &back, err, sizeof err) != 0)
        abort(); /* we printed something we refuse to read */
    if (strcmp(ev.event, back.event) || strcmp(ev.entity_type, back.entity_type) ||
        strcmp(ev.entity_id, back.entity_id) || ev.event_time_ms != back.event_time_ms ||
        strcmp(ev.event_id, back.event_id))
        abort();
    store_event_fini(&back);
    store_event_fini(&ev);
    core_buf_fini(&b);
}

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The batch fast path must decide exactly as the jansson path: when it
 * accepts a body, jansson reads the same items into the same events (and
 * validation answers the same); when it declines, that is always allowed. */
static void batch_walk(const uint8_t *data, size_t size)
{
    store_event_t fast[50];
    size_t nfast = 0;
    core_buf_t arena;
    core_buf_init(&arena);
    int frc = store_event_batch_parse_fast((const char *)data, size, NOW_MS, fast, 50, &nfast,
                                           &arena);
    json_error_t jerr;
    json_t *arr = json_loadb((const char *)data, size, JSON_DECODE_ANY, &jerr);
    if (frc == 0 && (!arr || !json_is_array(arr) || json_array_size(arr) != nfast))
        abort();
    if (arr && json_is_array(arr) && json_array_size(arr) <= 50) {
        for (size_t i = 0; i < json_array_size(arr); i++) {
            store_event_t ev;
            char err[512], ferr[512];
            int jrc = store_event_from_jansson(json_array_get(arr, i), NOW_MS, &ev, err, sizeof err);
            if (frc == 0) {
                int crc = store__event_check_fields(&fast[i], ferr, sizeof ferr);
                if ((jrc == 0) != (crc == 0) || (jrc && strcmp(err, ferr)))
                    abort();
                if (jrc == 0 &&
                    (strcmp(ev.event_id, fast[i].event_id) || !same_str(ev.event, fast[i].event) ||
                     !same_str(ev.entity_type, fast[i].entity_type) ||
                     !same_str(ev.entity_id, fast[i].entity_id) ||
                     !same_str(ev.target_entity_type, fast[i].target_entity_type) ||
                     !same_str(ev.target_entity_id, fast[i].target_entity_id) ||
                     !same_str(ev.pr_id, fast[i].pr_id) ||
                     !same_str(ev.properties, fast[i].properties) ||
                     ev.event_time_ms != fast[i].event_time_ms ||
                     ev.event_time_tz_min != fast[i].event_time_tz_min ||
                     ev.event_time_given != fast[i].event_time_given))
                    abort();
            }
            if (jrc == 0)
                store_event_fini(&ev);
        }
    }
    json_decref(arr);
    core_buf_fini(&arena);
}

/* An engine that answers every operation with "nothing here". */
static int n_commit(store_t *s, store_batch_t *b, store_put_result_t *r, char *e, size_t es)
{
    for (size_t i = 0; i < b->nev; i++) {
        memcpy(r[i].event_id, b->ev[i].id, sizeof(r[i].event_id));
        r[i].status = STORE_PUT_CREATED;
    }
    return 0;
}
static int n_get(store_t *s, int32_t a, int32_t c, const char *id, uint8_t **rec, size_t *len)
{
    return CORE_ERR_NOT_FOUND;
}
static int n_del(store_t *s, int32_t a, int32_t c, const char *id)
{
    return CORE_ERR_NOT_FOUND;
}
static int n_find(store_t *s, int32_t a, int32_t c, const store_find_t *f, store_event_cb cb,
                  void *o, int64_t *n)
{
    return 0;
}
static int n_props(store_t *s, int32_t a, int32_t c, const char *t, const char *i,
                   store__propev_cb cb, void *o)
{
    return 0;
}
static int n_kv_get(store_t *s, const void *k, size_t kl, void **v, size_t *vl)
{
    return CORE_ERR_NOT_FOUND;
}
static int n_kv_scan(store_t *s, const void *p, size_t pl, store_kv_cb cb, void *o)
{
    return 0;
}
static int n_data_delete(store_t *s, int32_t a, int32_t c)
{
    return 0;
}
static void n_close(store_t *s)
{
}
static const store__engine_t null_engine = {"null", n_close, n_commit, n_get, n_del, n_find,
                                            n_props, n_kv_get, n_kv_scan, n_data_delete, NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % 3) {
    case 0:
        event_roundtrip(data + 1, size - 1);
        break;
    case 1:
        batch_walk(data + 1, size - 1);
        break;
    default: {
        store_t st;
        memset(&st, 0, sizeof(st));
        st.eng = &null_engine;
        core_buf_t out;
        core_buf_init(&out);
        store_remote_serve(&st, data + 1, size - 1, &out);
        core_buf_fini(&out);
    }
    }
    return 0;
}
