/*
 * clicklog_gen — a deterministic generator of realistic click log lines, so
 * the demo, the tests and the benchmarks have data.
 *
 * Model: items belong to one of CLICKLOG_GEN_GENRES genres; each user prefers
 * one genre. A user's sessions are bursts of page views; each pick comes from
 * the preferred genre with probability 0.75, otherwise from any genre, and
 * within a genre by Zipf-like popularity (skew 1.1), so a few items are hot
 * and most are in the long tail. A viewed item is bought with probability
 * 0.06 and rated with probability 0.12; ratings are 4-5 for items of the
 * user's genre and 1-3 otherwise. That hidden structure is what the
 * recommender should recover (tests check it).
 *
 * Lines follow clicklog_parse.h:
 *   TS ^B userid=U17 ^B session=S3-17 ^B data_array ^C event=view ^B item=I42 ^C [event=buy ^B item=I42 ^C]
 * Timestamps advance from a fixed start by a random gap per line (event time,
 * not wall time), with a -05:00 offset as in the talk.
 *
 * Same seed and parameters -> byte-identical output. Not thread-safe per generator.
 */
#ifndef EDDY_CLICKLOG_GEN_H
#define EDDY_CLICKLOG_GEN_H

#include <stddef.h>
#include <stdint.h>

#define CLICKLOG_GEN_GENRES 8

typedef struct clicklog_gen clicklog_gen_t;

typedef struct clicklog_gen_conf {
    int64_t users;
    int64_t items;
    uint64_t seed;
    int64_t start_ms; /* event time of the first line (UTC ms) */
} clicklog_gen_conf_t;

clicklog_gen_t *clicklog_gen_new(const clicklog_gen_conf_t *conf);
void clicklog_gen_free(clicklog_gen_t *g);
/* Writes the next line (with '\n') into buf; returns its length, or 0 if
 * cap is too small (a line needs at most 256 bytes). *user receives the user
 * index (for keying records by user). */
size_t clicklog_gen_next(clicklog_gen_t *g, char *buf, size_t cap, int64_t *user);
/* The genre of a user or item (what the hidden structure is). */
int clicklog_gen_user_genre(const clicklog_gen_t *g, int64_t user);
int clicklog_gen_item_genre(const clicklog_gen_t *g, int64_t item);

#endif
