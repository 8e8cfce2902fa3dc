/*
 * core_alloc — allocation wrappers whose names say what happens on failure.
 *
 * core_x* abort the process with a message when memory runs out (used for
 * small, bounded allocations where no caller could recover). core_try* return
 * NULL and are used where the size comes from outside (a request length, a
 * file size) so that a huge request fails that request, not the process.
 * The executable links jemalloc (CMake option EDDY_JEMALLOC); sanitizer builds
 * use libc malloc so ASan sees every allocation.
 */
#ifndef EDDY_CORE_ALLOC_H
#define EDDY_CORE_ALLOC_H

#include <stddef.h>

void *core_xmalloc(size_t n);
void *core_xcalloc(size_t n, size_t size);
void *core_xrealloc(void *p, size_t n);
char *core_xstrdup(const char *s);
char *core_xstrndup(const char *s, size_t n);
void *core_trymalloc(size_t n);
void *core_tryrealloc(void *p, size_t n);

#endif
