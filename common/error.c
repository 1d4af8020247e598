/* Error values and messages; see error.h and docs/errors.md. */
#include "common/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define GY__CODE_NAME(name, text) #name,
#define GY__CODE_TEXT(name, text) text,
static const char *const code_names[] = {GY_ERROR_CODES(GY__CODE_NAME)};
static const char *const code_texts[] = {GY_ERROR_CODES(GY__CODE_TEXT)};

const char *gy_code_name(enum gy_code code)
{
    if ((int)code < 0 || code >= GY_E_COUNT)
        return "UNKNOWN";
    return code_names[code];
}

const char *gy_code_text(enum gy_code code)
{
    if ((int)code < 0 || code >= GY_E_COUNT)
        return "unknown error";
    return code_texts[code];
}

void gy_error_clear(struct gy_error *err)
{
    if (err == NULL)
        return;
    err->code = GY_EOK;
    err->sys_errno = 0;
    err->msg[0] = '\0';
}

int gy_error_vset(struct gy_error *err, enum gy_code code, const char *fmt, va_list ap)
{
    if (code == GY_EOK)
        code = GY_EINTERNAL;
    if (err != NULL) {
        err->code = code;
        err->sys_errno = 0;
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    }
    return -(int)code;
}

int gy_error_set(struct gy_error *err, enum gy_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = gy_error_vset(err, code, fmt, ap);
    va_end(ap);
    return rc;
}

int gy_error_sys(struct gy_error *err, int errnum, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = gy_error_vset(err, GY_ESYS, fmt, ap);
    va_end(ap);
    if (err != NULL) {
        size_t used = strlen(err->msg);
        snprintf(err->msg + used, sizeof(err->msg) - used, ": %s", strerror(errnum));
        err->sys_errno = errnum;
    }
    return rc;
}

int gy_error_wrap(struct gy_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return -(int)GY_EINTERNAL;
    if (err->code == GY_EOK)
        err->code = GY_EINTERNAL;
    char prefix[GY_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    /* Compose "prefix: old", truncated to the buffer, without a format (the truncation is
     * intended and known). */
    char old[GY_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof(old));
    old[sizeof(old) - 1] = '\0';
    size_t cap = sizeof(err->msg) - 1, n = 0;
    const char *parts[] = {prefix, ": ", old};
    for (size_t i = 0; i < 3; i++) {
        size_t len = strlen(parts[i]);
        if (len > cap - n)
            len = cap - n;
        memcpy(err->msg + n, parts[i], len);
        n += len;
    }
    err->msg[n] = '\0';
    return -(int)err->code;
}
