/* The cgroup manager: one backend per cgroup version behind an ops struct (crun's
 * libcrun/cgroup-*.c), so the container code never asks which version runs. */
#ifndef GANTRY_RUNTIME_CGROUP_H
#define GANTRY_RUNTIME_CGROUP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "runtime/config.h"
#include "runtime/runtime.h"

/* Where the cgroup file systems are mounted. */
#define RT_CGROUP_MOUNT "/sys/fs/cgroup"
/* The parent of every container cgroup made without linux.cgroupsPath. */
#define RT_CGROUP_PARENT "gantry"

/* Every member takes the mount point of the cgroup file systems (mnt, normally
 * RT_CGROUP_MOUNT; tests point it at a scratch directory) and the container's cgroup path
 * relative to each hierarchy's root ("gantry/web-1"). */
struct rt_cgroup_ops {
    const char *name; /* "v1" or "v2" */
    /* Makes the cgroup (and missing parents) and applies linux.resources. Fails with a
     * message naming the field and the file when the kernel refuses a value; the caller
     * then calls destroy. */
    int (*create)(const char *mnt, const char *path, const struct rt_resources *res,
                  struct gy_error *err);
    /* Applies linux.resources to an existing cgroup (update of a running container). */
    int (*set)(const char *mnt, const char *path, const struct rt_resources *res,
               struct gy_error *err);
    /* Moves pid into the cgroup (every hierarchy on v1). */
    int (*enter)(const char *mnt, const char *path, pid_t pid, struct gy_error *err);
    /* Reads CPU time, memory use and limit, and task count. */
    int (*stats)(const char *mnt, const char *path, struct rt_stats *out, struct gy_error *err);
    /* Number of processes the kernel's OOM killer has killed in the cgroup. */
    int (*oom_kills)(const char *mnt, const char *path, uint64_t *count, struct gy_error *err);
    /* The pids of all processes in the cgroup; the caller frees *pids. */
    int (*procs)(const char *mnt, const char *path, pid_t **pids, size_t *count,
                 struct gy_error *err);
    /* Removes the cgroup (retrying while the kernel still counts exiting tasks). A missing
     * cgroup is not an error. */
    int (*destroy)(const char *mnt, const char *path, struct gy_error *err);
    /* Freezes (frozen = true) or thaws every task in the cgroup and waits, bounded, until
     * the kernel reports the new state. */
    int (*freeze)(const char *mnt, const char *path, bool frozen, struct gy_error *err);
    /* 1 when the cgroup is frozen, 0 when not, negative when it cannot be read. */
    int (*frozen)(const char *mnt, const char *path);
    /* Directories that make up the cgroup, for bind mounts into the container: fills
     * hosts[i] (full paths) and names[i] (the hierarchy's directory name, e.g. "memory";
     * "" on v2); returns the count. The caller frees every string. */
    int (*dirs)(const char *mnt, const char *path, char ***hosts, char ***names,
                struct gy_error *err);
};

extern const struct rt_cgroup_ops rt_cgroup_v1_ops;
extern const struct rt_cgroup_ops rt_cgroup_v2_ops;

/* Picks the backend for the host: v2 when mnt is a cgroup2 file system, else v1 (also on
 * hybrid hosts, whose v2 tree at mnt/unified has no controllers). */
const struct rt_cgroup_ops *rt_cgroup_detect(const char *mnt);

/* The cgroup path of a container: linux.cgroupsPath without leading '/', or
 * RT_CGROUP_PARENT/id. The caller frees it. */
char *rt_cgroup_path(const char *cgroups_path, const char *id);

/* cpu.weight (v2) for cpu.shares (v1): the kernel's and crun's mapping of 2..262144 onto
 * 1..10000. */
uint64_t rt_cgroup_shares_to_weight(uint64_t shares);

/* Device access every container gets, in devices.allow syntax ("c 1:3 rwm"), NULL-ended:
 * the standard nodes plus mknod of any node; everything else is denied, so CAP_MKNOD
 * cannot open the host's disks. */
extern const char *const rt_default_device_rules[];

/* Parses one rule in devices.allow syntax (an allow rule); -1 when malformed. */
int rt_device_rule_parse(const char *text, struct rt_device_rule *rule);
/* Writes a rule in devices.allow syntax ("c 1:3 rwm", "a *:* rwm"). */
void rt_device_rule_format(const struct rt_device_rule *rule, char *buf, size_t size);

struct bpf_insn;
/* Compiles rules into a BPF_PROG_TYPE_CGROUP_DEVICE program: the last rule that matches
 * decides, no match denies. Returns the instruction count, -1 when max is too small. */
int rt_device_program(const struct rt_device_rule *rules, size_t n_rules, struct bpf_insn *out,
                      size_t max);

/* Loads the config's rules followed by the default ones as a device program and attaches
 * it to the cgroup v2 directory dir. */
int rt_cgroup_v2_devices(const char *dir, const struct rt_resources *res, struct gy_error *err);

/* Small file helpers (file.c) of the backends and the rest of the runtime. rt_file_write
 * writes text to an existing file (or creates it when create is set); rt_file_read reads
 * at most size-1 bytes and NUL-terminates. Errors name the path. */
int rt_file_write(const char *path, const char *text, int create, struct gy_error *err);
int rt_file_read(const char *path, char *buf, size_t size, struct gy_error *err);
/* Reads "key value" lines and returns the value of key, or -1 when absent. */
int64_t rt_keyed_value(const char *text, const char *key);
/* mkdir -p with mode 0755; existing directories are fine. */
int rt_mkdir_p(const char *path, struct gy_error *err);
/* Parses a list of pids (one per line). */
int rt_pids_parse(const char *text, pid_t **pids, size_t *count);

#endif
