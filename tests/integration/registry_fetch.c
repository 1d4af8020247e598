/* registry_fetch: pulls an image with the agent's registry client (agent/registry.c), for
 * tests/integration/test_registry.sh. Resolves REFERENCE, downloads the manifest (and the
 * index it came from), the config and every layer into DIR/blobs/sha256/HEX, writes
 * DIR/oci-layout and DIR/index.json, and prints one line per step:
 *
 *   resolved DIGEST                 what the tag names (an index or a manifest)
 *   index DIGEST SIZE               when it names an index
 *   platform OS/ARCH[/VARIANT]      the entry picked from the index
 *   manifest DIGEST SIZE
 *   config DIGEST SIZE [NOTE]       NOTE: resumed=N, present, range-ignored
 *   layer DIGEST SIZE [NOTE]
 *
 * With --jobs N, N threads pull the config and layers, each with a handle of its own and
 * one token cache between them. Exit status 0 on success, 1 on failure (the error on stderr), 2 on
 * bad usage, 3 when
 * --cancel-after stopped a download. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/registry.h"
#include "common/log.h"

static const char usage[] =
    "usage: registry_fetch [--config FILE] [--auth FILE] [--platform OS/ARCH[/VARIANT]]\n"
    "                      [--resolve-only] [--cancel-after BYTES] [--connect-timeout MS]\n"
    "                      [--low-speed-time S] [--jobs N] REFERENCE [DIR]\n";

static atomic_bool cancel_flag;
static int64_t cancel_after = -1;

static void on_progress(void *arg, const char *digest, int64_t done, int64_t total)
{
    (void)arg, (void)digest;
    if (cancel_after >= 0 && done >= cancel_after && done < total)
        atomic_store(&cancel_flag, true);
}

static int fail(const struct gy_error *err)
{
    fprintf(stderr, "registry_fetch: %s\n", err->msg);
    return atomic_load(&cancel_flag) ? 3 : 1;
}

static int write_file(const char *path, const void *data, size_t len, struct gy_error *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (f == NULL)
        return gy_error_sys(err, errno, "create %s", tmp);
    size_t n = fwrite(data, 1, len, f);
    if (fclose(f) != 0 || n != len)
        return gy_error_sys(err, errno, "write %s", tmp);
    if (rename(tmp, path) < 0)
        return gy_error_sys(err, errno, "rename %s", tmp);
    return 0;
}

static void blob_path(const char *dir, const char *digest, char *buf, size_t len)
{
    snprintf(buf, len, "%s/blobs/sha256/%s", dir, digest + strlen("sha256:"));
}

/* The config and layers of an image, pulled by several threads, each with a handle of
 * its own (the client's rule), sharing the options and the token cache. */
struct pull {
    const struct agent_registry_options *opts;
    const struct gy_image_ref *ref;
    const char *dir;
    const struct agent_descriptor **blobs;
    struct agent_blob_result *results;
    size_t n;
    atomic_size_t next;
    pthread_mutex_t lock;
    bool failed; /* err holds the first failure */
    struct gy_error err;
};

static void pull_failed(struct pull *p, const struct gy_error *err)
{
    pthread_mutex_lock(&p->lock);
    if (!p->failed)
        p->err = *err;
    p->failed = true;
    pthread_mutex_unlock(&p->lock);
}

static void *pull_worker(void *arg)
{
    struct pull *p = arg;
    struct agent_registry *r = NULL;
    struct gy_error err = {0};
    if (agent_registry_new(p->opts, &r, &err) < 0) {
        pull_failed(p, &err);
        return NULL;
    }
    for (;;) {
        size_t i = atomic_fetch_add(&p->next, 1);
        pthread_mutex_lock(&p->lock);
        bool stop = p->failed || i >= p->n;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            break;
        char path[4096];
        blob_path(p->dir, p->blobs[i]->digest, path, sizeof(path));
        if (agent_registry_blob_fetch(r, p->ref, p->blobs[i], path, &p->results[i], &err) < 0) {
            pull_failed(p, &err);
            break;
        }
    }
    agent_registry_free(r);
    return NULL;
}

