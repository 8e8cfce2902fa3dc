#include "core/core_alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "eddy: out of memory allocating %zu bytes\n", n);
    abort();
}

void *core_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}
void *core_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}
void *core_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}
char *core_xstrdup(const char *s)
{
    return core_xstrndup(s, strlen(s));
}
char *core_xstrndup(const char *s, size_t n)
{
    char *p = core_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}
void *core_trymalloc(size_t n)
{
    return malloc(n ? n : 1);
}
void *core_tryrealloc(void *p, size_t n)
{
    return realloc(p, n ? n : 1);
}
