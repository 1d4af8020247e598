/* Replica networks through CNI, with a warm pool; see replica_net.h. */
#include "agent/replica_net.h"

#include "agent/netlink.h"
#include "common/io.h"
#include "common/xalloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define IFNAME    "eth0"
#define POOL_MAX  64
#define PATH_LEN  4096
#define POOL_MARK "pool." /* pool ids: "pool." and 16 hex digits; no replica id has a '.' */

struct pool_entry {
    char id[32];
    uint32_t addr;
};

struct agent_rnet {
    pthread_mutex_t lock;
    char *dir; /* <data_dir>/cni */
    char *ns_prefix;
    char *bridge;
    char *conf; /* the operator's list, or NULL */
    char *bin_dirs;
    size_t pool_target;
    struct agent_cni *cni; /* set once; NULL until the default list has its subnet */
    struct pool_entry pool[POOL_MAX];
    size_t n_pool;
};

static void sub_path(const struct agent_rnet *rn, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", rn->dir, name);
}

static int ns_path(const struct agent_rnet *rn, const char *id, char *out, size_t len,
                   struct gy_error *err)
{
    if (snprintf(out, len, "/run/netns/%s%s", rn->ns_prefix, id) >= (int)len)
        return gy_error_set(err, GY_EINVAL, "replica id \"%.80s\" is too long", id);
    return 0;
}

static int owner_path(const struct agent_rnet *rn, const char *id, char *out, size_t len,
                      struct gy_error *err)
{
    if (!agent_cni_id_valid(id))
        return gy_error_set(err, GY_EINVAL, "replica id \"%.80s\"", id);
    snprintf(out, len, "%s/owners/%s", rn->dir, id);
    return 0;
}

/* The attachment id recorded for replica id; -GY_ENOTFOUND when none is. */
static int owner_get(const struct agent_rnet *rn, const char *id, char out[AGENT_CNI_ID_MAX + 1],
                     struct gy_error *err)
{
    char path[PATH_LEN];
    int rc = owner_path(rn, id, path, sizeof(path), err);
    if (rc < 0)
        return rc;
    char *text = NULL;
    size_t len = 0;
    if ((rc = gy_read_file(path, AGENT_CNI_ID_MAX, &text, &len, err)) < 0)
        return rc;
    bool ok = agent_cni_id_valid(text);
    if (ok)
        snprintf(out, AGENT_CNI_ID_MAX + 1, "%s", text);
    free(text);
    return ok ? 0 : gy_error_set(err, GY_EINVAL, "%s: not an attachment id", path);
}

static int owner_set(const struct agent_rnet *rn, const char *id, const char *attachment,
                     struct gy_error *err)
{
    char path[PATH_LEN];
    int rc = owner_path(rn, id, path, sizeof(path), err);
    if (rc < 0)
        return rc;
    return gy_write_file_atomic(path, attachment, strlen(attachment), 0600, err);
}

