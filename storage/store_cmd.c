/*
 * store_cmd.c — `eddy import` and `eddy export`.
 *
 * import streams a file into an app's events, in batches of --batch events:
 *   - JSON lines (default): one PredictionIO event object per line (A.3),
 *     validated as the Event API does (A.5); blank lines are skipped.
 *   - CSV/TSV (--csv COLS): libcsv with --delimiter; COLS names each column:
 *       user | <--entity-type>     entityId (entityType = the column name)
 *       item | <--target-type>     targetEntityId (targetEntityType = name)
 *       timestamp|time|eventTime   unix seconds (ms if > 1e11) or A.4 text
 *       event                      the event name (else --event)
 *       eventId                    the event id
 *       - or _                     ignored
 *       anything else              a property (number when it parses as one)
 * Re-importing the same file adds nothing: ids come from the event (client
 * eventId, else the store's content id; when the row has no time either, an
 * id derived from the line's bytes). A bad line is counted as rejected with
 * its reason and the import goes on. Progress bar when stderr is a terminal;
 * a summary at the end (imported, duplicates skipped, rejected with reasons).
 *
 * export writes every event of the app/channel in eventTime order as JSON
 * lines that import reads back unchanged (ids kept, so re-import adds none).
 */
#include <csv.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/core_alloc.h"
#include "core/core_buf.h"
#include "core/core_conf.h"
#include "core/core_err.h"
#include "core/core_time.h"
#include "storage/store.h"
#include "storage/store_event_json.h"
#include "storage/store_int.h"

#define IMPORT_REASONS_MAX 12     /* distinct rejection reasons kept for the summary */
#define IMPORT_LINE_MAX (4 << 20) /* a JSON line longer than this is rejected */
#define CSV_COLS_MAX 64

typedef struct io_conf {
    char *app;
    char *input;
    char *output;
    char *data;
    char *store;
    char *channel;
    char *csv;
    char *delimiter;
    char *event;
    char *entity_type;
    char *target_type;
    char *sync;
    int64_t batch;
    bool create_app;
    bool force;
    bool quiet;
} io_conf_t;

static int open_store(const io_conf_t *c, store_sync_t sync, store_t **s)
{
    char err[512];
    store_opts_t o;
    store_opts_default(&o);
    o.sync = sync;
    int rc;
    if (c->store)
        rc = store_open(c->store, &o, s, err, sizeof err);
    else if (c->data)
        rc = store_open_dir(c->data, &o, s, err, sizeof err);
    else {
        fprintf(stderr, "eddy: give --data DIR or --store URL\n");
        return 2;
    }
    if (rc) {
        fprintf(stderr, "eddy: cannot open the store: %s\n", err);
        return 1;
    }
    return 0;
}

static int resolve_app(store_t *s, const io_conf_t *c, bool create, int32_t *app, int32_t *ch)
{
    store_app_t a;
    char err[256];
    int rc = store_app_get(s, c->app, &a);
    if (rc == CORE_ERR_NOT_FOUND && create) {
        rc = store_app_new(s, c->app, 0, NULL, &a, err, sizeof err);
        if (rc) {
            fprintf(stderr, "eddy: cannot create app %s: %s\n", c->app, err);
            return 1;
        }
        fprintf(stderr, "created app %s (id %d)\n", a.name, (int)a.id);
    } else if (rc) {
        fprintf(stderr, "eddy: app %s: %s%s\n", c->app, core_strerror(rc),
                rc == CORE_ERR_NOT_FOUND ? " (create it with `eddy app new`, or pass --create-app)"
                                         : "");
        return 1;
    }
    *app = a.id;
    *ch = 0;
    if (c->channel && c->channel[0]) {
        rc = store_channel_get(s, a.id, c->channel, ch);
        if (rc) {
            fprintf(stderr, "eddy: channel %s of app %s: %s\n", c->channel, c->app,
                    core_strerror(rc));
            return 1;
        }
    }
    return 0;
}

