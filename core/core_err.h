/*
 * core_err — the one error vocabulary of Eddy.
 *
 * Design: every fallible function returns a core_err_t; results leave through
 * pointer parameters. When a person needs detail, the function also takes a
 * (char *errstr, size_t errstr_size) pair and writes one line into it.
 *
 * Ranges (kept apart so a value always says where it came from):
 *   0                 CORE_OK
 *   1 .. 4095         errno values passed through unchanged (e.g. ENOENT)
 *   -1000 .. -1999    Eddy's own codes, listed in CORE_ERR_MAP below
 * Kafka wire error codes are NOT core_err_t values; the broker keeps them in
 * broker_proto.h (int16 on the wire) and maps from core_err_t where needed.
 *
 * Thread-safety: all functions here are pure and may be called from any thread.
 */
#ifndef EDDY_CORE_ERR_H
#define EDDY_CORE_ERR_H

#include <stddef.h>

/* X(name, value, message) — the single source for codes, names and messages. */
#define CORE_ERR_MAP(X)                                                                  \
    X(CORE_OK, 0, "success")                                                             \
    X(CORE_ERR_NOMEM, -1000, "out of memory")                                            \
    X(CORE_ERR_INVAL, -1001, "invalid argument")                                         \
    X(CORE_ERR_TRUNCATED, -1002, "input ends before the structure it announces")         \
    X(CORE_ERR_MALFORMED, -1003, "malformed input")                                      \
    X(CORE_ERR_TOO_LARGE, -1004, "value exceeds its configured limit")                   \
    X(CORE_ERR_CRC, -1005, "checksum mismatch")                                          \
    X(CORE_ERR_NOT_FOUND, -1006, "not found")                                            \
    X(CORE_ERR_EXISTS, -1007, "already exists")                                          \
    X(CORE_ERR_IO, -1008, "I/O error")                                                   \
    X(CORE_ERR_CORRUPT, -1009, "stored data is corrupt")                                 \
    X(CORE_ERR_UNSUPPORTED, -1010, "unsupported")                                        \
    X(CORE_ERR_STATE, -1011, "operation not allowed in the current state")               \
    X(CORE_ERR_TIMEOUT, -1012, "timed out")                                              \
    X(CORE_ERR_AGAIN, -1013, "need more input")                                          \
    X(CORE_ERR_CONFLICT, -1014, "conflicts with existing data")                          \
    X(CORE_ERR_AUTH, -1015, "not authorized")                                            \
    X(CORE_ERR_CLOSED, -1016, "closed")                                                  \
    X(CORE_ERR_ABI, -1017, "ABI version mismatch")                                       \
    X(CORE_ERR_RANGE, -1018, "out of range")

typedef enum core_err {
#define CORE_ERR_ENUM(name, value, msg) name = value,
    CORE_ERR_MAP(CORE_ERR_ENUM)
#undef CORE_ERR_ENUM
} core_err_t;

/* Human-readable message for an Eddy code or an errno value. Never NULL; static storage. */
const char *core_strerror(int err);
/* Symbolic name ("CORE_ERR_CRC", "ENOENT"); never NULL; static storage. */
const char *core_errname(int err);

/* Writes a printf-formatted message into errstr (if non-NULL) and returns err.
 * Lets callers write: return core_errf(CORE_ERR_INVAL, errstr, size, "bad %s", x); */
int core_errf(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
