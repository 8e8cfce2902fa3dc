/*
 * supervisor — runs Eddy's roles as child processes on one machine (`eddy up`).
 *
 * Each role is a child `eddy <role> ...` (the same executable). The supervisor:
 *   - starts roles in dependency order, each only once the previous one
 *     accepts connections on its port (broker before registry, event server
 *     before driver, driver before workers, ...);
 *   - restarts a role that exits on its own, with exponential back-off
 *     (0.5 s doubling to 30 s; reset after a minute of uptime), and logs it;
 *   - owns every role's log: the child's stdout and stderr are a pipe the
 *     supervisor copies into DIR/logs/<role>.log, rotating by size
 *     (<role>.log.1 .. .N). Because the supervisor holds the files, a log is
 *     never deleted or renamed under a writer that still has it open (the
 *     talk's pitfall: cleanup deleting a long-running job's log);
 *   - writes DIR/run/status.json (role, pid, port, state, restarts, started
 *     at) on every change, for `eddy status`;
 *   - on SIGTERM/SIGINT stops roles in reverse dependency order, each with
 *     SIGTERM then SIGKILL after a grace period, and exits 0.
 * A lock (flock on DIR/eddy.lock, which also records the pid) makes a second
 * supervisor on the same data directory refuse to start.
 *
 * Threads: one (a poll loop over the log pipes and a self-pipe for signals).
 */
#ifndef EDDY_SUPERVISOR_H
#define EDDY_SUPERVISOR_H

#include <stddef.h>
#include <stdint.h>

#define SUP_MAX_ROLES 32
#define SUP_MAX_ARGS 48

typedef struct sup_role_spec {
    char name[32];       /* "broker", "worker-1", ... (also the log file name) */
    char *argv[SUP_MAX_ARGS]; /* argv[0] = path of eddy; NULL-terminated; owned */
    int port;            /* readiness port on 127.0.0.1 (0 = none: ready once started) */
    char host[64];       /* where to probe the port */
} sup_role_spec_t;

typedef struct sup_conf {
    const char *data_dir;
    int64_t log_max_bytes;   /* rotate a role's log at this size */
    int log_keep;            /* rotated files kept per role */
    int64_t stop_grace_ms;   /* SIGTERM -> SIGKILL */
    int64_t ready_timeout_ms;
} sup_conf_t;

/* Runs until SIGTERM/SIGINT; returns the process exit status. roles are
 * started in array order and stopped in reverse. */
int sup_run(const sup_conf_t *conf, sup_role_spec_t *roles, int nroles);

/* Takes DIR/eddy.lock; returns its fd, or -1 with a message naming the pid
 * that holds it. */
int sup_lock(const char *data_dir, char *errstr, size_t errstr_size);

#endif
