/* The default OCI config, as `gantry-runtime spec` writes it and the agent starts from:
 * the runtime-spec's recommended mounts, masked and read-only paths, and every namespace
 * except user. */
#include "runtime/runtime.h"

#include <stdlib.h>

#include <jansson.h>

#include "common/xalloc.h"

static json_t *mount_entry(const char *dest, const char *type, const char *source,
                           const char *const *options)
{
    json_t *opts = json_array();
    for (size_t i = 0; options[i] != NULL; i++)
        json_array_append_new(opts, json_string(options[i]));
    return json_pack("{s:s, s:s, s:s, s:o}", "destination", dest, "type", type, "source", source,
                     "options", opts);
}

static json_t *string_array(const char *const *items)
{
    json_t *a = json_array();
    for (size_t i = 0; items[i] != NULL; i++)
        json_array_append_new(a, json_string(items[i]));
    return a;
}

char *rt_config_default_json(void)
{
    static const char *const proc_opts[] = {"nosuid", "noexec", "nodev", NULL};
    static const char *const dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k",
                                           NULL};
    static const char *const pts_opts[] = {"nosuid",    "noexec", "newinstance", "ptmxmode=0666",
                                           "mode=0620", "gid=5",  NULL};
    static const char *const shm_opts[] = {"nosuid",    "noexec",      "nodev",
                                           "mode=1777", "size=65536k", NULL};
    static const char *const mq_opts[] = {"nosuid", "noexec", "nodev", NULL};
    static const char *const sys_opts[] = {"nosuid", "noexec", "nodev", "ro", NULL};
    static const char *const cg_opts[] = {"nosuid", "noexec", "nodev", "relatime", "ro", NULL};
    static const char *const masked[] = {"/proc/acpi",
                                         "/proc/asound",
                                         "/proc/kcore",
                                         "/proc/keys",
                                         "/proc/latency_stats",
                                         "/proc/timer_list",
                                         "/proc/timer_stats",
                                         "/proc/sched_debug",
                                         "/proc/scsi",
                                         "/sys/firmware",
                                         "/sys/devices/virtual/powercap",
                                         NULL};
    static const char *const readonly[] = {
        "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL};
    static const char *const args[] = {"sh", NULL};
    static const char *const env[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", NULL};
    static const char *const namespaces[] = {"pid",   "network", "ipc", "uts",
                                             "mount", "cgroup",  NULL};

    json_t *mounts = json_array();
    json_array_append_new(mounts, mount_entry("/proc", "proc", "proc", proc_opts));
    json_array_append_new(mounts, mount_entry("/dev", "tmpfs", "tmpfs", dev_opts));
    json_array_append_new(mounts, mount_entry("/dev/pts", "devpts", "devpts", pts_opts));
    json_array_append_new(mounts, mount_entry("/dev/shm", "tmpfs", "shm", shm_opts));
    json_array_append_new(mounts, mount_entry("/dev/mqueue", "mqueue", "mqueue", mq_opts));
    json_array_append_new(mounts, mount_entry("/sys", "sysfs", "sysfs", sys_opts));
    json_array_append_new(mounts, mount_entry("/sys/fs/cgroup", "cgroup", "cgroup", cg_opts));
    json_t *ns = json_array();
    for (size_t i = 0; namespaces[i] != NULL; i++)
        json_array_append_new(ns, json_pack("{s:s}", "type", namespaces[i]));
    json_t *rlimits =
        json_pack("[{s:s, s:i, s:i}]", "type", "RLIMIT_NOFILE", "hard", 1024, "soft", 1024);
    json_t *doc =
        json_pack("{s:s, s:{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:o, s:b}, s:{s:s, s:b}, s:s, s:o,"
                  " s:{s:o, s:o, s:o}}",
                  "ociVersion", "1.0.2", "process", "terminal", 0, "user", "uid", 0, "gid", 0,
                  "args", string_array(args), "env", string_array(env), "cwd", "/", "rlimits",
                  rlimits, "noNewPrivileges", 1, "root", "path", "rootfs", "readonly", 0,
                  "hostname", "gantry", "mounts", mounts, "linux", "namespaces", ns, "maskedPaths",
                  string_array(masked), "readonlyPaths", string_array(readonly));
    char *text = json_dumps(doc, JSON_INDENT(2));
    json_decref(doc);
    if (text == NULL)
        return gy_xstrdup("{}");
    char *copy = gy_xstrdup(text);
    free(text);
    return copy;
}