static int pull_blobs(const struct agent_registry_options *opts, const struct gy_image_ref *ref,
                      const char *dir, const struct agent_manifest *m, int jobs,
                      struct gy_error *err)
{
    struct pull p = {.opts = opts, .ref = ref, .dir = dir, .n = m->n_layers + 1};
    p.blobs = calloc(p.n, sizeof(*p.blobs));
    p.results = calloc(p.n, sizeof(*p.results));
    pthread_t *threads = calloc((size_t)jobs, sizeof(*threads));
    if (p.blobs == NULL || p.results == NULL || threads == NULL) {
        fputs("registry_fetch: out of memory\n", stderr);
        abort();
    }
    pthread_mutex_init(&p.lock, NULL);
    p.blobs[0] = &m->config;
    for (size_t i = 0; i < m->n_layers; i++)
        p.blobs[i + 1] = &m->layers[i];
    int started = 0;
    for (; started < jobs; started++)
        if (pthread_create(&threads[started], NULL, pull_worker, &p) != 0)
            break;
    if (started == 0)
        pull_worker(&p);
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    for (size_t i = 0; i < p.n && !p.failed; i++) {
        const struct agent_blob_result *res = &p.results[i];
        printf("%s %s %" PRId64, i == 0 ? "config" : "layer", p.blobs[i]->digest, res->size);
        if (res->complete_before)
            printf(" present");
        else if (res->resumed_from > 0)
            printf(" resumed=%" PRId64, res->resumed_from);
        if (res->range_ignored)
            printf(" range-ignored");
        printf("\n");
    }
    fflush(stdout);
    int rc = 0;
    if (p.failed) {
        *err = p.err;
        rc = -(int)p.err.code;
    }
    pthread_mutex_destroy(&p.lock);
    free(threads);
    free(p.blobs);
    free(p.results);
    return rc;
}

/* DIR/oci-layout and DIR/index.json naming the image manifest, so that DIR is an OCI
 * image layout other tools can read. */
