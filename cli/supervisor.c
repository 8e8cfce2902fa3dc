#include "cli/supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "core/core_log.h"
#include "core/core_time.h"

#define SUP_BACKOFF_MIN_MS 500
#define SUP_BACKOFF_MAX_MS 30000
#define SUP_STABLE_MS 60000 /* a role up this long gets its back-off reset */

typedef enum { ROLE_STOPPED, ROLE_STARTING, ROLE_UP, ROLE_BACKOFF } role_state_t;

typedef struct role {
    sup_role_spec_t *spec;
    pid_t pid;
    int out_fd;          /* read end of the child's stdout+stderr pipe */
    int log_fd;          /* DIR/logs/<name>.log */
    int64_t log_bytes;
    role_state_t state;
    int64_t started_ms;  /* wall clock, for status */
    int64_t started_mono;
    int64_t restart_at;  /* monotonic ms, in ROLE_BACKOFF */
    int64_t backoff_ms;
    int restarts;
    int last_status;
} role_t;

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t w = write(sig_pipe[1], &b, 1);
    (void)w;
    errno = saved;
}

int sup_lock(const char *data_dir, char *errstr, size_t errsz)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/eddy.lock", data_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(errstr, errsz, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0)
            pid[n] = 0;
        pid[strcspn(pid, "\n")] = 0;
        snprintf(errstr, errsz,
                 "another `eddy up` (pid %s) is already running on %s; stop it first "
                 "(kill -TERM %s) or use another --data directory",
                 pid[0] ? pid : "?", data_dir, pid[0] ? pid : "<pid>");
        close(fd);
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        snprintf(errstr, errsz, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int open_log(const sup_conf_t *c, role_t *r)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/logs/%s.log", c->data_dir, r->spec->name);
    r->log_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (r->log_fd < 0) {
        CORE_ERROR("up", "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    r->log_bytes = fstat(r->log_fd, &st) == 0 ? st.st_size : 0;
    return 0;
}

/* Renames <role>.log -> .1 -> .2 ... (dropping the oldest) and reopens.
 * Only this process writes these files, so nothing is lost or written
 * into a file that is being removed. */
static void rotate_log(const sup_conf_t *c, role_t *r)
{
    char from[4096], to[4096];
    close(r->log_fd);
    for (int i = c->log_keep; i >= 1; i--) {
        if (i == 1)
            snprintf(from, sizeof from, "%s/logs/%s.log", c->data_dir, r->spec->name);
        else
            snprintf(from, sizeof from, "%s/logs/%s.log.%d", c->data_dir, r->spec->name, i - 1);
        snprintf(to, sizeof to, "%s/logs/%s.log.%d", c->data_dir, r->spec->name, i);
        rename(from, to); /* a missing file is fine */
    }
    open_log(c, r);
}

static void log_write(const sup_conf_t *c, role_t *r, const char *buf, size_t n)
{
    if (r->log_fd < 0)
        return;
    while (n) {
        ssize_t w = write(r->log_fd, buf, n);
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
        r->log_bytes += w;
    }
    if (r->log_bytes >= c->log_max_bytes)
        rotate_log(c, r);
}

static const char *state_name(role_state_t s)
{
    static const char *names[] = {"stopped", "starting", "up", "restarting"};
    return names[s];
}

static void write_status(const sup_conf_t *c, role_t *roles, int n)
{
    char tmp[4096], path[4096];
    snprintf(tmp, sizeof tmp, "%s/run/status.json.tmp", c->data_dir);
    snprintf(path, sizeof path, "%s/run/status.json", c->data_dir);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "{\"supervisor_pid\":%d,\"updated_ms\":%lld,\"roles\":[", (int)getpid(),
            (long long)core_wall_ms());
    for (int i = 0; i < n; i++)
        fprintf(f, "%s{\"name\":\"%s\",\"pid\":%d,\"port\":%d,\"state\":\"%s\",\"started_ms\":%lld,"
                   "\"restarts\":%d,\"last_exit_status\":%d}",
                i ? "," : "", roles[i].spec->name, (int)roles[i].pid, roles[i].spec->port,
                state_name(roles[i].state), (long long)roles[i].started_ms, roles[i].restarts,
                roles[i].last_status);
    fprintf(f, "]}\n");
    if (fclose(f) == 0)
        rename(tmp, path);
}

static int spawn(const sup_conf_t *c, role_t *r)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        /* child: its own process group, so a terminal's ^C reaches only the
         * supervisor, which stops roles in order */
        setpgid(0, 0);
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, STDIN_FILENO);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        execv(r->spec->argv[0], r->spec->argv);
        fprintf(stderr, "eddy up: cannot exec %s: %s\n", r->spec->argv[0], strerror(errno));
        _exit(127);
    }
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    r->pid = pid;
    r->out_fd = p[0];
    r->state = ROLE_STARTING;
    r->started_ms = core_wall_ms();
    r->started_mono = core_mono_ms();
    char line[256];
    int n = snprintf(line, sizeof line, "---- eddy up: started %s (pid %d)\n", r->spec->name, (int)pid);
    log_write(c, r, line, (size_t)n);
    return 0;
}

