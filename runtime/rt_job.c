#include "runtime/rt_job.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core_err.h"
#include "core/core_time.h"

int rt_job_check_elf(const char *path, char *errstr, size_t errstr_size)
{
    Elf64_Ehdr eh;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return core_errf(errno, errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
    ssize_t n = read(fd, &eh, sizeof eh);
    close(fd);
    if (n < (ssize_t)EI_NIDENT || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
        return core_errf(CORE_ERR_UNSUPPORTED, errstr, errstr_size,
                         "%s is not a shared object (no ELF header); build the job with "
                         "`cc -shared -fPIC`", path);
    if (n < (ssize_t)sizeof eh || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_ident[EI_DATA] != ELFDATA2LSB)
        return core_errf(CORE_ERR_UNSUPPORTED, errstr, errstr_size,
                         "%s is an ELF file for another machine class (need 64-bit "
                         "little-endian)", path);
    if (eh.e_type != ET_DYN)
        return core_errf(CORE_ERR_UNSUPPORTED, errstr, errstr_size,
                         "%s is an ELF file but not a shared object (e_type %u); build it "
                         "with -shared", path, (unsigned)eh.e_type);
#if defined(__x86_64__)
    const unsigned want = EM_X86_64;
#elif defined(__aarch64__)
    const unsigned want = EM_AARCH64;
#else
    const unsigned want = eh.e_machine;
#endif
    if (eh.e_machine != want)
        return core_errf(CORE_ERR_UNSUPPORTED, errstr, errstr_size,
                         "%s is a shared object for another architecture (e_machine %u)", path,
                         (unsigned)eh.e_machine);
    return CORE_OK;
}

int rt_job_load(const char *path, rt_job_t *job, char *errstr, size_t errstr_size)
{
    memset(job, 0, sizeof *job);
    int err = rt_job_check_elf(path, errstr, errstr_size);
    if (err)
        return err;
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        return core_errf(CORE_ERR_IO, errstr, errstr_size, "cannot load %s: %s", path,
                         e ? e : "dlopen failed");
    }
    const eddy_job_desc_t *d = (const eddy_job_desc_t *)dlsym(h, EDDY_JOB_SYMBOL);
    if (!d) {
        /* A job built against a newer header exports eddy_job_vN instead. */
        for (int v = EDDY_JOB_ABI_VERSION + 1; v < 10; v++) {
            char sym[32];
            snprintf(sym, sizeof sym, "eddy_job_v%d", v);
            if (dlsym(h, sym)) {
                err = core_errf(CORE_ERR_ABI, errstr, errstr_size,
                                "%s was built for job ABI %d (exports %s); this eddy supports "
                                "ABI %d: rebuild it against this eddy's include/eddy/job.h",
                                path, v, sym, EDDY_JOB_ABI_VERSION);
                goto fail;
            }
        }
        err = core_errf(CORE_ERR_ABI, errstr, errstr_size,
                        "%s does not export the job descriptor '%s' (declare it with "
                        "EDDY_JOB(...) from eddy/job.h)", path, EDDY_JOB_SYMBOL);
        goto fail;
    }
    if (d->abi_version != EDDY_JOB_ABI_VERSION) {
        err = core_errf(CORE_ERR_ABI, errstr, errstr_size,
                        "%s declares job ABI version %u but this eddy supports version %d: "
                        "rebuild it against this eddy's include/eddy/job.h", path,
                        d->abi_version, EDDY_JOB_ABI_VERSION);
        goto fail;
    }
    if (!d->process) {
        err = core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                        "%s: the job descriptor has no process callback", path);
        goto fail;
    }
    job->handle = h;
    job->desc = d;
    return CORE_OK;
fail:
    dlclose(h);
    return err;
}

void rt_job_unload(rt_job_t *job)
{
    if (job->handle)
        dlclose(job->handle);
    job->handle = NULL;
    job->desc = NULL;
}

int rt_job_check_isolated(const char *exe, const char *path, int timeout_ms, char *name,
                          size_t name_size, unsigned *flags, char *errstr, size_t errstr_size)
{
    /* The cheap, code-free check first: most bad uploads stop here. */
    int err = rt_job_check_elf(path, errstr, errstr_size);
    if (err)
        return err;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return core_errf(errno, errstr, errstr_size, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        err = errno;
        close(p[0]);
        close(p[1]);
        return core_errf(err, errstr, errstr_size, "fork: %s", strerror(err));
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec (the parent has threads). */
        dup2(p[1], 1);
        char *argv[] = {(char *)"eddy", (char *)"job-check", (char *)path, NULL};
        execv(exe, argv);
        _exit(127);
    }
    close(p[1]);
    char out[1024];
    size_t len = 0;
    int64_t deadline = core_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - core_mono_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {.fd = p[0], .events = POLLIN};
        int r = poll(&pfd, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = read(p[0], out + len, sizeof out - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == sizeof out - 1)
            break;
    }
    close(p[0]);
    out[len] = 0;
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (!strchr(out, '\n'))
            return core_errf(CORE_ERR_TIMEOUT, errstr, errstr_size,
                             "checking %s timed out (constructor loops?)", path);
    }
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = 0;
    if (WIFSIGNALED(status))
        return core_errf(CORE_ERR_INVAL, errstr, errstr_size,
                         "loading %s crashed the checker with signal %d (%s)", path,
                         WTERMSIG(status), strsignal(WTERMSIG(status)));
    if (!strncmp(out, "ok ", 3)) {
        unsigned f = 0;
        char nm[256] = "";
        if (sscanf(out + 3, "%x %255s", &f, nm) >= 1) {
            if (flags)
                *flags = f;
            if (name && name_size)
                snprintf(name, name_size, "%s", nm);
            return CORE_OK;
        }
    }
    if (!strncmp(out, "error ", 6)) {
        int code = atoi(out + 6);
        const char *msg = strchr(out + 6, ' ');
        return core_errf(code ? code : CORE_ERR_INVAL, errstr, errstr_size, "%s",
                         msg ? msg + 1 : out);
    }
    return core_errf(CORE_ERR_INVAL, errstr, errstr_size, "checking %s failed (exit %d): %s",
                     path, WIFEXITED(status) ? WEXITSTATUS(status) : -1, out);
}