/* ---- import -------------------------------------------------------------------------- */
typedef struct reason {
    char msg[192];
    int64_t count;
    int64_t first_line;
} reason_t;

typedef enum {
    COL_IGNORE,
    COL_ENTITY,
    COL_TARGET,
    COL_TIME,
    COL_EVENT,
    COL_ID,
    COL_PROP
} col_kind_t;

typedef struct import {
    const io_conf_t *c;
    store_t *s;
    int32_t app, ch;
    store_batch_t *b;
    int64_t *lines; /* line number of each event in the batch */
    int64_t nlines_cap;
    int64_t imported, duplicates, rejected, line;
    reason_t reasons[IMPORT_REASONS_MAX];
    int nreasons;
    int64_t other_reasons;
    /* progress */
    bool tty;
    int64_t total_bytes, done_bytes, last_draw_ms, start_ms;
    /* csv */
    int ncols;
    col_kind_t kind[CSV_COLS_MAX];
    char *colname[CSV_COLS_MAX];
    char *field[CSV_COLS_MAX];
    size_t field_len[CSV_COLS_MAX];
    int nfield;
    bool too_many_fields;
    int fatal;
} import_t;

static void reject(import_t *im, int64_t line, const char *msg)
{
    im->rejected++;
    for (int i = 0; i < im->nreasons; i++) {
        if (!strcmp(im->reasons[i].msg, msg)) {
            im->reasons[i].count++;
            return;
        }
    }
    if (im->nreasons == IMPORT_REASONS_MAX) {
        im->other_reasons++;
        return;
    }
    reason_t *r = &im->reasons[im->nreasons++];
    snprintf(r->msg, sizeof r->msg, "%.191s", msg); /* reasons are short; a long one is cut */
    r->count = 1;
    r->first_line = line;
}

static void progress(import_t *im, bool final)
{
    if (!im->tty || im->c->quiet)
        return;
    int64_t now = core_mono_ms();
    if (!final && now - im->last_draw_ms < 100)
        return;
    im->last_draw_ms = now;
    double frac = im->total_bytes > 0 ? (double)im->done_bytes / (double)im->total_bytes : 0;
    if (frac > 1)
        frac = 1;
    char bar[31];
    int fill = (int)(frac * 30);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = '\0';
    double secs = (double)(now - im->start_ms) / 1000.0;
    int64_t n = im->imported + im->duplicates + im->rejected;
    fprintf(stderr, "\r[%s] %3d%%  %" PRId64 " events  %.0f/s ", bar, (int)(frac * 100), n,
            secs > 0 ? (double)n / secs : 0.0);
    if (final)
        fputc('\n', stderr);
}

static int flush_batch(import_t *im)
{
    size_t n = store_batch_events(im->b);
    char err[256];
    store_put_result_t *res = n ? core_xmalloc(n * sizeof *res) : NULL;
    int rc = store_batch_commit(im->b, res, err, sizeof err);
    im->b = NULL;
    if (rc) {
        fprintf(stderr, "\neddy: import failed writing to the store: %s\n", err);
        free(res);
        im->fatal = 1;
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        if (res[i].status == STORE_PUT_CREATED)
            im->imported++;
        else if (res[i].status == STORE_PUT_DUPLICATE)
            im->duplicates++;
        else
            reject(im, im->lines[i], "the eventId exists with different content");
    }
    free(res);
    store_batch_begin(im->s, 0, &im->b);
    progress(im, false);
    return 0;
}

/* Adds one parsed event; commits when the batch is full. checked: ev comes
 * from store_event_from_json (validated, canonical properties). */
