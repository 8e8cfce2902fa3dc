#include "batch_builder.h"

#include <stdio.h>
#include <string.h>

#include "core/core_crc.h"

void bb_begin(batch_builder_t *bb, int64_t base_ts)
{
    memset(bb, 0, sizeof *bb);
    core_buf_init(&bb->recs);
    bb->base_ts = base_ts;
    bb->max_ts = base_ts;
    bb->producer_id = -1;
    bb->producer_epoch = -1;
    bb->base_sequence = -1;
}

void bb_add_h(batch_builder_t *bb, const void *key, int32_t key_len, const void *value,
              int32_t value_len, int64_t ts, const char *hkey, const void *hval, int32_t hval_len)
{
    core_buf_t r;
    core_buf_init(&r);
    core_wr_i8(&r, 0); /* attributes */
    core_wr_varlong(&r, ts - bb->base_ts);
    core_wr_varint(&r, bb->count);
    core_wr_varint(&r, key ? key_len : -1);
    if (key && key_len > 0)
        core_wr_raw(&r, key, (size_t)key_len);
    core_wr_varint(&r, value ? value_len : -1);
    if (value && value_len > 0)
        core_wr_raw(&r, value, (size_t)value_len);
    core_wr_varint(&r, hkey ? 1 : 0);
    if (hkey) {
        core_wr_varint(&r, (int32_t)strlen(hkey));
        core_wr_raw(&r, hkey, strlen(hkey));
        core_wr_varint(&r, hval ? hval_len : -1);
        if (hval && hval_len > 0)
            core_wr_raw(&r, hval, (size_t)hval_len);
    }
    core_wr_varint(&bb->recs, (int32_t)r.len);
    core_wr_raw(&bb->recs, r.data, r.len);
    core_buf_fini(&r);
    if (ts > bb->max_ts)
        bb->max_ts = ts;
    bb->count++;
}

void bb_add(batch_builder_t *bb, const void *key, int32_t key_len, const void *value,
            int32_t value_len, int64_t ts)
{
    bb_add_h(bb, key, key_len, value, value_len, ts, NULL, NULL, 0);
}

void bb_fix_crc(uint8_t *p)
{
    uint32_t len = core_be32(p + 8);
    core_put_be32(p + 17, core_crc32c(0, p + 21, (size_t)len + 12 - 21));
}

size_t bb_end(batch_builder_t *bb, core_buf_t *out)
{
    size_t start = out->len;
    core_wr_i64(out, 0);                                  /* baseOffset */
    core_wr_i32(out, (int32_t)(61 - 12 + bb->recs.len));  /* batchLength */
    core_wr_i32(out, -1);                                 /* partitionLeaderEpoch */
    core_wr_i8(out, 2);                                   /* magic */
    core_wr_u32(out, 0);                                  /* crc, below */
    core_wr_i16(out, bb->attributes);
    core_wr_i32(out, bb->count - 1);                      /* lastOffsetDelta */
    core_wr_i64(out, bb->base_ts);
    core_wr_i64(out, bb->max_ts);
    core_wr_i64(out, bb->producer_id);
    core_wr_i16(out, bb->producer_epoch);
    core_wr_i32(out, bb->base_sequence);
    core_wr_i32(out, bb->count);
    core_wr_raw(out, bb->recs.data, bb->recs.len);
    bb_fix_crc(out->data + start);
    core_buf_fini(&bb->recs);
    return start;
}

size_t bb_simple(core_buf_t *out, int n, int64_t ts, size_t value_size)
{
    batch_builder_t bb;
    char v[65536];
    if (value_size < 16)
        value_size = 16;
    if (value_size > sizeof v)
        value_size = sizeof v;
    bb_begin(&bb, ts);
    for (int i = 0; i < n; i++) {
        memset(v, 'x', value_size);
        int m = snprintf(v, value_size, "value-%d", i);
        v[m] = '.';
        bb_add(&bb, NULL, -1, v, (int32_t)value_size, ts);
    }
    return bb_end(&bb, out);
}