static bool port_ready(const char *host, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, strcmp(host, "0.0.0.0") ? host : "127.0.0.1", &a.sin_addr);
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

static void drain(const sup_conf_t *c, role_t *r)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(r->out_fd, buf, sizeof buf);
        if (n > 0) {
            log_write(c, r, buf, (size_t)n);
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(r->out_fd);
            r->out_fd = -1;
        }
        return;
    }
}

/* Reaps exited children; schedules restarts unless stopping. */
static void reap(const sup_conf_t *c, role_t *roles, int n, bool stopping)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < n; i++) {
            role_t *r = &roles[i];
            if (r->pid != pid)
                continue;
            if (r->out_fd >= 0)
                drain(c, r);
            r->pid = 0;
            r->last_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            if (stopping) {
                r->state = ROLE_STOPPED;
                break;
            }
            int64_t up = core_mono_ms() - r->started_mono;
            r->backoff_ms = up > SUP_STABLE_MS || !r->backoff_ms ? SUP_BACKOFF_MIN_MS
                                                                  : r->backoff_ms * 2;
            if (r->backoff_ms > SUP_BACKOFF_MAX_MS)
                r->backoff_ms = SUP_BACKOFF_MAX_MS;
            r->state = ROLE_BACKOFF;
            r->restart_at = core_mono_ms() + r->backoff_ms;
            r->restarts++;
            if (WIFSIGNALED(status))
                CORE_WARN("up", "%s (pid %d) was killed by signal %d; restarting in %lld ms",
                          r->spec->name, (int)pid, WTERMSIG(status), (long long)r->backoff_ms);
            else
                CORE_WARN("up", "%s (pid %d) exited with status %d; restarting in %lld ms (see %s/logs/%s.log)",
                          r->spec->name, (int)pid, WEXITSTATUS(status), (long long)r->backoff_ms,
                          c->data_dir, r->spec->name);
            break;
        }
    }
}

/* One turn of the loop: copy logs, handle signals; returns the signal seen (0 = none). */
static int pump(const sup_conf_t *c, role_t *roles, int n, int timeout_ms)
{
    struct pollfd pfd[SUP_MAX_ROLES + 1];
    int map[SUP_MAX_ROLES + 1], k = 0;
    pfd[k].fd = sig_pipe[0];
    pfd[k].events = POLLIN;
    map[k++] = -1;
    for (int i = 0; i < n; i++)
        if (roles[i].out_fd >= 0) {
            pfd[k].fd = roles[i].out_fd;
            pfd[k].events = POLLIN;
            map[k++] = i;
        }
    int sig = 0;
    if (poll(pfd, (nfds_t)k, timeout_ms) > 0) {
        for (int j = 1; j < k; j++)
            if (pfd[j].revents)
                drain(c, &roles[map[j]]);
        if (pfd[0].revents) {
            unsigned char b[16];
            ssize_t got = read(sig_pipe[0], b, sizeof b);
            for (ssize_t i = 0; i < got; i++)
                if (b[i] != SIGCHLD)
                    sig = b[i];
        }
    }
    return sig;
}

