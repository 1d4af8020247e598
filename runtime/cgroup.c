/* Backend selection: which cgroup manager runs on this host, and where a container's
 * cgroup goes. */
#include "runtime/cgroup.h"

#include <linux/magic.h>
#include <string.h>
#include <sys/vfs.h>

#include "common/xalloc.h"

const struct rt_cgroup_ops *rt_cgroup_detect(const char *mnt)
{
    struct statfs fs;
    if (statfs(mnt, &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC)
        return &rt_cgroup_v2_ops;
    return &rt_cgroup_v1_ops;
}

char *rt_cgroup_path(const char *cgroups_path, const char *id)
{
    if (cgroups_path == NULL)
        return gy_xasprintf("%s/%s", RT_CGROUP_PARENT, id);
    while (*cgroups_path == '/')
        cgroups_path++;
    char *path = gy_xstrdup(cgroups_path);
    size_t len = strlen(path);
    while (len > 0 && path[len - 1] == '/')
        path[--len] = '\0';
    return path;
}