static int write_layout(const char *dir, const struct gy_image_ref *ref,
                        const struct agent_manifest *m, struct gy_error *err)
{
    char path[4096];
    static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    snprintf(path, sizeof(path), "%s/oci-layout", dir);
    int rc = write_file(path, layout, strlen(layout), err);
    if (rc < 0)
        return rc;
    json_t *desc =
        json_pack("{s:s, s:s, s:I, s:{s:s}}", "mediaType", m->media_type, "digest", m->digest,
                  "size", (json_int_t)m->len, "annotations", "org.opencontainers.image.ref.name",
                  ref->tag[0] ? ref->tag : "latest");
    json_t *index = json_pack("{s:i, s:[o]}", "schemaVersion", 2, "manifests", desc);
    char *text = json_dumps(index, JSON_COMPACT);
    json_decref(index);
    snprintf(path, sizeof(path), "%s/index.json", dir);
    rc = write_file(path, text, strlen(text), err);
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"auth", required_argument, NULL, 'a'},
        {"platform", required_argument, NULL, 'p'},
        {"resolve-only", no_argument, NULL, 'r'},
        {"cancel-after", required_argument, NULL, 'x'},
        {"connect-timeout", required_argument, NULL, 't'},
        {"low-speed-time", required_argument, NULL, 'l'},
        {"jobs", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *auth_path = NULL, *platform = NULL;
    bool resolve_only = false;
    int jobs = 1;
    struct agent_registry_options opts = {0};
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'a':
            auth_path = optarg;
            break;
        case 'p':
            platform = optarg;
            break;
        case 'r':
            resolve_only = true;
            break;
        case 'x':
            cancel_after = strtoll(optarg, NULL, 10);
            break;
        case 't':
            opts.connect_timeout_ms = strtol(optarg, NULL, 10);
            break;
        case 'l':
            opts.low_speed_time_s = strtol(optarg, NULL, 10);
            break;
        case 'j':
            jobs = atoi(optarg);
            if (jobs < 1 || jobs > 64) {
                fputs(usage, stderr);
                return 2;
            }
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        default:
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind >= argc || argc - optind > 2 || (!resolve_only && argc - optind != 2)) {
        fputs(usage, stderr);
        return 2;
    }
    const char *reference = argv[optind], *dir = argv[optind + 1];
    gy_log_init("registry_fetch", GY_LOG_INFO);

    struct gy_error err = {0};
    struct gy_image_ref ref;
    struct agent_registry_config config = {0};
    struct agent_registry_auth *auth = NULL;
    struct agent_platform plat;
    struct agent_registry *r = NULL;
    struct agent_token_cache *tokens = NULL;
    struct agent_registry_image img = {0};
    int status = 1;
    if (gy_image_ref_parse(reference, &ref, &err) < 0)
        goto out;
    if (config_path != NULL && agent_registry_config_load(config_path, &config, &err) < 0)
        goto out;
    if (auth_path == NULL)
        auth_path = config.auth_file;
    if (auth_path != NULL && agent_registry_auth_load(auth_path, &auth, &err) < 0)
        goto out;
    if (platform != NULL) {
        if (agent_platform_parse(platform, &plat, &err) < 0)
            goto out;
        opts.platform = &plat;
    }
    opts.config = &config;
    opts.auth = auth;
    opts.tokens = tokens = agent_token_cache_new();
    opts.cancel = &cancel_flag;
    opts.progress = on_progress;
    if (agent_registry_new(&opts, &r, &err) < 0)
        goto out;
    if (agent_registry_ping(r, ref.domain, &err) < 0)
        goto out;
    if (agent_registry_resolve(r, &ref, &img, &err) < 0)
        goto out;
    char name[GY_IMAGE_REF_MAX + 32];
    gy_image_ref_format(&ref, name, sizeof(name));
    printf("reference %s\nresolved %s\n", name, img.resolved);
    if (img.index.kind != AGENT_MANIFEST_NONE) {
        char p[96];
        agent_platform_format(&img.platform, p, sizeof(p));
        printf("index %s %zu\nplatform %s\n", img.index.digest, img.index.len, p);
    }
    printf("manifest %s %zu\n", img.manifest.digest, img.manifest.len);
    fflush(stdout);
    if (resolve_only) {
        status = 0;
        goto out;
    }

    char path[4096];
    static const char *const subdirs[] = {"", "/blobs", "/blobs/sha256"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s%s", dir, subdirs[i]);
        if (mkdir(path, 0755) < 0 && errno != EEXIST) {
            gy_error_sys(&err, errno, "mkdir %s", path);
            goto out;
        }
    }
    if (img.index.kind != AGENT_MANIFEST_NONE) {
        blob_path(dir, img.index.digest, path, sizeof(path));
        if (write_file(path, img.index.bytes, img.index.len, &err) < 0)
            goto out;
    }
    blob_path(dir, img.manifest.digest, path, sizeof(path));
    if (write_file(path, img.manifest.bytes, img.manifest.len, &err) < 0)
        goto out;
    if (pull_blobs(&opts, &ref, dir, &img.manifest, jobs, &err) < 0)
        goto out;
    if (write_layout(dir, &ref, &img.manifest, &err) < 0)
        goto out;
    status = 0;
out:
    if (status != 0 && err.msg[0] != '\0')
        status = fail(&err);
    agent_registry_image_free(&img);
    agent_registry_free(r);
    agent_token_cache_free(tokens);
    agent_registry_auth_free(auth);
    agent_registry_config_free(&config);
    return status;
}
