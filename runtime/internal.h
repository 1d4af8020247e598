/* What the runtime's files share and nothing outside runtime/ may use: the state
 * directory layout and records, process helpers, and the root file system setup. */
#ifndef GANTRY_RUNTIME_INTERNAL_H
#define GANTRY_RUNTIME_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "runtime/cgroup.h"
#include "runtime/config.h"
#include "runtime/runtime.h"

/* Files in a container's state directory (ROOT/ID/). */
#define RT_FILE_STATE   "state.json"  /* struct rt_record, written once set up */
#define RT_FILE_EXIT    "exit.json"   /* struct rt_exit, written by the monitor */
#define RT_FILE_STARTED "started"     /* exists once start has been asked for */
#define RT_FILE_FIFO    "start.fifo"  /* start writes a byte; the monitor reads it */
#define RT_FILE_CONFIG  "config.json" /* the config the container was made from */
#define RT_FILE_LOG     "container.log"
#define RT_DIR_ROOTFS   "rootfs" /* overlay mount point (only inside the container) */

/* The container's record: what later processes need to find and check it. */
struct rt_record {
    char id[RT_ID_MAX + 1];
    char bundle[4096];
    pid_t pid;
    uint64_t pid_start; /* start time (clock ticks since boot) guards against pid reuse */
    pid_t monitor_pid;
    uint64_t monitor_start;
    int64_t created_ns;
    char cgroup_path[1024];
    char cgroup_version[4]; /* "v1" or "v2" */
    bool pid_ns;            /* the container has its own pid namespace */
    bool user_ns;
    bool poststart_hooks; /* start and delete load the config only when they must */
    bool poststop_hooks;
};

/* How the user process ended. */
struct rt_exit {
    int exit_code; /* exit status, or 128 + signal */
    int signal;
    bool oom_killed;
    int64_t finished_ns;
};

char *rt_state_dir(const char *root, const char *id);
char *rt_state_file(const char *dir, const char *name);

int rt_record_write(const char *dir, const struct rt_record *rec, struct gy_error *err);
int rt_record_read(const char *dir, struct rt_record *rec, struct gy_error *err);
int rt_exit_write(const char *dir, const struct rt_exit *ex, struct gy_error *err);
/* 1 when the exit was recorded, 0 when not (yet). */
int rt_exit_read(const char *dir, struct rt_exit *ex);

/* Start time of a process (field 22 of /proc/PID/stat), 0 when it does not exist. */
uint64_t rt_proc_start_time(pid_t pid);
/* A pidfd for pid if it is still the process that started at start, else -1. */
int rt_pidfd_open(pid_t pid, uint64_t start);
/* Waits for a pidfd to become readable (the process exited); false on timeout. */
bool rt_pidfd_wait(int pidfd, int timeout_ms);

/* The backend that owns a record's cgroup. */
const struct rt_cgroup_ops *rt_record_cgroup(const struct rt_record *rec);

/* Removes a directory tree (no symlinks are followed). */
int rt_remove_tree(const char *path, struct gy_error *err);
int64_t rt_now_ns(void);

/* Kills every process in the container's cgroup with SIGKILL, a few rounds until none is
 * left (bounded). */
void rt_cgroup_kill_all(const struct rt_record *rec, int sig);

/* What the init process needs to build the root file system. */
struct rt_rootfs_args {
    const char *rootfs; /* host path of the directory that becomes / */
    const char *const *layers;
    size_t n_layers;
    const char *upper_dir;
    const char *work_dir;
    const struct rt_cgroup_ops *cgroup_ops;
    const char *cgroup_path;
    /* Called before a "cgroup" mount (the cgroup namespace must exist by then); may be
     * NULL. */
    int (*before_cgroup_mount)(void *ctx, struct gy_error *err);
    /* Called after the mounts and before pivot_root (createContainer hooks); may be NULL. */
    int (*before_pivot)(void *ctx, struct gy_error *err);
    void *ctx;
};

/* Runs in the container's new mount namespace: mounts the root (bind or overlay), the
 * config's mounts, /dev nodes, pivots into it, sets sysctls and applies masked and
 * read-only paths and root.readonly. */
int rt_rootfs_setup(const struct rt_config *c, const struct rt_rootfs_args *args,
                    struct gy_error *err);

/* Finds prog (argv[0]) in the PATH of env (or a default PATH) inside the current root;
 * fills path. A relative prog with a '/' ("./app") is checked against cwd, where it will
 * be executed. Errors read "exec PROG: no such file or directory" (GY_ENOTFOUND) or
 * "... permission denied" (GY_EPERM). */
int rt_program_lookup(const char *prog, char *const *env, const char *cwd, char *path, size_t size,
                      struct gy_error *err);

/* Applies to the calling process everything a container process gets between its
 * namespaces and exec: rlimits, seccomp (in the right order with no_new_privs), user,
 * groups and capabilities, cwd and umask. */
int rt_process_confine(const struct rt_config *c, uid_t uid, gid_t gid, const char *cwd,
                       struct gy_error *err);

/* The state JSON a hook reads on stdin; the caller frees it. */
char *rt_hook_state_json(const char *id, const char *status, pid_t pid, const char *bundle);
/* Runs the config's hooks of one kind in order; the first failure stops and is returned
 * ("hooks.prestart[0] (/path): exited with status 1"). */
int rt_hooks_run(const struct rt_config *c, enum rt_hook_kind kind, const char *state,
                 struct gy_error *err);

/* Runs the poststart hooks of a started container; failures are logged as warnings. */
void rt_hooks_poststart(const struct rt_config *c, const char *dir, const char *id,
                        const char *bundle);

/* Closes every descriptor >= 3 except those in keep. */
void rt_close_fds_except(const int *keep, size_t n_keep);

/* Creates and execs done by the spawner's workers (spawner.c), for a caller that started
 * one (rt_spawner_active): rt_container_create and rt_container_exec hand over to these. */
struct rt_create_opts;
struct rt_exec_opts;
struct rt_exec_result;
int rt_spawner_create(const struct rt_create_opts *o, pid_t *monitor_pid, struct gy_error *err);
int rt_spawner_exec(const char *root, const char *id, const struct rt_exec_opts *o,
                    struct rt_exec_result *res, struct gy_error *err);

#endif
