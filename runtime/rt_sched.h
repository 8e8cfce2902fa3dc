/*
 * rt_sched — the driver's scheduled commands: "run `eddy <command> ARGS`
 * every N ms, or at these cron times", registered over the driver's HTTP API,
 * kept durably in the driver's data dir, run as child processes.
 *
 * What may run. A schedule names a command from a fixed allow-list compiled
 * in here (only "train" today) and arguments from that command's own list of
 * allowed flags, each as "--flag=value" or a bare boolean "--flag". Nothing
 * else from an HTTP body ever reaches exec: the program is always the
 * driver's own eddy executable, positional arguments are refused, and the
 * flags the driver sets itself (--engine, --result-json, --trigger) cannot be
 * given. A command may take one input file (train: engine.json); its TEXT is
 * part of the schedule, so the schedule never depends on a path on the
 * client's machine: the driver writes it to DIR/NAME/<file> before each run.
 * A command that reads the event store and names none (no --data=/--store=)
 * gets the driver's own store (rt_sched_conf_t.store_arg) — unless the driver
 * holds that store's lock itself (embedded RocksDB, no event server), where a
 * child could not open it: then such a schedule is refused at PUT.
 *
 * Files (DIR = the driver's data dir + "/schedules"; every record is framed
 * with a CRC and replaced atomically: temp + fsync + rename + fsync(dir)):
 *   DIR/NAME/schedule       definition + next due time + number of the last run
 *   DIR/NAME/<file>         the input file of the next/current run
 *   DIR/NAME/runs/<N>       run N: start, end, status, exit, result, output tail
 *   DIR/NAME/logs/<N>       run N's stdout and stderr
 *   DIR/NAME/results/<N>    the child's --result-json (folded into runs/N, then removed)
 * The newest RT_SCHED_RUNS_KEEP runs (and logs) are kept.
 *
 * Running. One thread (the scheduler) wakes when something is due, at least
 * every RT_SCHED_TICK_MS while a child runs. A due schedule starts a run
 * unless its previous run is still going (one at a time per schedule; a run
 * that takes longer than the period makes the next one start late, never
 * pile up) or RT_SCHED_MAX_RUNNING runs are going driver-wide. Starting run N
 * is ordered so a crash never repeats a finished run:
 *   1. write runs/N {status: running, start};
 *   2. write schedule {last_run: N, next_ms: the next due time after now};
 *   3. fork + exec (the child gets SIGKILL if the driver dies: PDEATHSIG).
 * The scheduler reaps children with waitpid(WNOHANG), kills (SIGKILL, whole
 * process group) a run past its timeout, and writes runs/N with the outcome:
 * ok (exit status allowed by the command: train's 0 promoted, 3 kept), failed
 * (other status, a signal, or exec failure), timeout. A failed run is only
 * recorded: the schedule keeps its period (no retry storm). It never blocks
 * the driver's API threads or job loops (separate thread, own mutex).
 *
 * Recovery (driver restart, also after kill -9): each schedule's newest run
 * record still "running" is closed: with the child's result file if the child
 * got to write one (status from it), else "interrupted". next_ms was moved in
 * step 2, so a due run is not repeated; a crash between 1 and 2 leaves next_ms
 * due and the run happens (once) after the restart. A schedule being deleted
 * is first renamed to DIR/.deleted-NAME-<time>, so a crash mid-delete never
 * resurrects half of it.
 *
 * HTTP (mutations need the driver's token; reads do not, as for jobs):
 *   PUT    /v1/schedules/NAME   {"command":"train","args":["--app=shop",...],
 *                                "every_ms":N | "cron":"0 3 * * *",
 *                                "timeout_ms":N, "files":{"engine":"<text>"}}
 *                               create (201) or replace (200); 400 with a message
 *                               for anything not allowed
 *   GET    /v1/schedules        all schedules with their newest run
 *   GET    /v1/schedules/NAME   one, with its newest ?runs=N (default 10) runs
 *   DELETE /v1/schedules/NAME   kills a running child, removes everything
 *   POST   /v1/schedules/NAME/run   run now (202; 409 when a run is going)
 *
 * Threads: HTTP handlers (core_http threads) and the scheduler thread share
 * rt_sched_t under s->mu; file writes of small records happen under it.
 * Children are only forked by the scheduler thread.
 */
