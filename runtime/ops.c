/* The operations on an existing container (OCI runtime-spec runtime.md "Operations"):
 * state, start, kill, wait, delete, plus stats and list. Each works from any process; the
 * state directory and /proc are the only shared knowledge. */
#include "runtime/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/xalloc.h"

const char *rt_status_name(enum rt_status status)
{
    switch (status) {
    case RT_STATUS_CREATING:
        return "creating";
    case RT_STATUS_CREATED:
        return "created";
    case RT_STATUS_RUNNING:
        return "running";
    case RT_STATUS_STOPPED:
        return "stopped";
    case RT_STATUS_PAUSED:
        return "paused";
    }
    return "unknown";
}

/* Loads the config a container was made from (for hooks that run after create). */
static struct rt_config *saved_config(const char *dir)
{
    cleanup_free char *path = rt_state_file(dir, RT_FILE_CONFIG);
    struct rt_config *c = NULL;
    if (rt_config_load(path, &c, NULL) < 0)
        return NULL;
    return c;
}

static int open_container(const char *root, const char *id, char **dir, struct gy_error *err)
{
    int rc = rt_id_validate(id, err);
    if (rc < 0)
        return rc;
    *dir = rt_state_dir(root, id);
    struct stat st;
    if (stat(*dir, &st) < 0) {
        free(*dir);
        *dir = NULL;
        return gy_error_set(err, GY_ENOTFOUND, "container %s does not exist", id);
    }
    return 0;
}

/* Fills out from the directory; rec is filled too when the record exists (returns 1). */
static int read_state(const char *dir, const char *id, struct rt_state *out, struct rt_record *rec,
                      struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", id);
    struct gy_error rerr;
    if (rt_record_read(dir, rec, &rerr) < 0) {
        if (rerr.code != GY_ENOTFOUND) {
            *err = rerr;
            return -(int)rerr.code;
        }
        out->status = RT_STATUS_CREATING;
        return 0;
    }
    snprintf(out->bundle, sizeof(out->bundle), "%s", rec->bundle);
    out->created_ns = rec->created_ns;
    if (rt_proc_start_time(rec->monitor_pid) == rec->monitor_start)
        out->monitor_pid = rec->monitor_pid;
    struct rt_exit ex;
    if (rt_exit_read(dir, &ex)) {
        out->status = RT_STATUS_STOPPED;
        out->exit_code = ex.exit_code;
        out->exit_signal = ex.signal;
        out->oom_killed = ex.oom_killed;
        out->finished_ns = ex.finished_ns;
        return 1;
    }
    if (rt_proc_start_time(rec->pid) != rec->pid_start) {
        /* Gone without a recorded exit: the monitor was killed before the container. */
        out->status = RT_STATUS_STOPPED;
        out->exit_code = -1;
        return 1;
    }
    out->pid = rec->pid;
    cleanup_free char *started = rt_state_file(dir, RT_FILE_STARTED);
    out->status = access(started, F_OK) == 0 ? RT_STATUS_RUNNING : RT_STATUS_CREATED;
    if (out->status == RT_STATUS_RUNNING &&
        rt_record_cgroup(rec)->frozen(RT_CGROUP_MOUNT, rec->cgroup_path) == 1)
        out->status = RT_STATUS_PAUSED;
    return 1;
}

/* open_container and read_state in one: the start of every operation on a container.
 * Returns read_state's result (0 while it is still being created, 1 once set up). */
static int load_container(const char *root, const char *id, char **dir, struct rt_state *st,
                          struct rt_record *rec, struct gy_error *err)
{
    int rc = open_container(root, id, dir, err);
    if (rc < 0)
        return rc;
    return read_state(*dir, id, st, rec, err);
}

int rt_container_state(const char *root, const char *id, struct rt_state *out, struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    struct rt_record rec;
    int rc = load_container(root, id, &dir, out, &rec, err);
    return rc < 0 ? rc : 0;
}

