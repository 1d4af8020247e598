/* The runtime-spec's names and the kernel flags they stand for: namespace types, mount
 * options and the default capability set. The parser checks a config against them and the
 * code that sets up a container turns them into clone, setns and mount flags. */
#include "runtime/config.h"

#include <linux/sched.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mount.h>

static const struct {
    const char *name;
    const char *proc;
    int flag;
} ns_table[RT_NS_COUNT] = {
    [RT_NS_USER] = {"user", "user", CLONE_NEWUSER},
    [RT_NS_PID] = {"pid", "pid", CLONE_NEWPID},
    [RT_NS_NET] = {"network", "net", CLONE_NEWNET},
    [RT_NS_IPC] = {"ipc", "ipc", CLONE_NEWIPC},
    [RT_NS_UTS] = {"uts", "uts", CLONE_NEWUTS},
    [RT_NS_MOUNT] = {"mount", "mnt", CLONE_NEWNS},
    [RT_NS_CGROUP] = {"cgroup", "cgroup", CLONE_NEWCGROUP},
};

const char *rt_ns_name(enum rt_ns_kind kind)
{
    return ns_table[kind].name;
}

const char *rt_ns_proc_name(enum rt_ns_kind kind)
{
    return ns_table[kind].proc;
}

int rt_ns_clone_flag(enum rt_ns_kind kind)
{
    return ns_table[kind].flag;
}

uint64_t rt_caps_default(void)
{
    /* Docker's default set (moby oci/caps/defaults.go). */
    static const int caps[] = {
        CAP_CHOWN,   CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
        CAP_MKNOD,   CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
        CAP_SETFCAP, CAP_SETPCAP,      CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
        CAP_KILL,    CAP_AUDIT_WRITE,
    };
    uint64_t mask = 0;
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        mask |= UINT64_C(1) << caps[i];
    return mask;
}

bool rt_mount_option_flag(const char *option, unsigned long *set, unsigned long *clear,
                          unsigned long *propagation, bool *bind)
{
    static const struct {
        const char *name;
        unsigned long flag;
        bool clear;
    } flags[] = {
        {"ro", MS_RDONLY, false},
        {"rw", MS_RDONLY, true},
        {"nosuid", MS_NOSUID, false},
        {"suid", MS_NOSUID, true},
        {"nodev", MS_NODEV, false},
        {"dev", MS_NODEV, true},
        {"noexec", MS_NOEXEC, false},
        {"exec", MS_NOEXEC, true},
        {"sync", MS_SYNCHRONOUS, false},
        {"async", MS_SYNCHRONOUS, true},
        {"dirsync", MS_DIRSYNC, false},
        {"remount", MS_REMOUNT, false},
        {"mand", MS_MANDLOCK, false},
        {"nomand", MS_MANDLOCK, true},
        {"atime", MS_NOATIME, true},
        {"noatime", MS_NOATIME, false},
        {"diratime", MS_NODIRATIME, true},
        {"nodiratime", MS_NODIRATIME, false},
        {"relatime", MS_RELATIME, false},
        {"norelatime", MS_RELATIME, true},
        {"strictatime", MS_STRICTATIME, false},
        {"nostrictatime", MS_STRICTATIME, true},
        {"defaults", 0, false},
    };
    static const struct {
        const char *name;
        unsigned long flag;
    } props[] = {
        {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
        {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
        {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
        {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
    };
    if (strcmp(option, "bind") == 0 || strcmp(option, "rbind") == 0) {
        *bind = true;
        *set |= MS_BIND | (option[0] == 'r' ? MS_REC : 0);
        return true;
    }
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
        if (strcmp(option, flags[i].name) == 0) {
            if (flags[i].clear) {
                *clear |= flags[i].flag;
                *set &= ~flags[i].flag;
            } else {
                *set |= flags[i].flag;
            }
            return true;
        }
    }
    for (size_t i = 0; i < sizeof(props) / sizeof(props[0]); i++) {
        if (strcmp(option, props[i].name) == 0) {
            *propagation = props[i].flag;
            return true;
        }
    }
    return false;
}
