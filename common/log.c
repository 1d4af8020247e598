/* logfmt logging; see log.h. */
#include "common/log.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *log_component = "gantry";
static enum gy_log_level log_level = GY_LOG_INFO;
static FILE *log_stream;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void gy_log_init(const char *component, enum gy_log_level level)
{
    if (component != NULL)
        log_component = component;
    log_level = level;
    const char *env = getenv("GANTRY_LOG");
    enum gy_log_level from_env;
    if (env != NULL && gy_log_level_parse(env, &from_env))
        log_level = from_env;
}

void gy_log_set_level(enum gy_log_level level)
{
    log_level = level;
}

enum gy_log_level gy_log_get_level(void)
{
    return log_level;
}

void gy_log_set_stream(FILE *stream)
{
    log_stream = stream;
}

bool gy_log_level_parse(const char *s, enum gy_log_level *out)
{
    if (s == NULL)
        return false;
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum gy_log_level)i;
            return true;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = GY_LOG_WARN;
        return true;
    }
    return false;
}

const char *gy_log_level_name(enum gy_log_level level)
{
    if ((int)level < 0 || level > GY_LOG_ERROR)
        return "unknown";
    return level_names[level];
}

/* Writes msg quoted, escaping quotes, backslashes and control characters, so one log
 * record is always one line. */
static size_t quote(char *out, size_t cap, const char *msg)
{
    size_t n = 0;
    if (n + 1 < cap)
        out[n++] = '"';
    for (const char *p = msg; *p != '\0' && n + 3 < cap; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (c < 0x20) {
            out[n++] = ' ';
        } else {
            out[n++] = (char)c;
        }
    }
    if (n + 1 < cap)
        out[n++] = '"';
    out[n] = '\0';
    return n;
}

void gy_log_write(enum gy_log_level level, const char *msg, const char *fields_fmt, ...)
{
    if (level < log_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);

    char line[4096];
    size_t n = strftime(line, sizeof(line), "time=%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n,
                          ".%03ldZ level=%s comp=%s msg=", ts.tv_nsec / 1000000,
                          gy_log_level_name(level), log_component);
    n += quote(line + n, sizeof(line) - n, msg);
    if (fields_fmt != NULL && fields_fmt[0] != '\0' && n + 2 < sizeof(line)) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fields_fmt);
        int w = vsnprintf(line + n, sizeof(line) - n, fields_fmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w < sizeof(line) - n ? (size_t)w : sizeof(line) - n - 1;
    }
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    line[n] = '\0';
    /* One fwrite per record keeps lines whole when several processes share stderr. */
    FILE *out = log_stream != NULL ? log_stream : stderr;
    fwrite(line, 1, n, out);
    fflush(out);
}
