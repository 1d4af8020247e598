/* gantry cluster: status, members, remove, transfer-leader and snapshot save
 * (docs/cli.md, docs/operations.md "Membership", "Backup"). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "ctl/ctl.h"
#include "proto/gantry.pb-c.h"

/* The snapshot header block (scheduler/state/fsm.c): magic "GYS1", the length of the
 * SnapshotHeader that follows, the header, zero padding to a multiple of 8. */
#define SNAPSHOT_MAGIC        0x31535947u
#define SNAPSHOT_FORMAT       1
#define SNAPSHOT_TIMEOUT_MS   600000L
#define MEMBER_ASK_TIMEOUT_MS 2000L

/* ---------------------------------------------------------------------------------------
 * Arguments */

static const char *const subcommands[] = {"status", "members", "remove", "transfer-leader",
                                          "snapshot"};

static int parse_id(const char *sub, const char *word, uint64_t *id, struct gy_error *err)
{
    char *end;
    if (*word < '0' || *word > '9')
        return gy_error_set(err, GY_EINVAL,
                            "cluster %s: \"%s\" is not a server id (a positive whole number)", sub,
                            word);
    errno = 0;
    unsigned long long v = strtoull(word, &end, 10);
    if (*end != '\0' || v == 0 || errno != 0 || v > INT64_MAX)
        return gy_error_set(err, GY_EINVAL,
                            "cluster %s: \"%s\" is not a server id (a positive whole number)", sub,
                            word);
    *id = v;
    return 0;
}

static int surplus(const struct ctl_invocation *inv, size_t allowed, const char *usage,
                   struct gy_error *err)
{
    if (inv->n_args <= allowed)
        return 0;
    return gy_error_set(err, GY_EINVAL, "cluster %s: unexpected argument \"%s\" (usage: gantry %s)",
                        inv->args[0], inv->args[allowed], usage);
}

int ctl_cluster_parse(const struct ctl_invocation *inv, struct ctl_cluster_request *req,
                      struct gy_error *err)
{
    memset(req, 0, sizeof(*req));
    if (inv->n_args == 0)
        return gy_error_set(err, GY_EINVAL,
                            "cluster: missing subcommand (status, members, remove, "
                            "transfer-leader or snapshot)");
    const char *sub = inv->args[0];
    const char *output = ctl_opt(inv, "output");
    if (output != NULL) {
        if (strcmp(output, "json") != 0)
            return gy_error_set(err, GY_EINVAL, "cluster: unknown output format \"%s\" (only json)",
                                output);
        if (strcmp(sub, "status") != 0 && strcmp(sub, "members") != 0)
            return gy_error_set(err, GY_EINVAL,
                                "cluster %s: -o json goes with cluster status and cluster members",
                                sub);
        req->json = true;
    }
    if (strcmp(sub, "status") == 0) {
        req->op = CTL_CLUSTER_STATUS;
        return surplus(inv, 1, "cluster status", err);
    }
    if (strcmp(sub, "members") == 0) {
        req->op = CTL_CLUSTER_MEMBERS;
        return surplus(inv, 1, "cluster members", err);
    }
    if (strcmp(sub, "remove") == 0) {
        req->op = CTL_CLUSTER_REMOVE;
        if (inv->n_args < 2)
            return gy_error_set(err, GY_EINVAL,
                                "cluster remove: missing the server id (usage: gantry cluster "
                                "remove ID)");
        if (parse_id(sub, inv->args[1], &req->id, err) < 0)
            return -GY_EINVAL;
        return surplus(inv, 2, "cluster remove ID", err);
    }
    if (strcmp(sub, "transfer-leader") == 0) {
        req->op = CTL_CLUSTER_TRANSFER;
        if (inv->n_args >= 2 && parse_id(sub, inv->args[1], &req->id, err) < 0)
            return -GY_EINVAL;
        return surplus(inv, 2, "cluster transfer-leader [ID]", err);
    }
    if (strcmp(sub, "snapshot") == 0) {
        req->op = CTL_CLUSTER_SNAPSHOT_SAVE;
        if (inv->n_args < 2)
            return gy_error_set(err, GY_EINVAL,
                                "cluster snapshot: missing the action (usage: gantry cluster "
                                "snapshot save FILE)");
        if (strcmp(inv->args[1], "save") != 0)
            return gy_error_set(err, GY_EINVAL,
                                "cluster snapshot: unknown action \"%s\"; the only one is "
                                "\"save\" (usage: gantry cluster snapshot save FILE)",
                                inv->args[1]);
        if (inv->n_args < 3 || *inv->args[2] == '\0')
            return gy_error_set(err, GY_EINVAL,
                                "cluster snapshot save: missing the file to write (usage: gantry "
                                "cluster snapshot save FILE)");
        req->file = inv->args[2];
        return surplus(inv, 3, "cluster snapshot save FILE", err);
    }
    gy_error_set(err, GY_EINVAL, "cluster: unknown subcommand \"%s\"", sub);
    const char *best =
        gy_spec_suggest(sub, subcommands, sizeof(subcommands) / sizeof(subcommands[0]));
    if (best != NULL) {
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof(err->msg) - len, "; did you mean \"%s\"?", best);
    }
    return -GY_EINVAL;
}