int rt_container_start(const char *root, const char *id, struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    struct rt_state st;
    struct rt_record rec;
    int rc = load_container(root, id, &dir, &st, &rec, err);
    if (rc < 0)
        return rc;
    if (st.status != RT_STATUS_CREATED)
        return gy_error_set(err, GY_ECONFLICT, "container %s is %s, not created", id,
                            rt_status_name(st.status));
    cleanup_free char *started = rt_state_file(dir, RT_FILE_STARTED);
    int marker = open(started, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (marker < 0)
        return errno == EEXIST
                   ? gy_error_set(err, GY_ECONFLICT, "container %s is already started", id)
                   : gy_error_sys(err, errno, "create %s", started);
    close(marker);
    cleanup_free char *fifo = rt_state_file(dir, RT_FILE_FIFO);
    cleanup_close int fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0 || write(fd, "s", 1) != 1) {
        int saved = errno;
        unlink(started);
        return gy_error_sys(err, saved, "start %s: signal the monitor through %s", id, fifo);
    }
    if (rec.poststart_hooks) {
        struct rt_config *c = saved_config(dir);
        if (c != NULL)
            rt_hooks_poststart(c, dir, id, rec.bundle);
        rt_config_free(c);
    }
    return 0;
}

int rt_container_kill(const char *root, const char *id, int sig, bool all, struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    struct rt_state st;
    struct rt_record rec;
    int rc = load_container(root, id, &dir, &st, &rec, err);
    if (rc < 0)
        return rc;
    if (st.status != RT_STATUS_CREATED && st.status != RT_STATUS_RUNNING &&
        st.status != RT_STATUS_PAUSED)
        return gy_error_set(err, GY_ECONFLICT, "container %s is %s", id, rt_status_name(st.status));
    if (sig <= 0 || sig >= NSIG)
        return gy_error_set(err, GY_EINVAL, "signal %d: out of range", sig);
    if (all) {
        rt_cgroup_kill_all(&rec, sig);
        return 0;
    }
    cleanup_close int pidfd = rt_pidfd_open(rec.pid, rec.pid_start);
    if (pidfd < 0)
        return gy_error_set(err, GY_ECONFLICT, "container %s is stopped", id);
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
        return gy_error_sys(err, errno, "kill container %s", id);
    return 0;
}

int rt_container_wait(const char *root, const char *id, int timeout_ms, struct rt_state *out,
                      struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    struct rt_state st;
    struct rt_record rec;
    int rc = load_container(root, id, &dir, &st, &rec, err);
    if (rc < 0)
        return rc;
    if (rc == 0)
        return gy_error_set(err, GY_ECONFLICT, "container %s is still being created", id);
    /* The monitor exits right after it has recorded the exit: waiting for it covers both.
     * Without a monitor, the container's init is the next best thing. */
    cleanup_close int pidfd = rt_pidfd_open(rec.monitor_pid, rec.monitor_start);
    if (pidfd < 0)
        pidfd = rt_pidfd_open(rec.pid, rec.pid_start);
    if (pidfd >= 0 && !rt_pidfd_wait(pidfd, timeout_ms))
        return gy_error_set(err, GY_ETIMEOUT, "container %s still runs after %d ms", id,
                            timeout_ms);
    if ((rc = read_state(dir, id, &st, &rec, err)) < 0)
        return rc;
    if (out != NULL)
        *out = st;
    return 0;
}