static int start_role(const sup_conf_t *c, role_t *roles, int n, int i, bool wait_ready)
{
    role_t *r = &roles[i];
    if (spawn(c, r)) {
        CORE_ERROR("up", "cannot start %s: %s", r->spec->name, strerror(errno));
        return -1;
    }
    if (!wait_ready || !r->spec->port) {
        r->state = ROLE_UP;
        return 0;
    }
    int64_t deadline = core_mono_ms() + c->ready_timeout_ms;
    while (core_mono_ms() < deadline) {
        if (port_ready(r->spec->host, r->spec->port)) {
            r->state = ROLE_UP;
            CORE_INFO("up", "%s is up (pid %d, %s:%d)", r->spec->name, (int)r->pid, r->spec->host,
                      r->spec->port);
            return 0;
        }
        int sig = pump(c, roles, n, 50);
        reap(c, roles, n, false);
        if (sig)
            return sig;
        if (r->state != ROLE_STARTING) {
            CORE_ERROR("up", "%s exited while starting (status %d); see %s/logs/%s.log",
                       r->spec->name, r->last_status, c->data_dir, r->spec->name);
            return -1;
        }
    }
    CORE_ERROR("up", "%s did not listen on port %d within %lld ms; see %s/logs/%s.log", r->spec->name,
               r->spec->port, (long long)c->ready_timeout_ms, c->data_dir, r->spec->name);
    return -1;
}

static void stop_all(const sup_conf_t *c, role_t *roles, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        role_t *r = &roles[i];
        if (!r->pid) {
            r->state = ROLE_STOPPED;
            continue;
        }
        kill(r->pid, SIGTERM);
        int64_t deadline = core_mono_ms() + c->stop_grace_ms;
        while (r->pid && core_mono_ms() < deadline) {
            pump(c, roles, n, 20);
            reap(c, roles, n, true);
        }
        if (r->pid) {
            CORE_WARN("up", "%s did not stop within %lld ms of SIGTERM; killing it", r->spec->name,
                      (long long)c->stop_grace_ms);
            kill(r->pid, SIGKILL);
            while (r->pid) {
                pump(c, roles, n, 20);
                reap(c, roles, n, true);
            }
        }
        CORE_INFO("up", "stopped %s", r->spec->name);
        write_status(c, roles, n);
    }
}

int sup_run(const sup_conf_t *c, sup_role_spec_t *specs, int nroles)
{
    role_t roles[SUP_MAX_ROLES];
    memset(roles, 0, sizeof roles);
    char path[4096];
    snprintf(path, sizeof path, "%s/logs", c->data_dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/run", c->data_dir);
    mkdir(path, 0755);
    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return 1;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGCHLD, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < nroles; i++) {
        roles[i].spec = &specs[i];
        roles[i].out_fd = -1;
        if (open_log(c, &roles[i]))
            return 1;
    }
    int rc = 0, sig = 0;
    for (int i = 0; i < nroles && !sig; i++) {
        int r = start_role(c, roles, nroles, i, true);
        write_status(c, roles, nroles);
        if (r > 0)
            sig = r;
        else if (r < 0) {
            rc = 1;
            sig = SIGTERM;
        }
    }
    if (!sig)
        CORE_INFO("up", "all %d roles are up; logs in %s/logs; stop with SIGTERM or ^C", nroles,
                  c->data_dir);
    while (!sig) {
        sig = pump(c, roles, nroles, 200);
        int before = 0, after = 0;
        for (int i = 0; i < nroles; i++)
            before += roles[i].state == ROLE_UP;
        reap(c, roles, nroles, false);
        for (int i = 0; i < nroles && !sig; i++) {
            role_t *r = &roles[i];
            if (r->state == ROLE_BACKOFF && core_mono_ms() >= r->restart_at) {
                CORE_INFO("up", "restarting %s (restart %d)", r->spec->name, r->restarts);
                int s = start_role(c, roles, nroles, i, true);
                if (s > 0)
                    sig = s;
                else if (s < 0) {
                    r->state = ROLE_BACKOFF; /* try again later, with more back-off */
                    r->backoff_ms = r->backoff_ms * 2 > SUP_BACKOFF_MAX_MS ? SUP_BACKOFF_MAX_MS
                                                                           : r->backoff_ms * 2;
                    r->restart_at = core_mono_ms() + r->backoff_ms;
                }
            }
        }
        for (int i = 0; i < nroles; i++)
            after += roles[i].state == ROLE_UP;
        if (before != after)
            write_status(c, roles, nroles);
    }
    CORE_INFO("up", "signal %d: stopping roles in reverse dependency order", sig);
    stop_all(c, roles, nroles);
    for (int i = 0; i < nroles; i++) {
        if (roles[i].log_fd >= 0)
            close(roles[i].log_fd);
        if (roles[i].out_fd >= 0)
            close(roles[i].out_fd);
    }
    close(sig_pipe[0]);
    close(sig_pipe[1]);
    CORE_INFO("up", "stopped");
    return rc;
}
