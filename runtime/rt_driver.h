/*
 * rt_driver — the micro-batch driver: job registry, batch planning, task
 * scheduling over workers, and the exactly-once commit.
 *
 * Roles: `eddy driver` runs one rt_driver_t. It serves an HTTP API
 * (core_http; loopback by default) used by the CLI (submit, jobs) and by
 * workers (register, heartbeat, results, binaries, state). Each running job
 * has one loop thread that plans, dispatches and commits its batches in
 * order; a slow batch delays the next one (batches never overlap). Tasks are
 * pushed to workers (POST /v1/tasks on the worker's own HTTP port), run
 * concurrently on every free slot of every worker, and come back as results
 * (rt_proto.h).
 *
 * Files (DIR = --data):
 *   DIR/token                     the API token (generated, mode 0600) unless --token
 *   DIR/jobs/_bin/<sha256>.so     submitted binaries, content-addressed
 *   DIR/jobs/NAME/job             the job definition (framed JSON, rt_plan.h)
 *   DIR/jobs/NAME/start           initial offsets, resolved once (Spark sources/0)
 *   DIR/jobs/NAME/plans/<batch>   write-ahead plan of each batch
 *   DIR/jobs/NAME/commits/<batch> commit record of each batch
 * Store keys (kv, prefix rt/<job uid>/, uid fixed at submit so a job
 * re-created under the same name never meets the old one's ids or state):
 *   progress   {"batch":N,"offsets":{topic:{partition:end}}}  the last committed batch
 *   counters   {"name":total,...}                              job counters, exactly once
 *   s/<topic>/<partition>/<key>  -> u64 batch (BE) + value       keyed state
 *
 * THE EXACTLY-ONCE PROTOCOL (one batch N of job J; "crash" = kill -9 of the
 * driver at that point; workers may die anywhere, see below)
 *
 *  1. Plan. Read the latest offsets of every input partition from the broker
 *     (librdkafka: metadata + query_watermark_offsets); start = end of plan
 *     N-1 (or the saved initial offsets); cap at --max-records-per-batch;
 *     split into tasks (rt_plan_make).
 *     Crash here: nothing was written. Recovery plans N again from fresh
 *     offsets, which is fine because nothing of N exists anywhere.
 *  2. Write the plan: DIR/jobs/J/plans/N (temp + fsync + rename + fsync dir).
 *     This fixes N's input and its task split forever.
 *     Crash after: plans/N exists, commits/N does not, the store's progress
 *     says N-1. Recovery re-runs N with exactly plans/N's ranges and tasks.
 *     (Fault hook EDDY_FAULT=after-plan.)
 *  3. Dispatch the tasks to free worker slots; each worker runs the job on
 *     exactly its range and returns events (ids derived from the job uid,
 *     topic, partition, offset and emit index), state updates and counter
 *     deltas; topic outputs are produced by the task itself before it
 *     reports success. A task whose worker dies or stops heartbeating goes to
 *     another worker; a task that fails --max-task-failures times pauses the
 *     job with the error (batch N stays planned, uncommitted).
 *     Crash here: as after 2 (results only lived in the driver's memory).
 *     Topic records already produced are produced again by the re-run: topic
 *     outputs are AT-LEAST-ONCE.
 *  4. Commit to the store in ONE atomic batch: every event of N, the state
 *     updates (each value tagged with N), the new counter totals, and
 *     progress = {N, end offsets}. (If N has more events than one store
 *     batch may hold, STORE_BATCH_MAX_EVENTS, the surplus events are written
 *     first in earlier store batches; their ids make a repeat a no-op, and
 *     the last batch carries the rest with progress, state and counters.)
 *     Crash after: the store says N, commits/N is missing. Recovery sees
 *     progress.batch == N, writes commits/N ("recovered") and goes on with
 *     N+1: nothing is re-run. (Fault hook EDDY_FAULT=after-store-commit.)
 *     Crash before it completes: the store has none of the final batch;
 *     recovery re-runs N; derived ids make re-written events duplicates
 *     (the store keeps one copy), state is read as of N-1 again.
 *  5. Write the commit record DIR/jobs/J/commits/N (batch, records,
 *     duration, time) — the batch history. Old plans and commits beyond the
 *     last 100 are purged.
 *     Crash after: N is complete; recovery plans N+1 from plans/N's ends.
 *  6. Best effort: commit N's end offsets to the broker under the consumer
 *     group eddy-job-J (a librdkafka consumer that never reads through the
 *     group) so lag monitors see the job. A failure is a logged warning: the
 *     store, not the broker, holds the job's true position.
 *
 * Workers: a dead worker (no heartbeat for --worker-timeout, or a task push
 * to it that fails in transport) loses ALL its running tasks to other
 * workers without counting a failure (one code path, worker_lost); a late result
 * from an old attempt is ignored (only the current attempt of a task may
 * complete it: first-commit-wins). A job that crashes (SIGSEGV) kills only
 * the per-task process on the worker (rt_worker.h); the worker reports the
 * crash as a task failure naming the signal and the offsets being processed.
 *
 * Scheduled commands: the driver also runs `eddy train` on a schedule
 * (PUT /v1/schedules/NAME; rt_sched.h): a separate thread and lock, child
 * processes, never in the way of the job loops.
 *
 * Threads: core_http worker threads (API), one loop thread per running job;
 * all driver state is under one mutex (d->mu) with one condition variable
 * (batches are coarse: contention is negligible). Store calls and HTTP
 * requests to workers are made without holding d->mu.
 */
#ifndef EDDY_RT_DRIVER_H
#define EDDY_RT_DRIVER_H

#include <stddef.h>
#include <stdint.h>

typedef struct rt_driver rt_driver_t;

typedef struct rt_driver_conf {
    char *data;      /* DIR */
    char *listen;    /* HOST:PORT of the API (default 127.0.0.1:7077) */
    char *broker;    /* bootstrap servers */
    char *store;     /* store URL, or NULL to use store_dir */
    char *store_dir; /* data dir of an embedded store (store_open_dir) */
    char *token;     /* NULL: read or generate DIR/token */
    int64_t worker_timeout_ms;
    int64_t task_max_records; /* split ranges longer than this */
    int64_t http_threads;
    const char *exe; /* path of the eddy executable (job checks) */
} rt_driver_conf_t;

/* Opens the data dir and the store, loads jobs, starts the API and every
 * running job's loop. Returns 0 or an error with a message. */
int rt_driver_start(const rt_driver_conf_t *conf, rt_driver_t **out, char *errstr,
                    size_t errstr_size);
/* The bound API port. */
int rt_driver_port(const rt_driver_t *d);
/* Stops job loops and the API, closes the store. */
void rt_driver_stop(rt_driver_t *d);

#endif