static int add_event(import_t *im, const store_event_t *ev, bool checked)
{
    char err[256];
    int rc = checked ? store__batch_put_checked(im->b, im->app, im->ch, ev, err, sizeof err)
                     : store_batch_put_event(im->b, im->app, im->ch, ev, err, sizeof err);
    if (rc) {
        reject(im, im->line, err);
        return 0;
    }
    size_t i = store_batch_events(im->b) - 1;
    if ((int64_t)i >= im->nlines_cap) {
        im->nlines_cap = im->nlines_cap ? im->nlines_cap * 2 : 1024;
        im->lines = core_xrealloc(im->lines, (size_t)im->nlines_cap * sizeof *im->lines);
    }
    im->lines[i] = im->line;
    if ((int64_t)store_batch_events(im->b) >= im->c->batch)
        return flush_batch(im);
    return 0;
}

static int import_json_lines(import_t *im, FILE *in)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, in)) >= 0 && !im->fatal) {
        im->line++;
        im->done_bytes += n;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        size_t sp = strspn(line, " \t");
        if ((size_t)n == sp)
            continue; /* blank line */
        if (n > IMPORT_LINE_MAX) {
            reject(im, im->line, "line longer than 4 MiB");
            continue;
        }
        store_event_t ev;
        char err[256];
        int rc = store_event_from_json(line, (size_t)n, core_wall_ms(), &ev, err, sizeof err);
        if (rc) {
            reject(im, im->line, err);
            continue;
        }
        if (!ev.event_id[0] && !ev.event_time_given)
            store_event_id_derive(line, (size_t)n, ev.event_id);
        add_event(im, &ev, true);
        store_event_fini(&ev);
    }
    free(line);
    return im->fatal;
}

/* -- CSV -- */
static void csv_field_cb(void *s, size_t len, void *data)
{
    import_t *im = data;
    if (im->nfield >= im->ncols) {
        im->too_many_fields = true;
        im->nfield++;
        return;
    }
    free(im->field[im->nfield]);
    im->field[im->nfield] = core_xstrndup(s ? s : "", s ? len : 0);
    im->field_len[im->nfield] = s ? len : 0;
    im->nfield++;
}

static bool parse_number(const char *s, json_t **out)
{
    char *end;
    if (!*s)
        return false;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*end && errno == 0) {
        *out = json_integer(v);
        return true;
    }
    double d = strtod(s, &end);
    if (!*end && errno == 0 && d == d && d - d == 0) {
        *out = json_real(d);
        return true;
    }
    return false;
}

static void csv_row_cb(int c, void *data)
{
    import_t *im = data;
    char err[256];
    im->line++;
    int nf = im->nfield;
    im->nfield = 0;
    if (im->fatal)
        return;
    if (nf == 1 && im->field_len[0] == 0 && im->ncols > 1)
        return; /* blank line */
    if (im->too_many_fields || nf != im->ncols) {
        im->too_many_fields = false;
        snprintf(err, sizeof err, "expected %d columns", im->ncols);
        reject(im, im->line, err);
        return;
    }
    store_event_t ev;
    memset(&ev, 0, sizeof ev);
    ev.event = im->c->event;
    json_t *props = json_object();
    bool bad = false;
    for (int i = 0; i < nf && !bad; i++) {
        const char *v = im->field[i];
        switch (im->kind[i]) {
        case COL_IGNORE:
            break;
        case COL_ENTITY:
            ev.entity_type = im->colname[i];
            ev.entity_id = v;
            break;
        case COL_TARGET:
            ev.target_entity_type = im->colname[i];
            ev.target_entity_id = v;
            break;
        case COL_EVENT:
            ev.event = v;
            break;
        case COL_ID:
            snprintf(ev.event_id, sizeof ev.event_id, "%s", v);
            break;
        case COL_TIME: {
            char *end;
            errno = 0;
            double t = strtod(v, &end);
            if (*v && !*end && errno == 0) {
                ev.event_time_ms = t > 1e11 || t < -1e11 ? (int64_t)t : (int64_t)(t * 1000.0);
            } else if (store_time_parse(v, strlen(v), &ev.event_time_ms, &ev.event_time_tz_min) !=
                       0) {
                snprintf(err, sizeof err, "Fail to extract eventTime %.80s", v);
                bad = true;
                break;
            }
            ev.event_time_given = true;
            break;
        }
        case COL_PROP: {
            json_t *j;
            if (!parse_number(v, &j))
                j = json_string(v);
            if (!j) {
                snprintf(err, sizeof err, "column %s is not valid UTF-8", im->colname[i]);
                bad = true;
                break;
            }
            json_object_set_new(props, im->colname[i], j);
            break;
        }
        }
    }
    if (bad) {
        reject(im, im->line, err);
        json_decref(props);
        return;
    }
    char *ptext = json_dumps(props, JSON_COMPACT);
    json_decref(props);
    ev.properties = ptext;
    if (!ev.event_id[0] && !ev.event_time_given) {
        core_buf_t raw; /* no id and no time: an id from the row's bytes */
        core_buf_init(&raw);
        for (int i = 0; i < nf; i++) {
            core_wr_raw(&raw, im->field[i], im->field_len[i]);
            core_wr_raw(&raw, "\x1f", 1);
        }
        store_event_id_derive(raw.data, raw.len, ev.event_id);
        core_buf_fini(&raw);
    }
    add_event(im, &ev, false);
    free(ptext);
}

