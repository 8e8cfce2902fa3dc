#include "core/core_buf.h"

#include <stdlib.h>
#include <string.h>

#include "core/core_alloc.h"

void core_rd_fail(core_rd_t *rd, int err)
{
    if (!rd->err)
        rd->err = err;
}

/* Returns a pointer to n readable bytes and advances, or NULL after failing. */
static const uint8_t *rd_take(core_rd_t *rd, size_t n)
{
    if (rd->err)
        return NULL;
    if (rd->len - rd->pos < n) {
        rd->err = CORE_ERR_TRUNCATED;
        return NULL;
    }
    const uint8_t *p = rd->base + rd->pos;
    rd->pos += n;
    return p;
}

int8_t core_rd_i8(core_rd_t *rd)
{
    const uint8_t *p = rd_take(rd, 1);
    return p ? (int8_t)p[0] : 0;
}
int16_t core_rd_i16(core_rd_t *rd)
{
    const uint8_t *p = rd_take(rd, 2);
    return p ? (int16_t)((uint16_t)p[0] << 8 | p[1]) : 0;
}
int32_t core_rd_i32(core_rd_t *rd)
{
    const uint8_t *p = rd_take(rd, 4);
    return p ? (int32_t)core_be32(p) : 0;
}
uint32_t core_rd_u32(core_rd_t *rd)
{
    const uint8_t *p = rd_take(rd, 4);
    return p ? core_be32(p) : 0;
}
int64_t core_rd_i64(core_rd_t *rd)
{
    const uint8_t *p = rd_take(rd, 8);
    return p ? (int64_t)core_be64(p) : 0;
}

/* Base-128, low group first; at most max_bytes bytes. */
static uint64_t rd_uvar(core_rd_t *rd, int max_bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < max_bytes; i++) {
        const uint8_t *p = rd_take(rd, 1);
        if (!p)
            return 0;
        v |= (uint64_t)(p[0] & 0x7f) << (7 * i);
        if (!(p[0] & 0x80))
            return v;
    }
    core_rd_fail(rd, CORE_ERR_MALFORMED); /* varint longer than its type allows */
    return 0;
}

uint32_t core_rd_uvarint(core_rd_t *rd)
{
    uint64_t v = rd_uvar(rd, 5);
    if (v > UINT32_MAX) {
        core_rd_fail(rd, CORE_ERR_MALFORMED);
        return 0;
    }
    return (uint32_t)v;
}
int32_t core_rd_varint(core_rd_t *rd)
{
    uint32_t u = core_rd_uvarint(rd);
    return (int32_t)((u >> 1) ^ -(u & 1));
}
int64_t core_rd_varlong(core_rd_t *rd)
{
    uint64_t u = rd_uvar(rd, 10);
    return (int64_t)((u >> 1) ^ -(u & 1));
}

void core_rd_skip(core_rd_t *rd, size_t n)
{
    (void)rd_take(rd, n);
}

core_slice_t core_rd_raw(core_rd_t *rd, size_t n)
{
    core_slice_t s = {NULL, 0};
    const uint8_t *p = rd_take(rd, n);
    if (p) {
        s.ptr = p;
        s.len = (int64_t)n;
    }
    return s;
}

static core_slice_t rd_sized(core_rd_t *rd, int64_t n, bool nullable)
{
    core_slice_t s = {NULL, 0};
    if (rd->err)
        return s;
    if (n == -1 && nullable) {
        s.len = -1;
        return s;
    }
    if (n < 0) {
        core_rd_fail(rd, CORE_ERR_MALFORMED);
        return s;
    }
    return core_rd_raw(rd, (size_t)n);
}

core_slice_t core_rd_str(core_rd_t *rd)
{
    return rd_sized(rd, core_rd_i16(rd), false);
}
core_slice_t core_rd_nstr(core_rd_t *rd)
{
    return rd_sized(rd, core_rd_i16(rd), true);
}
core_slice_t core_rd_cstr(core_rd_t *rd)
{
    return rd_sized(rd, (int64_t)core_rd_uvarint(rd) - 1, false);
}
core_slice_t core_rd_ncstr(core_rd_t *rd)
{
    return rd_sized(rd, (int64_t)core_rd_uvarint(rd) - 1, true);
}
core_slice_t core_rd_bytes(core_rd_t *rd)
{
    return rd_sized(rd, core_rd_i32(rd), false);
}
core_slice_t core_rd_nbytes(core_rd_t *rd)
{
    return rd_sized(rd, core_rd_i32(rd), true);
}
core_slice_t core_rd_ncbytes(core_rd_t *rd)
{
    return rd_sized(rd, (int64_t)core_rd_uvarint(rd) - 1, true);
}
core_slice_t core_rd_varbytes(core_rd_t *rd)
{
    return rd_sized(rd, core_rd_varint(rd), true);
}

