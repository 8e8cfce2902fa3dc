/* Small helpers shared by the broker tests: temp dirs and file surgery. */
#ifndef EDDY_TESTS_BROKER_TEST_UTIL_H
#define EDDY_TESTS_BROKER_TEST_UTIL_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int tu_rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* rm -rf path */
static inline void tu_rmrf(const char *path)
{
    nftw(path, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh directory under $TMPDIR (or /tmp); the caller frees and removes it. */
static inline char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char *p = malloc(4096);
    snprintf(p, 4096, "%s/eddy-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(p)) {
        perror("mkdtemp");
        abort();
    }
    return p;
}

static inline long long tu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long long)st.st_size;
}

static inline int tu_file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

#endif
