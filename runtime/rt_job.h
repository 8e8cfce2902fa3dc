/*
 * rt_job — loading a job shared object (include/eddy/job.h) into a process.
 *
 * Design (STYLE §10): the file's first bytes are checked to be an ELF shared
 * object for this machine before dlopen, so a script, a text file or an
 * executable is refused with a clear message rather than a loader error.
 * dlopen uses RTLD_NOW|RTLD_LOCAL (every symbol resolved up front, nothing
 * leaks into the global namespace, so two jobs never interpose on each
 * other); then the one versioned entry symbol EDDY_JOB_SYMBOL is looked up
 * and its abi_version compared with EDDY_JOB_ABI_VERSION. A file exporting a
 * newer descriptor (eddy_job_v2 ...) gets a message naming the version it
 * wants. Any failure dlcloses before returning.
 *
 * Where: dlopen runs the job's constructors, i.e. native code. The driver
 * never calls rt_job_load itself; it validates a submitted file in a child
 * process (rt_job_check_isolated: fork + exec of `eddy job-check FILE`), and
 * workers load jobs only in their per-task child processes.
 *
 * Threads: rt_job_t is owned by one thread; load/unload may run anywhere.
 */
#ifndef EDDY_RT_JOB_H
#define EDDY_RT_JOB_H

#include <stddef.h>

#include "eddy/job.h"

typedef struct rt_job {
    void *handle;                /* dlopen handle (owned) */
    const eddy_job_desc_t *desc; /* borrowed from the loaded object */
} rt_job_t;

/* Checks that path starts with an ELF header for a shared object (ET_DYN) of
 * this machine's class and architecture. Returns 0, CORE_ERR_UNSUPPORTED
 * with a message, or an errno value when the file cannot be read. */
int rt_job_check_elf(const char *path, char *errstr, size_t errstr_size);

/* Loads path and validates its descriptor. On success fills *job (release it
 * with rt_job_unload). Errors: CORE_ERR_UNSUPPORTED (not an ELF .so),
 * CORE_ERR_ABI (wrong or missing versioned symbol), CORE_ERR_INVAL (a
 * descriptor without process), CORE_ERR_IO (dlopen failed: the loader's
 * message is in errstr). */
int rt_job_load(const char *path, rt_job_t *job, char *errstr, size_t errstr_size);

void rt_job_unload(rt_job_t *job);

/* Validates path in a separate process (exe = path of the eddy binary, which
 * runs `job-check`), so a constructor that crashes or loops cannot hurt the
 * caller. Waits at most timeout_ms. On success copies the job's descriptor
 * name and flags out. Returns 0 or an error with the child's message. */
int rt_job_check_isolated(const char *exe, const char *path, int timeout_ms, char *name,
                          size_t name_size, unsigned *flags, char *errstr, size_t errstr_size);

#endif
