/* gantry cluster: status, members, verify, remove, transfer-leader, snapshot save and
 * join-token (docs/cli.md, docs/operations.md "Membership", "Backup"). */
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
/* A check waits for voters that have not applied its entry yet (up to 20 rounds, each up to
 * a 2 s question), so it may take far longer than an ordinary request. */
#define VERIFY_TIMEOUT_MS 120000L

/* ---------------------------------------------------------------------------------------
 * Arguments */

static const char *const subcommands[] = {"status",          "members",  "verify",    "remove",
                                          "transfer-leader", "snapshot", "join-token"};

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

/* A host name or IPv4 address a command line can carry as it is (gantry-scheduler takes
 * HOST:PORT addresses). */
static bool valid_host(const char *host)
{
    size_t n = strlen(host);
    if (n == 0 || n > 253 || *host == '-' || *host == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') &&
            c != '-' && c != '.')
            return false;
    }
    return true;
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
                            "cluster: missing subcommand (status, members, verify, remove, "
                            "transfer-leader, snapshot or join-token)");
    const char *sub = inv->args[0];
    const char *output = ctl_opt(inv, "output");
    if (output != NULL) {
        if (strcmp(output, "json") != 0)
            return gy_error_set(err, GY_EINVAL, "cluster: unknown output format \"%s\" (only json)",
                                output);
        if (strcmp(sub, "status") != 0 && strcmp(sub, "members") != 0 && strcmp(sub, "verify") != 0)
            return gy_error_set(err, GY_EINVAL,
                                "cluster %s: -o json goes with cluster status, members and verify",
                                sub);
        req->json = true;
    }
    const char *role = ctl_opt(inv, "role");
    bool quiet = ctl_opt_set(inv, "quiet");
    const char *host = ctl_opt(inv, "host");
    if ((role != NULL || quiet || host != NULL) && strcmp(sub, "join-token") != 0)
        return gy_error_set(err, GY_EINVAL, "cluster %s: %s goes with cluster join-token", sub,
                            role != NULL   ? "--role"
                            : host != NULL ? "--host"
                                           : "-q");
    const char *data_dir = ctl_opt(inv, "data-dir");
    const char *server_id = ctl_opt(inv, "id");
    const char *raft_addr = ctl_opt(inv, "raft-addr");
    bool keep = ctl_opt_set(inv, "keep-cluster-id");
    bool restore =
        strcmp(sub, "snapshot") == 0 && inv->n_args >= 2 && strcmp(inv->args[1], "restore") == 0;
    if ((data_dir != NULL || server_id != NULL || raft_addr != NULL || keep) && !restore)
        return gy_error_set(err, GY_EINVAL, "cluster %s: %s goes with cluster snapshot restore",
                            sub,
                            data_dir != NULL    ? "--data-dir"
                            : server_id != NULL ? "--id"
                            : raft_addr != NULL ? "--raft-addr"
                                                : "--keep-cluster-id");
    if (strcmp(sub, "status") == 0) {
        req->op = CTL_CLUSTER_STATUS;
        return surplus(inv, 1, "cluster status", err);
    }
    if (strcmp(sub, "members") == 0) {
        req->op = CTL_CLUSTER_MEMBERS;
        return surplus(inv, 1, "cluster members", err);
    }
    if (strcmp(sub, "verify") == 0) {
        req->op = CTL_CLUSTER_VERIFY;
        return surplus(inv, 1, "cluster verify", err);
    }
    if (strcmp(sub, "join-token") == 0) {
        req->op = CTL_CLUSTER_JOIN_TOKEN;
        req->quiet = quiet;
        if (host != NULL && !valid_host(host))
            return gy_error_set(err, GY_EINVAL,
                                "cluster join-token: --host \"%s\" is not a host name or IPv4 "
                                "address (letters, digits, '-' and '.', up to 253 characters)",
                                host);
        if (host != NULL && role != NULL && strcmp(role, "node") == 0)
            return gy_error_set(err, GY_EINVAL,
                                "cluster join-token: --host names a new server's address; it does "
                                "not go with --role node");
        req->host = host;
        if (role == NULL)
            req->role = CTL_JOIN_ANY;
        else if (strcmp(role, "server") == 0)
            req->role = CTL_JOIN_SERVER;
        else if (strcmp(role, "node") == 0)
            req->role = CTL_JOIN_NODE;
        else
            return gy_error_set(err, GY_EINVAL,
                                "cluster join-token: unknown role \"%s\" (server or node)", role);
        return surplus(inv, 1, "cluster join-token [--role server|node]", err);
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
    if (restore) {
        static const char usage[] = "gantry cluster snapshot restore FILE --data-dir DIR [--id "
                                    "N] [--raft-addr HOST:PORT] [--keep-cluster-id]";
        req->op = CTL_CLUSTER_SNAPSHOT_RESTORE;
        if (inv->n_args < 3 || *inv->args[2] == '\0')
            return gy_error_set(err, GY_EINVAL,
                                "cluster snapshot restore: missing the snapshot file (usage: %s)",
                                usage);
        if (data_dir == NULL || *data_dir == '\0')
            return gy_error_set(err, GY_EINVAL,
                                "cluster snapshot restore: --data-dir is required (usage: %s)",
                                usage);
        uint64_t id = 1;
        if (server_id != NULL && parse_id("snapshot restore --id", server_id, &id, err) < 0)
            return -GY_EINVAL;
        req->file = inv->args[2];
        req->data_dir = data_dir;
        req->server_id = server_id != NULL ? server_id : "1";
        req->raft_addr = raft_addr != NULL ? raft_addr : "127.0.0.1:7701";
        req->keep_cluster_id = keep;
        return surplus(inv, 3, "cluster snapshot restore FILE", err);
    }
    if (strcmp(sub, "snapshot") == 0) {
        req->op = CTL_CLUSTER_SNAPSHOT_SAVE;
        if (inv->n_args < 2)
            return gy_error_set(err, GY_EINVAL,
                                "cluster snapshot: missing the action (usage: gantry cluster "
                                "snapshot save FILE, or snapshot restore FILE --data-dir DIR)");
        if (strcmp(inv->args[1], "save") != 0)
            return gy_error_set(err, GY_EINVAL,
                                "cluster snapshot: unknown action \"%s\"; it is \"save\" or "
                                "\"restore\" (usage: gantry cluster snapshot save FILE)",
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

/* "2", "2, 3": the ids of a JSON array of integers. */
static char *id_list(const json_t *ids)
{
    char *text = gy_xstrdup("");
    size_t i;
    const json_t *id;
    json_array_foreach(ids, i, id)
    {
        char *next =
            gy_xasprintf("%s%s%lld", text, i > 0 ? ", " : "", (long long)json_integer_value(id));
        free(text);
        text = next;
    }
    return text;
}

/* The "Verified:" line: the last divergence check of the leader, whose GET /v1/cluster is
 * leader_view (NULL: not known here). */
static void verified_print(const json_t *view, const json_t *leader_view, FILE *out)
{
    long long leader = ctl_json_int(view, "leader");
    if (leader_view == NULL) {
        if (leader != 0)
            fprintf(out, "Verified:  unknown (the leader, server %lld, did not answer)\n", leader);
        else
            fprintf(out, "Verified:  unknown (no leader; the leader runs the checks)\n");
        return;
    }
    const json_t *v = json_object_get(leader_view, "verify");
    long long checks = ctl_json_int(v, "checks");
    long long by = ctl_json_int(leader_view, "id");
    if (!json_is_object(v)) {
        fprintf(out, "Verified:  unknown (server %lld does not report its checks)\n", by);
        return;
    }
    if (checks == 0) {
        fprintf(out, "Verified:  no check yet by server %lld\n", by);
        return;
    }
    long long index = ctl_json_int(v, "last_index");
    long long behind = ctl_json_int(leader_view, "commit_index") - index;
    long long found = ctl_json_int(v, "divergences_found");
    char ago[48] = "";
    if (behind > 0)
        snprintf(ago, sizeof(ago), ", %lld entr%s ago", behind, behind == 1 ? "y" : "ies");
    fprintf(out,
            "Verified:  index %lld%s, by server %lld in %lld ms (%lld check%s, %lld "
            "divergence%s found)\n",
            index, ago, by, ctl_json_int(v, "last_ms"), checks, checks == 1 ? "" : "s", found,
            found == 1 ? "" : "s");
}

void ctl_cluster_status_print(const json_t *view, const json_t *leader_view, FILE *out)
{
    long long leader = ctl_json_int(view, "leader");
    long long self = ctl_json_int(view, "id");
    fprintf(out, "Cluster:   %s\n", ctl_json_str(view, "cluster_id"));
    fprintf(out, "Answered:  server %lld (%s)\n", self, ctl_json_str(view, "state"));
    const char *leader_api = ctl_json_str(view, "leader_api_address");
    if (leader != 0 && *leader_api != '\0')
        fprintf(out, "Leader:    server %lld (API %s)\n", leader, leader_api);
    else if (leader != 0)
        fprintf(out, "Leader:    server %lld\n", leader);
    else
        fprintf(out, "Leader:    none\n");
    fprintf(out, "Term:      %lld\n", ctl_json_int(view, "term"));
    fprintf(out, "Commit:    %lld (applied %lld, last %lld)\n", ctl_json_int(view, "commit_index"),
            ctl_json_int(view, "applied_index"), ctl_json_int(view, "last_index"));
    const json_t *diverged = json_object_get(view, "diverged");
    if (json_array_size(diverged) == 0) {
        fprintf(out, "Diverged:  none\n");
    } else {
        char *ids = id_list(diverged);
        fprintf(out, "Diverged:  %s (stop%s serving reads until rebuilt from the leader)\n", ids,
                json_array_size(diverged) == 1 ? "s" : "");
        free(ids);
    }
    if (json_is_true(json_object_get(json_object_get(view, "verify"), "rebuilding")))
        fprintf(out,
                "Rebuild:   server %lld is rebuilding its state from the leader's image; "
                "it refuses reads meanwhile\n",
                self);
    verified_print(view, leader_view != NULL ? leader_view : (leader == self ? view : NULL), out);
    fprintf(out, "Servers:\n");
    static const char *const head[] = {"ID", "STATE", "ROLE", "RAFT", "API", "AGENT"};
    struct ctl_table t;
    ctl_table_init(&t, 6, head);
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(view, "servers"), i, s)
    {
        const char *api = ctl_json_str(s, "api_address");
        const char *agent = ctl_json_str(s, "agent_address");
        char *cells[6] = {
            ctl_cell("%lld", ctl_json_int(s, "id")), gy_xstrdup(ctl_json_str(s, "state")),
            gy_xstrdup(ctl_json_str(s, "role")),     gy_xstrdup(ctl_json_str(s, "address")),
            gy_xstrdup(*api ? api : "<none>"),       gy_xstrdup(*agent ? agent : "<none>")};
        ctl_table_add(&t, (const char *const *)cells);
        for (int k = 0; k < 6; k++)
            free(cells[k]);
    }
    ctl_table_print_indent(&t, "  ", out);
    ctl_table_free(&t);
}

/* ---------------------------------------------------------------------------------------
 * Divergence checks */

/* The ids of the servers of a verify answer in a given state, as "2" or "2, 3" or "2 and
 * 3"; *n receives how many. The caller frees the result. */
static char *servers_in_state(const json_t *answer, const char *state, size_t *n)
{
    const json_t *servers = json_object_get(answer, "servers");
    size_t total = 0;
    size_t i;
    const json_t *s;
    json_array_foreach(servers, i, s) total += strcmp(ctl_json_str(s, "state"), state) == 0;
    char *text = gy_xstrdup("");
    size_t k = 0;
    json_array_foreach(servers, i, s)
    {
        if (strcmp(ctl_json_str(s, "state"), state) != 0)
            continue;
        const char *sep = k == 0 ? "" : k + 1 == total ? " and " : ", ";
        char *next = gy_xasprintf("%s%s%lld", text, sep, ctl_json_int(s, "id"));
        free(text);
        text = next;
        k++;
    }
    *n = total;
    return text;
}

int ctl_verify_exit(const json_t *answer)
{
    const json_t *servers = json_object_get(answer, "servers");
    if (!json_is_true(json_object_get(answer, "majority")) || json_array_size(servers) == 0)
        return CTL_EXIT_FAILED;
    size_t i;
    const json_t *s;
    json_array_foreach(servers, i, s)
    {
        if (strcmp(ctl_json_str(s, "state"), "same") != 0)
            return CTL_EXIT_FAILED;
    }
    return CTL_EXIT_OK;
}

int ctl_verify_print(const json_t *answer, FILE *out)
{
    const json_t *servers = json_object_get(answer, "servers");
    long long index = ctl_json_int(answer, "index");
    static const char *const head[] = {"SERVER", "DIGEST", "STATE"};
    struct ctl_table t;
    ctl_table_init(&t, 3, head);
    size_t i;
    const json_t *s;
    json_array_foreach(servers, i, s)
    {
        const char *digest = ctl_json_str(s, "digest");
        /* The API writes states as identifiers ("no_answer"); people read words. */
        char *state = gy_xstrdup(ctl_json_str(s, "state"));
        for (char *p = state; *p; p++)
            if (*p == '_')
                *p = ' ';
        char *cells[3] = {ctl_cell("%lld", ctl_json_int(s, "id")),
                          gy_xstrdup(*digest ? digest : "-"), state};
        ctl_table_add(&t, (const char *const *)cells);
        for (int k = 0; k < 3; k++)
            free(cells[k]);
    }
    ctl_table_print(&t, out);
    ctl_table_free(&t);

    size_t n = json_array_size(servers);
    if (!json_is_true(json_object_get(answer, "majority"))) {
        fprintf(out,
                "no state digest is shared by a majority of the %zu servers at index %lld (too "
                "few answered, or they differ): nothing is rebuilt\n",
                n, index);
        return ctl_verify_exit(answer);
    }
    size_t n_diverged, n_silent;
    char *diverged = servers_in_state(answer, "diverged", &n_diverged);
    char *silent = servers_in_state(answer, "no_answer", &n_silent);
    if (n_diverged == 1)
        fprintf(out,
                "server %s diverged at index %lld: it stops serving reads and rebuilds its state "
                "from the leader\n",
                diverged, index);
    else if (n_diverged > 1)
        fprintf(out,
                "servers %s diverged at index %lld: they stop serving reads and rebuild their "
                "state from the leader\n",
                diverged, index);
    if (n_silent > 0)
        fprintf(out,
                "server%s %s did not answer for index %lld (down, or too far behind); the next "
                "check asks again\n",
                n_silent == 1 ? "" : "s", silent, index);
    if (n_diverged == 0 && n_silent == 0)
        fprintf(out, "%zu server%s agree%s at index %lld (the check took %lld ms)\n", n,
                n == 1 ? "" : "s", n == 1 ? "s" : "", index, ctl_json_int(answer, "took_ms"));
    free(diverged);
    free(silent);
    return ctl_verify_exit(answer);
}

/* ---------------------------------------------------------------------------------------
 * Joining */

/* Where a new member is set up, as docs/operations.md "Membership" does it. */
#define JOIN_SERVER_DATA_DIR "/var/lib/gantry/s"
#define JOIN_NODE_DATA_DIR   "/var/lib/gantry/agent"
#define JOIN_NEW_HOST        "NEW_HOST"

/* The API address --join should name: the leader's, else any member's; "" when none is
 * recorded. */
static const char *join_api_address(const json_t *members)
{
    long long leader = ctl_json_int(members, "leader");
    const char *any = "";
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(members, "servers"), i, s)
    {
        const char *api = ctl_json_str(s, "api_address");
        if (*api == '\0')
            continue;
        if (ctl_json_int(s, "id") == leader)
            return api;
        if (*any == '\0')
            any = api;
    }
    return any;
}

char *ctl_join_command(const json_t *members, enum ctl_join_role role, const char *fallback_url,
                       const char *host, struct gy_error *err)
{
    if (host == NULL)
        host = JOIN_NEW_HOST;
    const json_t *servers = json_object_get(members, "servers");
    size_t i;
    const json_t *s;
    if (role == CTL_JOIN_SERVER) {
        long long top = 0;
        json_array_foreach(servers, i, s)
        {
            if (ctl_json_int(s, "id") > top)
                top = ctl_json_int(s, "id");
        }
        const char *api = join_api_address(members);
        char *url;
        if (*api != '\0')
            url = gy_xasprintf("http://%s", api);
        else if (fallback_url != NULL && strncmp(fallback_url, "http://", 7) == 0)
            url = gy_xstrdup(fallback_url);
        else {
            gy_error_set(err, GY_ENOTFOUND,
                         "no server has recorded its API address yet, so there is no URL for "
                         "--join; try again in a few seconds");
            return NULL;
        }
        char *line = gy_xasprintf("gantry-scheduler --id %lld --data-dir " JOIN_SERVER_DATA_DIR
                                  "%lld --raft-addr %s:7701 --api-addr %s:7700 --agent-addr "
                                  "%s:7702 --join %s",
                                  top + 1, top + 1, host, host, host, url);
        free(url);
        return line;
    }
    char *list = gy_xstrdup("");
    json_array_foreach(servers, i, s)
    {
        const char *agent = ctl_json_str(s, "agent_address");
        if (*agent == '\0')
            continue;
        char *next = gy_xasprintf("%s%s%s", list, *list ? "," : "", agent);
        free(list);
        list = next;
    }
    if (*list == '\0') {
        free(list);
        gy_error_set(err, GY_ENOTFOUND,
                     "no server has recorded its agent-stream address yet; try again in a few "
                     "seconds");
        return NULL;
    }
    char *line = gy_xasprintf("gantry-agent --servers %s --data-dir " JOIN_NODE_DATA_DIR, list);
    free(list);
    return line;
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

/* GET /v1/cluster of server id at its API address, or NULL when it does not answer at once
 * (a member that is down is shown as such, not waited for) or another server answers. */
static json_t *member_view(const char *api_address, long long id)
{
    struct ctl_client client;
    struct gy_error err;
    if (*api_address == '\0' || ctl_client_init(&client, api_address, &err) < 0)
        return NULL;
    client.retries = 0;
    struct ctl_response resp;
    json_t *view = NULL;
    if (ctl_client_request(&client, "GET", "/v1/cluster", NULL, MEMBER_ASK_TIMEOUT_MS, &resp,
                           &err) == 0) {
        if (resp.status == 200 && ctl_json_int(resp.json, "id") == id)
            view = json_incref(resp.json);
        ctl_response_free(&resp);
    }
    ctl_client_free(&client);
    return view;
}

/* The applied index server id reports itself, or -1 when it does not answer. */
static long long member_applied(const char *api_address, long long id)
{
    json_t *view = member_view(api_address, id);
    long long applied = view != NULL ? ctl_json_int(view, "applied_index") : -1;
    json_decref(view);
    return applied;
}

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
    /* The leader runs the divergence checks: a follower's view has none to show. */
    json_t *leader_view = NULL;
    if (leader != 0 && leader != ctl_json_int(doc, "id"))
        leader_view = member_view(ctl_json_str(doc, "leader_api_address"), leader);
    ctl_cluster_status_print(doc, leader_view, ctx->out);
    json_decref(leader_view);
    json_decref(doc);
    if (leader == 0) {
        fprintf(ctx->err, "gantry: the control plane has no leader at the moment\n");
        return CTL_EXIT_FAILED;
    }
    return CTL_EXIT_OK;
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

static int cluster_verify(struct ctl_context *ctx, bool json)
{
    /* Any server takes the request; a follower relays it to the leader, which runs it. */
    json_t *body = json_object();
    struct ctl_response resp;
    struct gy_error err;
    int rc = ctl_client_request(&ctx->client, "POST", "/v1/cluster/verify", body, VERIFY_TIMEOUT_MS,
                                &resp, &err);
    json_decref(body);
    if (rc < 0)
        return ctl_fail(ctx, &err);
    if (resp.status < 200 || resp.status >= 300 || !json_is_object(resp.json)) {
        if (resp.status >= 200 && resp.status < 300)
            gy_error_set(&err, GY_EPROTO, "the server's answer to a divergence check is not JSON");
        else
            ctl_response_error(&resp, &err);
        ctl_response_free(&resp);
        return ctl_fail(ctx, &err);
    }
    int exit_code;
    if (json) {
        ctl_json_print(resp.json, ctx->out);
        exit_code = ctl_verify_exit(resp.json);
    } else {
        exit_code = ctl_verify_print(resp.json, ctx->out);
    }
    ctl_response_free(&resp);
    return exit_code;
}

/* gantry-scheduler beside this program (an installed pair), else the one on the PATH. */
static void scheduler_program(char *buf, size_t len)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(buf, len, "%s/gantry-scheduler", self);
            if (access(buf, X_OK) == 0)
                return;
        }
    }
    snprintf(buf, len, "gantry-scheduler");
}

