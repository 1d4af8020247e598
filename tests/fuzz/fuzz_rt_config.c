/* Fuzz target: arbitrary bytes as an OCI config.json through the runtime's parser and
 * validator; every outcome must be a parsed config or an error message, never a crash or
 * a leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "runtime/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rt_config *c = NULL;
    struct gy_error err;
    gy_error_clear(&err);
    if (rt_config_parse((const char *)data, size, &c, &err) == 0) {
        rt_config_free(c);
        return 0;
    }
    /* A refusal always says why. */
    if (err.msg[0] == '\0')
        __builtin_trap();
    return 0;
}