int rt_container_delete(const char *root, const char *id, bool force, struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    struct rt_state st;
    struct rt_record rec;
    int rc = load_container(root, id, &dir, &st, &rec, err);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        if (!force)
            return gy_error_set(err, GY_ECONFLICT,
                                "container %s is being created; use --force to remove it", id);
        /* A create that never finished (its monitor died): the cgroup is found from the
         * saved config, its processes killed and the cgroup removed with the state. */
        struct rt_config *c = saved_config(dir);
        if (c != NULL) {
            struct rt_record partial = {0};
            const struct rt_cgroup_ops *ops = rt_cgroup_detect(RT_CGROUP_MOUNT);
            cleanup_free char *cg_path = rt_cgroup_path(c->cgroups_path, id);
            snprintf(partial.cgroup_path, sizeof(partial.cgroup_path), "%s", cg_path);
            snprintf(partial.cgroup_version, sizeof(partial.cgroup_version), "%s", ops->name);
            rt_cgroup_kill_all(&partial, SIGKILL);
            ops->destroy(RT_CGROUP_MOUNT, cg_path, NULL);
            rt_config_free(c);
        }
        return rt_remove_tree(dir, err);
    }
    if ((st.status == RT_STATUS_RUNNING || st.status == RT_STATUS_PAUSED) && !force)
        return gy_error_set(err, GY_ECONFLICT, "container %s is %s; stop it first or use --force",
                            id, rt_status_name(st.status));
    /* Frozen tasks cannot act on SIGKILL until they are thawed. */
    if (st.status == RT_STATUS_PAUSED)
        rt_record_cgroup(&rec)->freeze(RT_CGROUP_MOUNT, rec.cgroup_path, false, NULL);
    if (st.status != RT_STATUS_STOPPED) {
        cleanup_close int pidfd = rt_pidfd_open(rec.pid, rec.pid_start);
        if (pidfd >= 0)
            syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        if (!rec.pid_ns)
            rt_cgroup_kill_all(&rec, SIGKILL);
    }
    /* Let the monitor record the exit and leave before its directory goes. */
    cleanup_close int monfd = rt_pidfd_open(rec.monitor_pid, rec.monitor_start);
    if (monfd >= 0 && !rt_pidfd_wait(monfd, 10000))
        return gy_error_set(err, GY_ETIMEOUT, "delete %s: the monitor (pid %d) does not exit", id,
                            (int)rec.monitor_pid);
    const struct rt_cgroup_ops *cg = rt_record_cgroup(&rec);
    rt_cgroup_kill_all(&rec, SIGKILL);
    if ((rc = cg->destroy(RT_CGROUP_MOUNT, rec.cgroup_path, err)) < 0)
        return gy_error_wrap(err, "delete %s", id);
    if (rec.poststop_hooks) {
        struct rt_config *c = saved_config(dir);
        cleanup_free char *state = rt_hook_state_json(id, "stopped", 0, rec.bundle);
        struct gy_error herr;
        /* A failed poststop hook is a warning: the container is gone either way. */
        if (c != NULL && rt_hooks_run(c, RT_HOOK_POSTSTOP, state, &herr) < 0)
            gy_log_warn("poststop hook failed", "container=%s error=\"%s\"", id, herr.msg);
        rt_config_free(c);
    }
    return rt_remove_tree(dir, err);
}

int rt_container_stats(const char *root, const char *id, struct rt_stats *out, struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    int rc = open_container(root, id, &dir, err);
    if (rc < 0)
        return rc;
    struct rt_record rec;
    if ((rc = rt_record_read(dir, &rec, err)) < 0)
        return rc;
    const struct rt_cgroup_ops *cg = rt_record_cgroup(&rec);
    if ((rc = cg->stats(RT_CGROUP_MOUNT, rec.cgroup_path, out, err)) < 0)
        return gy_error_wrap(err, "stats %s", id);
    return 0;
}

static int set_frozen(const char *root, const char *id, bool frozen, struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    struct rt_state st;
    struct rt_record rec;
    int rc = load_container(root, id, &dir, &st, &rec, err);
    if (rc < 0)
        return rc;
    enum rt_status want = frozen ? RT_STATUS_RUNNING : RT_STATUS_PAUSED;
    if (st.status != want)
        return gy_error_set(err, GY_ECONFLICT, "container %s is %s, not %s", id,
                            rt_status_name(st.status), rt_status_name(want));
    if ((rc = rt_record_cgroup(&rec)->freeze(RT_CGROUP_MOUNT, rec.cgroup_path, frozen, err)) < 0)
        return gy_error_wrap(err, "%s %s", frozen ? "pause" : "resume", id);
    return 0;
}

