/* rlimits, user switch and capabilities (runtime-spec config.md "process"). */
#include "runtime/security.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

int rt_rlimits_apply(const struct rt_config *c, struct gy_error *err)
{
    for (size_t i = 0; i < c->n_rlimits; i++) {
        const struct rt_rlimit *r = &c->rlimits[i];
        struct rlimit lim = {.rlim_cur = r->soft, .rlim_max = r->hard};
        if (setrlimit(r->resource, &lim) < 0) {
            struct rlimit cur = {0, 0};
            getrlimit(r->resource, &cur);
            return gy_error_sys(err, errno,
                                "process.rlimits[%zu]: set soft %llu hard %llu (the hard "
                                "limit allowed here is %llu)",
                                i, (unsigned long long)r->soft, (unsigned long long)r->hard,
                                (unsigned long long)cur.rlim_max);
        }
    }
    return 0;
}

int rt_credentials_apply(uid_t uid, gid_t gid, const gid_t *gids, size_t n_gids,
                         const uint64_t caps[RT_CAPS_COUNT], struct gy_error *err)
{
    int last = (int)cap_max_bits();
    if (last > 64)
        last = 64;
    /* The bounding set is trimmed first, while CAP_SETPCAP is still effective. */
    for (int cap = 0; cap < last; cap++) {
        if (caps[RT_CAPS_BOUNDING] & (UINT64_C(1) << cap))
            continue;
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return gy_error_sys(err, errno, "drop capability %d from the bounding set", cap);
    }
    /* Keep the permitted set across the uid change; capset below trims it. */
    if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        return gy_error_sys(err, errno, "prctl PR_SET_KEEPCAPS");
    if (setgroups(n_gids, gids) < 0)
        return gy_error_sys(err, errno, "process.user.additionalGids: setgroups");
    if (setresgid(gid, gid, gid) < 0)
        return gy_error_sys(err, errno, "process.user.gid: setresgid %u", (unsigned)gid);
    if (setresuid(uid, uid, uid) < 0)
        return gy_error_sys(err, errno, "process.user.uid: setresuid %u", (unsigned)uid);
    if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
        return gy_error_sys(err, errno, "prctl PR_SET_KEEPCAPS");

    cap_t state = cap_init();
    if (state == NULL)
        return gy_error_sys(err, errno, "cap_init");
    /* A capability can only be ambient when it is also inheritable; configs written for
     * runc list ambient capabilities without repeating them there. */
    uint64_t inheritable = caps[RT_CAPS_INHERITABLE] | caps[RT_CAPS_AMBIENT];
    static const struct {
        enum rt_cap_set set;
        cap_flag_t flag;
    } sets[] = {
        {RT_CAPS_EFFECTIVE, CAP_EFFECTIVE},
        {RT_CAPS_PERMITTED, CAP_PERMITTED},
        {RT_CAPS_INHERITABLE, CAP_INHERITABLE},
    };
    for (size_t s = 0; s < sizeof(sets) / sizeof(sets[0]); s++) {
        for (int cap = 0; cap < last; cap++) {
            uint64_t mask = sets[s].set == RT_CAPS_INHERITABLE ? inheritable : caps[sets[s].set];
            if (!(mask & (UINT64_C(1) << cap)))
                continue;
            cap_value_t v = cap;
            cap_set_flag(state, sets[s].flag, 1, &v, CAP_SET);
        }
    }
    int rc = cap_set_proc(state);
    int saved = errno;
    cap_free(state);
    if (rc < 0)
        return gy_error_sys(err, saved, "process.capabilities: capset");
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return gy_error_sys(err, errno, "clear ambient capabilities");
    for (int cap = 0; cap < last; cap++) {
        if (!(caps[RT_CAPS_AMBIENT] & (UINT64_C(1) << cap)))
            continue;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
            return gy_error_sys(err, errno,
                                "process.capabilities.ambient: raise capability %d (it must "
                                "also be permitted and inheritable)",
                                cap);
    }
    return 0;
}
