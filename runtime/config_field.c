/* JSON field access for the config parser (config.c and config_linux.c): each getter
 * takes the JSON path of the field so that its error names the field, as the rest of
 * the parser's errors do. The contract is in config_internal.h. */
#include "runtime/config_internal.h"

#include <stdlib.h>

#include <jansson.h>

#include "common/xalloc.h"

int rt_cfg_want_type(json_t *v, json_type type, const char *path, const char *what,
                     struct gy_error *err)
{
    if (json_typeof(v) != type)
        return gy_error_set(err, GY_EINVAL, "%s: must be %s", path, what);
    return 0;
}

int rt_cfg_get_string(json_t *obj, const char *key, const char *path, char **out,
                      struct gy_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return gy_error_set(err, GY_EINVAL, "%s%s: must be a string", path, key);
    free(*out);
    *out = gy_xstrdup(json_string_value(v));
    return 1;
}

int rt_cfg_get_bool(json_t *obj, const char *key, const char *path, bool *out, struct gy_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return gy_error_set(err, GY_EINVAL, "%s%s: must be true or false", path, key);
    *out = json_is_true(v);
    return 1;
}

int rt_cfg_get_int(json_t *obj, const char *key, const char *path, int64_t min, int64_t max,
                   int64_t *out, struct gy_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return gy_error_set(err, GY_EINVAL, "%s%s: must be an integer", path, key);
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return gy_error_set(err, GY_EINVAL, "%s%s: %lld is out of range (%lld to %lld)", path, key,
                            (long long)n, (long long)min, (long long)max);
    *out = n;
    return 1;
}

/* Reads an array of strings; absent leaves *out empty. */
int rt_cfg_get_strings(json_t *obj, const char *key, const char *path, char ***out, size_t *count,
                       struct gy_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return gy_error_set(err, GY_EINVAL, "%s%s: must be an array of strings", path, key);
    size_t n = json_array_size(v);
    char **list = gy_xcalloc(n + 1, sizeof(*list));
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_array_get(v, i);
        if (!json_is_string(s)) {
            for (size_t j = 0; j < i; j++)
                free(list[j]);
            free(list);
            return gy_error_set(err, GY_EINVAL, "%s%s[%zu]: must be a string", path, key, i);
        }
        list[i] = gy_xstrdup(json_string_value(s));
    }
    *out = list;
    *count = n;
    return 1;
}

void rt_cfg_free_strings(char **list, size_t count)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        free(list[i]);
    free(list);
}
