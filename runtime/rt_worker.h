/*
 * rt_worker — an executor process: runs the driver's tasks on N slots.
 *
 * Isolation decision: every task runs in its own child process (fork +
 * exec of `eddy task-run`), never in the worker itself. A job that crashes
 * (SIGSEGV on a poison record), aborts, leaks or corrupts memory kills only
 * that child; the worker reports the crash to the driver as a task failure
 * naming the signal and the offsets being processed (the child writes the
 * current chunk's offsets to a shared page before each process() call), and
 * goes on. exec (not a bare fork) gives the child a clean process: the worker
 * has threads (HTTP, slots), and dlopen/librdkafka after a bare fork of a
 * threaded process are not safe. The price is a process start per task
 * (about a millisecond), small next to a task's fetch. The child also dies
 * with its slot thread (PR_SET_PDEATHSIG), so kill -9 of the worker leaves no
 * orphans producing output.
 *
 * Protocol (rt_proto.h bodies): register (POST driver /v1/workers), heartbeat
 * every --heartbeat (404 = the driver forgot us: register again), receive
 * tasks (POST /v1/tasks on our own core_http port: 202 accepted, 503 full),
 * fetch job binaries by SHA-256 (GET /v1/binaries/SHA, verified, cached in
 * the work dir), post results (POST /v1/workers/ID/results, retried).
 *
 * Threads: core_http threads (accept tasks), one thread per slot (run a
 * child, post its result), the calling thread (register + heartbeats).
 */
#ifndef EDDY_RT_WORKER_H
#define EDDY_RT_WORKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rt_worker_conf {
    char *driver;   /* HOST:PORT of the driver API */
    int64_t slots;  /* concurrent tasks */
    char *listen;   /* our task port (default 127.0.0.1:0) */
    char *token;    /* API token */
    char *work_dir; /* binary cache (default: a temp dir removed at exit) */
    int64_t heartbeat_ms;
    int64_t task_timeout_ms;
    const char *exe; /* the eddy executable (for task-run) */
} rt_worker_conf_t;

/* Runs until *stop becomes nonzero. Returns 0 or an error with a message. */
int rt_worker_run(const rt_worker_conf_t *conf, volatile sig_atomic_t *stop, char *errstr,
                  size_t errstr_size);

/* The body of `eddy task-run` (the per-task child): reads a task from stdin,
 * runs it, writes the result to stdout. Returns the process exit status. */
int rt_task_child_main(const char *driver, const char *token, const char *job_path,
                       int progress_fd);

#endif
