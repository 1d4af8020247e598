/* Logging to stderr in logfmt: time, level, component, message and key=value fields. */
#ifndef GANTRY_COMMON_LOG_H
#define GANTRY_COMMON_LOG_H

#include <stdbool.h>
#include <stdio.h>

enum gy_log_level {
    GY_LOG_DEBUG = 0,
    GY_LOG_INFO,
    GY_LOG_WARN,
    GY_LOG_ERROR,
};

/* Sets the component name printed on every line (e.g. "scheduler") and the level. The
 * level comes from GANTRY_LOG when it is set and valid, else from `level`. */
void gy_log_init(const char *component, enum gy_log_level level);
void gy_log_set_level(enum gy_log_level level);
enum gy_log_level gy_log_get_level(void);
/* Redirects output (default stderr); for tests. */
void gy_log_set_stream(FILE *stream);

/* Parses "debug", "info", "warn" or "error" (any case); returns false if s is none. */
bool gy_log_level_parse(const char *s, enum gy_log_level *out);
const char *gy_log_level_name(enum gy_log_level level);

/* Writes one line: `time=... level=info comp=NAME msg="MSG" FIELDS`, where FIELDS is the
 * printf expansion of fields_fmt and should itself be key=value pairs. */
void gy_log_write(enum gy_log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* gy_log_info("leader elected", "term=%llu id=%u", term, id); fields are optional. */
#define gy_log_debug(msg, ...)                                                                     \
    do {                                                                                           \
        if (gy_log_get_level() <= GY_LOG_DEBUG)                                                    \
            gy_log_write(GY_LOG_DEBUG, msg, "" __VA_ARGS__);                                       \
    } while (0)
#define gy_log_info(msg, ...)  gy_log_write(GY_LOG_INFO, msg, "" __VA_ARGS__)
#define gy_log_warn(msg, ...)  gy_log_write(GY_LOG_WARN, msg, "" __VA_ARGS__)
#define gy_log_error(msg, ...) gy_log_write(GY_LOG_ERROR, msg, "" __VA_ARGS__)

#endif