#ifndef EDDY_RT_SCHED_H
#define EDDY_RT_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "core/core_buf.h"
#include "core/core_http.h"

/* Schedules one driver keeps (abuse guard for the API). */
#define RT_SCHED_MAX 256
/* Names: as job names, file-system and URL safe. */
#define RT_SCHED_NAME_MAX 64
/* Arguments per schedule, and bytes per argument. */
#define RT_SCHED_MAX_ARGS 32
#define RT_SCHED_MAX_ARG 1024
/* The input file's text (engine.json). */
#define RT_SCHED_MAX_FILE (256 * 1024)
/* A PUT body. */
#define RT_SCHED_MAX_BODY (1024 * 1024)
/* Shortest period: a 0 or tiny period would spin. Longest: a year. */
#define RT_SCHED_MIN_EVERY_MS 1000LL
#define RT_SCHED_MAX_EVERY_MS (366LL * 24 * 3600 * 1000)
/* Run timeout bounds and the default when a PUT gives none. */
#define RT_SCHED_MIN_TIMEOUT_MS 1000LL
#define RT_SCHED_MAX_TIMEOUT_MS (7LL * 24 * 3600 * 1000)
#define RT_SCHED_DEFAULT_TIMEOUT_MS (3600LL * 1000)
/* Runs (records and logs) kept per schedule. */
#define RT_SCHED_RUNS_KEEP 50
/* Runs going at once, driver-wide: training is CPU-bound, one at a time. */
#define RT_SCHED_MAX_RUNNING 1
/* How often the scheduler checks running children. */
#define RT_SCHED_TICK_MS 100
/* Bytes of a child's output kept in its run record (the tail). */
#define RT_SCHED_OUTPUT_TAIL 2048
/* Largest result file read back from a child. */
#define RT_SCHED_MAX_RESULT (64 * 1024)

typedef struct rt_sched rt_sched_t;

/* Decides whether a mutating request carries the right token; when not, it
 * has answered the request (401) and returns 0. */
typedef int rt_sched_auth_fn(core_http_req_t *req, void *arg);

typedef struct rt_sched_conf {
    const char *dir;          /* DIR (created if missing); copied */
    const char *exe;          /* the eddy executable children run; copied */
    const char *store_arg;    /* "--data=DIR" or "--store=URL" for commands that read the
                                 store and name none; copied; NULL = none */
    const char *no_store_why; /* with store_arg NULL: why the driver's store cannot be
                                 the runs' store; a schedule that names none is then
                                 refused with this message (400); copied */
} rt_sched_conf_t;

/* Loads every schedule under conf->dir and recovers runs a previous driver
 * left "running". Returns 0 or an error with a message. The caller frees
 * *out with rt_sched_close. */
int rt_sched_open(const rt_sched_conf_t *conf, rt_sched_t **out, char *errstr, size_t errstr_size);
/* Adds the /v1/schedules routes (before core_http_start). auth is called for
 * PUT, DELETE and POST. */
void rt_sched_routes(rt_sched_t *s, core_http_t *http, rt_sched_auth_fn *auth, void *auth_arg);
/* Starts the scheduler thread. */
int rt_sched_start(rt_sched_t *s, char *errstr, size_t errstr_size);
/* Appends Prometheus text for every schedule: runs by outcome since this
 * driver started, running (0/1), next due time, end of the last ok run.
 * Any thread. */
void rt_sched_metrics_write(rt_sched_t *s, core_buf_t *b);
/* (internal, for the fuzzer and tests) Validates a PUT body exactly as the
 * API does, allow-list included. Returns 0 or CORE_ERR_INVAL with a message. */
int rt_sched__def_check(const char *body, size_t len, char *errstr, size_t errstr_size);
/* Stops the thread, kills running children (their runs are recorded as
 * interrupted) and frees everything. Call after the HTTP server stopped.
 * NULL is a no-op. */
void rt_sched_close(rt_sched_t *s);

#endif
