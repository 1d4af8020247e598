/* gantry image ls|pull|rm and gantry get images: the images the nodes hold, as their
 * agents report them to the leader, and pulls and removals on chosen nodes (docs/cli.md,
 * "image"). */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/image_ref.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "ctl/ctl.h"

/* The leader waits 10 minutes for a node's pull; the client a little longer, so that the
 * leader's answer (which names the nodes that did not finish) arrives. */
#define PULL_TIMEOUT_MS (11L * 60 * 1000)
#define RM_TIMEOUT_MS   (70L * 1000)

/* The OCI annotations (and config labels) -o wide shows, one column each. */
static const char *const wide_labels[] = {"source", "revision", "created",
                                          "vendor", "licenses", "authors"};
static const char *const wide_heads[] = {"SOURCE", "REVISION", "CREATED",
                                         "VENDOR", "LICENSES", "AUTHORS"};
#define N_WIDE (sizeof(wide_labels) / sizeof(wide_labels[0]))

char *ctl_digest_short(const char *digest)
{
    if (digest == NULL || *digest == '\0')
        return gy_xstrdup("<none>");
    const char *hex = strchr(digest, ':');
    hex = hex != NULL ? hex + 1 : digest;
    return gy_xasprintf("%.12s", hex);
}

/* The NODES cell: the names, or their count when there are more than three. */
static char *nodes_cell(const json_t *nodes)
{
    size_t n = json_array_size(nodes);
    if (n > 3)
        return gy_xasprintf("%zu nodes", n);
    char *out = gy_xstrdup("");
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(nodes, i));
        char *next = gy_xasprintf("%s%s%s", out, i ? "," : "", name != NULL ? name : "");
        free(out);
        out = next;
    }
    return out;
}

void ctl_images_print(const json_t *items, bool wide, FILE *out)
{
    const char *head[4 + N_WIDE] = {"NAME", "DIGEST", "SIZE", "NODES"};
    for (size_t c = 0; c < N_WIDE; c++)
        head[4 + c] = wide_heads[c];
    size_t cols = wide ? 4 + N_WIDE : 4;
    struct ctl_table t;
    ctl_table_init(&t, cols, head);
    size_t i;
    const json_t *img;
    json_array_foreach(items, i, img)
    {
        char size[32];
        long long bytes = ctl_json_int(img, "size");
        char *cells[4 + N_WIDE] = {
            gy_xstrdup(ctl_json_str(img, "name")),
            ctl_digest_short(ctl_json_str(img, "digest")),
            gy_xstrdup(ctl_size_format(bytes > 0 ? (uint64_t)bytes : 0, size)),
            nodes_cell(json_object_get(img, "nodes")),
        };
        const json_t *labels = json_object_get(img, "labels");
        for (size_t c = 0; c < N_WIDE; c++) {
            char key[64];
            snprintf(key, sizeof(key), "org.opencontainers.image.%s", wide_labels[c]);
            const char *v = ctl_json_str(labels, key);
            cells[4 + c] = *v != '\0' ? gy_xstrdup(v) : NULL;
        }
        ctl_table_add(&t, (const char *const *)cells);
        for (size_t c = 0; c < 4 + N_WIDE; c++)
            free(cells[c]);
    }
    ctl_table_print(&t, out);
    ctl_table_free(&t);
}

