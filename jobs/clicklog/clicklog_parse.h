/*
 * clicklog_parse — the plain-text click log format of the Flipp talk.
 *
 * A line is an ISO-8601 timestamp with offset, then ^B-separated key=value
 * pairs, optionally ending with an array section: a key followed by ^C opens
 * it, and each element is ^B-separated key=value pairs closed by ^C:
 *
 *   2016-04-27T19:00:00-05:00^Buserid=AAFF^Bdata_array^Cevent=click^Bsubevent=3^C
 *
 * Grammar (bytes; '=' splits on the first '=' only; ^B = 0x02, ^C = 0x03):
 *   line    := timestamp ( B pair )* [ B arraykey C element+ ] [ "\r" ] [ "\n" ]
 *   pair    := key "=" value
 *   element := pair ( B pair )* C
 *   key     := 1*(byte except 0x02 0x03 '=' '\n')   value := *(byte except 0x02 0x03 '\n')
 * No public specification of this format exists; the grammar is inferred from
 * the talk's example (compat-apis.md F.2), so it lives in this one module.
 *
 * Rejected (each with a reason string naming the cause, never silently):
 * missing/unparseable timestamp, a top-level field without '=' that is not the
 * array key, an array element without its closing ^C, an empty key, a
 * duplicate top-level key, an empty array, bytes after the array section,
 * too many pairs (CLICKLOG_MAX_PAIRS) or elements (CLICKLOG_MAX_ELEMS), a NUL
 * byte, a line longer than CLICKLOG_MAX_LINE.
 *
 * Ownership: the parsed record holds views (pointer + length) into the
 * caller's line buffer; it stays valid while that buffer does. No allocation.
 * Thread-safety: pure; any thread.
 */
#ifndef EDDY_CLICKLOG_PARSE_H
#define EDDY_CLICKLOG_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define CLICKLOG_MAX_LINE 65536 /* longer lines are rejected: bounds work per line */
#define CLICKLOG_MAX_PAIRS 64   /* top-level plus element pairs, per line */
#define CLICKLOG_MAX_ELEMS 32   /* array elements per line */

typedef struct clicklog_str {
    const char *p;
    size_t n;
} clicklog_str_t;

typedef struct clicklog_pair {
    clicklog_str_t key;
    clicklog_str_t value;
} clicklog_pair_t;

typedef struct clicklog_elem {
    int first; /* index into rec->pairs */
    int npairs;
} clicklog_elem_t;

typedef struct clicklog_rec {
    clicklog_str_t timestamp; /* as written, e.g. "2016-04-27T19:00:00-05:00" */
    int64_t ts_ms;            /* UTC milliseconds since the epoch */
    int tz_offset_min;        /* offset written in the line, minutes east of UTC */
    clicklog_str_t date;      /* "2016-04-27" (view into timestamp) */
    clicklog_str_t time;      /* "19:00:00-05:00" (view into timestamp) */
    int ntop;                 /* top-level pairs are pairs[0 .. ntop) */
    clicklog_str_t array_key; /* n == 0 when the line has no array section */
    clicklog_elem_t elems[CLICKLOG_MAX_ELEMS];
    int nelems;
    clicklog_pair_t pairs[CLICKLOG_MAX_PAIRS];
    int npairs;
} clicklog_rec_t;

/* Result codes. The job layer sees only include/eddy/ and public libraries,
 * so this module carries its own codes instead of core_err.h's. */
#define CLICKLOG_OK 0
#define CLICKLOG_EMALFORMED (-1)
#define CLICKLOG_ETOOLARGE (-2)

/* Parses one line (a trailing "\n" and "\r" are allowed). Returns CLICKLOG_OK,
 * or CLICKLOG_EMALFORMED / CLICKLOG_ETOOLARGE with a one-line reason. */
int clicklog_parse(const char *line, size_t len, clicklog_rec_t *rec, char *reason,
                   size_t reason_size);

/* Looks up a top-level key; returns NULL when absent. */
const clicklog_str_t *clicklog_top(const clicklog_rec_t *rec, const char *key);
/* Looks up a key inside element e; returns NULL when absent. */
const clicklog_str_t *clicklog_elem_get(const clicklog_rec_t *rec, int e, const char *key);

/* Parses "YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM|-HH:MM|+HHMM)" into UTC ms and the
 * written offset. Returns CLICKLOG_OK or CLICKLOG_EMALFORMED. */
int clicklog_parse_time(const char *s, size_t n, int64_t *ms, int *tz_offset_min);

#endif