int rt_container_pause(const char *root, const char *id, struct gy_error *err)
{
    return set_frozen(root, id, true, err);
}

int rt_container_resume(const char *root, const char *id, struct gy_error *err)
{
    return set_frozen(root, id, false, err);
}

int rt_container_update(const char *root, const char *id, const char *resources_json,
                        struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    struct rt_state st;
    struct rt_record rec;
    int rc = load_container(root, id, &dir, &st, &rec, err);
    if (rc < 0)
        return rc;
    if (rc == 0 || st.status == RT_STATUS_STOPPED)
        return gy_error_set(err, GY_ECONFLICT, "container %s is %s", id, rt_status_name(st.status));
    struct rt_resources res;
    if ((rc = rt_resources_parse(resources_json, strlen(resources_json), &res, err)) < 0)
        return rc;
    if (res.n_devices > 0) {
        rt_resources_clear(&res);
        return gy_error_set(err, GY_EINVAL,
                            "linux.resources.devices: device rules are set at create and cannot "
                            "change on a live container");
    }
    rc = rt_record_cgroup(&rec)->set(RT_CGROUP_MOUNT, rec.cgroup_path, &res, err);
    rt_resources_clear(&res);
    if (rc < 0)
        return gy_error_wrap(err, "update %s", id);
    return 0;
}

int rt_container_pids(const char *root, const char *id, pid_t **pids, size_t *count,
                      struct gy_error *err)
{
    cleanup_free char *dir = NULL;
    *pids = NULL;
    *count = 0;
    int rc = open_container(root, id, &dir, err);
    if (rc < 0)
        return rc;
    struct rt_record rec;
    if ((rc = rt_record_read(dir, &rec, err)) < 0)
        return rc;
    if ((rc = rt_record_cgroup(&rec)->procs(RT_CGROUP_MOUNT, rec.cgroup_path, pids, count, err)) <
        0)
        return gy_error_wrap(err, "list the processes of %s", id);
    return 0;
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int rt_container_list(const char *root, char ***ids, size_t *count, struct gy_error *err)
{
    const char *r = root != NULL ? root : RT_DEFAULT_ROOT;
    *ids = NULL;
    *count = 0;
    cleanup_closedir DIR *d = opendir(r);
    if (d == NULL) {
        if (errno == ENOENT)
            return 0;
        return gy_error_sys(err, errno, "open %s", r);
    }
    size_t n = 0, cap = 8;
    char **list = gy_xcalloc(cap, sizeof(char *));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || rt_id_validate(e->d_name, NULL) < 0)
            continue;
        if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        if (n == cap) {
            cap *= 2;
            list = gy_xrealloc(list, cap * sizeof(char *));
        }
        list[n++] = gy_xstrdup(e->d_name);
    }
    qsort(list, n, sizeof(char *), compare_ids);
    *ids = list;
    *count = n;
    return 0;
}

void rt_ids_free(char **ids, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(ids[i]);
    free(ids);
}

char *rt_container_annotations(const char *root, const char *id)
{
    if (rt_id_validate(id, NULL) < 0)
        return NULL;
    cleanup_free char *dir = rt_state_dir(root, id);
    cleanup_free char *path = rt_state_file(dir, RT_FILE_CONFIG);
    json_t *doc = json_load_file(path, 0, NULL);
    if (doc == NULL)
        return NULL;
    json_t *annotations = json_object_get(doc, "annotations");
    char *text = json_is_object(annotations) ? json_dumps(annotations, JSON_COMPACT) : NULL;
    json_decref(doc);
    char *copy = gy_xstrdup(text != NULL ? text : "{}");
    free(text);
    return copy;
}

char *rt_container_log_path(const char *root, const char *id)
{
    cleanup_free char *dir = rt_state_dir(root, id);
    return rt_state_file(dir, RT_FILE_LOG);
}
