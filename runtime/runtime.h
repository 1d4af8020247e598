/* The container runtime that node agents link: create, start, inspect, signal, exec in and
 * delete OCI containers, each watched by its own small monitor process. */
#ifndef GANTRY_RUNTIME_RUNTIME_H
#define GANTRY_RUNTIME_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

/* Where containers' state lives when no root is given (the CLI's --root). */
#define RT_DEFAULT_ROOT "/run/gantry-runtime"
/* Default size cap of a container's log file; the monitor keeps one older file beside it. */
#define RT_DEFAULT_LOG_MAX (INT64_C(8) << 20)
/* Longest container id: letters, digits, '.', '_' and '-', not starting with '.'. */
#define RT_ID_MAX 128

/* Life cycle of a container, as in the OCI runtime-spec "Lifecycle" section. */
enum rt_status {
    RT_STATUS_CREATING = 0, /* the monitor is still setting the container up */
    RT_STATUS_CREATED,      /* set up; the user process waits for start */
    RT_STATUS_RUNNING,      /* the user process runs */
    RT_STATUS_STOPPED,      /* the user process has exited (see exit_code, exit_signal) */
    RT_STATUS_PAUSED,       /* every process of the container is frozen (pause) */
};

/* Everything create needs. Strings are borrowed for the duration of the call. */
struct rt_create_opts {
    const char *root; /* state directory root; NULL means RT_DEFAULT_ROOT */
    const char *id;   /* container id (see RT_ID_MAX) */
    /* The bundle directory. Its config.json is read unless config_json is set; a relative
     * root.path is taken relative to it. May be NULL when config_json is set and its
     * root.path is absolute or layers are given. */
    const char *bundle;
    /* An OCI runtime-spec config as JSON text (the agent builds one in memory). */
    const char *config_json;
    /* Read-only image layers, base layer first. When n_layers > 0 the root filesystem is
     * an overlay of these with upper_dir (the container's writable layer) and work_dir
     * (overlayfs scratch space on the same filesystem as upper_dir); root.path is not
     * used. */
    const char *const *layers;
    size_t n_layers;
    const char *upper_dir;
    const char *work_dir;
    /* true: the container's stdin, stdout and stderr are the caller's (as `run` in the
     * foreground); false: stdin is /dev/null and the monitor copies stdout and stderr to
     * the container's log file. */
    bool stdio_inherit;
    /* true: start the user process as soon as it is set up (create then start). */
    bool start;
    /* Log size cap in bytes; 0 means RT_DEFAULT_LOG_MAX. */
    int64_t log_max;
    /* false (the default): the monitor is a grandchild, so the caller never has to reap
     * it. true: it is the caller's child, which saves a process on the way (the CLI, which
     * exits or waits for it anyway); the caller must then reap it (waitpid on the
     * monitor pid) once it has exited. */
    bool monitor_child;
};

/* Creates the container: validates the config, makes the state directory, forks the
 * detached monitor, which creates the cgroup and the namespaces and prepares the root
 * filesystem; the user process then waits for rt_container_start (unless opts->start).
 * On success *monitor_pid (may be NULL) is the monitor's pid; the caller may exit at any
 * time afterwards. On failure everything made is removed and err says what failed; a
 * missing or non-executable program gives GY_ENOTFOUND or GY_EPERM ("exec /bin/nope: no
 * such file or directory"), an invalid config GY_EINVAL naming the field.
 *
 * The monitor is a grandchild in a session of its own, so it is not the caller's child:
 * when it exits (after the container), the nearest subreaper (PR_SET_CHILD_SUBREAPER) or
 * init reaps it. The call forks; it is safe from a multi-threaded process, which is not
 * otherwise disturbed (the monitor closes every descriptor it inherits). */
int rt_container_create(const struct rt_create_opts *opts, pid_t *monitor_pid,
                        struct gy_error *err);

/* Lets a created container's user process exec (OCI "start"). Fails unless the status is
 * created. */
int rt_container_start(const char *root, const char *id, struct gy_error *err);

/* What rt_container_state reports. */
struct rt_state {
    char id[RT_ID_MAX + 1];
    enum rt_status status;
    pid_t pid;         /* the user process (host pid), 0 once stopped */
    pid_t monitor_pid; /* 0 once the monitor has exited */
    char bundle[4096];
    int64_t created_ns; /* CLOCK_REALTIME nanoseconds */
    int64_t finished_ns;
    int exit_code;   /* valid when stopped: exit status, or 128 + signal */
    int exit_signal; /* signal that ended it, 0 if it exited */
    bool oom_killed; /* the memory limit was hit and the kernel killed a process */
};

/* Reads the state of one container. Works from any process, also after the creator and
 * the monitor are gone. GY_ENOTFOUND when there is no such container. */