int ctl_image_pull_print(const json_t *answer, FILE *out)
{
    static const char *const head[] = {"NODE",          "DIGEST",     "SIZE",
                                       "FROM REGISTRY", "FROM PEERS", "RESULT"};
    struct ctl_table t;
    ctl_table_init(&t, 6, head);
    size_t i, failed = 0;
    const json_t *r;
    json_array_foreach(json_object_get(answer, "results"), i, r)
    {
        const char *error = ctl_json_str(r, "error");
        char a[32], b[32], c[32];
        bool ok = *error == '\0';
        failed += !ok;
        char *cells[6] = {
            gy_xstrdup(ctl_json_str(r, "node")),
            ok ? gy_xstrdup(ctl_json_str(r, "digest")) : gy_xstrdup("-"),
            ok ? gy_xstrdup(ctl_size_format((uint64_t)ctl_json_int(r, "size"), a))
               : gy_xstrdup("-"),
            ok ? gy_xstrdup(ctl_size_format((uint64_t)ctl_json_int(r, "bytes_registry"), b))
               : gy_xstrdup("-"),
            ok ? gy_xstrdup(ctl_size_format((uint64_t)ctl_json_int(r, "bytes_peers"), c))
               : gy_xstrdup("-"),
            ok ? gy_xstrdup("pulled") : gy_xasprintf("failed: %s", error),
        };
        ctl_table_add(&t, (const char *const *)cells);
        for (size_t k = 0; k < 6; k++)
            free(cells[k]);
    }
    ctl_table_print(&t, out);
    ctl_table_free(&t);
    return failed > 0 || ctl_json_int(answer, "failed") > 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}

/* Keeps the images called name, as written or as its normalised reference. */
static void filter_name(json_t *items, const char *name)
{
    char normal[GY_IMAGE_REF_MAX + 32] = "";
    struct gy_image_ref ref;
    if (gy_image_ref_parse(name, &ref, NULL) == 0)
        gy_image_ref_format(&ref, normal, sizeof(normal));
    for (size_t i = json_array_size(items); i-- > 0;) {
        const char *have = ctl_json_str(json_array_get(items, i), "name");
        if (strcmp(have, name) != 0 && strcmp(have, normal) != 0)
            json_array_remove(items, i);
    }
}

int ctl_images_get(struct ctl_context *ctx, const char *node, const char *format, const char *name)
{
    static const char *const formats[] = {"table", "wide", "json", "yaml", "name"};
    size_t f = 0;
    if (format != NULL) {
        while (f < 5 && strcmp(format, formats[f]) != 0)
            f++;
        if (f == 5) {
            const char *best = gy_spec_suggest(format, formats, 5);
            fprintf(ctx->err,
                    "gantry: images: unknown output format \"%s\" (wide, json, yaml or "
                    "name)",
                    format);
            if (best != NULL)
                fprintf(ctx->err, "; did you mean \"%s\"?", best);
            fputc('\n', ctx->err);
            return CTL_EXIT_USAGE;
        }
    }
    char *path = ctl_path("/v1/images", "?node=", node);
    json_t *doc;
    struct gy_error err;
    int rc = ctl_get_json(&ctx->client, path, &doc, &err);
    free(path);
    if (rc < 0)
        return ctl_fail(ctx, &err);
    json_t *items = json_object_get(doc, "items");
    if (!json_is_array(items)) {
        json_decref(doc);
        fprintf(ctx->err, "gantry: the server's answer has no \"items\" list\n");
        return CTL_EXIT_FAILED;
    }
    if (name != NULL) {
        filter_name(items, name);
        if (json_array_size(items) == 0) {
            json_decref(doc);
            fprintf(ctx->err, "gantry: image \"%s\" not found%s%s\n", name,
                    node != NULL ? " on node " : "", node != NULL ? node : "");
            return CTL_EXIT_FAILED;
        }
    }
    switch (f) {
    case 2:
        ctl_json_print(doc, ctx->out);
        break;
    case 3:
        ctl_yaml_print(items, ctx->out);
        break;
    case 4: {
        size_t i;
        json_t *img;
        json_array_foreach(items, i, img)
        {
            fprintf(ctx->out, "%s\n", ctl_json_str(img, "name"));
        }
        break;
    }
    default:
        if (json_array_size(items) == 0)
            fprintf(ctx->err, "No images found.\n");
        else
            ctl_images_print(items, f == 1, ctx->out);
        break;
    }
    json_decref(doc);
    return CTL_EXIT_OK;
}

