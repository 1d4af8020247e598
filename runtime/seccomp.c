/* seccomp filters with libseccomp: the OCI profile of linux.seccomp, or the built-in
 * default that refuses the calls a service never needs and a breakout would. */
#include "runtime/security.h"

#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>

/* Refused with EPERM by the default profile whatever their arguments. The list follows
 * Docker's default profile: mounting and pivoting, keys, kernel images and modules, BPF
 * and perf, tracing other processes, joining namespaces, rebooting, swap, clocks,
 * accounting and quotas, and kernel interfaces that have been used for escapes. */
const char *const rt_seccomp_denied[] = {
    "mount",
    "umount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "bpf",
    "perf_event_open",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "setns",
    "reboot",
    "swapon",
    "swapoff",
    "settimeofday",
    "stime",
    "clock_settime",
    "clock_settime64",
    "clock_adjtime",
    "clock_adjtime64",
    "adjtimex",
    "acct",
    "quotactl",
    "quotactl_fd",
    "lookup_dcookie",
    "nfsservctl",
    "open_by_handle_at",
    "syslog",
    "sysfs",
    "uselib",
    "userfaultfd",
    "vm86",
    "vm86old",
    "get_kernel_syms",
    "query_module",
    "iopl",
    "ioperm",
    "_sysctl",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "fanotify_init",
    NULL,
};

/* Namespace flags refused in unshare (CLONE_NEWTIME only exists there and in clone3; in
 * clone its bit is part of the exit signal). */
static const unsigned long unshare_ns_flags[] = {
    CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
    CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP, 0x00000080 /* CLONE_NEWTIME */,
};

static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned int n_args,
                    const struct scmp_arg_cmp *args, struct gy_error *err)
{
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR)
        return 0; /* not a system call on this architecture */
    int rc = seccomp_rule_add_array(ctx, action, nr, n_args, args);
    if (rc < 0 && rc != -EACCES)
        return gy_error_sys(err, -rc, "seccomp rule for %s", name);
    return 0;
}

static int default_profile(scmp_filter_ctx ctx, struct gy_error *err)
{
    int rc;
    uint32_t eperm = SCMP_ACT_ERRNO(EPERM);
    for (size_t i = 0; rt_seccomp_denied[i] != NULL; i++)
        if ((rc = add_rule(ctx, eperm, rt_seccomp_denied[i], 0, NULL, err)) < 0)
            return rc;
    /* One rule per flag: seccomp compares masked values for equality only. */
    for (size_t i = 0; i < sizeof(unshare_ns_flags) / sizeof(unshare_ns_flags[0]); i++) {
        unsigned long f = unshare_ns_flags[i];
        struct scmp_arg_cmp cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, f, f);
        if ((rc = add_rule(ctx, eperm, "unshare", 1, &cmp, err)) < 0)
            return rc;
        if (f != 0x80 && (rc = add_rule(ctx, eperm, "clone", 1, &cmp, err)) < 0)
            return rc;
    }
    /* clone3 passes its flags in memory the filter cannot read; ENOSYS makes the C
     * library fall back to clone, whose flags are checked above. */
    if ((rc = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL, err)) < 0)
        return rc;
    return 0;
}

static int config_profile(scmp_filter_ctx ctx, const struct rt_seccomp *sc, struct gy_error *err)
{
    int rc;
    for (size_t i = 0; i < sc->n_arches; i++) {
        rc = seccomp_arch_add(ctx, sc->arches[i]);
        if (rc < 0 && rc != -EEXIST)
            return gy_error_sys(err, -rc, "linux.seccomp.architectures[%zu]", i);
    }
    for (size_t i = 0; i < sc->n_rules; i++) {
        const struct rt_seccomp_rule *rule = &sc->rules[i];
        if (rule->action == sc->default_action)
            continue;
        struct scmp_arg_cmp cmps[6];
        size_t n = rule->n_args < 6 ? rule->n_args : 6;
        for (size_t k = 0; k < n; k++) {
            cmps[k].arg = rule->args[k].index;
            cmps[k].op = (enum scmp_compare)rule->args[k].op;
            cmps[k].datum_a = rule->args[k].value;
            cmps[k].datum_b = rule->args[k].value_two;
        }
        for (size_t k = 0; k < rule->n_names; k++) {
            if ((rc = add_rule(ctx, rule->action, rule->names[k], (unsigned int)n, cmps, err)) < 0)
                return gy_error_wrap(err, "linux.seccomp.syscalls[%zu]", i);
        }
    }
    return 0;
}

int rt_seccomp_apply(const struct rt_config *c, struct gy_error *err)
{
    if (c->seccomp_disabled)
        return 0;
    uint32_t default_action = c->seccomp != NULL ? c->seccomp->default_action : SCMP_ACT_ALLOW;
    scmp_filter_ctx ctx = seccomp_init(default_action);
    if (ctx == NULL)
        return gy_error_set(err, GY_ESYS, "seccomp_init failed");
    /* no_new_privs is the config's decision (process.noNewPrivileges), not libseccomp's. */
    seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    int rc;
    if (c->seccomp != NULL) {
        rc = config_profile(ctx, c->seccomp, err);
    } else {
        /* 32-bit entry points of the same kernel must not bypass the filter. */
        if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
            seccomp_arch_add(ctx, SCMP_ARCH_X86);
            seccomp_arch_add(ctx, SCMP_ARCH_X32);
        }
        rc = default_profile(ctx, err);
    }
    if (rc == 0) {
        rc = seccomp_load(ctx);
        if (rc < 0)
            rc = gy_error_sys(err, -rc, "load seccomp filter");
    }
    seccomp_release(ctx);
    return rc;
}