static void owner_del(const struct agent_rnet *rn, const char *id)
{
    char path[PATH_LEN];
    if (owner_path(rn, id, path, sizeof(path), NULL) == 0)
        unlink(path);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int ns_make(const char *path, struct gy_error *err)
{
    struct agent_nl inside = {0};
    int fd = -1;
    int rc = agent_netns_create(path, &fd, &inside, err);
    if (rc == 0) {
        close(fd);
        agent_nl_close(&inside);
    }
    return rc;
}

/* Moves the namespace pinned at from to to: a bind mount at the new path, the old one
 * undone. The namespace, its interfaces and addresses stay as they are. */
static int ns_rename(const char *from, const char *to, struct gy_error *err)
{
    int fd = open(to, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
    if (fd < 0)
        return gy_error_sys(err, errno, "create %s", to);
    close(fd);
    if (mount(from, to, NULL, MS_BIND, NULL) < 0) {
        int e = errno;
        unlink(to);
        return gy_error_sys(err, e, "bind %s to %s", from, to);
    }
    umount2(from, MNT_DETACH);
    unlink(from);
    return 0;
}

int agent_rnet_open(struct agent_rnet **out, const struct agent_rnet_config *cfg,
                    struct gy_error *err)
{
    struct agent_rnet *rn = gy_xcalloc(1, sizeof(*rn));
    pthread_mutex_init(&rn->lock, NULL);
    char path[PATH_LEN];
    snprintf(path, sizeof(path), "%s/cni", cfg->data_dir);
    rn->dir = gy_xstrdup(path);
    rn->ns_prefix = gy_xstrdup(cfg->ns_prefix);
    rn->bridge = gy_xstrdup(cfg->bridge);
    rn->conf = cfg->conf != NULL ? gy_xstrdup(cfg->conf) : NULL;
    rn->bin_dirs = gy_xstrdup(cfg->bin_dirs);
    rn->pool_target = cfg->pool < POOL_MAX ? cfg->pool : POOL_MAX;
    const char *subdirs[] = {"", "owners", "ipam"};
    for (size_t i = 0; i < sizeof(subdirs) / sizeof(subdirs[0]); i++) {
        sub_path(rn, subdirs[i], path, sizeof(path));
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            int rc = gy_error_sys(err, errno, "create %s", path);
            agent_rnet_close(rn);
            return rc;
        }
    }
    if (rn->conf != NULL) {
        sub_path(rn, "cache", path, sizeof(path));
        int rc = agent_cni_open(&rn->cni, rn->conf, rn->bin_dirs, path, err);
        if (rc < 0) {
            agent_rnet_close(rn);
            return rc;
        }
    }
    *out = rn;
    return 0;
}

void agent_rnet_close(struct agent_rnet *rn)
{
    if (rn == NULL)
        return;
    agent_cni_close(rn->cni);
    pthread_mutex_destroy(&rn->lock);
    free(rn->dir);
    free(rn->ns_prefix);
    free(rn->bridge);
    free(rn->conf);
    free(rn->bin_dirs);
    free(rn);
}

int agent_rnet_subnet(struct agent_rnet *rn, const char *subnet, struct gy_error *err)
{
    if (rn->conf != NULL || agent_rnet_ready(rn))
        return 0;
    char list[PATH_LEN], ipam[PATH_LEN], cache[PATH_LEN];
    sub_path(rn, "gantry.conflist", list, sizeof(list));
    sub_path(rn, "ipam", ipam, sizeof(ipam));
    sub_path(rn, "cache", cache, sizeof(cache));
    struct agent_cni *cni;
    int rc = agent_cni_write_default(list, rn->bridge, subnet, ipam, err);
    if (rc == 0)
        rc = agent_cni_open(&cni, list, rn->bin_dirs, cache, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&rn->lock);
    rn->cni = cni;
    pthread_mutex_unlock(&rn->lock);
    return 0;
}

bool agent_rnet_ready(struct agent_rnet *rn)
{
    pthread_mutex_lock(&rn->lock);
    bool ready = rn->cni != NULL;
    pthread_mutex_unlock(&rn->lock);
    return ready;
}

bool agent_rnet_custom(const struct agent_rnet *rn)
{
    return rn->conf != NULL;
}

static struct agent_cni *cni_of(struct agent_rnet *rn, struct gy_error *err)
{
    pthread_mutex_lock(&rn->lock);
    struct agent_cni *cni = rn->cni;
    pthread_mutex_unlock(&rn->lock);
    if (cni == NULL)
        gy_error_set(err, GY_EUNAVAILABLE, "the node's replica network is not configured yet");
    return cni;
}

/* DEL of attachment, whose namespace is at ns (gone or not), and the namespace. */
static int detach_attachment(struct agent_cni *cni, const char *attachment, const char *ns,
                             struct gy_error *err)
{
    int rc = agent_cni_del(cni, attachment, exists(ns) ? ns : "", IFNAME, err);
    struct gy_error e;
    if (agent_netns_remove(ns, &e) < 0 && rc == 0) {
        *err = e;
        rc = -(int)e.code;
    }
    return rc;
}

int agent_rnet_attach(struct agent_rnet *rn, const char *id, const struct agent_cni_args *args,
                      char *netns, size_t len, uint32_t *addr, struct gy_error *err)
{
    struct agent_cni *cni = cni_of(rn, err);
    if (cni == NULL)
        return -GY_EUNAVAILABLE;
    char ns[PATH_LEN], attachment[AGENT_CNI_ID_MAX + 1];
    int rc = ns_path(rn, id, ns, sizeof(ns), err);
    if (rc < 0)
        return rc;
    if (snprintf(netns, len, "%s", ns) >= (int)len)
        return gy_error_set(err, GY_EINVAL, "namespace path too long");
    struct agent_cni_result res;
    struct gy_error e;
    if (owner_get(rn, id, attachment, &e) == 0) {
        /* A restart of the replica's container: its network stays. */
        if (exists(ns) && agent_cni_cached(cni, attachment, IFNAME, &res, &e) == 0) {
            *addr = res.address;
            return 0;
        }
        detach_attachment(cni, attachment, ns, &e);
        owner_del(rn, id);
    } else if (exists(ns)) {
        /* A namespace without a record (made before a crash): made again. */
        detach_attachment(cni, id, ns, &e);
    }
    if (args == NULL || args->n_ports == 0) {
        struct pool_entry taken = {0};
        pthread_mutex_lock(&rn->lock);
        if (rn->n_pool > 0)
            taken = rn->pool[--rn->n_pool];
        pthread_mutex_unlock(&rn->lock);
        if (taken.id[0] != '\0') {
            char from[PATH_LEN];
            ns_path(rn, taken.id, from, sizeof(from), NULL);
            if ((rc = owner_set(rn, id, taken.id, &e)) == 0 &&
                (rc = ns_rename(from, ns, &e)) == 0) {
                *addr = taken.addr;
                return 0;
            }
            /* Not usable after all: given back to the network, and a fresh one made. */
            gy_error_wrap(&e, "take a pooled network");
            owner_del(rn, id);
            detach_attachment(cni, taken.id, from, &e);
        }
    }
    if ((rc = ns_make(ns, err)) < 0)
        return gy_error_wrap(err, "network for replica %s", id);
    if ((rc = owner_set(rn, id, id, err)) < 0 ||
        (rc = agent_cni_add(cni, id, ns, IFNAME, args, &res, err)) < 0) {
        owner_del(rn, id);
        agent_netns_remove(ns, NULL);
        return gy_error_wrap(err, "network for replica %s", id);
    }
    *addr = res.address;
    return 0;
}

/* Whether a replica's attachment may go back to the pool: up to twice its size, so that
 * the removals of a burst, which often precede the next burst's starts, cost no DEL while
 * refills wait for a quiet moment. */
static bool pool_room(struct agent_rnet *rn)
{
    pthread_mutex_lock(&rn->lock);
    bool room = rn->n_pool < 2 * rn->pool_target && rn->n_pool < POOL_MAX;
    pthread_mutex_unlock(&rn->lock);
    return room;
}

/* Gives attachment, of the namespace at ns, back to the pool when it came from there, can
 * serve another replica, and the pool has room: the namespace goes back to its pool name. */
static bool recycle(struct agent_rnet *rn, struct agent_cni *cni, const char *attachment,
                    const char *ns)
{
    struct agent_cni_result res;
    struct gy_error e;
    char to[PATH_LEN];
    if (strncmp(attachment, POOL_MARK, strlen(POOL_MARK)) != 0 ||
        strlen(attachment) >= sizeof(rn->pool[0].id) || !pool_room(rn) || !exists(ns) ||
        !agent_cni_cached_reusable(cni, attachment, IFNAME) ||
        agent_cni_cached(cni, attachment, IFNAME, &res, &e) < 0 ||
        ns_path(rn, attachment, to, sizeof(to), &e) < 0 || ns_rename(ns, to, &e) < 0)
        return false;
    pthread_mutex_lock(&rn->lock);
    bool kept = rn->n_pool < 2 * rn->pool_target && rn->n_pool < POOL_MAX;
    if (kept) {
        snprintf(rn->pool[rn->n_pool].id, sizeof(rn->pool[0].id), "%s", attachment);
        rn->pool[rn->n_pool++].addr = res.address;
    }
    pthread_mutex_unlock(&rn->lock);
    if (!kept)
        detach_attachment(cni, attachment, to, &e);
    return true;
}

int agent_rnet_detach(struct agent_rnet *rn, const char *id, bool reuse, struct gy_error *err)
{
    char ns[PATH_LEN], attachment[AGENT_CNI_ID_MAX + 1];
    int rc = ns_path(rn, id, ns, sizeof(ns), err);
    if (rc < 0)
        return rc;
    struct agent_cni *cni = cni_of(rn, err);
    if (cni == NULL) {
        /* No network was ever configured here, so nothing was attached: only a namespace
         * could be left. */
        return agent_netns_remove(ns, err);
    }
    struct gy_error e;
    if (owner_get(rn, id, attachment, &e) < 0)
        snprintf(attachment, sizeof(attachment), "%s", id);
    if (reuse && recycle(rn, cni, attachment, ns)) {
        owner_del(rn, id);
        return 0;
    }
    if ((rc = detach_attachment(cni, attachment, ns, err)) < 0)
        return gy_error_wrap(err, "remove network of replica %s", id);
    owner_del(rn, id);
    return 0;
}

int agent_rnet_check(struct agent_rnet *rn, const char *id, struct gy_error *err)
{
    struct agent_cni *cni = cni_of(rn, err);
    if (cni == NULL)
        return -GY_EUNAVAILABLE;
    char ns[PATH_LEN], attachment[AGENT_CNI_ID_MAX + 1];
    int rc = ns_path(rn, id, ns, sizeof(ns), err);
    if (rc == 0)
        rc = owner_get(rn, id, attachment, err);
    if (rc < 0)
        return gy_error_wrap(err, "network of replica %s", id);
    if (!exists(ns))
        return gy_error_set(err, GY_ENOTFOUND, "network of replica %s: %s is gone", id, ns);
    return agent_cni_check(cni, attachment, ns, IFNAME, err);
}

int agent_rnet_address(struct agent_rnet *rn, const char *id, uint32_t *addr, struct gy_error *err)
{
    struct agent_cni *cni = cni_of(rn, err);
    if (cni == NULL)
        return -GY_EUNAVAILABLE;
    char attachment[AGENT_CNI_ID_MAX + 1];
    int rc = owner_get(rn, id, attachment, err);
    if (rc < 0)
        return gy_error_wrap(err, "network of replica %s", id);
    struct agent_cni_result res;
    if ((rc = agent_cni_cached(cni, attachment, IFNAME, &res, err)) < 0)
        return rc;
    *addr = res.address;
    return 0;
}

size_t agent_rnet_pool_missing(struct agent_rnet *rn)
{
    pthread_mutex_lock(&rn->lock);
    size_t missing =
        rn->cni != NULL && rn->n_pool < rn->pool_target ? rn->pool_target - rn->n_pool : 0;
    pthread_mutex_unlock(&rn->lock);
    return missing;
}

int agent_rnet_pool_fill_one(struct agent_rnet *rn, struct gy_error *err)
{
    struct agent_cni *cni = cni_of(rn, err);
    if (cni == NULL)
        return -GY_EUNAVAILABLE;
    uint8_t raw[8];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return gy_error_sys(err, errno, "getrandom");
    struct pool_entry entry;
    int n = snprintf(entry.id, sizeof(entry.id), POOL_MARK);
    for (size_t i = 0; i < sizeof(raw); i++)
        n += snprintf(entry.id + n, sizeof(entry.id) - (size_t)n, "%02x", raw[i]);
    char ns[PATH_LEN];
    int rc = ns_path(rn, entry.id, ns, sizeof(ns), err);
    if (rc == 0)
        rc = ns_make(ns, err);
    if (rc < 0)
        return rc;
    struct agent_cni_result res;
    if ((rc = agent_cni_add(cni, entry.id, ns, IFNAME, NULL, &res, err)) < 0) {
        agent_netns_remove(ns, NULL);
        return rc;
    }
    entry.addr = res.address;
    pthread_mutex_lock(&rn->lock);
    bool kept = rn->n_pool < rn->pool_target;
    if (kept)
        rn->pool[rn->n_pool++] = entry;
    pthread_mutex_unlock(&rn->lock);
    if (!kept)
        detach_attachment(cni, entry.id, ns, err);
    return 0;
}

static bool in_list(const char *id, char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] != NULL && strcmp(list[i], id) == 0)
            return true;
    return false;
}