/* The restore itself is gantry-scheduler's (--restore-only): it checks the file, seeds the
 * state and writes the one-server configuration, the same code as a first start with
 * --restore. */
static int cluster_snapshot_restore(struct ctl_context *ctx, const struct ctl_cluster_request *req)
{
    char program[4200];
    scheduler_program(program, sizeof(program));
    const char *argv[16];
    int n = 0;
    argv[n++] = program;
    argv[n++] = "--id";
    argv[n++] = req->server_id;
    argv[n++] = "--data-dir";
    argv[n++] = req->data_dir;
    argv[n++] = "--raft-addr";
    argv[n++] = req->raft_addr;
    argv[n++] = "--restore";
    argv[n++] = req->file;
    argv[n++] = "--restore-only";
    argv[n++] = "--log-level";
    argv[n++] = "warn";
    if (req->keep_cluster_id)
        argv[n++] = "--keep-cluster-id";
    argv[n] = NULL;
    fflush(ctx->out);
    fflush(ctx->err);
    execvp(program, (char *const *)argv);
    fprintf(ctx->err, "gantry: cluster snapshot restore: cannot run %s: %s\n", program,
            strerror(errno));
    return CTL_EXIT_FAILED;
}

static int cluster_join_token(struct ctl_context *ctx, enum ctl_join_role role, bool quiet,
                              const char *host)
{
    json_t *members;
    struct gy_error err;
    if (ctl_get_json(&ctx->client, "/v1/cluster/members", &members, &err) < 0)
        return ctl_fail(ctx, &err);
    char *server = NULL, *node = NULL;
    int exit_code = CTL_EXIT_OK;
    if (role != CTL_JOIN_NODE &&
        (server = ctl_join_command(members, CTL_JOIN_SERVER, ctx->client.base, host, &err)) == NULL)
        exit_code = ctl_fail(ctx, &err);
    if (exit_code == CTL_EXIT_OK && role != CTL_JOIN_SERVER &&
        (node = ctl_join_command(members, CTL_JOIN_NODE, NULL, NULL, &err)) == NULL)
        exit_code = ctl_fail(ctx, &err);
    json_decref(members);
    if (exit_code != CTL_EXIT_OK) {
        free(server);
        return exit_code;
    }
    if (quiet) {
        if (server != NULL)
            fprintf(ctx->out, "%s\n", server);
        if (node != NULL)
            fprintf(ctx->out, "%s\n", node);
    } else {
        if (server != NULL && host == NULL)
            fprintf(ctx->out,
                    "To add a server to this cluster, run this on the new machine, with its own "
                    "address for %s\n(and the timing flags the other servers run with, if any):\n"
                    "\n    %s\n\n",
                    JOIN_NEW_HOST, server);
        else if (server != NULL)
            fprintf(ctx->out,
                    "To add a server to this cluster, run this on the new machine (%s), with the "
                    "timing flags\nthe other servers run with, if any:\n\n    %s\n\n",
                    host, server);
        if (node != NULL)
            fprintf(ctx->out,
                    "To add a node to this cluster, run this on it as root (--name defaults to "
                    "the host name):\n\n    %s\n\n",
                    node);
        fprintf(ctx->out, "This carries no secret: whoever reaches the control plane can join "
                          "it. Tokens that authenticate\nnew members will come with TLS and "
                          "identities.\n");
    }
    free(server);
    free(node);
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
    case CTL_CLUSTER_SNAPSHOT_RESTORE:
        return cluster_snapshot_restore(ctx, &req);
    case CTL_CLUSTER_VERIFY:
        return cluster_verify(ctx, req.json);
    case CTL_CLUSTER_JOIN_TOKEN:
        return cluster_join_token(ctx, req.role, req.quiet, req.host);
    }
    return CTL_EXIT_USAGE;
}
