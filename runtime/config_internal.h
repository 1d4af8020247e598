/* Shared by config.c and config_linux.c: JSON field access that names the field in its
 * errors (config_field.c). Each getter returns 1 when the field was present and valid, 0
 * when absent (or null), negative with err filled otherwise. path is the field's prefix
 * ("process."). Only the config parser uses this header. */
#ifndef GANTRY_RUNTIME_CONFIG_INTERNAL_H
#define GANTRY_RUNTIME_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/error.h"
#include "runtime/config.h"

int rt_cfg_want_type(json_t *v, json_type type, const char *path, const char *what,
                     struct gy_error *err);
int rt_cfg_get_string(json_t *obj, const char *key, const char *path, char **out,
                      struct gy_error *err);
int rt_cfg_get_bool(json_t *obj, const char *key, const char *path, bool *out,
                    struct gy_error *err);
int rt_cfg_get_int(json_t *obj, const char *key, const char *path, int64_t min, int64_t max,
                   int64_t *out, struct gy_error *err);
/* An array of strings; *out is NULL-terminated, freed with rt_cfg_free_strings. */
int rt_cfg_get_strings(json_t *obj, const char *key, const char *path, char ***out, size_t *count,
                       struct gy_error *err);
void rt_cfg_free_strings(char **list, size_t count);

/* The "linux" object (may be NULL). */
int rt_cfg_parse_linux(json_t *l, struct rt_config *c, struct gy_error *err);

#endif