static int usage(struct ctl_context *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage(struct ctl_context *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(ctx->err, "gantry: image: ");
    vfprintf(ctx->err, fmt, ap);
    va_end(ap);
    fprintf(ctx->err, "\nRun 'gantry image --help' for usage.\n");
    return CTL_EXIT_USAGE;
}

/* Sends a request whose answer may take long and reads its JSON; prints the failure and
 * returns its exit status, or 0 with *answer. */
static int image_post(struct ctl_context *ctx, const char *path, json_t *body, long timeout_ms,
                      json_t **answer)
{
    struct ctl_response resp;
    struct gy_error err;
    *answer = NULL;
    int rc = ctl_client_request(&ctx->client, "POST", path, body, timeout_ms, &resp, &err);
    json_decref(body);
    if (rc < 0)
        return ctl_fail(ctx, &err);
    if (resp.status < 200 || resp.status >= 300) {
        ctl_response_error(&resp, &err);
        ctl_response_free(&resp);
        return ctl_fail(ctx, &err);
    }
    *answer = resp.json != NULL ? json_incref(resp.json) : json_object();
    ctl_response_free(&resp);
    return CTL_EXIT_OK;
}

int ctl_cmd_image(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    static const char *const subs[] = {"ls", "pull", "rm"};
    const char *sub = inv->args[0];
    const char *node = ctl_opt(inv, "node"), *cloud = ctl_opt(inv, "cloud");
    const char *ref = inv->n_args > 1 ? inv->args[1] : NULL;
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0) {
        if (cloud != NULL)
            return usage(ctx, "ls: --cloud %s does not filter a listing; use --node", cloud);
        return ctl_images_get(ctx, node, ctl_opt(inv, "output"), ref);
    }
    if (strcmp(sub, "pull") != 0 && strcmp(sub, "rm") != 0) {
        const char *best = gy_spec_suggest(sub, subs, 3);
        fprintf(ctx->err, "gantry: image: unknown subcommand \"%s\" (ls, pull or rm)", sub);
        if (best != NULL)
            fprintf(ctx->err, "; did you mean \"%s\"?", best);
        fprintf(ctx->err, "\nRun 'gantry image --help' for usage.\n");
        return CTL_EXIT_USAGE;
    }
    bool pull = strcmp(sub, "pull") == 0;
    if (ctl_opt(inv, "output") != NULL)
        return usage(ctx, "%s: -o is for image ls", sub);
    if (ref == NULL)
        return usage(ctx, "%s: missing the image reference (usage: gantry %s)", sub,
                     inv->command->usage);
    struct gy_error err;
    struct gy_image_ref parsed;
    if (gy_image_ref_parse(ref, &parsed, &err) < 0 &&
        (pull || gy_image_local_name_check(ref, NULL) < 0))
        return usage(ctx, "%s", err.msg);
    if (node != NULL && cloud != NULL)
        return usage(ctx, "%s: give --node or --cloud, not both", sub);
    if (!pull && cloud != NULL)
        return usage(ctx, "%s: --cloud is for image pull; rm takes --node", sub);
    if (!pull && node == NULL)
        return usage(ctx, "%s: --node NODE is required (the node to remove the image from)", sub);
    json_t *body = json_pack("{s:s}", "ref", ref);
    if (node != NULL)
        json_object_set_new(body, "node", json_string(node));
    if (cloud != NULL)
        json_object_set_new(body, "cloud", json_string(cloud));
    json_t *answer;
    int rc = image_post(ctx, pull ? "/v1/images/pull" : "/v1/images/rm", body,
                        pull ? PULL_TIMEOUT_MS : RM_TIMEOUT_MS, &answer);
    if (rc != CTL_EXIT_OK)
        return rc;
    if (pull)
        rc = ctl_image_pull_print(answer, ctx->out);
    else
        fprintf(ctx->out, "image %s removed from node %s\n", ref, node);
    json_decref(answer);
    return rc;
}
