/* The project's error convention: fallible functions return 0 or more on success and a
 * negative enum gy_code on failure, and fill the struct gy_error passed last. */
#ifndef GANTRY_COMMON_ERROR_H
#define GANTRY_COMMON_ERROR_H

#include <stdarg.h>

/* One row per error code: name, text. The enum, gy_code_name() and gy_code_text() are
 * made from this table, so they cannot drift apart. */
#define GY_ERROR_CODES(X)                                                                          \
    X(OK, "ok")                                                                                    \
    X(NOMEM, "out of memory")                                                                      \
    X(INVAL, "invalid argument")                                                                   \
    X(PARSE, "parse error")                                                                        \
    X(RANGE, "value out of range")                                                                 \
    X(NOTFOUND, "not found")                                                                       \
    X(EXISTS, "already exists")                                                                    \
    X(CONFLICT, "conflict")                                                                        \
    X(TOOBIG, "too big")                                                                           \
    X(PROTO, "protocol error")                                                                     \
    X(IO, "input/output error")                                                                    \
    X(SYS, "system call failed")                                                                   \
    X(PERM, "permission denied")                                                                   \
    X(TIMEOUT, "timed out")                                                                        \
    X(UNAVAILABLE, "unavailable")                                                                  \
    X(INTERNAL, "internal error")

#define GY__CODE_ENUM(name, text) GY_E##name,
enum gy_code { GY_ERROR_CODES(GY__CODE_ENUM) GY_E_COUNT };
#undef GY__CODE_ENUM

#define GY_ERROR_MSG_MAX 1024

/* What went wrong: a code, the errno that caused it (0 if none) and a message that says
 * what was being done, with context added by each caller on the way up. */
struct gy_error {
    enum gy_code code;
    int sys_errno;
    char msg[GY_ERROR_MSG_MAX];
};

/* Short upper-case name ("INVAL") and generic text ("invalid argument") of a code. */
const char *gy_code_name(enum gy_code code);
const char *gy_code_text(enum gy_code code);

/* Resets err to "no error". err may be NULL. */
void gy_error_clear(struct gy_error *err);

/* Fills err (which may be NULL) with code and a printf-style message; returns -code so
 * callers can write `return gy_error_set(err, GY_EINVAL, "...")`. */
int gy_error_set(struct gy_error *err, enum gy_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like gy_error_set with code GY_ESYS, errno errnum, and ": strerror(errnum)" appended. */
int gy_error_sys(struct gy_error *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "context: " to the message already in err and returns -err->code. */
int gy_error_wrap(struct gy_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int gy_error_vset(struct gy_error *err, enum gy_code code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#endif
