/*
 * core_buf — bounds-checked readers and growable writers for every wire and
 * disk format in Eddy (Kafka protocol, RecordBatch, segment files, models).
 *
 * Reader (core_rd_t): a view over bytes the caller owns. Every read checks the
 * remaining length before touching memory. The first failure sets rd->err
 * (CORE_ERR_TRUNCATED or CORE_ERR_MALFORMED) and makes every later read a
 * no-op that yields zero/empty, so a decoder may read a whole structure and
 * check rd->err once at the end. Strings and byte fields are returned as views
 * (core_slice_t) into the reader's buffer: borrowed, valid while it lives.
 *
 * Writer (core_buf_t): a heap buffer that grows geometrically. Writes never
 * fail: allocation failure aborts (core_xrealloc), as in Redis' zmalloc,
 * because a broker that cannot allocate a response buffer cannot do anything
 * useful. Big-endian integers, zigzag varints and Kafka's compact encodings.
 *
 * Integers on the wire are big-endian unless a name says otherwise (_le).
 * Thread-safety: none; a reader or writer belongs to one thread at a time.
 */
#ifndef EDDY_CORE_BUF_H
#define EDDY_CORE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/core_err.h"

/* A borrowed view: ptr may be NULL only when len is 0 or the field was null. */
typedef struct core_slice {
    const uint8_t *ptr;
    int64_t len; /* -1 = null (Kafka nullable string/bytes) */
} core_slice_t;

typedef struct core_rd {
    const uint8_t *base;
    size_t len;
    size_t pos;
    int err; /* sticky: CORE_OK until the first failed read */
} core_rd_t;

static inline void core_rd_init(core_rd_t *rd, const void *base, size_t len)
{
    rd->base = (const uint8_t *)base;
    rd->len = len;
    rd->pos = 0;
    rd->err = CORE_OK;
}
static inline size_t core_rd_remain(const core_rd_t *rd)
{
    return rd->err ? 0 : rd->len - rd->pos;
}
static inline const uint8_t *core_rd_ptr(const core_rd_t *rd)
{
    return rd->base + rd->pos;
}
/* Marks the reader failed (keeps the first error). */
void core_rd_fail(core_rd_t *rd, int err);

int8_t core_rd_i8(core_rd_t *rd);
int16_t core_rd_i16(core_rd_t *rd);
int32_t core_rd_i32(core_rd_t *rd);
int64_t core_rd_i64(core_rd_t *rd);
uint32_t core_rd_u32(core_rd_t *rd);
/* Zigzag varint (int32 range, at most 5 bytes) and varlong (at most 10 bytes). */
int32_t core_rd_varint(core_rd_t *rd);
int64_t core_rd_varlong(core_rd_t *rd);
/* Unsigned base-128 varint (at most 5 bytes), as in Kafka flexible versions. */
uint32_t core_rd_uvarint(core_rd_t *rd);
/* Skips n bytes; fails with TRUNCATED if fewer remain. */
void core_rd_skip(core_rd_t *rd, size_t n);
/* Returns a view of the next n bytes and advances. */
core_slice_t core_rd_raw(core_rd_t *rd, size_t n);

/* Kafka strings and bytes. Nullable forms return len -1 for null; the plain
 * forms fail with MALFORMED on a null. */
core_slice_t core_rd_str(core_rd_t *rd);          /* int16 length */
core_slice_t core_rd_nstr(core_rd_t *rd);         /* int16 length, -1 = null */
core_slice_t core_rd_cstr(core_rd_t *rd);         /* compact: uvarint N+1 */
core_slice_t core_rd_ncstr(core_rd_t *rd);        /* compact nullable: 0 = null */
core_slice_t core_rd_bytes(core_rd_t *rd);        /* int32 length */
core_slice_t core_rd_nbytes(core_rd_t *rd);       /* int32 length, -1 = null */
core_slice_t core_rd_ncbytes(core_rd_t *rd);      /* compact nullable bytes */
core_slice_t core_rd_varbytes(core_rd_t *rd);     /* zigzag varint length, -1 = null (records) */

/* Array counts, checked against max and against the bytes that remain
 * (each element needs at least min_elem_size bytes). Returns -1 for a null
 * array (only the n-variants accept it). */
int32_t core_rd_array(core_rd_t *rd, int32_t max, size_t min_elem_size);
int32_t core_rd_narray(core_rd_t *rd, int32_t max, size_t min_elem_size);
int32_t core_rd_carray(core_rd_t *rd, int32_t max, size_t min_elem_size);  /* compact */
int32_t core_rd_ncarray(core_rd_t *rd, int32_t max, size_t min_elem_size); /* compact nullable */
/* Skips a tagged-field section (uvarint count, then tag/size/bytes). */
void core_rd_skip_tags(core_rd_t *rd);

/* ---- writer ---------------------------------------------------------------- */
typedef struct core_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} core_buf_t;

void core_buf_init(core_buf_t *b);
void core_buf_fini(core_buf_t *b);
void core_buf_reserve(core_buf_t *b, size_t extra);
void core_buf_reset(core_buf_t *b); /* len = 0, keeps capacity */
/* Transfers ownership of the bytes to the caller (free with free()); b is re-initialised. */
uint8_t *core_buf_detach(core_buf_t *b, size_t *len);

void core_wr_raw(core_buf_t *b, const void *p, size_t n);
void core_wr_i8(core_buf_t *b, int8_t v);
void core_wr_i16(core_buf_t *b, int16_t v);
void core_wr_i32(core_buf_t *b, int32_t v);
void core_wr_i64(core_buf_t *b, int64_t v);
void core_wr_u32(core_buf_t *b, uint32_t v);
void core_wr_varint(core_buf_t *b, int32_t v);
void core_wr_varlong(core_buf_t *b, int64_t v);
void core_wr_uvarint(core_buf_t *b, uint32_t v);
/* Strings: p may be NULL with len -1 for the nullable forms. */
void core_wr_str(core_buf_t *b, const void *p, int64_t len);    /* int16 length (-1 = null) */
void core_wr_cstr(core_buf_t *b, const void *p, int64_t len);   /* compact (0 = null) */
void core_wr_bytes(core_buf_t *b, const void *p, int64_t len);  /* int32 length (-1 = null) */
void core_wr_cbytes(core_buf_t *b, const void *p, int64_t len); /* compact bytes */
void core_wr_carray_len(core_buf_t *b, int32_t n);              /* compact array count (-1 = null) */
void core_wr_empty_tags(core_buf_t *b);                         /* a tagged-field section with none */
/* Overwrites a big-endian int32 at an earlier position (length prefixes). */
void core_wr_i32_at(core_buf_t *b, size_t pos, int32_t v);

/* Big-endian helpers for fixed layouts. */
static inline uint32_t core_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t core_be64(const uint8_t *p)
{
    return (uint64_t)core_be32(p) << 32 | core_be32(p + 4);
}
static inline void core_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void core_put_be64(uint8_t *p, uint64_t v)
{
    core_put_be32(p, (uint32_t)(v >> 32));
    core_put_be32(p + 4, (uint32_t)v);
}

#endif
