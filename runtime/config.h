/* The subset of the OCI runtime-spec config (config.json) that the runtime acts on, parsed
 * and validated; unknown fields are ignored as the spec requires. */
#ifndef GANTRY_RUNTIME_CONFIG_H
#define GANTRY_RUNTIME_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/* Namespaces in the order they are joined (user first: it owns the others). */
enum rt_ns_kind {
    RT_NS_USER = 0,
    RT_NS_PID,
    RT_NS_NET,
    RT_NS_IPC,
    RT_NS_UTS,
    RT_NS_MOUNT,
    RT_NS_CGROUP,
    RT_NS_COUNT
};

/* Capability sets of process.capabilities, as bit masks over CAP_* numbers. */
enum rt_cap_set {
    RT_CAPS_BOUNDING = 0,
    RT_CAPS_EFFECTIVE,
    RT_CAPS_INHERITABLE,
    RT_CAPS_PERMITTED,
    RT_CAPS_AMBIENT,
    RT_CAPS_COUNT
};

struct rt_mount {
    char *destination;
    char *type;                /* NULL for bind mounts */
    char *source;              /* may be NULL (e.g. tmpfs) */
    unsigned long flags;       /* MS_* from the options */
    unsigned long propagation; /* MS_PRIVATE, MS_SLAVE ... (with MS_REC), or 0 */
    bool bind;                 /* "bind" or "rbind" (then flags has MS_REC) */
    char *data;                /* the options that are not flags, comma-joined */
};

struct rt_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

struct rt_idmap {
    uint32_t container_id;
    uint32_t host_id;
    uint32_t size;
};

struct rt_seccomp_arg {
    unsigned int index;
    uint64_t value;
    uint64_t value_two;
    int op; /* enum scmp_compare */
};

struct rt_seccomp_rule {
    char **names;
    size_t n_names;
    uint32_t action; /* SCMP_ACT_* with the errno folded in */
    struct rt_seccomp_arg *args;
    size_t n_args;
};

/* linux.seccomp: a profile as in the runtime-spec. */
struct rt_seccomp {
    uint32_t default_action;
    uint32_t *arches; /* SCMP_ARCH_* tokens */
    size_t n_arches;
    struct rt_seccomp_rule *rules;
    size_t n_rules;
};

/* A device access rule (linux.resources.devices): type BPF_DEVCG_DEV_CHAR or _BLOCK (0
 * for any), major and minor (-1 for any), access a mask of BPF_DEVCG_ACC_READ, _WRITE and
 * _MKNOD. Later rules override earlier ones. */
struct rt_device_rule {
    bool allow;
    int type;
    int major;
    int minor;
    int access;
};

/* A device node to create in the container (linux.devices). */
struct rt_device_node {
    char *path;
    char type; /* 'c', 'b', 'u' (unbuffered char) or 'p' (fifo) */
    uint32_t major;
    uint32_t minor;
    mode_t mode; /* permission bits, default 0666 */
    uid_t uid;
    gid_t gid;
};

/* linux.resources.blockIO throttle lists. */
enum rt_throttle_kind {
    RT_THROTTLE_READ_BPS = 0,
    RT_THROTTLE_WRITE_BPS,
    RT_THROTTLE_READ_IOPS,
    RT_THROTTLE_WRITE_IOPS,
    RT_THROTTLE_COUNT
};

struct rt_throttle {
    uint32_t major;
    uint32_t minor;
    uint64_t rate; /* bytes or operations per second */
};

/* linux.resources; a has_ flag is false when the field is absent. */
struct rt_resources {
    bool has_memory_limit, has_memory_reservation, has_memory_swap;
    int64_t memory_limit; /* bytes, -1 unlimited */
    int64_t memory_reservation;
    int64_t memory_swap;
    bool has_cpu_shares, has_cpu_quota, has_cpu_period;
    uint64_t cpu_shares;
    int64_t cpu_quota; /* microseconds per period, -1 unlimited */
    uint64_t cpu_period;
    bool has_pids_limit;
    int64_t pids_limit; /* -1 unlimited */
    char *cpus;         /* cpuset lists ("0-3,6"), NULL when absent */
    char *mems;
    bool has_blkio_weight;
    uint16_t blkio_weight; /* 10..1000 */
    struct rt_throttle *throttle[RT_THROTTLE_COUNT];
    size_t n_throttle[RT_THROTTLE_COUNT];
    /* linux.resources.devices, then an allow rule per linux.devices node. The runtime's
     * default rules come after these, so the standard nodes stay usable. */
    struct rt_device_rule *devices;
    size_t n_devices;
};

