#include "clicklog_gen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/core_alloc.h"

struct clicklog_gen {
    clicklog_gen_conf_t conf;
    uint64_t rng;
    int64_t now_ms;
    int64_t session_user; /* user of the current session, -1 = none */
    int64_t session_left; /* page views left in it */
    int64_t session_no;
    int64_t *genre_items[CLICKLOG_GEN_GENRES]; /* item ids of each genre */
    int64_t genre_n[CLICKLOG_GEN_GENRES];
    double *genre_cdf[CLICKLOG_GEN_GENRES]; /* Zipf cumulative weights per genre */
};

/* splitmix64: small, fast, and good enough for synthetic data. */
static uint64_t rnd(clicklog_gen_t *g)
{
    uint64_t z = (g->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rnd01(clicklog_gen_t *g)
{
    return (double)(rnd(g) >> 11) / (double)(1ull << 53);
}

static uint64_t hash64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

int clicklog_gen_user_genre(const clicklog_gen_t *g, int64_t user)
{
    return (int)(hash64((uint64_t)user ^ g->conf.seed ^ 0x5555) % CLICKLOG_GEN_GENRES);
}
int clicklog_gen_item_genre(const clicklog_gen_t *g, int64_t item)
{
    return (int)(hash64((uint64_t)item ^ g->conf.seed ^ 0xaaaa) % CLICKLOG_GEN_GENRES);
}

clicklog_gen_t *clicklog_gen_new(const clicklog_gen_conf_t *conf)
{
    clicklog_gen_t *g = core_xcalloc(1, sizeof *g);
    g->conf = *conf;
    if (g->conf.users < 1)
        g->conf.users = 1;
    if (g->conf.items < CLICKLOG_GEN_GENRES)
        g->conf.items = CLICKLOG_GEN_GENRES;
    g->rng = conf->seed;
    g->now_ms = conf->start_ms ? conf->start_ms : 1461801600000LL;
    g->session_user = -1;
    for (int k = 0; k < CLICKLOG_GEN_GENRES; k++)
        g->genre_items[k] = core_xmalloc(sizeof(int64_t) * (size_t)g->conf.items);
    for (int64_t i = 0; i < g->conf.items; i++) {
        int k = clicklog_gen_item_genre(g, i);
        g->genre_items[k][g->genre_n[k]++] = i;
    }
    for (int k = 0; k < CLICKLOG_GEN_GENRES; k++) {
        if (!g->genre_n[k]) { /* tiny catalogues: every genre gets at least item k */
            g->genre_items[k][0] = k;
            g->genre_n[k] = 1;
        }
        g->genre_cdf[k] = core_xmalloc(sizeof(double) * (size_t)g->genre_n[k]);
        double sum = 0;
        for (int64_t r = 0; r < g->genre_n[k]; r++) {
            sum += 1.0 / pow((double)(r + 1), 1.1);
            g->genre_cdf[k][r] = sum;
        }
        for (int64_t r = 0; r < g->genre_n[k]; r++)
            g->genre_cdf[k][r] /= sum;
    }
    return g;
}

void clicklog_gen_free(clicklog_gen_t *g)
{
    if (!g)
        return;
    for (int k = 0; k < CLICKLOG_GEN_GENRES; k++) {
        free(g->genre_items[k]);
        free(g->genre_cdf[k]);
    }
    free(g);
}

static int64_t pick_item(clicklog_gen_t *g, int genre)
{
    double u = rnd01(g);
    const double *cdf = g->genre_cdf[genre];
    int64_t lo = 0, hi = g->genre_n[genre] - 1;
    while (lo < hi) { /* first rank whose cumulative weight reaches u */
        int64_t mid = (lo + hi) / 2;
        if (cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return g->genre_items[genre][lo];
}

static void format_time(int64_t ms, char *out, size_t cap)
{
    time_t local = (time_t)(ms / 1000) - 5 * 3600; /* written with a -05:00 offset */
    struct tm tm;
    gmtime_r(&local, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03d-05:00", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

size_t clicklog_gen_next(clicklog_gen_t *g, char *buf, size_t cap, int64_t *user)
{
    if (cap < 256)
        return 0;
    if (g->session_left <= 0) {
        g->session_user = (int64_t)(rnd(g) % (uint64_t)g->conf.users);
        g->session_left = 1 + (int64_t)(rnd(g) % 12);
        g->session_no++;
    }
    g->session_left--;
    g->now_ms += 1 + (int64_t)(rnd(g) % 400);
    int64_t u = g->session_user;
    int ug = clicklog_gen_user_genre(g, u);
    int genre = rnd01(g) < 0.75 ? ug : (int)(rnd(g) % CLICKLOG_GEN_GENRES);
    int64_t item = pick_item(g, genre);
    char ts[48];
    format_time(g->now_ms, ts, sizeof ts);
    int n = snprintf(buf, cap,
                     "%s\x02userid=U%lld\x02session=S%lld\x02" "data_array\x03" "event=view\x02"
                     "item=I%lld\x03",
                     ts, (long long)u, (long long)g->session_no, (long long)item);
    double r = rnd01(g);
    if (r < 0.06)
        n += snprintf(buf + n, cap - (size_t)n, "event=buy\x02item=I%lld\x03", (long long)item);
    else if (r < 0.18) {
        int rating = genre == ug ? 4 + (int)(rnd(g) % 2) : 1 + (int)(rnd(g) % 3);
        n += snprintf(buf + n, cap - (size_t)n, "event=rate\x02item=I%lld\x02rating=%d\x03",
                      (long long)item, rating);
    }
    buf[n++] = '\n';
    if (user)
        *user = u;
    return (size_t)n;
}