/* ---------------------------------------------------------------------------------------
 * Output */

const char *ctl_size_format(uint64_t bytes, char buf[32])
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, 32, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024.0;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, 32, "%.1f %s", v, units[u]);
    return buf;
}

void ctl_members_print(const json_t *members, const long long *applied, FILE *out)
{
    fprintf(out, "Cluster:  %s\n", ctl_json_str(members, "cluster_id"));
    fprintf(out, "Leader:   server %lld (term %lld, commit %lld)\n",
            ctl_json_int(members, "leader"), ctl_json_int(members, "term"),
            ctl_json_int(members, "commit_index"));
    static const char *const head[] = {"ID",  "ROLE",  "STATE", "LEADER", "RAFT",
                                       "API", "AGENT", "MATCH", "APPLIED"};
    struct ctl_table t;
    ctl_table_init(&t, 9, head);
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(members, "servers"), i, s)
    {
        bool leader = json_is_true(json_object_get(s, "leader"));
        const char *api = ctl_json_str(s, "api_address");
        const char *agent = ctl_json_str(s, "agent_address");
        char *cells[9] = {
            ctl_cell("%lld", ctl_json_int(s, "id")),
            gy_xstrdup(ctl_json_str(s, "role")),
            gy_xstrdup(ctl_json_str(s, "state")),
            gy_xstrdup(leader ? "*" : ""),
            gy_xstrdup(ctl_json_str(s, "address")),
            gy_xstrdup(*api ? api : "<none>"),
            gy_xstrdup(*agent ? agent : "<none>"),
            ctl_cell("%lld", ctl_json_int(s, "match_index")),
            applied != NULL && applied[i] >= 0 ? ctl_cell("%lld", applied[i]) : gy_xstrdup("-"),
        };
        ctl_table_add(&t, (const char *const *)cells);
        for (int k = 0; k < 9; k++)
            free(cells[k]);
    }
    ctl_table_print(&t, out);
    ctl_table_free(&t);
}

/* ---------------------------------------------------------------------------------------
 * Snapshot files */

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ctl_snapshot_info(const void *data, size_t len, struct ctl_snapshot_info *info,
                      struct gy_error *err)
{
    const uint8_t *buf = data;
    memset(info, 0, sizeof(*info));
    if (len < 8 || get_u32(buf) != SNAPSHOT_MAGIC)
        return gy_error_set(err, GY_EPROTO, "it has no Gantry snapshot header");
    size_t packed = get_u32(buf + 4);
    if (packed > len - 8)
        return gy_error_set(err, GY_EPROTO, "its header of %zu bytes is cut short", packed);
    size_t header_len = (8 + packed + 7) & ~(size_t)7;
    Gantry__SnapshotHeader *header = gantry__snapshot_header__unpack(NULL, packed, buf + 8);
    if (header == NULL)
        return gy_error_set(err, GY_EPROTO, "its header does not decode");
    uint32_t format = header->format;
    info->index = header->applied_index;
    info->database_bytes = header->database_bytes;
    snprintf(info->cluster_id, sizeof(info->cluster_id), "%s",
             header->cluster_id ? header->cluster_id : "");
    gantry__snapshot_header__free_unpacked(header, NULL);
    if (format != SNAPSHOT_FORMAT)
        return gy_error_set(err, GY_EPROTO, "it is not a snapshot image (format %u)", format);
    if (header_len > len || info->database_bytes != len - header_len)
        return gy_error_set(err, GY_EPROTO,
                            "it holds %zu database bytes where its header says %" PRIu64,
                            len >= header_len ? len - header_len : 0, info->database_bytes);
    if (info->database_bytes < 16 || memcmp(buf + header_len, "SQLite format 3", 16) != 0)
        return gy_error_set(err, GY_EPROTO, "the bytes after its header are not a database");
    return 0;
}