static int csv_space(unsigned char c)
{
    return c == ' ';
}

static int import_csv(import_t *im, FILE *in)
{
    char delim = ',';
    const char *d = im->c->delimiter;
    if (d && (!strcmp(d, "\\t") || !strcmp(d, "\t") || !strcmp(d, "tab")))
        delim = '\t';
    else if (d && strlen(d) == 1)
        delim = d[0];
    else if (d) {
        fprintf(stderr, "eddy: --delimiter must be one character (or \\t)\n");
        return 2;
    }
    struct csv_parser p;
    if (csv_init(&p, CSV_APPEND_NULL) != 0)
        return 1;
    csv_set_delim(&p, (unsigned char)delim);
    csv_set_space_func(&p, csv_space);
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0 && !im->fatal) {
        im->done_bytes += (int64_t)n;
        if (csv_parse(&p, buf, n, csv_field_cb, csv_row_cb, im) != n) {
            fprintf(stderr, "\neddy: CSV error near line %" PRId64 ": %s\n", im->line + 1,
                    csv_strerror(csv_error(&p)));
            im->fatal = 1;
            break;
        }
    }
    if (!im->fatal)
        csv_fini(&p, csv_field_cb, csv_row_cb, im);
    csv_free(&p);
    return im->fatal;
}

