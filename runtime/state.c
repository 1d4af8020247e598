/* The state directory: one directory per container under the root, holding its record,
 * its exit status and its log, so that any later process can find it. Container ids are
 * checked here because each one names a directory under the root. */
#include "runtime/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

/* The id becomes a path component of the state directory: no '/' and no leading '.'
 * keep it from naming anything but a child of the root. */
int rt_id_validate(const char *id, struct gy_error *err)
{
    size_t len = id != NULL ? strlen(id) : 0;
    if (len == 0 || len > RT_ID_MAX)
        return gy_error_set(err, GY_EINVAL, "container id: must be 1 to %d characters", RT_ID_MAX);
    if (id[0] == '.')
        return gy_error_set(err, GY_EINVAL, "container id \"%s\": must not start with '.'", id);
    for (size_t i = 0; i < len; i++) {
        char ch = id[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return gy_error_set(err, GY_EINVAL,
                                "container id \"%s\": only letters, digits, '.', '_' and '-' "
                                "are allowed",
                                id);
    }
    return 0;
}

char *rt_state_dir(const char *root, const char *id)
{
    return gy_xasprintf("%s/%s", root != NULL ? root : RT_DEFAULT_ROOT, id);
}

char *rt_state_file(const char *dir, const char *name)
{
    return gy_xasprintf("%s/%s", dir, name);
}

int64_t rt_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Writes JSON to dir/name through a temporary file and rename, so readers never see a
 * partial file. */
static int write_json(const char *dir, const char *name, json_t *doc, struct gy_error *err)
{
    cleanup_free char *tmp = gy_xasprintf("%s/.%s.tmp", dir, name);
    cleanup_free char *path = rt_state_file(dir, name);
    int rc = json_dump_file(doc, tmp, JSON_COMPACT);
    json_decref(doc);
    if (rc < 0)
        return gy_error_set(err, GY_EIO, "write %s", tmp);
    if (rename(tmp, path) < 0)
        return gy_error_sys(err, errno, "rename %s", tmp);
    return 0;
}

int rt_record_write(const char *dir, const struct rt_record *rec, struct gy_error *err)
{
    json_t *doc = json_pack(
        "{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:b, s:b, s:b, s:b}", "id", rec->id,
        "bundle", rec->bundle, "pid", (json_int_t)rec->pid, "pidStart", (json_int_t)rec->pid_start,
        "monitorPid", (json_int_t)rec->monitor_pid, "monitorStart", (json_int_t)rec->monitor_start,
        "created", (json_int_t)rec->created_ns, "cgroupPath", rec->cgroup_path, "cgroupVersion",
        rec->cgroup_version, "pidNamespace", rec->pid_ns, "userNamespace", rec->user_ns,
        "poststartHooks", rec->poststart_hooks, "poststopHooks", rec->poststop_hooks);
    if (doc == NULL)
        return gy_error_set(err, GY_EINTERNAL, "encode the state of %s", rec->id);
    return write_json(dir, RT_FILE_STATE, doc, err);
}

static void copy_string(json_t *doc, const char *key, char *out, size_t size)
{
    const char *s = json_string_value(json_object_get(doc, key));
    snprintf(out, size, "%s", s != NULL ? s : "");
}

int rt_record_read(const char *dir, struct rt_record *rec, struct gy_error *err)
{
    cleanup_free char *path = rt_state_file(dir, RT_FILE_STATE);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (doc == NULL) {
        if (access(path, F_OK) < 0 && errno == ENOENT)
            return gy_error_set(err, GY_ENOTFOUND, "%s: not found", path);
        return gy_error_set(err, GY_EPARSE, "%s: %s", path, jerr.text);
    }
    memset(rec, 0, sizeof(*rec));
    copy_string(doc, "id", rec->id, sizeof(rec->id));
    copy_string(doc, "bundle", rec->bundle, sizeof(rec->bundle));
    copy_string(doc, "cgroupPath", rec->cgroup_path, sizeof(rec->cgroup_path));
    copy_string(doc, "cgroupVersion", rec->cgroup_version, sizeof(rec->cgroup_version));
    rec->pid = (pid_t)json_integer_value(json_object_get(doc, "pid"));
    rec->pid_start = (uint64_t)json_integer_value(json_object_get(doc, "pidStart"));
    rec->monitor_pid = (pid_t)json_integer_value(json_object_get(doc, "monitorPid"));
    rec->monitor_start = (uint64_t)json_integer_value(json_object_get(doc, "monitorStart"));
    rec->created_ns = json_integer_value(json_object_get(doc, "created"));
    rec->pid_ns = json_is_true(json_object_get(doc, "pidNamespace"));
    rec->user_ns = json_is_true(json_object_get(doc, "userNamespace"));
    rec->poststart_hooks = json_is_true(json_object_get(doc, "poststartHooks"));
    rec->poststop_hooks = json_is_true(json_object_get(doc, "poststopHooks"));
    json_decref(doc);
    return 0;
}

int rt_exit_write(const char *dir, const struct rt_exit *ex, struct gy_error *err)
{
    json_t *doc = json_pack("{s:i, s:i, s:b, s:I}", "exitCode", ex->exit_code, "signal", ex->signal,
                            "oomKilled", ex->oom_killed, "finished", (json_int_t)ex->finished_ns);
    if (doc == NULL)
        return gy_error_set(err, GY_EINTERNAL, "encode the exit status");
    return write_json(dir, RT_FILE_EXIT, doc, err);
}

int rt_exit_read(const char *dir, struct rt_exit *ex)
{
    cleanup_free char *path = rt_state_file(dir, RT_FILE_EXIT);
    json_t *doc = json_load_file(path, 0, NULL);
    if (doc == NULL)
        return 0;
    ex->exit_code = (int)json_integer_value(json_object_get(doc, "exitCode"));
    ex->signal = (int)json_integer_value(json_object_get(doc, "signal"));
    ex->oom_killed = json_is_true(json_object_get(doc, "oomKilled"));
    ex->finished_ns = json_integer_value(json_object_get(doc, "finished"));
    json_decref(doc);
    return 1;
}

uint64_t rt_proc_start_time(pid_t pid)
{
    if (pid <= 0)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (rt_file_read(path, buf, sizeof(buf), NULL) < 0)
        return 0;
    /* The command name may hold spaces and parentheses; fields resume after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return 0;
    /* After ") " comes field 3 (state); the start time is field 22. */
    p += 2;
    for (int field = 3; field < 22 && p != NULL; field++) {
        p = strchr(p, ' ');
        if (p != NULL)
            p++;
    }
    if (p == NULL)
        return 0;
    /* A zombie still has a start time but is no longer a container process. */
    char *state = strrchr(buf, ')') + 2;
    if (*state == 'Z' || *state == 'X')
        return 0;
    return strtoull(p, NULL, 10);
}

int rt_pidfd_open(pid_t pid, uint64_t start)
{
    if (pid <= 0 || start == 0)
        return -1;
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return -1;
    /* Checked after opening: if it still matches now, the fd names the right process. */
    if (rt_proc_start_time(pid) != start) {
        close(fd);
        return -1;
    }
    return fd;
}

bool rt_pidfd_wait(int pidfd, int timeout_ms)
{
    struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
    int64_t deadline = rt_now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        int wait_ms = -1;
        if (timeout_ms >= 0) {
            int64_t left = deadline - rt_now_ns();
            if (left <= 0)
                return false;
            wait_ms = (int)(left / 1000000) + 1;
        }
        int rc = poll(&pfd, 1, wait_ms);
        if (rc > 0)
            return true;
        if (rc < 0 && errno != EINTR)
            return false;
    }
}

