/*
 * counts_window — event-time window counting with a watermark, the pure core
 * of the `counts` job (no I/O, no Eddy internals: unit-tested with cmocka).
 *
 * Windows (Flink/Beam semantics, half-open [start, end), aligned to the epoch):
 *   tumbling  size T: the one window with start = floor(ts / T) * T;
 *   sliding   size S every D (S a multiple of D): the S/D windows with
 *             start = k*D, start <= ts < start + S.
 * Each (user, event, kind, start) window keeps a count.
 *
 * Watermark = (max event time seen) - lateness; it never goes back. A window
 * closes once end <= watermark: it is reported exactly once (cw_emit_closed)
 * and forgotten. A record adds 1 to each of its windows that is still open;
 * a window already closed does not take it (that would change a result
 * already reported). A record none of whose windows is open is "late".
 * The watermark advances as records are added, so results depend only on the
 * records and their order: a re-run of the same input from the same state
 * gives the same results, which is what makes the job exact across restarts.
 *
 * State: the whole cw_t (watermark and every open window) serialises to one
 * blob (cw_save / cw_load), versioned, checked on load. It is O(open
 * windows): about users x event types x (S/D + 1) x (lateness / D + 1).
 *
 * Limits: CW_MAX_OPEN windows (cw_add fails rather than grow without bound),
 * CW_MAX_NAME bytes per user or event name.
 * Threads: one cw_t per thread. Ownership: cw_t owns copies of the names.
 */
#ifndef EDDY_COUNTS_WINDOW_H
#define EDDY_COUNTS_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#define CW_TUMBLING 0
#define CW_SLIDING 1

#define CW_MAX_OPEN 4000000 /* open windows per partition: bounds memory and state size */
#define CW_MAX_NAME 1024    /* longer user/event names are rejected */
#define CW_NO_TIME INT64_MIN
/* Event times (and window sizes, lateness) are bounded so that window
 * arithmetic (start + size, max time - lateness) never overflows: a record's
 * time is a producer's int64. |ts| <= 2^60 ms is some 36 million years
 * either side of 1970; a record beyond is refused, a state beyond is corrupt. */
#define CW_TIME_MAX (INT64_C(1) << 60)

#define CW_OK 0
#define CW_ELATE 1      /* cw_add: every window of the record is closed */
#define CW_EINVAL (-1)  /* bad configuration or argument (name too long) */
#define CW_ELIMIT (-2)  /* CW_MAX_OPEN reached */
#define CW_ECORRUPT (-3) /* cw_load: the blob is not a valid state */
#define CW_ENOMEM (-4)

typedef struct cw_conf {
    int64_t tumbling_ms;    /* 0 = no tumbling windows */
    int64_t sliding_ms;     /* 0 = no sliding windows */
    int64_t slide_every_ms; /* sliding windows start every this many ms */
    int64_t lateness_ms;    /* watermark = max event time - lateness */
} cw_conf_t;

typedef struct cw_window {
    int kind; /* CW_TUMBLING or CW_SLIDING */
    int64_t start, end;
} cw_window_t;

typedef struct cw_result {
    const char *user, *event; /* borrowed for the callback */
    int kind;
    int64_t start, end, count;
} cw_result_t;

typedef struct cw cw_t;

/* Checks conf: sizes and lateness in 0..CW_TIME_MAX, at least one kind,
 * slide_every > 0 and dividing sliding_ms. Returns CW_OK or CW_EINVAL. */
int cw_conf_check(const cw_conf_t *conf);

/* The windows of ts (tumbling first, then sliding by start). Returns how many
 * were written (at most cap). */
int cw_assign(const cw_conf_t *conf, int64_t ts, cw_window_t *out, int cap);

cw_t *cw_new(const cw_conf_t *conf);
void cw_free(cw_t *w);

/* Counts one record. Returns CW_OK (added to at least one open window; the
 * watermark may have moved), CW_ELATE, CW_EINVAL (a name longer than
 * CW_MAX_NAME, or |ts| > CW_TIME_MAX) or CW_ELIMIT (nothing changed).
 * *dropped receives the number of its windows that were closed. */
int cw_add(cw_t *w, const char *user, const char *event, int64_t ts, int *dropped);

/* Reports every open window with end <= watermark, ordered by (end, kind,
 * user, event), then forgets them. A callback returning nonzero stops the
 * walk (the windows not yet reported stay open) and is returned. */
int cw_emit_closed(cw_t *w, int (*cb)(void *opaque, const cw_result_t *r), void *opaque);

int64_t cw_watermark(const cw_t *w); /* CW_NO_TIME before the first record */
size_t cw_open_count(const cw_t *w);

/* Serialises the state into a malloc'd blob (caller frees). CW_OK or CW_ENOMEM. */
int cw_save(const cw_t *w, uint8_t **blob, size_t *len);
/* Replaces w's state with a blob from cw_save. CW_OK or CW_ECORRUPT (w is
 * then empty). */
int cw_load(cw_t *w, const void *blob, size_t len);

#endif