static int setup_columns(import_t *im)
{
    const io_conf_t *c = im->c;
    char *cols = core_xstrdup(c->csv), *save = NULL;
    bool have_entity = false;
    for (char *t = strtok_r(cols, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (im->ncols == CSV_COLS_MAX) {
            fprintf(stderr, "eddy: at most %d CSV columns\n", CSV_COLS_MAX);
            free(cols);
            return 2;
        }
        int i = im->ncols++;
        im->colname[i] = core_xstrdup(t);
        if (!strcmp(t, "-") || !strcmp(t, "_"))
            im->kind[i] = COL_IGNORE;
        else if (!strcmp(t, "user") || (c->entity_type && !strcmp(t, c->entity_type)))
            im->kind[i] = COL_ENTITY, have_entity = true;
        else if (!strcmp(t, "item") || (c->target_type && !strcmp(t, c->target_type)))
            im->kind[i] = COL_TARGET;
        else if (!strcmp(t, "timestamp") || !strcmp(t, "time") || !strcmp(t, "eventTime"))
            im->kind[i] = COL_TIME;
        else if (!strcmp(t, "event"))
            im->kind[i] = COL_EVENT;
        else if (!strcmp(t, "eventId"))
            im->kind[i] = COL_ID;
        else
            im->kind[i] = COL_PROP;
    }
    free(cols);
    if (!have_entity) {
        fprintf(stderr, "eddy: --csv needs an entity column: 'user' or the --entity-type name\n");
        return 2;
    }
    return 0;
}

/* The rows import, export and store share. */
/* clang-format off */
#define IO_OPT_DATA                                                                                \
    {"data", CORE_OPT_STR, NULL, "data directory (embedded store under DIR/store)",               \
     offsetof(io_conf_t, data)}
#define IO_OPT_STORE                                                                               \
    {"store", CORE_OPT_STR, NULL, "store URL: rocksdb:DIR or redis://HOST:PORT/DB",               \
     offsetof(io_conf_t, store)}
#define IO_OPT_CHANNEL                                                                             \
    {"channel", CORE_OPT_STR, NULL, "channel name (default channel if absent)",                   \
     offsetof(io_conf_t, channel)}
/* clang-format on */

static const core_opt_t import_opts[] = {
    {"app", CORE_OPT_STR, NULL, "app name (required)", offsetof(io_conf_t, app)},
    {"input", CORE_OPT_STR, NULL, "file to read, - for stdin (required)",
     offsetof(io_conf_t, input)},
    IO_OPT_DATA,
    IO_OPT_STORE,
    IO_OPT_CHANNEL,
    {"csv", CORE_OPT_STR, NULL,
     "read CSV/TSV with these columns, e.g. user,item,rating,timestamp (see docs)",
     offsetof(io_conf_t, csv)},
    {"delimiter", CORE_OPT_STR, ",", "CSV field delimiter (\\t for tab)",
     offsetof(io_conf_t, delimiter)},
    {"event", CORE_OPT_STR, "rate", "event name of CSV rows without an event column",
     offsetof(io_conf_t, event)},
    {"entity-type", CORE_OPT_STR, NULL, "CSV column that holds entity ids (besides 'user')",
     offsetof(io_conf_t, entity_type)},
    {"target-type", CORE_OPT_STR, NULL, "CSV column that holds target ids (besides 'item')",
     offsetof(io_conf_t, target_type)},
    {"batch", CORE_OPT_INT, "1000", "events per atomic store batch", offsetof(io_conf_t, batch)},
    {"sync", CORE_OPT_STR, "interval",
     "always: fsync every batch; interval: fsync in the background and at the end",
     offsetof(io_conf_t, sync)},
    {"create-app", CORE_OPT_BOOL, NULL, "create the app if it does not exist",
     offsetof(io_conf_t, create_app)},
    {"quiet", CORE_OPT_BOOL, NULL, "no progress bar", offsetof(io_conf_t, quiet)},
    CORE_OPT_END,
};

int cmd_import(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy import",
        .usage = "eddy import --app NAME --input FILE [--data DIR | --store URL] "
                 "[--csv COLS [--delimiter C] [--event NAME]]",
        .summary = "Imports events into an app: PredictionIO JSON lines, or CSV/TSV "
                   "with --csv.\nRe-importing the same file adds no events.",
        .opts = import_opts,
        .takes_args = true,
    };
    io_conf_t c;
    import_t im;
    FILE *in = NULL;
    memset(&c, 0, sizeof c);
    memset(&im, 0, sizeof im);
    char *pos[argc + 1];
    int npos;
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = 2;
    if (!c.app || !c.input || npos) {
        core_conf_usage(stderr, cmd.usage, cmd.summary, cmd.opts);
        goto out;
    }
    if (c.batch <= 0 || c.batch > STORE_BATCH_MAX_EVENTS) {
        fprintf(stderr, "eddy import: --batch must be 1..%d\n", STORE_BATCH_MAX_EVENTS);
        goto out;
    }
    store_sync_t sync;
    if (!strcmp(c.sync, "always"))
        sync = STORE_SYNC_ALWAYS;
    else if (!strcmp(c.sync, "interval"))
        sync = STORE_SYNC_INTERVAL;
    else {
        fprintf(stderr, "eddy import: --sync is always or interval\n");
        goto out;
    }
    im.c = &c;
    if (c.csv && (rc = setup_columns(&im)))
        goto out;
    in = strcmp(c.input, "-") ? fopen(c.input, "r") : stdin;
    if (!in) {
        fprintf(stderr, "eddy import: %s: %s\n", c.input, strerror(errno));
        rc = 1;
        goto out;
    }
    struct stat st;
    if (fstat(fileno(in), &st) == 0 && S_ISREG(st.st_mode))
        im.total_bytes = st.st_size;
    if ((rc = open_store(&c, sync, &im.s)))
        goto out_in;
    if ((rc = resolve_app(im.s, &c, c.create_app, &im.app, &im.ch)))
        goto out_store;
    im.tty = isatty(2);
    im.start_ms = core_mono_ms();
    store_batch_begin(im.s, 0, &im.b);
    if (c.csv)
        rc = import_csv(&im, in);
    else
        rc = import_json_lines(&im, in);
    if (!im.fatal && im.b)
        flush_batch(&im);
    store_batch_abort(im.b);
    progress(&im, true);
    rc = im.fatal ? 1 : 0;
    double secs = (double)(core_mono_ms() - im.start_ms) / 1000.0;
    printf("imported %" PRId64 " events, %" PRId64 " duplicates skipped, %" PRId64
           " rejected (%" PRId64 " lines, %.1f s)\n",
           im.imported, im.duplicates, im.rejected, im.line, secs);
    for (int i = 0; i < im.nreasons; i++)
        printf("  rejected %" PRId64 " x (first at line %" PRId64 "): %s\n", im.reasons[i].count,
               im.reasons[i].first_line, im.reasons[i].msg);
    if (im.other_reasons)
        printf("  rejected %" PRId64 " x for other reasons\n", im.other_reasons);
out_store:
    store_close(im.s);
out_in:
    if (in != stdin)
        fclose(in);
out:
    for (int i = 0; i < CSV_COLS_MAX; i++) {
        free(im.colname[i]);
        free(im.field[i]);
    }
    free(im.lines);
    core_conf_free(import_opts, &c);
    return rc;
}