int ctl_file_write_atomic(const char *path, const void *data, size_t len, struct gy_error *err)
{
    cleanup_free char *tmp = gy_xasprintf("%s.tmp-%ld", path, (long)getpid());
    cleanup_free char *dir = gy_xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL)
        snprintf(dir, strlen(dir) + 1, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return gy_error_sys(err, errno, "create %s", tmp);
    const uint8_t *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int rc = gy_error_sys(err, n < 0 ? errno : EIO, "write %s", tmp);
            close(fd);
            unlink(tmp);
            return rc;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0) {
        int rc = gy_error_sys(err, errno, "sync %s", tmp);
        close(fd);
        unlink(tmp);
        return rc;
    }
    if (close(fd) < 0) {
        int rc = gy_error_sys(err, errno, "close %s", tmp);
        unlink(tmp);
        return rc;
    }
    if (rename(tmp, path) < 0) {
        int rc = gy_error_sys(err, errno, "rename %s to %s", tmp, path);
        unlink(tmp);
        return rc;
    }
    cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0 && fsync(dfd) < 0)
        return gy_error_sys(err, errno, "sync directory %s", dir);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The subcommands */

static int cluster_status(struct ctl_context *ctx, bool json)
{
    json_t *doc;
    struct gy_error err;
    if (ctl_get_json(&ctx->client, "/v1/cluster", &doc, &err) < 0)
        return ctl_fail(ctx, &err);
    long long leader = ctl_json_int(doc, "leader");
    if (json) {
        ctl_json_print(doc, ctx->out);
        json_decref(doc);
        return leader != 0 ? CTL_EXIT_OK : CTL_EXIT_FAILED;
    }
    fprintf(ctx->out, "Cluster:   %s\n", ctl_json_str(doc, "cluster_id"));
    fprintf(ctx->out, "Answered:  server %lld (%s)\n", ctl_json_int(doc, "id"),
            ctl_json_str(doc, "state"));
    const char *leader_api = ctl_json_str(doc, "leader_api_address");
    if (leader != 0 && *leader_api != '\0')
        fprintf(ctx->out, "Leader:    server %lld (API %s)\n", leader, leader_api);
    else if (leader != 0)
        fprintf(ctx->out, "Leader:    server %lld\n", leader);
    else
        fprintf(ctx->out, "Leader:    none\n");
    fprintf(ctx->out, "Term:      %lld\n", ctl_json_int(doc, "term"));
    fprintf(ctx->out, "Commit:    %lld (applied %lld, last %lld)\n",
            ctl_json_int(doc, "commit_index"), ctl_json_int(doc, "applied_index"),
            ctl_json_int(doc, "last_index"));
    fprintf(ctx->out, "Servers:\n");
    static const char *const head[] = {"ID", "STATE", "ROLE", "RAFT", "API", "AGENT"};
    struct ctl_table t;
    ctl_table_init(&t, 6, head);
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(doc, "servers"), i, s)
    {
        char *cells[6] = {
            ctl_cell("%lld", ctl_json_int(s, "id")),
            gy_xstrdup(ctl_json_str(s, "state")),
            gy_xstrdup(ctl_json_str(s, "role")),
            gy_xstrdup(ctl_json_str(s, "address")),
            gy_xstrdup(*ctl_json_str(s, "api_address") ? ctl_json_str(s, "api_address") : "<none>"),
            gy_xstrdup(*ctl_json_str(s, "agent_address") ? ctl_json_str(s, "agent_address")
                                                         : "<none>")};
        ctl_table_add(&t, (const char *const *)cells);
        for (int k = 0; k < 6; k++)
            free(cells[k]);
    }
    ctl_table_print_indent(&t, "  ", ctx->out);
    ctl_table_free(&t);
    json_decref(doc);
    if (leader == 0) {
        fprintf(ctx->err, "gantry: the control plane has no leader at the moment\n");
        return CTL_EXIT_FAILED;
    }
    return CTL_EXIT_OK;
}

/* The applied index server id reports itself at its API address, or -1 when it does not
 * answer at once (a member that is down is shown as such, not waited for). */
static long long member_applied(const char *api_address, long long id)
{
    struct ctl_client client;
    struct gy_error err;
    if (*api_address == '\0' || ctl_client_init(&client, api_address, &err) < 0)
        return -1;
    client.retries = 0;
    struct ctl_response resp;
    long long applied = -1;
    if (ctl_client_request(&client, "GET", "/v1/cluster", NULL, MEMBER_ASK_TIMEOUT_MS, &resp,
                           &err) == 0) {
        if (resp.status == 200 && ctl_json_int(resp.json, "id") == id)
            applied = ctl_json_int(resp.json, "applied_index");
        ctl_response_free(&resp);
    }
    ctl_client_free(&client);
    return applied;
}

