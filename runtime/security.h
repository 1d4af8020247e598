/* Process credentials and confinement applied to a container process just before exec:
 * rlimits, user and groups, capabilities, no_new_privs and the seccomp filter. */
#ifndef GANTRY_RUNTIME_SECURITY_H
#define GANTRY_RUNTIME_SECURITY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "runtime/config.h"

/* Applies process.rlimits; an error names the entry ("process.rlimits[0]: ..."). */
int rt_rlimits_apply(const struct rt_config *c, struct gy_error *err);

/* Switches to uid/gid with the given supplementary groups and sets the capability sets
 * (bounding, effective, inheritable, permitted, ambient) from caps, keeping no others. */
int rt_credentials_apply(uid_t uid, gid_t gid, const gid_t *gids, size_t n_gids,
                         const uint64_t caps[RT_CAPS_COUNT], struct gy_error *err);

/* Loads the config's seccomp profile, or the built-in default profile when the config has
 * none (nothing when linux.seccomp is null). The caller sets no_new_privs first or still
 * holds CAP_SYS_ADMIN. */
int rt_seccomp_apply(const struct rt_config *c, struct gy_error *err);

/* The system calls the default profile refuses outright with EPERM (NULL-terminated). */
extern const char *const rt_seccomp_denied[];

#endif