static int32_t rd_count(core_rd_t *rd, int64_t n, bool nullable, int32_t max, size_t min_elem)
{
    if (rd->err)
        return 0;
    if (n == -1 && nullable)
        return -1;
    if (n < 0 || n > max) {
        core_rd_fail(rd, n < 0 ? CORE_ERR_MALFORMED : CORE_ERR_TOO_LARGE);
        return 0;
    }
    if (min_elem && (size_t)n > (rd->len - rd->pos) / min_elem) {
        core_rd_fail(rd, CORE_ERR_TRUNCATED);
        return 0;
    }
    return (int32_t)n;
}

int32_t core_rd_array(core_rd_t *rd, int32_t max, size_t min_elem_size)
{
    return rd_count(rd, core_rd_i32(rd), false, max, min_elem_size);
}
int32_t core_rd_narray(core_rd_t *rd, int32_t max, size_t min_elem_size)
{
    return rd_count(rd, core_rd_i32(rd), true, max, min_elem_size);
}
int32_t core_rd_carray(core_rd_t *rd, int32_t max, size_t min_elem_size)
{
    return rd_count(rd, (int64_t)core_rd_uvarint(rd) - 1, false, max, min_elem_size);
}
int32_t core_rd_ncarray(core_rd_t *rd, int32_t max, size_t min_elem_size)
{
    return rd_count(rd, (int64_t)core_rd_uvarint(rd) - 1, true, max, min_elem_size);
}

void core_rd_skip_tags(core_rd_t *rd)
{
    uint32_t n = core_rd_uvarint(rd);
    for (uint32_t i = 0; i < n && !rd->err; i++) {
        (void)core_rd_uvarint(rd); /* tag */
        uint32_t size = core_rd_uvarint(rd);
        core_rd_skip(rd, size);
    }
}

/* ---- writer ---------------------------------------------------------------- */
void core_buf_init(core_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}
void core_buf_fini(core_buf_t *b)
{
    free(b->data);
    core_buf_init(b);
}
void core_buf_reset(core_buf_t *b)
{
    b->len = 0;
}
void core_buf_reserve(core_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = core_xrealloc(b->data, cap);
    b->cap = cap;
}
uint8_t *core_buf_detach(core_buf_t *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    core_buf_init(b);
    return p;
}

void core_wr_raw(core_buf_t *b, const void *p, size_t n)
{
    if (!n)
        return;
    core_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
}
void core_wr_i8(core_buf_t *b, int8_t v)
{
    core_buf_reserve(b, 1);
    b->data[b->len++] = (uint8_t)v;
}
void core_wr_i16(core_buf_t *b, int16_t v)
{
    uint8_t t[2] = {(uint8_t)((uint16_t)v >> 8), (uint8_t)v};
    core_wr_raw(b, t, 2);
}
void core_wr_i32(core_buf_t *b, int32_t v)
{
    uint8_t t[4];
    core_put_be32(t, (uint32_t)v);
    core_wr_raw(b, t, 4);
}
void core_wr_u32(core_buf_t *b, uint32_t v)
{
    uint8_t t[4];
    core_put_be32(t, v);
    core_wr_raw(b, t, 4);
}
void core_wr_i64(core_buf_t *b, int64_t v)
{
    uint8_t t[8];
    core_put_be64(t, (uint64_t)v);
    core_wr_raw(b, t, 8);
}
static void wr_uvar(core_buf_t *b, uint64_t u)
{
    uint8_t t[10];
    int n = 0;
    while (u >= 0x80) {
        t[n++] = (uint8_t)(u | 0x80);
        u >>= 7;
    }
    t[n++] = (uint8_t)u;
    core_wr_raw(b, t, (size_t)n);
}
void core_wr_uvarint(core_buf_t *b, uint32_t v)
{
    wr_uvar(b, v);
}
void core_wr_varint(core_buf_t *b, int32_t v)
{
    wr_uvar(b, (uint32_t)(((uint32_t)v << 1) ^ (uint32_t)(v >> 31)));
}
void core_wr_varlong(core_buf_t *b, int64_t v)
{
    wr_uvar(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}
void core_wr_str(core_buf_t *b, const void *p, int64_t len)
{
    core_wr_i16(b, (int16_t)(len < 0 ? -1 : len));
    if (len > 0)
        core_wr_raw(b, p, (size_t)len);
}
void core_wr_cstr(core_buf_t *b, const void *p, int64_t len)
{
    core_wr_uvarint(b, (uint32_t)(len < 0 ? 0 : len + 1));
    if (len > 0)
        core_wr_raw(b, p, (size_t)len);
}
void core_wr_bytes(core_buf_t *b, const void *p, int64_t len)
{
    core_wr_i32(b, (int32_t)(len < 0 ? -1 : len));
    if (len > 0)
        core_wr_raw(b, p, (size_t)len);
}
void core_wr_cbytes(core_buf_t *b, const void *p, int64_t len)
{
    core_wr_cstr(b, p, len);
}
void core_wr_carray_len(core_buf_t *b, int32_t n)
{
    core_wr_uvarint(b, (uint32_t)(n < 0 ? 0 : n + 1));
}
void core_wr_empty_tags(core_buf_t *b)
{
    core_wr_i8(b, 0);
}
void core_wr_i32_at(core_buf_t *b, size_t pos, int32_t v)
{
    core_put_be32(b->data + pos, (uint32_t)v);
}
