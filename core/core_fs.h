/*
 * core_fs — the few file-system steps every durable component repeats.
 *
 * Durability rule used across Eddy: a small file that must be all-or-nothing
 * after a crash (topic properties, checkpoints, tokens, plans, schedule and
 * run records) is written to a temp file in the same directory, fsynced,
 * renamed over the target, and the directory is fsynced so the rename itself
 * survives power loss. core_fs_write_atomic does exactly that; nothing else
 * in the tree hand-writes the sequence.
 *
 * Errors: functions return 0 or a positive errno (callers format messages with
 * strerror), except core_fs_pread_all's CORE_ERR_TRUNCATED at end of file,
 * core_fs_read_file's CORE_ERR_TOO_LARGE and core_fs_i64_load's
 * CORE_ERR_CORRUPT.
 * Threads: plain syscalls; safe from any thread on distinct paths.
 */
#ifndef EDDY_CORE_FS_H
#define EDDY_CORE_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* fsync of a directory (makes creations, renames and unlinks in it durable). */
int core_fs_fsync_dir(const char *dir);
/* Writes/reads exactly len bytes at pos, retrying short transfers and EINTR.
 * pwrite: ENOSPC when the kernel writes nothing; pread: CORE_ERR_TRUNCATED
 * when the file ends first. */
int core_fs_pwrite_all(int fd, const void *buf, size_t len, int64_t pos);
int core_fs_pread_all(int fd, void *buf, size_t len, int64_t pos);
/* DIR/name := data, atomically and durably: DIR/.name.tmp, write, fsync,
 * rename, fsync(DIR). On error the temp file is removed and DIR/name is
 * untouched. */
int core_fs_write_atomic(const char *dir, const char *name, const void *data, size_t len,
                         mode_t mode);
/* Reads the whole file at path into a NUL-terminated heap buffer: *data (the
 * caller frees it), *len bytes without the NUL. A file of more than max bytes
 * is CORE_ERR_TOO_LARGE (max bounds what a config or upload may cost; pass
 * SIZE_MAX for none); open and read errors are their errno. */
int core_fs_read_file(const char *path, size_t max, char **data, size_t *len);
/* A durable counter file: "0\n<value>\n" (format version 0, a value ≥ 0),
 * written with core_fs_write_atomic. load: a missing file is ENOENT (the
 * caller decides what that means); anything but that exact form is
 * CORE_ERR_CORRUPT. */
int core_fs_i64_save(const char *dir, const char *name, int64_t value);
int core_fs_i64_load(const char *dir, const char *name, int64_t *value);
/* Removes path and everything below it (not following symlinks). A missing
 * path is success. Returns the first error met, after trying everything. */
int core_fs_rm_rf(const char *path);

#endif
