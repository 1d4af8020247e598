/* Pulling images from registries and peers into the node's store; see pull.h. */
#include "agent/pull.h"
#include "agent/pull-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"

/* ---------------------------------------------------------------------------------------
 * The node's download slots and the blobs in flight */

/* A blob this process is downloading, by one thread (pull-internal.h). */
struct flight {
    struct flight *next;
    char digest[OCI_DIGEST_BUF];
};

struct agent_pull_shared {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a slot was given back, or a flight ended */
    int max;
    int used[2]; /* by enum agent_slot_kind */
    struct flight *flights;
};

/* How often a wait looks at its cancel flag. */
#define WAIT_STEP_MS 200

static void shared_wait(struct agent_pull_shared *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_nsec += WAIT_STEP_MS * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static bool is_cancelled(const atomic_bool *cancel)
{
    return cancel != NULL && atomic_load(cancel);
}

bool agent_pull_slot_take(struct agent_puller *p, enum agent_slot_kind kind,
                          const atomic_bool *cancel)
{
    struct agent_pull_shared *s = p->shared;
    if (s == NULL)
        return true;
    pthread_mutex_lock(&s->mu);
    while (s->used[kind] >= s->max && !is_cancelled(cancel))
        shared_wait(s);
    bool taken = !is_cancelled(cancel);
    if (taken)
        s->used[kind]++;
    pthread_mutex_unlock(&s->mu);
    return taken;
}

void agent_pull_slot_give(struct agent_puller *p, enum agent_slot_kind kind)
{
    struct agent_pull_shared *s = p->shared;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->used[kind]--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static struct flight **flight_find(struct agent_pull_shared *s, const char *digest)
{
    struct flight **f = &s->flights;
    while (*f != NULL && strcmp((*f)->digest, digest) != 0)
        f = &(*f)->next;
    return f;
}

int agent_pull_flight_begin(struct agent_puller *p, const char *digest, const atomic_bool *cancel)
{
    struct agent_pull_shared *s = p->shared;
    if (s == NULL)
        return oci_store_blob_has(p->store, digest) ? 0 : 1;
    pthread_mutex_lock(&s->mu);
    int rc;
    for (;;) {
        if (is_cancelled(cancel)) {
            rc = -1;
            break;
        }
        if (*flight_find(s, digest) != NULL) {
            shared_wait(s);
            continue;
        }
        if (oci_store_blob_has(p->store, digest)) {
            rc = 0;
            break;
        }
        struct flight *f = gy_xcalloc(1, sizeof(*f));
        snprintf(f->digest, sizeof(f->digest), "%s", digest);
        f->next = s->flights;
        s->flights = f;
        rc = 1;
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void agent_pull_flight_end(struct agent_puller *p, const char *digest)
{
    struct agent_pull_shared *s = p->shared;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    struct flight **f = flight_find(s, digest), *gone = *f;
    if (gone != NULL) {
        *f = gone->next;
        free(gone);
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

bool agent_pull_flight_active(struct agent_puller *p, const char *digest)
{
    struct agent_pull_shared *s = p->shared;
    if (s == NULL)
        return false;
    pthread_mutex_lock(&s->mu);
    bool active = *flight_find(s, digest) != NULL;
    pthread_mutex_unlock(&s->mu);
    return active;
}

static struct agent_pull_shared *shared_new(void)
{
    struct agent_pull_shared *s = gy_xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &attr);
    pthread_condattr_destroy(&attr);
    s->max = AGENT_PULL_MAX_DOWNLOADS;
    return s;
}

static void shared_free(struct agent_pull_shared *s)
{
    if (s == NULL)
        return;
    while (s->flights != NULL) {
        struct flight *f = s->flights;
        s->flights = f->next;
        free(f);
    }
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* ---------------------------------------------------------------------------------------
 * The puller */

int agent_puller_open(struct agent_puller *p, const char *data_dir, const char *registries_path,
                      struct gy_error *err)
{
    memset(p, 0, sizeof(*p));
    char root[PATH_MAX];
    if (snprintf(root, sizeof(root), "%s/oci", data_dir) >= (int)sizeof(root))
        return gy_error_set(err, GY_EINVAL, "data directory %s: path too long", data_dir);
    int rc = oci_store_open(root, NULL, &p->store, err);
    if (rc < 0)
        return rc;
    if (registries_path != NULL &&
        (rc = agent_registry_config_load(registries_path, &p->registries, err)) < 0) {
        agent_puller_close(p);
        return rc;
    }
    if (p->registries.auth_file != NULL &&
        (rc = agent_registry_auth_load(p->registries.auth_file, &p->auth, err)) < 0) {
        agent_puller_close(p);
        return rc;
    }
    p->tokens = agent_token_cache_new();
    p->shared = shared_new();
    return 0;
}

void agent_puller_close(struct agent_puller *p)
{
    oci_store_close(p->store);
    agent_registry_config_free(&p->registries);
    agent_registry_auth_free(p->auth);
    agent_token_cache_free(p->tokens);
    shared_free(p->shared);
    memset(p, 0, sizeof(*p));
}

int agent_puller_set_max_downloads(struct agent_puller *p, int n, struct gy_error *err)
{
    if (n < 1 || n > AGENT_PULL_MAX_DOWNLOADS_MAX)
        return gy_error_set(err, GY_EINVAL, "max downloads %d: must be from 1 to %d", n,
                            AGENT_PULL_MAX_DOWNLOADS_MAX);
    if (p->shared != NULL) {
        pthread_mutex_lock(&p->shared->mu);
        p->shared->max = n;
        pthread_cond_broadcast(&p->shared->cv);
        pthread_mutex_unlock(&p->shared->mu);
    }
    return 0;
}

int agent_pull_blob_registry(struct agent_puller *p, struct agent_registry *reg,
                             const struct gy_image_ref *ref, const struct agent_descriptor *blob,
                             int64_t *fetched, struct gy_error *err)
{
    int lock = oci_store_ingest_lock(p->store, blob->digest, err);
    if (lock < 0)
        return lock;
    int rc = 0;
    /* Another process may have finished it while this one waited for the lock. */
    if (!oci_store_blob_has(p->store, blob->digest)) {
        char path[PATH_MAX];
        struct agent_blob_result res = {0};
        if ((rc = oci_store_ingest_path(p->store, blob->digest, path, sizeof(path), err)) == 0 &&
            (rc = agent_registry_blob_fetch(reg, ref, blob, path, &res, err)) == 0) {
            *fetched += res.size - res.resumed_from;
            rc = oci_store_blob_commit(p->store, path, blob->digest, err);
        }
    }
    close(lock);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * One pull: its blobs, fetched by up to AGENT_PULL_PARALLEL threads */

struct pull_job {
    struct agent_puller *p;
    const struct agent_pull_options *opts;
    const struct gy_image_ref *ref;
    char repo[GY_IMAGE_NAME_MAX + 1]; /* what a peer fetches a blob it lacks from */
    /* The nodes to rank: the valid peers and, last, this node (when self is set). */
    const char *names[AGENT_IMAGE_PEERS_MAX + 1];
    const struct agent_image_peer *peers[AGENT_IMAGE_PEERS_MAX + 1]; /* NULL: this node */
    size_t n_names;
    const struct agent_descriptor **blobs; /* config and layers, each digest once */
    size_t n_blobs;
    _Atomic int64_t *done; /* bytes of each blob in the store or arrived */
    int64_t total;
    _Atomic int64_t bytes_registry;
    _Atomic int64_t bytes_peers;
    pthread_mutex_t mu;
    size_t next;
    bool failed;
    struct gy_error err; /* the first failure */
};

struct pull_worker {
    struct pull_job *job;
    struct agent_registry *reg;
    bool own_reg;
    struct agent_peer_client *peer;
    size_t cur; /* the blob it fetches, for progress */
    pthread_t thread;
    bool started;
};

static void job_report(struct pull_job *job)
{
    if (job->opts == NULL || job->opts->progress == NULL)
        return;
    int64_t done = 0;
    for (size_t i = 0; i < job->n_blobs; i++)
        done += atomic_load(&job->done[i]);
    job->opts->progress(job->opts->progress_arg, done, job->total);
}

static void on_blob_progress(void *arg, const char *digest, int64_t done, int64_t total)
{
    (void)digest, (void)total;
    struct pull_worker *w = arg;
    if (w->job->done == NULL)
        return; /* a manifest, asked of peers before the blobs */
    atomic_store(&w->job->done[w->cur], done);
    job_report(w->job);
}

/* The peers of opts worth asking: valid addresses, each node once, not this node. */
static void job_peers(struct pull_job *job, const struct agent_pull_options *opts)
{
    job->n_names = 0;
    if (opts == NULL || opts->self == NULL || opts->self[0] == '\0')
        return;
    for (size_t i = 0; i < opts->n_peers && job->n_names < AGENT_IMAGE_PEERS_MAX; i++) {
        const struct agent_image_peer *peer = &opts->peers[i];
        bool skip = peer->node[0] == '\0' || strcmp(peer->node, opts->self) == 0 ||
                    !agent_peer_address_valid(peer->address);
        for (size_t k = 0; k < job->n_names && !skip; k++)
            skip = strcmp(job->names[k], peer->node) == 0;
        if (skip)
            continue;
        job->names[job->n_names] = peer->node;
        job->peers[job->n_names++] = peer;
    }
    if (job->n_names == 0)
        return;
    job->names[job->n_names] = opts->self;
    job->peers[job->n_names++] = NULL;
}

/* Where to ask for digest, in order (NULL is the registry): the ranking, except that the
 * registry goes last unless this node ranks first. */
static size_t job_sources(const struct pull_job *job, const char *digest,
                          const struct agent_image_peer **out)
{
    if (job->n_names == 0) {
        out[0] = NULL;
        return 1;
    }
    size_t order[AGENT_IMAGE_PEERS_MAX + 1], n = 0;
    agent_peer_rank(digest, job->names, job->n_names, order);
    bool self_first = job->peers[order[0]] == NULL;
    if (self_first)
        out[n++] = NULL;
    for (size_t k = 0; k < job->n_names; k++)
        if (job->peers[order[k]] != NULL)
            out[n++] = job->peers[order[k]];
    if (!self_first)
        out[n++] = NULL;
    return n;
}

static int worker_registry(struct pull_worker *w, struct gy_error *err)
{
    if (w->reg != NULL)
        return 0;
    struct agent_puller *p = w->job->p;
    struct agent_registry_options opts = {
        .config = &p->registries,
        .auth = p->auth,
        .tokens = p->tokens,
        .progress = on_blob_progress,
        .progress_arg = w,
    };
    w->own_reg = true;
    return agent_registry_new(&opts, &w->reg, err);
}

/* One blob from one peer into the store. */
static int blob_from_peer(struct pull_worker *w, const struct agent_image_peer *peer,
                          const struct agent_descriptor *blob, struct gy_error *err)
{
    struct agent_puller *p = w->job->p;
    if (w->peer == NULL) {
        struct agent_peer_options opts = {.progress = on_blob_progress, .progress_arg = w};
        int rc = agent_peer_client_new(&opts, &w->peer, err);
        if (rc < 0)
            return rc;
    }
    int lock = oci_store_ingest_lock(p->store, blob->digest, err);
    if (lock < 0)
        return lock;
    int rc = 0;
    if (!oci_store_blob_has(p->store, blob->digest)) {
        char path[PATH_MAX];
        if ((rc = oci_store_ingest_path(p->store, blob->digest, path, sizeof(path), err)) == 0 &&
            (rc = agent_peer_blob_fetch(w->peer, peer, w->job->repo, blob, path, err)) == 0 &&
            (rc = oci_store_blob_commit(p->store, path, blob->digest, err)) == 0 && blob->size > 0)
            atomic_fetch_add(&w->job->bytes_peers, blob->size);
    }
    close(lock);
    return rc;
}

/* One blob from its sources in order; this thread is the blob's one download. */
static int blob_from_sources(struct pull_worker *w, const struct agent_descriptor *blob,
                             struct gy_error *err)
{
    struct pull_job *job = w->job;
    const struct agent_image_peer *sources[AGENT_IMAGE_PEERS_MAX + 2];
    size_t n = job_sources(job, blob->digest, sources);
    struct gy_error registry_err;
    bool registry_failed = false;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (sources[i] == NULL) {
            int64_t fetched = 0;
            if ((rc = worker_registry(w, err)) == 0)
                rc = agent_pull_blob_registry(job->p, w->reg, job->ref, blob, &fetched, err);
            atomic_fetch_add(&job->bytes_registry, fetched);
            if (rc == 0)
                return 0;
            registry_err = *err;
            registry_failed = true;
            if (i + 1 < n)
                gy_log_warn("blob from the registry failed; asking peers", "blob=%s error=\"%s\"",
                            blob->digest, err->msg);
            continue;
        }
        rc = blob_from_peer(w, sources[i], blob, err);
        if (rc == 0)
            return 0;
        if (rc == -GY_ESYS && err->sys_errno == ENOSPC)
            return rc;
        gy_log_warn(err->code == GY_EPROTO ? "peer served a damaged blob; not used"
                                           : "blob from peer failed",
                    "blob=%s peer=%s address=%s next=%s error=\"%s\"", blob->digest,
                    sources[i]->node, sources[i]->address,
                    i + 1 == n               ? "none"
                    : sources[i + 1] == NULL ? "registry"
                                             : sources[i + 1]->node,
                    err->msg);
    }
    if (registry_failed && err != NULL)
        *err = registry_err;
    return rc;
}

static int blob_fetch(struct pull_worker *w, size_t i, struct gy_error *err)
{
    struct pull_job *job = w->job;
    struct agent_puller *p = job->p;
    const struct agent_descriptor *blob = job->blobs[i];
    w->cur = i;
    int rc = 0;
    if (!oci_store_blob_has(p->store, blob->digest)) {
        /* The slot first, then the blob: a thread that waits for another's download of the
         * blob holds no slot that download might need. */
        agent_pull_slot_take(p, AGENT_SLOTS_PULLS, NULL);
        if (agent_pull_flight_begin(p, blob->digest, NULL) == 1) {
            rc = blob_from_sources(w, blob, err);
            agent_pull_flight_end(p, blob->digest);
        }
        agent_pull_slot_give(p, AGENT_SLOTS_PULLS);
    }
    if (rc == 0) {
        atomic_store(&job->done[i], blob->size);
        job_report(job);
    }
    return rc;
}

static void *worker_run(void *arg)
{
    struct pull_worker *w = arg;
    struct pull_job *job = w->job;
    for (;;) {
        pthread_mutex_lock(&job->mu);
        size_t i = job->next < job->n_blobs && !job->failed ? job->next++ : SIZE_MAX;
        pthread_mutex_unlock(&job->mu);
        if (i == SIZE_MAX)
            break;
        struct gy_error err;
        if (blob_fetch(w, i, &err) < 0) {
            pthread_mutex_lock(&job->mu);
            if (!job->failed) {
                job->failed = true;
                job->err = err;
            }
            pthread_mutex_unlock(&job->mu);
            break;
        }
    }
    return NULL;
}

/* Fetches every blob of m the store lacks: the calling thread is the first worker. */
static int job_run(struct pull_job *job, const struct agent_manifest *m, struct gy_error *err)
{
    job->blobs = gy_xcalloc(m->n_layers + 1, sizeof(*job->blobs));
    job->done = gy_xcalloc(m->n_layers + 1, sizeof(*job->done));
    size_t missing = 0;
    for (size_t i = 0; i <= m->n_layers; i++) {
        const struct agent_descriptor *d = i == 0 ? &m->config : &m->layers[i - 1];
        bool dup = false;
        for (size_t k = 0; k < job->n_blobs && !dup; k++)
            dup = strcmp(job->blobs[k]->digest, d->digest) == 0;
        if (dup)
            continue;
        job->total += d->size;
        bool have = oci_store_blob_has(job->p->store, d->digest);
        atomic_store(&job->done[job->n_blobs], have ? d->size : 0);
        missing += !have;
        job->blobs[job->n_blobs++] = d;
    }
    job_report(job);
    pthread_mutex_init(&job->mu, NULL);
    size_t n_workers = missing < AGENT_PULL_PARALLEL ? missing : AGENT_PULL_PARALLEL;
    if (n_workers == 0)
        n_workers = 1;
    struct pull_worker workers[AGENT_PULL_PARALLEL];
    memset(workers, 0, sizeof(workers));
    for (size_t k = 0; k < n_workers; k++)
        workers[k].job = job;
    for (size_t k = 1; k < n_workers; k++)
        workers[k].started = pthread_create(&workers[k].thread, NULL, worker_run, &workers[k]) == 0;
    worker_run(&workers[0]);
    for (size_t k = 1; k < n_workers; k++)
        if (workers[k].started)
            pthread_join(workers[k].thread, NULL);
    for (size_t k = 0; k < n_workers; k++) {
        if (workers[k].own_reg)
            agent_registry_free(workers[k].reg);
        agent_peer_client_free(workers[k].peer);
    }
    pthread_mutex_destroy(&job->mu);
    int rc = 0;
    if (job->failed) {
        if (err != NULL)
            *err = job->err;
        rc = -job->err.code;
    }
    free(job->blobs);
    free(job->done);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Manifests from peers, for a reference by digest the registry cannot give */

static int manifest_from_peers(struct pull_job *job, const char *digest, struct agent_manifest *out,
                               struct gy_error *err)
{
    struct agent_puller *p = job->p;
    struct agent_descriptor d = {.size = -1};
    snprintf(d.digest, sizeof(d.digest), "%s", digest);
    int rc = 0;
    if (!oci_store_blob_has(p->store, digest)) {
        const struct agent_image_peer *sources[AGENT_IMAGE_PEERS_MAX + 2];
        size_t n = job_sources(job, digest, sources);
        struct pull_worker w = {.job = job};
        rc = gy_error_set(err, GY_ENOTFOUND, "no peer has manifest %s", digest);
        for (size_t i = 0; i < n; i++) {
            if (sources[i] == NULL)
                continue;
            if ((rc = blob_from_peer(&w, sources[i], &d, err)) == 0)
                break;
            gy_log_warn("manifest from peer failed", "manifest=%s peer=%s error=\"%s\"", digest,
                        sources[i]->node, err->msg);
        }
        agent_peer_client_free(w.peer);
        if (rc < 0)
            return rc;
    }
    char *text = NULL;
    size_t len = 0;
    if ((rc = oci_store_blob_read_small(p->store, digest, AGENT_REGISTRY_MANIFEST_MAX, &text, &len,
                                        err)) == 0)
        rc = agent_manifest_parse(text, len, NULL, out, err);
    free(text);
    return rc;
}

/* Fills img as agent_registry_resolve would, from the peers' stores. */
static int resolve_from_peers(struct pull_job *job, struct agent_registry_image *img,
                              struct gy_error *err)
{
    memset(img, 0, sizeof(*img));
    struct agent_manifest m;
    memset(&m, 0, sizeof(m));
    int rc = manifest_from_peers(job, job->ref->digest, &m, err);
    if (rc < 0) {
        agent_manifest_free(&m);
        return rc;
    }
    snprintf(img->resolved, sizeof(img->resolved), "%s", m.digest);
    if (!agent_manifest_is_index(m.kind)) {
        img->manifest = m;
        return 0;
    }
    img->index = m;
    size_t which = 0;
    if ((rc = agent_platform_detect(&img->platform, err)) < 0 ||
        (rc = agent_manifest_pick(&img->index, &img->platform, &which, err)) < 0)
        return rc;
    const char *digest = img->index.manifests[which].digest;
    if ((rc = manifest_from_peers(job, digest, &img->manifest, err)) < 0)
        return rc;
    if (agent_manifest_is_index(img->manifest.kind))
        return gy_error_set(err, GY_EPROTO, "index %s points at another index (%s)",
                            img->index.digest, digest);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Pulls */

int agent_pull(struct agent_puller *p, const char *text, struct agent_pull_result *out,
               struct gy_error *err)
{
    return agent_pull_from(p, text, NULL, out, err);
}

int agent_pull_from(struct agent_puller *p, const char *text, const struct agent_pull_options *po,
                    struct agent_pull_result *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    struct gy_image_ref ref;
    int rc = gy_image_ref_parse(text, &ref, err);
    if (rc < 0)
        return rc;
    gy_image_ref_format(&ref, out->name, sizeof(out->name));
    /* A reference by digest names bytes that cannot change: a stored image is used as is. */
    struct oci_image have;
    if (ref.digest[0] != '\0' && oci_image_get(p->store, out->name, &have, NULL) == 0) {
        snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", have.manifest_digest);
        snprintf(out->resolved, sizeof(out->resolved), "%s", ref.digest);
        out->layers = have.n_layers;
        out->cached = true;
        oci_image_free(&have);
        return 0;
    }
    struct pull_job job;
    memset(&job, 0, sizeof(job));
    job.p = p;
    job.opts = po;
    job.ref = &ref;
    gy_image_ref_name(&ref, job.repo, sizeof(job.repo));
    job_peers(&job, po);
    struct agent_registry_options opts = {
        .config = &p->registries,
        .auth = p->auth,
        .tokens = p->tokens,
    };
    struct agent_registry *reg = NULL;
    if ((rc = agent_registry_new(&opts, &reg, err)) < 0)
        return rc;
    struct agent_registry_image img;
    memset(&img, 0, sizeof(img));
    struct gy_error rerr;
    if ((rc = agent_registry_resolve(reg, &ref, &img, &rerr)) < 0) {
        agent_registry_image_free(&img);
        bool unreachable = rerr.code == GY_EUNAVAILABLE || rerr.code == GY_ETIMEOUT;
        /* A registry the node cannot reach does not stop it from running the image it holds
         * under this exact name (loaded with `image load`, or pulled before). */
        if (unreachable && oci_image_get(p->store, out->name, &have, NULL) == 0) {
            agent_registry_free(reg);
            gy_log_warn("registry unreachable, using the stored image",
                        "image=%s manifest=%s error=\"%s\"", out->name, have.manifest_digest,
                        rerr.msg);
            snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s",
                     have.manifest_digest);
            out->layers = have.n_layers;
            out->cached = true;
            oci_image_free(&have);
            return 0;
        }
        /* Nor, for a tag pinned to a digest (REF:TAG@DIGEST), the image it holds under the
         * tag when that is the pinned manifest (a loaded image the leader pinned). */
        if (unreachable && ref.digest[0] != '\0' && ref.tag[0] != '\0') {
            struct gy_image_ref tagged = ref;
            tagged.digest[0] = '\0';
            char name[sizeof(out->name)];
            if (gy_image_ref_format(&tagged, name, sizeof(name)) >= 0 &&
                oci_image_get(p->store, name, &have, NULL) == 0) {
                bool same = strcmp(have.manifest_digest, ref.digest) == 0;
                if (same) {
                    agent_registry_free(reg);
                    gy_log_warn("registry unreachable, using the stored image",
                                "image=%s manifest=%s error=\"%s\"", name, have.manifest_digest,
                                rerr.msg);
                    snprintf(out->name, sizeof(out->name), "%s", name);
                    snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s",
                             have.manifest_digest);
                    snprintf(out->resolved, sizeof(out->resolved), "%s", ref.digest);
                    out->layers = have.n_layers;
                    out->cached = true;
                }
                oci_image_free(&have);
                if (same)
                    return 0;
            }
        }
        /* Nor, for bytes named by digest, from getting them from its peers. */
        struct gy_error perr;
        if (unreachable && ref.digest[0] != '\0' && job.n_names > 0 &&
            resolve_from_peers(&job, &img, &perr) == 0) {
            gy_log_warn("registry unreachable, manifest from peers", "image=%s error=\"%s\"",
                        out->name, rerr.msg);
        } else {
            agent_registry_image_free(&img);
            agent_registry_free(reg);
            if (err != NULL)
                *err = rerr;
            return gy_error_wrap(err, "pull %s", out->name);
        }
    }
    /* Each worker makes a handle of its own, which reports the progress of its blobs. */
    agent_registry_free(reg);
    const struct agent_manifest *m = &img.manifest;
    snprintf(out->resolved, sizeof(out->resolved), "%s", img.resolved);
    snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", m->digest);
    out->layers = m->n_layers;
    out->bytes_total = m->config.size;
    for (size_t i = 0; i < m->n_layers; i++)
        out->bytes_total += m->layers[i].size;
    bool had = oci_image_get(p->store, out->name, &have, NULL) == 0;
    if (had) {
        out->cached = strcmp(have.manifest_digest, m->digest) == 0;
        oci_image_free(&have);
    }
    if (out->cached) {
        agent_registry_image_free(&img);
        return 0;
    }
    /* The manifest (and an index) are blobs of the store too, so that peers can serve a
     * reference by digest when the registry cannot be reached. */
    rc = oci_store_blob_write(p->store, m->bytes, m->len, m->digest, NULL, err);
    if (rc == 0 && img.index.kind != AGENT_MANIFEST_NONE)
        rc = oci_store_blob_write(p->store, img.index.bytes, img.index.len, img.index.digest, NULL,
                                  err);
    if (rc == 0)
        rc = job_run(&job, m, err);
    out->bytes_fetched = atomic_load(&job.bytes_registry);
    out->bytes_peers = atomic_load(&job.bytes_peers);
    if (rc == 0) {
        const char **layers = gy_xcalloc(m->n_layers + 1, sizeof(*layers));
        for (size_t i = 0; i < m->n_layers; i++)
            layers[i] = m->layers[i].digest;
        rc = oci_image_put(p->store, out->name, m->digest, m->config.digest, layers, m->n_layers,
                           NULL, 0, err);
        free(layers);
    }
    agent_registry_image_free(&img);
    if (rc < 0)
        return gy_error_wrap(err, "pull %s", out->name);
    gy_log_info("image pulled",
                "image=%s manifest=%s layers=%zu bytes=%" PRId64 " bytes_registry=%" PRId64
                " bytes_peers=%" PRId64,
                out->name, out->manifest_digest, out->layers, out->bytes_total, out->bytes_fetched,
                out->bytes_peers);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Users */

/* Opens DIR/etc/NAME of one layer without following a symlink anywhere: a layer's link
 * points into the image, not into this host. 1: opened; 0: absent; -1: a whiteout hides
 * it (lower layers do not count). */
static int layer_etc_open(const char *dir, const char *name, FILE **out)
{
    *out = NULL;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return 0;
    int efd = openat(dfd, "etc", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (efd < 0)
        return 0;
    struct stat st;
    if (fstatat(efd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        close(efd);
        return 0;
    }
    if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 0 && minor(st.st_rdev) == 0) {
        close(efd);
        return -1;
    }
    int fd = S_ISREG(st.st_mode) ? openat(efd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC) : -1;
    close(efd);
    if (fd < 0)
        return 0;
    *out = fdopen(fd, "r");
    if (*out == NULL) {
        close(fd);
        return 0;
    }
    return 1;
}

/* Looks name up in the topmost etc/FILE of the layers: the third field of its line (the
 * uid in passwd, the gid in group) and, for passwd, the fourth (the primary gid). */
static bool etc_lookup(char *const *dirs, size_t n, const char *file, const char *name,
                       uint32_t *id, uint32_t *gid)
{
    for (size_t i = n; i-- > 0;) {
        FILE *f;
        int rc = layer_etc_open(dirs[i], file, &f);
        if (rc < 0)
            return false;
        if (rc == 0)
            continue;
        char line[1024];
        bool found = false;
        for (int lines = 0; !found && lines < 100000 && fgets(line, sizeof(line), f) != NULL;
             lines++) {
            char *save = NULL;
            char *fields[4] = {0};
            char *tok = strtok_r(line, ":\n", &save);
            for (int k = 0; k < 4 && tok != NULL; k++) {
                fields[k] = tok;
                tok = strtok_r(NULL, ":\n", &save);
            }
            /* passwd: name:x:uid:gid; group: name:x:gid:members */
            if (fields[0] == NULL || fields[2] == NULL || strcmp(fields[0], name) != 0)
                continue;
            char *end;
            unsigned long v = strtoul(fields[2], &end, 10);
            if (*end != '\0' || v > UINT32_MAX)
                continue;
            *id = (uint32_t)v;
            if (gid != NULL && fields[3] != NULL) {
                unsigned long g = strtoul(fields[3], &end, 10);
                *gid = *end == '\0' && g <= UINT32_MAX ? (uint32_t)g : 0;
            }
            found = true;
        }
        fclose(f);
        return found;
    }
    return false;
}

static bool parse_id(const char *s, uint32_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*end != '\0' || errno != 0 || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

int agent_image_user(const char *user, char *const *dirs, size_t n_dirs, uint32_t *uid,
                     uint32_t *gid, struct gy_error *err)
{
    char buf[512];
    if (snprintf(buf, sizeof(buf), "%s", user) >= (int)sizeof(buf))
        return gy_error_set(err, GY_EINVAL, "image config User is too long");
    char *group = strchr(buf, ':');
    if (group != NULL)
        *group++ = '\0';
    *uid = 0;
    *gid = 0;
    bool numeric = parse_id(buf, uid);
    if (!numeric && !etc_lookup(dirs, n_dirs, "passwd", buf, uid, gid))
        return gy_error_set(err, GY_ENOTFOUND,
                            "image config User \"%s\": no such user in the image's /etc/passwd",
                            buf);
    if (group != NULL && !parse_id(group, gid) &&
        !etc_lookup(dirs, n_dirs, "group", group, gid, NULL))
        return gy_error_set(err, GY_ENOTFOUND,
                            "image config User \"%s\": no such group \"%s\" in the image's "
                            "/etc/group",
                            user, group);
    if (numeric && group == NULL) {
        /* A bare uid takes the primary group its passwd line gives, if any (as runc). */
        for (size_t i = n_dirs; i-- > 0;) {
            FILE *f;
            int rc = layer_etc_open(dirs[i], "passwd", &f);
            if (rc < 0)
                break;
            if (rc == 0)
                continue;
            char line[1024];
            for (int lines = 0; lines < 100000 && fgets(line, sizeof(line), f) != NULL; lines++) {
                unsigned u, g;
                char *p = strchr(line, ':');
                if (p != NULL && (p = strchr(p + 1, ':')) != NULL &&
                    sscanf(p + 1, "%u:%u", &u, &g) == 2 && u == *uid) {
                    *gid = g;
                    break;
                }
            }
            fclose(f);
            break;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * What a replica starts from */

static char **strv_dup(char *const *v, size_t n)
{
    char **out = gy_xcalloc(n + 1, sizeof(*out));
    for (size_t i = 0; i < n; i++)
        out[i] = gy_xstrdup(v[i]);
    return out;
}

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        free(v[i]);
    free(v);
}

void agent_image_defaults_free(struct agent_image_defaults *d)
{
    strv_free(d->entrypoint, d->n_entrypoint);
    strv_free(d->cmd, d->n_cmd);
    strv_free(d->env, d->n_env);
    strv_free(d->annotation_keys, d->n_annotations);
    strv_free(d->annotation_values, d->n_annotations);
    free((char *)d->working_dir);
    memset(d, 0, sizeof(*d));
}

static void annotation_add(struct agent_image_defaults *d, const char *key, const char *value)
{
    d->annotation_keys = gy_xrealloc(d->annotation_keys, (d->n_annotations + 1) * sizeof(char *));
    d->annotation_values =
        gy_xrealloc(d->annotation_values, (d->n_annotations + 1) * sizeof(char *));
    d->annotation_keys[d->n_annotations] = gy_xstrdup(key);
    d->annotation_values[d->n_annotations] = gy_xstrdup(value);
    d->n_annotations++;
}

/* The image config's Labels, ExposedPorts and StopSignal as the container's annotations
 * (the OCI image spec's conversion to a runtime config), and the stop signal's number. */
static void image_annotations(const struct oci_config *cfg, struct agent_image_defaults *d)
{
    for (size_t i = 0; i < cfg->n_labels; i++)
        annotation_add(d, cfg->labels[i].key, cfg->labels[i].value);
    if (cfg->n_exposed_ports > 0) {
        char ports[4096] = "";
        size_t used = 0;
        for (size_t i = 0; i < cfg->n_exposed_ports && used < sizeof(ports) - 16; i++)
            used += (size_t)snprintf(ports + used, sizeof(ports) - used, "%s%u/%s", i ? "," : "",
                                     cfg->exposed_ports[i].port, cfg->exposed_ports[i].protocol);
        annotation_add(d, "org.opencontainers.image.exposedPorts", ports);
    }
    if (cfg->stop_signal != NULL && cfg->stop_signal[0] != '\0' && cfg->stop_signo > 0) {
        annotation_add(d, "org.opencontainers.image.stopSignal", cfg->stop_signal);
        d->stop_signo = cfg->stop_signo;
    }
}

int agent_image_prepare(struct agent_puller *p, const char *name, char ***dirs, size_t *n_dirs,
                        struct agent_image_defaults *d, struct gy_error *err)
{
    memset(d, 0, sizeof(*d));
    *dirs = NULL;
    *n_dirs = 0;
    struct oci_image img;
    int rc = oci_image_get(p->store, name, &img, err);
    if (rc < 0)
        return rc;
    char *text = NULL;
    size_t len = 0;
    struct oci_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    rc = oci_store_blob_read_small(p->store, img.config_digest, OCI_CONFIG_MAX_BYTES, &text, &len,
                                   err);
    if (rc == 0)
        rc = oci_config_parse(text, len, &cfg, err);
    free(text);
    oci_image_free(&img);
    if (rc == 0)
        rc = oci_image_lowerdirs(p->store, name, dirs, n_dirs, err);
    if (rc < 0) {
        oci_config_free(&cfg);
        return gy_error_wrap(err, "image %s", name);
    }
    d->entrypoint = strv_dup(cfg.entrypoint, cfg.n_entrypoint);
    d->n_entrypoint = cfg.n_entrypoint;
    d->cmd = strv_dup(cfg.cmd, cfg.n_cmd);
    d->n_cmd = cfg.n_cmd;
    d->env = strv_dup(cfg.env, cfg.n_env);
    d->n_env = cfg.n_env;
    d->working_dir = cfg.working_dir != NULL ? gy_xstrdup(cfg.working_dir) : NULL;
    image_annotations(&cfg, d);
    if (cfg.user != NULL && cfg.user[0] != '\0') {
        rc = agent_image_user(cfg.user, *dirs, *n_dirs, &d->uid, &d->gid, err);
        d->has_user = rc == 0;
    }
    oci_config_free(&cfg);
    if (rc < 0) {
        agent_image_defaults_free(d);
        oci_strv_free(*dirs, *n_dirs);
        *dirs = NULL;
        *n_dirs = 0;
        return gy_error_wrap(err, "image %s", name);
    }
    return 0;
}