/* The hook points of the runtime-spec (config.md "POSIX-platform Hooks"). */
enum rt_hook_kind {
    RT_HOOK_PRESTART = 0,     /* runtime namespace, after the namespaces exist (deprecated) */
    RT_HOOK_CREATE_RUNTIME,   /* runtime namespace, same point */
    RT_HOOK_CREATE_CONTAINER, /* container namespaces, before pivot_root */
    RT_HOOK_START_CONTAINER,  /* container namespaces, just before the program runs */
    RT_HOOK_POSTSTART,        /* runtime namespace, after start */
    RT_HOOK_POSTSTOP,         /* runtime namespace, during delete */
    RT_HOOK_COUNT
};

struct rt_hook {
    char *path;
    char **args; /* NULL: just the path */
    size_t n_args;
    char **env;
    size_t n_env;
    int timeout; /* seconds, 0 for none */
};

struct rt_sysctl {
    char *key;
    char *value;
};

struct rt_config {
    /* process */
    char **args;
    size_t n_args;
    char **env;
    size_t n_env;
    char *cwd;
    uid_t uid;
    gid_t gid;
    gid_t *additional_gids;
    size_t n_additional_gids;
    bool has_umask;
    mode_t umask;
    struct rt_rlimit *rlimits;
    size_t n_rlimits;
    uint64_t caps[RT_CAPS_COUNT]; /* Docker's default set unless process.capabilities */
    bool no_new_privs;            /* true unless process.noNewPrivileges is false */
    bool has_oom_score_adj;
    int oom_score_adj;
    /* root */
    char *root_path; /* as written; relative to the bundle when not absolute */
    bool root_readonly;
    char *hostname;
    struct rt_mount *mounts;
    size_t n_mounts;
    /* linux */
    bool ns[RT_NS_COUNT];
    char *ns_path[RT_NS_COUNT]; /* join this namespace instead of creating one */
    struct rt_idmap *uid_maps;
    size_t n_uid_maps;
    struct rt_idmap *gid_maps;
    size_t n_gid_maps;
    struct rt_resources resources;
    char *cgroups_path;
    struct rt_seccomp *seccomp; /* NULL: the built-in default profile */
    bool seccomp_disabled;      /* linux.seccomp is null: no filter at all */
    char **masked_paths;
    size_t n_masked_paths;
    char **readonly_paths;
    size_t n_readonly_paths;
    unsigned long rootfs_propagation; /* MS_* with MS_REC; default MS_PRIVATE */
    struct rt_sysctl *sysctls;
    size_t n_sysctls;
    struct rt_hook *hooks[RT_HOOK_COUNT];
    size_t n_hooks[RT_HOOK_COUNT];
    struct rt_device_node *device_nodes;
    size_t n_device_nodes;
};

/* Parses config.json text. Errors are GY_EPARSE (not JSON, with line and column) or
 * GY_EINVAL naming the field ("process.rlimits[1].type: unknown rlimit RLIMIT_FOO"). The
 * caller frees *out with rt_config_free. */
int rt_config_parse(const char *json, size_t len, struct rt_config **out, struct gy_error *err);

/* Reads and parses a config.json file. */
int rt_config_load(const char *path, struct rt_config **out, struct gy_error *err);

void rt_config_free(struct rt_config *config);

/* Parses a linux.resources object on its own (for update); errors name the field as in a
 * full config. Free the result's lists with rt_resources_clear. */
int rt_resources_parse(const char *json, size_t len, struct rt_resources *out,
                       struct gy_error *err);
void rt_resources_clear(struct rt_resources *res);

/* The blockIO field name of a throttle kind ("throttleReadBpsDevice" ...). */
const char *rt_throttle_name(enum rt_throttle_kind kind);

/* The config name of a hook point ("prestart", "createRuntime" ...). */
const char *rt_hook_kind_name(enum rt_hook_kind kind);

/* Docker's default capability set as a mask. */
uint64_t rt_caps_default(void);

/* Translates one OCI mount option ("nosuid", "ro", "rprivate", "mode=755") into flags;
 * returns false when it is not a flag option (then it belongs in the mount data). */
bool rt_mount_option_flag(const char *option, unsigned long *set, unsigned long *clear,
                          unsigned long *propagation, bool *bind);

/* The namespace type name of the runtime-spec ("pid", "network" ...) and CLONE_NEW* flag. */
const char *rt_ns_name(enum rt_ns_kind kind);
int rt_ns_clone_flag(enum rt_ns_kind kind);
/* The /proc/PID/ns/ entry of a namespace kind ("net", "mnt" ...). */
const char *rt_ns_proc_name(enum rt_ns_kind kind);

#endif
