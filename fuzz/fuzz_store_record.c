/*
 * fuzz_store_record — the event store's record decoders, which read back
 * what an engine returns (RocksDB files, a Redis server other clients may
 * write to, the owner's answers to a remote store): store__rec_decode (every
 * read) and store__rec_keys (deletes and index rebuilds). Input: byte 0 is
 * the id length (up to 79, so ids past STORE_EVENT_ID_MAX are tried), then
 * the id, then the record. Checks:
 *   - decode refuses with CORE_ERR_CORRUPT only, and accepts only what
 *     rec_keys accepts too (it reads a superset of the same layout);
 *   - when both accept, they agree: event time, entity, target (present in
 *     both or neither, same text) and the special-event op;
 *   - the event GET would print from it is JSON that parses, whenever the
 *     record's properties are a JSON object and its strings are UTF-8 (the
 *     store only writes such records), and whatever the stored times are.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core_buf.h"
#include "core/core_err.h"
#include "storage/store_event_json.h"
#include "storage/store_int.h"

/* The decoded C string is the view's text up to its first NUL, if any. */
static void same_text(core_slice_t v, const char *s)
{
    size_t n = strlen(s);
    if (v.len < 0 || n > (size_t)v.len || (n && memcmp(v.ptr, s, n)) ||
        (n < (size_t)v.len && v.ptr[n] != 0))
        abort();
}

static bool utf8(const char *s)
{
    if (!s)
        return true;
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t idl = data[0] % 80;
    if (idl > size - 1)
        idl = size - 1;
    const char *id = (const char *)data + 1;
    size_t len = size - 1 - idl;
    uint8_t *rec = malloc(len ? len : 1); /* exact-size copy: ASan sees overreads */
    memcpy(rec, data + 1 + idl, len);

    core_buf_t scratch;
    core_buf_init(&scratch);
    store_event_t ev;
    int rc = store__rec_decode(rec, len, id, idl, &ev, &scratch);
    core_slice_t et, ei, tt, ti;
    uint8_t op;
    int64_t ms;
    int krc = store__rec_keys(rec, len, &et, &ei, &tt, &ti, &op, &ms);
    if (rc && rc != CORE_ERR_CORRUPT)
        abort();
    if (rc == 0) {
        if (krc != 0 || ms != ev.event_time_ms || !ev.event || !ev.properties)
            abort();
        if (strlen(ev.event_id) > idl || memcmp(ev.event_id, id, strlen(ev.event_id)))
            abort();
        same_text(et, ev.entity_type);
        same_text(ei, ev.entity_id);
        if ((tt.len >= 0) != (ev.target_entity_type != NULL) ||
            (ti.len >= 0) != (ev.target_entity_id != NULL))
            abort();
        if (ev.target_entity_type) {
            same_text(tt, ev.target_entity_type);
            same_text(ti, ev.target_entity_id);
        }
        /* (one way only: a NUL inside the stored name ends the C string early) */
        if ((op == STORE_OP_SET && strcmp(ev.event, "$set")) ||
            (op == STORE_OP_UNSET && strcmp(ev.event, "$unset")) ||
            (op == STORE_OP_DELETE && strcmp(ev.event, "$delete")))
            abort();

        core_buf_t out;
        core_buf_init(&out);
        store_event_to_json(&ev, &out);
        json_t *props = json_loads(ev.properties, 0, NULL);
        if (json_is_object(props) && utf8(ev.event_id) && utf8(ev.event) &&
            utf8(ev.entity_type) && utf8(ev.entity_id) && utf8(ev.target_entity_type) &&
            utf8(ev.target_entity_id) && utf8(ev.pr_id)) {
            json_t *j = json_loadb((const char *)out.data, out.len, 0, NULL);
            if (!json_is_object(j))
                abort(); /* GET printed something that is not JSON */
            json_decref(j);
        }
        json_decref(props);
        core_buf_fini(&out);
    }
    core_buf_fini(&scratch);
    free(rec);
    return 0;
}
