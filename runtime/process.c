/* The last steps before a container process execs, shared by the container's init and by
 * exec: the order matters (runc's and crun's): rlimits and the OOM score while still
 * privileged, the seccomp filter before the capabilities it may need are dropped when
 * no_new_privs is off, then the user, cwd and umask, and no_new_privs with the filter
 * last when it is on. */
#include "runtime/internal.h"
#include "runtime/security.h"

#include <errno.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

int rt_process_confine(const struct rt_config *c, uid_t uid, gid_t gid, const char *cwd,
                       struct gy_error *err)
{
    int rc;
    if ((rc = rt_rlimits_apply(c, err)) < 0)
        return rc;
    if (c->has_oom_score_adj) {
        char value[16];
        snprintf(value, sizeof(value), "%d", c->oom_score_adj);
        if (rt_file_write("/proc/self/oom_score_adj", value, 0, err) < 0)
            return gy_error_wrap(err, "process.oomScoreAdj");
    }
    if (!c->no_new_privs && (rc = rt_seccomp_apply(c, err)) < 0)
        return gy_error_wrap(err, "linux.seccomp");
    if ((rc = rt_credentials_apply(uid, gid, c->additional_gids, c->n_additional_gids, c->caps,
                                   err)) < 0)
        return rc;
    if (chdir(cwd) < 0)
        return gy_error_sys(err, errno, "process.cwd: chdir %s", cwd);
    umask(c->has_umask ? c->umask : 022);
    if (c->no_new_privs) {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
            return gy_error_sys(err, errno, "process.noNewPrivileges: prctl");
        if ((rc = rt_seccomp_apply(c, err)) < 0)
            return gy_error_wrap(err, "linux.seccomp");
    }
    return 0;
}