/* ---- export ---------------------------------------------------------------------------- */
typedef struct export
{
    FILE *out;
    core_buf_t buf;
    int64_t n;
    int err;
}
export_t;

static int export_cb(const store_event_t *ev, void *opaque)
{
    export_t *ex = opaque;
    core_buf_reset(&ex->buf);
    store_event_to_json(ev, &ex->buf);
    core_wr_raw(&ex->buf, "\n", 1);
    if (fwrite(ex->buf.data, 1, ex->buf.len, ex->out) != ex->buf.len) {
        ex->err = errno ? errno : EIO;
        return 1;
    }
    ex->n++;
    return 0;
}

static const core_opt_t export_opts[] = {
    {"app", CORE_OPT_STR, NULL, "app name (required)", offsetof(io_conf_t, app)},
    {"output", CORE_OPT_STR, NULL, "file to write, - for stdout (required)",
     offsetof(io_conf_t, output)},
    IO_OPT_DATA,
    IO_OPT_STORE,
    IO_OPT_CHANNEL,
    {"force", CORE_OPT_BOOL, NULL, "overwrite an existing output file", offsetof(io_conf_t, force)},
    CORE_OPT_END,
};

int cmd_export(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy export",
        .usage = "eddy export --app NAME --output FILE [--data DIR | --store URL]",
        .summary = "Writes an app's events as PredictionIO JSON lines, in eventTime "
                   "order (eddy import reads them back).",
        .opts = export_opts,
        .takes_args = true,
    };
    io_conf_t c;
    store_t *s = NULL;
    memset(&c, 0, sizeof c);
    char *pos[argc + 1];
    int npos;
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = 2;
    if (!c.app || !c.output || npos) {
        core_conf_usage(stderr, cmd.usage, cmd.summary, cmd.opts);
        goto out;
    }
    if ((rc = open_store(&c, STORE_SYNC_INTERVAL, &s)))
        goto out;
    int32_t app, ch;
    if ((rc = resolve_app(s, &c, false, &app, &ch)))
        goto out_store;
    export_t ex = {0};
    bool to_stdout = !strcmp(c.output, "-");
    if (to_stdout) {
        ex.out = stdout;
    } else {
        ex.out = fopen(c.output, c.force ? "w" : "wx");
        if (!ex.out) {
            fprintf(stderr, "eddy export: %s: %s%s\n", c.output, strerror(errno),
                    errno == EEXIST ? " (use --force to overwrite)" : "");
            rc = 1;
            goto out_store;
        }
    }
    core_buf_init(&ex.buf);
    store_find_t f;
    store_find_init(&f);
    int64_t n;
    rc = store_event_find(s, app, ch, &f, export_cb, &ex, &n);
    if (!rc && ex.err)
        rc = ex.err;
    if (fflush(ex.out) != 0 && !rc)
        rc = errno;
    if (!to_stdout && fclose(ex.out) != 0 && !rc)
        rc = errno;
    core_buf_fini(&ex.buf);
    if (rc) {
        fprintf(stderr, "eddy export: %s\n", core_strerror(rc));
        rc = 1;
    } else {
        fprintf(stderr, "exported %" PRId64 " events\n", ex.n);
    }