const struct rt_cgroup_ops *rt_record_cgroup(const struct rt_record *rec)
{
    return strcmp(rec->cgroup_version, "v2") == 0 ? &rt_cgroup_v2_ops : &rt_cgroup_v1_ops;
}

void rt_cgroup_kill_all(const struct rt_record *rec, int sig)
{
    const struct rt_cgroup_ops *ops = rt_record_cgroup(rec);
    for (int round = 0; round < 20; round++) {
        pid_t *pids = NULL;
        size_t n = 0;
        if (ops->procs(RT_CGROUP_MOUNT, rec->cgroup_path, &pids, &n, NULL) < 0 || n == 0) {
            free(pids);
            return;
        }
        for (size_t i = 0; i < n; i++)
            kill(pids[i], sig);
        free(pids);
        if (sig != SIGKILL)
            return;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int remove_at(int parent, const char *name, struct gy_error *err)
{
    if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
        return 0;
    if (errno != EISDIR && errno != EPERM)
        return gy_error_sys(err, errno, "remove %s", name);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return gy_error_sys(err, errno, "open %s", name);
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return gy_error_sys(err, errno, "read %s", name);
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = remove_at(dirfd(d), e->d_name, err);
    }
    closedir(d);
    if (rc == 0 && unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = gy_error_sys(err, errno, "remove %s", name);
    return rc;
}

int rt_remove_tree(const char *path, struct gy_error *err)
{
    int rc = remove_at(AT_FDCWD, path, err);
    if (rc < 0)
        return gy_error_wrap(err, "remove %s", path);
    return 0;
}

void rt_close_fds_except(const int *keep, size_t n_keep)
{
    int sorted[16];
    size_t n = 0;
    for (size_t i = 0; i < n_keep && n < 16; i++)
        if (keep[i] >= 3)
            sorted[n++] = keep[i];
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    unsigned int from = 3;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned int)sorted[i] > from)
            syscall(SYS_close_range, from, (unsigned int)sorted[i] - 1, 0);
        from = (unsigned int)sorted[i] + 1;
    }
    syscall(SYS_close_range, from, ~0U, 0);
}