static bool in_const(const char *id, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], id) == 0)
            return true;
    return false;
}

int agent_rnet_collect(struct agent_rnet *rn, const char *const *live, size_t n, size_t *removed,
                       struct gy_error *err)
{
    *removed = 0;
    struct agent_cni *cni = cni_of(rn, err);
    if (cni == NULL)
        return 0;
    char dir[PATH_LEN], ns[PATH_LEN], attachment[AGENT_CNI_ID_MAX + 1];
    struct gy_error e;
    /* Owners: the attachments of live replicas are kept; those of gone replicas go. */
    char **owned = gy_xcalloc(n ? n : 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        if (owner_get(rn, live[i], attachment, &e) == 0)
            owned[i] = gy_xstrdup(attachment);
    sub_path(rn, "owners", dir, sizeof(dir));
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        if (!agent_cni_id_valid(de->d_name) || in_const(de->d_name, live, n))
            continue;
        if (owner_get(rn, de->d_name, attachment, &e) == 0 &&
            ns_path(rn, de->d_name, ns, sizeof(ns), &e) == 0 &&
            detach_attachment(cni, attachment, ns, &e) == 0)
            (*removed)++;
        owner_del(rn, de->d_name);
    }
    if (d != NULL)
        closedir(d);
    /* Cached attachments: pooled ones of the current list with their namespace come back
     * into the pool; any other nobody owns goes. */
    char **ids = NULL;
    size_t n_ids = 0;
    int rc = agent_cni_cached_list(cni, &ids, &n_ids, err);
    for (size_t i = 0; rc == 0 && i < n_ids; i++) {
        if (in_list(ids[i], owned, n))
            continue;
        ns_path(rn, ids[i], ns, sizeof(ns), &e);
        bool pooled = strncmp(ids[i], POOL_MARK, strlen(POOL_MARK)) == 0;
        struct agent_cni_result res;
        if (pooled && exists(ns) && agent_cni_cached_reusable(cni, ids[i], IFNAME) &&
            agent_cni_cached(cni, ids[i], IFNAME, &res, &e) == 0) {
            pthread_mutex_lock(&rn->lock);
            bool kept = rn->n_pool < rn->pool_target && strlen(ids[i]) < sizeof(rn->pool[0].id);
            if (kept) {
                snprintf(rn->pool[rn->n_pool].id, sizeof(rn->pool[0].id), "%s", ids[i]);
                rn->pool[rn->n_pool++].addr = res.address;
            }
            pthread_mutex_unlock(&rn->lock);
            if (kept)
                continue;
        }
        if (detach_attachment(cni, ids[i], ns, &e) == 0)
            (*removed)++;
    }
    /* Pool namespaces that are not in the pool: left by a crash between making one and
     * its ADD. (Those of replicas go with their replica's record, in detach.) */
    d = opendir("/run/netns");
    size_t plen = strlen(rn->ns_prefix), mlen = strlen(POOL_MARK);
    while (d != NULL && (de = readdir(d)) != NULL) {
        const char *id = de->d_name + plen;
        if (strncmp(de->d_name, rn->ns_prefix, plen) != 0 || strncmp(id, POOL_MARK, mlen) != 0 ||
            strlen(id + mlen) != 16 || strspn(id + mlen, "0123456789abcdef") != 16)
            continue;
        bool keep = false;
        pthread_mutex_lock(&rn->lock);
        for (size_t k = 0; k < rn->n_pool && !keep; k++)
            keep = strcmp(rn->pool[k].id, id) == 0;
        pthread_mutex_unlock(&rn->lock);
        if (keep)
            continue;
        snprintf(ns, sizeof(ns), "/run/netns/%s", de->d_name);
        if (agent_netns_remove(ns, &e) == 0)
            (*removed)++;
    }
    if (d != NULL)
        closedir(d);
    /* GC, for lists whose version has it: every attachment still in use. */
    if (rc == 0) {
        size_t n_valid = 0;
        const char **valid = gy_xcalloc(n + POOL_MAX + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            if (owned[i] != NULL)
                valid[n_valid++] = owned[i];
        pthread_mutex_lock(&rn->lock);
        for (size_t k = 0; k < rn->n_pool; k++)
            valid[n_valid++] = rn->pool[k].id;
        rc = agent_cni_gc(cni, valid, n_valid, IFNAME, err);
        pthread_mutex_unlock(&rn->lock);
        free(valid);
    }
    for (size_t i = 0; i < n_ids; i++)
        free(ids[i]);
    free(ids);
    for (size_t i = 0; i < n; i++)
        free(owned[i]);
    free(owned);
    return rc;
}