out_store:
    store_close(s);
out:
    core_conf_free(export_opts, &c);
    return rc;
}

/* ---- store check -------------------------------------------------------------------- */
static const core_opt_t store_opts_tbl[] = {
    IO_OPT_DATA,
    IO_OPT_STORE,
    {"quiet", CORE_OPT_BOOL, NULL, "print only the summary", offsetof(io_conf_t, quiet)},
    CORE_OPT_END,
};

int cmd_store(int argc, char **argv)
{
    static const core_cmd_t cmd = {
        .name = "eddy store",
        .usage = "eddy store check [--data DIR | --store URL]",
        .summary =
            "Checks the event store: every record decodes and every index entry (by id,\n"
            "entity, target, properties) agrees with its record. Exit 0 when consistent, 1\n"
            "when problems were found (each printed), 2 on bad usage. With --data, stop the\n"
            "event server first (the check reads the RocksDB files directly).",
        .opts = store_opts_tbl,
        .takes_args = true,
    };
    io_conf_t c;
    store_t *s = NULL;
    memset(&c, 0, sizeof c);
    char *pos[argc + 1];
    int npos;
    int rc = core_conf_begin(&cmd, &c, argc, argv, pos, &npos);
    if (rc != CORE_CONF_RUN)
        goto out;
    rc = 2;
    if (npos != 1 || strcmp(pos[0], "check") != 0) {
        core_conf_usage(stderr, cmd.usage, cmd.summary, cmd.opts);
        goto out;
    }
    if ((rc = open_store(&c, STORE_SYNC_INTERVAL, &s)))
        goto out;
    store_check_t rep = {.out = c.quiet ? NULL : stdout, .max_print = 50};
    int64_t t0 = core_mono_ms();
    int e = store_check(s, &rep);
    if (e) {
        fprintf(stderr, "eddy store check: %s%s\n", core_strerror(e),
                e == CORE_ERR_UNSUPPORTED ? " (the store is owned by a running event server)" : "");
        rc = 1;
    } else {
        printf("%s store: %" PRId64 " events, %" PRId64 " index entries, %" PRId64
               " kv entries checked in %.1f s: %" PRId64 " problems\n",
               store_engine(s), rep.events, rep.index_entries, rep.kv,
               (double)(core_mono_ms() - t0) / 1000.0, rep.problems);
        rc = rep.problems ? 1 : 0;
    }
    store_close(s);
out:
    core_conf_free(store_opts_tbl, &c);
    return rc;
}