static int cluster_members(struct ctl_context *ctx, bool json)
{
    json_t *doc;
    struct gy_error err;
    if (ctl_get_json(&ctx->client, "/v1/cluster/members", &doc, &err) < 0)
        return ctl_fail(ctx, &err);
    json_t *servers = json_object_get(doc, "servers");
    size_t n = json_array_size(servers);
    long long *applied = gy_xcalloc(n ? n : 1, sizeof(*applied));
    for (size_t i = 0; i < n; i++) {
        const json_t *s = json_array_get(servers, i);
        if (json_is_true(json_object_get(s, "leader")))
            applied[i] = ctl_json_int(doc, "applied_index");
        else
            applied[i] = member_applied(ctl_json_str(s, "api_address"), ctl_json_int(s, "id"));
        if (json)
            json_object_set_new((json_t *)s, "applied_index",
                                applied[i] >= 0 ? json_integer(applied[i]) : json_null());
    }
    if (json)
        ctl_json_print(doc, ctx->out);
    else
        ctl_members_print(doc, applied, ctx->out);
    free(applied);
    json_decref(doc);
    return CTL_EXIT_OK;
}

static int cluster_remove(struct ctl_context *ctx, uint64_t id)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/cluster/members/%" PRIu64, id);
    json_t *answer;
    int exit_code;
    if (ctl_write_request(ctx, "DELETE", path, NULL, &answer, &exit_code) < 0)
        return exit_code;
    fprintf(ctx->out,
            "server %" PRIu64 " removed from the cluster; stop it now (until it stops it keeps "
            "asking for votes, which the others ignore)\n",
            id);
    json_decref(answer);
    return CTL_EXIT_OK;
}

static int cluster_transfer(struct ctl_context *ctx, uint64_t id)
{
    json_t *body = id != 0 ? json_pack("{s:I}", "to", (json_int_t)id) : json_object();
    json_t *answer;
    int exit_code;
    int rc = ctl_write_request(ctx, "POST", "/v1/cluster/leader", body, &answer, &exit_code);
    json_decref(body);
    if (rc < 0)
        return exit_code;
    if (json_is_true(json_object_get(answer, "transferred")))
        fprintf(ctx->out, "leadership moved from server %lld to server %lld (term %lld)\n",
                ctl_json_int(answer, "previous"), ctl_json_int(answer, "leader"),
                ctl_json_int(answer, "term"));
    else
        fprintf(ctx->out, "server %lld already leads the cluster\n",
                ctl_json_int(answer, "leader"));
    json_decref(answer);
    return CTL_EXIT_OK;
}

static int cluster_snapshot_save(struct ctl_context *ctx, const char *file)
{
    struct ctl_response resp;
    struct gy_error err;
    if (ctl_client_request(&ctx->client, "GET", "/v1/cluster/snapshot", NULL, SNAPSHOT_TIMEOUT_MS,
                           &resp, &err) < 0)
        return ctl_fail(ctx, &err);
    if (resp.status != 200) {
        ctl_response_error(&resp, &err);
        ctl_response_free(&resp);
        return ctl_fail(ctx, &err);
    }
    struct ctl_snapshot_info info;
    if (ctl_snapshot_info(resp.body, resp.len, &info, &err) < 0) {
        gy_error_wrap(&err, "the server's answer is not a snapshot image (nothing was written)");
        ctl_response_free(&resp);
        return ctl_fail(ctx, &err);
    }
    if (ctl_file_write_atomic(file, resp.body, resp.len, &err) < 0) {
        gy_error_wrap(&err, "snapshot save");
        ctl_response_free(&resp);
        return ctl_fail(ctx, &err);
    }
    char size[32];
    fprintf(ctx->out, "snapshot of cluster %s at index %" PRIu64 " saved to %s (%s, %zu bytes)\n",
            *info.cluster_id ? info.cluster_id : "(unnamed)", info.index, file,
            ctl_size_format(resp.len, size), resp.len);
    ctl_response_free(&resp);
    return CTL_EXIT_OK;
}

int ctl_cmd_cluster(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    struct ctl_cluster_request req;
    struct gy_error err;
    if (ctl_cluster_parse(inv, &req, &err) < 0) {
        fprintf(ctx->err, "gantry: %s\nRun 'gantry cluster --help' for usage.\n", err.msg);
        return CTL_EXIT_USAGE;
    }
    switch (req.op) {
    case CTL_CLUSTER_STATUS:
        return cluster_status(ctx, req.json);
    case CTL_CLUSTER_MEMBERS:
        return cluster_members(ctx, req.json);
    case CTL_CLUSTER_REMOVE:
        return cluster_remove(ctx, req.id);
    case CTL_CLUSTER_TRANSFER:
        return cluster_transfer(ctx, req.id);
    case CTL_CLUSTER_SNAPSHOT_SAVE:
        return cluster_snapshot_save(ctx, req.file);
    }
    return CTL_EXIT_USAGE;
}