int rt_container_state(const char *root, const char *id, struct rt_state *out,
                       struct gy_error *err);

/* Sends sig to the user process (created, running or paused), or with all to every
 * process in the container's cgroup. Fails with GY_ECONFLICT when the container is
 * stopped. A pid namespace's init only receives the signals it handles, and SIGKILL. */
int rt_container_kill(const char *root, const char *id, int sig, bool all, struct gy_error *err);

/* Waits until the container is stopped and its monitor has recorded the exit, at most
 * timeout_ms (negative: no limit); GY_ETIMEOUT otherwise. out may be NULL. */
int rt_container_wait(const char *root, const char *id, int timeout_ms, struct rt_state *out,
                      struct gy_error *err);

/* Removes a created or stopped container: its cgroup, state and log (a created one is
 * killed first). A running or paused container is refused with GY_ECONFLICT unless force,
 * which kills it (SIGKILL, after thawing) and waits for its monitor. Runs the poststop
 * hooks. */
int rt_container_delete(const char *root, const char *id, bool force, struct gy_error *err);

/* A process to run inside a running container. */
struct rt_exec_opts {
    const char *const *argv; /* NULL-terminated; argv[0] is looked up in PATH */
    const char *const *env;  /* NULL-terminated KEY=VALUE added to (and overriding) the
                                container's process.env; may be NULL */
    const char *cwd;         /* NULL for the container's cwd */
    bool has_user;           /* false: the container's user */
    uid_t uid;
    gid_t gid;
    /* true: stdout and stderr are captured into the result (up to output_max bytes, the
     * rest is discarded); false: they are the caller's. */
    bool capture;
    size_t output_max;
    int timeout_ms; /* > 0: kill the process (SIGKILL) after this long */
};

struct rt_exec_result {
    int exit_code; /* exit status, or 128 + signal; 127 when the program is missing, 126
                    * when it cannot be executed */
    int signal;
    bool timed_out;
    char *output; /* captured output, NUL-terminated; the caller frees it */
    size_t output_len;
};

/* Runs a process in the container's namespaces and cgroup with its capabilities, user,
 * no_new_privs and seccomp profile, and waits for it (health checks, `gantry exec`). */
int rt_container_exec(const char *root, const char *id, const struct rt_exec_opts *opts,
                      struct rt_exec_result *result, struct gy_error *err);

/* Freezes every process of a running container (cgroup freezer), or thaws a paused one.
 * Both wait until the kernel reports the new state (at most a few seconds). */
int rt_container_pause(const char *root, const char *id, struct gy_error *err);
int rt_container_resume(const char *root, const char *id, struct gy_error *err);

/* Changes the resource limits of a created, running or paused container.
 * resources_json is a linux.resources object; only the fields it has change. Errors name
 * the field ("linux.resources.memory.limit: write ... : Device or resource busy"). */
int rt_container_update(const char *root, const char *id, const char *resources_json,
                        struct gy_error *err);

/* The host pids of every process in the container's cgroup. The caller frees *pids. */
int rt_container_pids(const char *root, const char *id, pid_t **pids, size_t *count,
                      struct gy_error *err);

/* Resource use read from the container's cgroup. */
struct rt_stats {
    uint64_t cpu_usage_ns; /* total CPU time of all its processes */
    uint64_t memory_bytes; /* current memory use, page cache included */
    uint64_t memory_limit; /* 0 when unlimited */
    uint64_t pids;         /* current number of tasks */
};

int rt_container_stats(const char *root, const char *id, struct rt_stats *out,
                       struct gy_error *err);

/* Lists the ids of all containers under root, sorted. The caller frees each id and the
 * array (rt_ids_free). */
int rt_container_list(const char *root, char ***ids, size_t *count, struct gy_error *err);
void rt_ids_free(char **ids, size_t count);

/* The config's annotations as a JSON object text ("{}" when it has none), for the OCI
 * state; NULL when there is no such container. The caller frees it. */
char *rt_container_annotations(const char *root, const char *id);

/* Path of the container's log file (stdout and stderr when not inherited); the caller
 * frees it. */
char *rt_container_log_path(const char *root, const char *id);

/* A default OCI config (as `gantry-runtime spec` writes): sh as the program, the standard
 * mounts, masked and read-only paths, and every namespace but user. The caller frees the
 * returned JSON text. */
char *rt_config_default_json(void);

/* The runtime-spec features document (features.md) as JSON text; the caller frees it. */
char *rt_features_json(void);

/* Checks a container id (see RT_ID_MAX). */
int rt_id_validate(const char *id, struct gy_error *err);

const char *rt_status_name(enum rt_status status);

#endif
