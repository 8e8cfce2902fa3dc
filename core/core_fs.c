/* core_fs — see core_fs.h. */
#define _XOPEN_SOURCE 700
#include "core/core_fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core_alloc.h"
#include "core/core_err.h"

int core_fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    int rc = fsync(fd) ? errno : 0;
    close(fd);
    return rc;
}

int core_fs_pwrite_all(int fd, const void *buf, size_t len, int64_t pos)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return ENOSPC;
        p += n;
        len -= (size_t)n;
        pos += n;
    }
    return 0;
}

int core_fs_pread_all(int fd, void *buf, size_t len, int64_t pos)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = pread(fd, p, len, pos);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        if (n == 0)
            return CORE_ERR_TRUNCATED;
        p += n;
        len -= (size_t)n;
        pos += n;
    }
    return 0;
}

int core_fs_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                         mode_t mode)
{
    char tmp[4352], dst[4352];
    if (snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= (int)sizeof tmp ||
        snprintf(dst, sizeof dst, "%s/%s", dir, name) >= (int)sizeof dst)
        return ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return errno;
    int rc = core_fs_pwrite_all(fd, data, len, 0);
    if (!rc && fsync(fd))
        rc = errno;
    if (close(fd) && !rc)
        rc = errno;
    if (!rc && rename(tmp, dst))
        rc = errno;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return core_fs_fsync_dir(dir);
}

int core_fs_read_file(const char *path, size_t max, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno;
    /* Reading one byte past max is how a too-large file is told apart. */
    size_t limit = max < SIZE_MAX - 1 ? max + 1 : SIZE_MAX - 1;
    size_t cap = limit < 4096 ? limit : 4096, n = 0;
    char *buf = core_xmalloc(cap + 1);
    int rc = 0;
    for (;;) {
        if (n == cap) {
            if (cap == limit) {
                rc = CORE_ERR_TOO_LARGE;
                break;
            }
            cap = cap <= limit / 2 ? cap * 2 : limit;
            buf = core_xrealloc(buf, cap + 1);
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            rc = errno;
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static _Thread_local int rm_first_err;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(p) && errno != ENOENT && !rm_first_err)
        rm_first_err = errno;
    return 0; /* keep going: remove what can be removed */
}

int core_fs_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : errno;
    rm_first_err = 0;
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) != 0 && !rm_first_err)
        rm_first_err = errno;
    return rm_first_err;
}

int core_fs_i64_save(const char *dir, const char *name, int64_t value)
{
    char text[64];
    int n = snprintf(text, sizeof text, "0\n%" PRId64 "\n", value);
    return core_fs_write_atomic(dir, name, text, (size_t)n, 0644);
}

int core_fs_i64_load(const char *dir, const char *name, int64_t *value)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s/%s", dir, name) >= (int)sizeof p)
        return ENAMETOOLONG;
    char *text = NULL;
    size_t len = 0;
    int rc = core_fs_read_file(p, 64, &text, &len);
    if (rc)
        return rc == CORE_ERR_TOO_LARGE ? CORE_ERR_CORRUPT : rc;
    /* exactly "0\n", then decimal digits (no sign, no overflow), then "\n" */
    int ok = len >= 4 && text[0] == '0' && text[1] == '\n' && text[len - 1] == '\n';
    int64_t v = 0;
    for (size_t i = 2; ok && i < len - 1; i++) {
        ok = text[i] >= '0' && text[i] <= '9' && v <= (INT64_MAX - (text[i] - '0')) / 10;
        v = ok ? v * 10 + (text[i] - '0') : v;
    }
    free(text);
    if (!ok)
        return CORE_ERR_CORRUPT;
    *value = v;
    return 0;
}
