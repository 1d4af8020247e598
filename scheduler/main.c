/* gantry-scheduler: the control-plane server (docs/operations.md, docs/architecture.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <malloc.h>

#include "agent/registry.h"
#include "common/cidr.h"
#include "common/log.h"
#include "common/quantity.h"
#include "scheduler/fleet/fleet.h"
#include "scheduler/raft/libraft_compat.h"
#include "scheduler/server.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "Usage: gantry-scheduler --id N --data-dir DIR [options]\n"
        "\n"
        "  --id N                    this server's id (a positive number, unique in the cluster)\n"
        "  --data-dir DIR            Raft log, snapshots, server and cluster ids\n"
        "  --raft-addr HOST:PORT     Raft traffic between servers (default 127.0.0.1:7701)\n"
        "  --api-addr HOST:PORT      HTTP API (default 127.0.0.1:7700)\n"
        "  --agent-addr HOST:PORT    agent stream (default 127.0.0.1:7702)\n"
        "  --bootstrap ID=HOST:PORT,...  first start of a new cluster: its voters' Raft\n"
        "                            addresses (ignored once the data dir holds state)\n"
        "  --join URL                add this server to the cluster answering at URL\n"
        "  --restore FILE            first start of a new cluster seeded from a snapshot file\n"
        "                            (gantry cluster snapshot save); a new cluster id\n"
        "  --keep-cluster-id         with --restore: keep the snapshot's cluster id\n"
        "  --restore-only            with --restore: prepare the data directory and exit; start\n"
        "                            the server from it later without --restore\n"
        "  --force-new-cluster       after losing a majority: make this surviving server a\n"
        "                            one-server cluster with its data (once, then restart\n"
        "                            without it)\n"
        "  --election-timeout DUR    Raft election timeout (default 200ms)\n"
        "  --heartbeat DUR           Raft heartbeat interval (default 40ms)\n"
        "  --connect-retry DUR       delay between reconnects to a peer (default 100ms)\n"
        "  --snapshot-threshold N    entries between snapshots (default %d)\n"
        "  --snapshot-trailing N     entries kept in the log after a snapshot (default %d)\n"
        "  --snapshot-bytes SIZE     also snapshot after this many bytes of log entries, and\n"
        "                            keep at most an eighth of it after (default 16Mi; 0: off)\n"
        "  --max-body SIZE           largest request body; larger gets 413 (default 4Mi)\n"
        "  --node-down-timeout DUR   a node silent this long is down and its replicas are\n"
        "                            replaced elsewhere (default 5s)\n"
        "  --min-free-space SIZE     refuse client writes while the data directory has less\n"
        "                            free space than this (the NOSPACE alarm; default 64Mi,\n"
        "                            0: never)\n"
        "  --verify-interval DUR     the leader compares the servers' state digests this often\n"
        "                            (default 30s; 0: only when asked, POST /v1/cluster/verify)\n"
        "  --cluster-network CIDR    a new cluster's network, carved into one replica subnet\n"
        "                            per node (default " SCH_CLUSTER_NETWORK_DEFAULT ")\n"
        "  --node-subnet-size N      the prefix length of each node's subnet (default 24)\n"
        "  --registries FILE         registry configuration (plain HTTP, mirrors, credentials)\n"
        "                            the leader resolves image tags with at apply\n"
        "  --log-level LEVEL         debug, info, warn or error (default info)\n"
        "  --version, --help\n",
        SCH_DEFAULT_SNAPSHOT_THRESHOLD, SCH_DEFAULT_SNAPSHOT_TRAILING);
}

static int bad_flag(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "gantry-scheduler: %s \"%s\": %s\n", flag, value, why);
    return 2;
}

static int parse_ms(const char *flag, const char *value, int64_t min, int64_t max, unsigned *out)
{
    int64_t ms;
    struct gy_error err;
    if (gy_duration_parse(value, &ms, &err) < 0)
        return bad_flag(flag, value, err.msg);
    if (ms < min || ms > max) {
        char why[100];
        snprintf(why, sizeof(why), "must be between %" PRId64 "ms and %" PRId64 "ms", min, max);
        return bad_flag(flag, value, why);
    }
    *out = (unsigned)ms;
    return 0;
}

static int parse_count(const char *flag, const char *value, int64_t max, unsigned *out)
{
    int64_t n;
    struct gy_error err;
    if (gy_count_parse(value, max, &n, &err) < 0 || n <= 0)
        return bad_flag(flag, value, "must be a positive whole number");
    *out = (unsigned)n;
    return 0;
}

/* The command line to start afresh with: the same, less what acts once on a new data
 * directory (a restore, a forced new cluster), which now holds this server's state. */
static char **restart_argv(int argc, char **argv)
{
    char **out = calloc((size_t)argc + 1, sizeof(*out));
    if (out == NULL)
        return argv;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--force-new-cluster") == 0 ||
            strcmp(argv[i], "--keep-cluster-id") == 0 || strncmp(argv[i], "--restore=", 10) == 0)
            continue;
        if (strcmp(argv[i], "--restore") == 0) {
            i++;
            continue;
        }
        out[n++] = argv[i];
    }
    return out;
}

int main(int argc, char **argv)
{
    sch_libraft_process_init();
    gy_log_init("scheduler", GY_LOG_INFO);

    bool restore_only = false;
    const char *registries_path = NULL;
    struct sch_server_config cfg = {
        .node =
            {
                .raft_addr = "127.0.0.1:7701",
                .api_addr = "127.0.0.1:7700",
                .agent_addr = "127.0.0.1:7702",
                .election_ms = SCH_DEFAULT_ELECTION_MS,
                .heartbeat_ms = SCH_DEFAULT_HEARTBEAT_MS,
                .connect_retry_ms = SCH_DEFAULT_CONNECT_RETRY_MS,
                .snapshot_threshold = SCH_DEFAULT_SNAPSHOT_THRESHOLD,
                .snapshot_trailing = SCH_DEFAULT_SNAPSHOT_TRAILING,
                .snapshot_bytes = SCH_DEFAULT_SNAPSHOT_BYTES,
                .verify_interval_ms = SCH_DEFAULT_VERIFY_INTERVAL_MS,
                .min_free_bytes = SCH_DEFAULT_MIN_FREE_BYTES,
            },
        .max_body = 4u << 20,
        .forward_timeout_ms = 10000,
        .max_wait_s = 300,
        .node_down_ms = SCH_DEFAULT_NODE_DOWN_MS,
    };
    enum {
        OPT_ID = 256,
        OPT_DATA_DIR,
        OPT_RAFT,
        OPT_API,
        OPT_AGENT,
        OPT_BOOTSTRAP,
        OPT_JOIN,
        OPT_RESTORE,
        OPT_KEEP_CLUSTER_ID,
        OPT_RESTORE_ONLY,
        OPT_FORCE_NEW_CLUSTER,
        OPT_ELECTION,
        OPT_HEARTBEAT,
        OPT_RETRY,
        OPT_THRESHOLD,
        OPT_TRAILING,
        OPT_SNAPSHOT_BYTES,
        OPT_MAX_BODY,
        OPT_NODE_DOWN,
        OPT_VERIFY,
        OPT_MIN_FREE,
        OPT_LOG_LEVEL,
        OPT_REGISTRIES,
        OPT_CLUSTER_NETWORK,
        OPT_NODE_SUBNET_SIZE,
        OPT_VERSION,
        OPT_HELP,
    };
    static const struct option options[] = {
        {"id", required_argument, NULL, OPT_ID},
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"raft-addr", required_argument, NULL, OPT_RAFT},
        {"api-addr", required_argument, NULL, OPT_API},
        {"agent-addr", required_argument, NULL, OPT_AGENT},
        {"bootstrap", required_argument, NULL, OPT_BOOTSTRAP},
        {"join", required_argument, NULL, OPT_JOIN},
        {"restore", required_argument, NULL, OPT_RESTORE},
        {"keep-cluster-id", no_argument, NULL, OPT_KEEP_CLUSTER_ID},
        {"restore-only", no_argument, NULL, OPT_RESTORE_ONLY},
        {"force-new-cluster", no_argument, NULL, OPT_FORCE_NEW_CLUSTER},
        {"election-timeout", required_argument, NULL, OPT_ELECTION},
        {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
        {"connect-retry", required_argument, NULL, OPT_RETRY},
        {"snapshot-threshold", required_argument, NULL, OPT_THRESHOLD},
        {"snapshot-trailing", required_argument, NULL, OPT_TRAILING},
        {"snapshot-bytes", required_argument, NULL, OPT_SNAPSHOT_BYTES},
        {"max-body", required_argument, NULL, OPT_MAX_BODY},
        {"node-down-timeout", required_argument, NULL, OPT_NODE_DOWN},
        {"verify-interval", required_argument, NULL, OPT_VERIFY},
        {"min-free-space", required_argument, NULL, OPT_MIN_FREE},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"registries", required_argument, NULL, OPT_REGISTRIES},
        {"cluster-network", required_argument, NULL, OPT_CLUSTER_NETWORK},
        {"node-subnet-size", required_argument, NULL, OPT_NODE_SUBNET_SIZE},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    int opt, rc;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_ID: {
            char *end;
            unsigned long long id = strtoull(optarg, &end, 10);
            if (*optarg == '-' || *end != '\0' || id == 0)
                return bad_flag("--id", optarg, "must be a positive whole number");
            cfg.node.id = id;
            break;
        }
        case OPT_DATA_DIR:
            cfg.node.data_dir = optarg;
            break;
        case OPT_CLUSTER_NETWORK: {
            uint32_t net;
            int len;
            if (!gy_cidr_parse(optarg, 8, 28, &net, &len))
                return bad_flag("--cluster-network", optarg,
                                "must be an IPv4 network with host bits zero and a prefix of 8 "
                                "to 28, like " SCH_CLUSTER_NETWORK_DEFAULT);
            cfg.node.cluster_network = optarg;
            break;
        }
        case OPT_NODE_SUBNET_SIZE: {
            char *end;
            long n = strtol(optarg, &end, 10);
            if (*end != '\0' || n < 16 || n > 28)
                return bad_flag("--node-subnet-size", optarg,
                                "must be a prefix length of 16 to 28");
            cfg.node.node_prefix = (unsigned)n;
            break;
        }
        case OPT_REGISTRIES:
            if (*optarg == '\0')
                return bad_flag("--registries", optarg, "needs a file");
            registries_path = optarg;
            break;
        case OPT_RAFT:
            cfg.node.raft_addr = optarg;
            break;
        case OPT_API:
            cfg.node.api_addr = optarg;
            break;
        case OPT_AGENT:
            cfg.node.agent_addr = optarg;
            break;
        case OPT_BOOTSTRAP:
            cfg.node.bootstrap = optarg;
            break;
        case OPT_JOIN:
            if (strncmp(optarg, "http://", 7) != 0)
                return bad_flag("--join", optarg, "must be an http:// URL of a server's API");
            cfg.join_url = optarg;
            cfg.node.joining = true;
            break;
        case OPT_RESTORE:
            if (*optarg == '\0')
                return bad_flag("--restore", optarg, "needs a snapshot file");
            cfg.node.restore_path = optarg;
            break;
        case OPT_KEEP_CLUSTER_ID:
            cfg.node.keep_cluster_id = true;
            break;
        case OPT_RESTORE_ONLY:
            restore_only = true;
            break;
        case OPT_FORCE_NEW_CLUSTER:
            cfg.node.force_new_cluster = true;
            break;
        case OPT_ELECTION:
            if ((rc = parse_ms("--election-timeout", optarg, 50, 60000, &cfg.node.election_ms)))
                return rc;
            break;
        case OPT_HEARTBEAT:
            if ((rc = parse_ms("--heartbeat", optarg, 5, 10000, &cfg.node.heartbeat_ms)))
                return rc;
            break;
        case OPT_RETRY:
            if ((rc = parse_ms("--connect-retry", optarg, 10, 60000, &cfg.node.connect_retry_ms)))
                return rc;
            break;
        case OPT_THRESHOLD:
            if ((rc = parse_count("--snapshot-threshold", optarg, 100000000,
                                  &cfg.node.snapshot_threshold)))
                return rc;
            break;
        case OPT_TRAILING:
            if ((rc = parse_count("--snapshot-trailing", optarg, 100000000,
                                  &cfg.node.snapshot_trailing)))
                return rc;
            break;
        case OPT_SNAPSHOT_BYTES: {
            int64_t bytes;
            struct gy_error err;
            if (strcmp(optarg, "0") == 0)
                bytes = 0;
            else if (gy_memory_parse(optarg, &bytes, &err) < 0 || bytes < (64 << 10) ||
                     bytes > (1ll << 40))
                return bad_flag("--snapshot-bytes", optarg, "must be 0 or a size from 64Ki to 1Ti");
            cfg.node.snapshot_bytes = (uint64_t)bytes;
            break;
        }
        case OPT_MAX_BODY: {
            int64_t bytes;
            struct gy_error err;
            if (gy_memory_parse(optarg, &bytes, &err) < 0 || bytes < 1024 || bytes > (1ll << 30))
                return bad_flag("--max-body", optarg, "must be a size from 1Ki to 1Gi");
            cfg.max_body = (size_t)bytes;
            break;
        }
        case OPT_NODE_DOWN: {
            unsigned ms;
            if ((rc = parse_ms("--node-down-timeout", optarg, 500, 3600000, &ms)))
                return rc;
            cfg.node_down_ms = ms;
            break;
        }
        case OPT_MIN_FREE: {
            int64_t bytes;
            struct gy_error err;
            if (strcmp(optarg, "0") == 0)
                bytes = 0;
            else if (gy_memory_parse(optarg, &bytes, &err) < 0 || bytes < (1 << 20) ||
                     bytes > (1ll << 40))
                return bad_flag("--min-free-space", optarg, "must be 0 or a size from 1Mi to 1Ti");
            cfg.node.min_free_bytes = (uint64_t)bytes;
            break;
        }
        case OPT_VERIFY: {
            unsigned ms;
            if (strcmp(optarg, "0") == 0)
                ms = 0;
            else if ((rc = parse_ms("--verify-interval", optarg, 1000, 86400000, &ms)))
                return rc;
            cfg.node.verify_interval_ms = ms;
            break;
        }
        case OPT_LOG_LEVEL: {
            enum gy_log_level level;
            if (!gy_log_level_parse(optarg, &level))
                return bad_flag("--log-level", optarg, "must be debug, info, warn or error");
            gy_log_set_level(level);
            break;
        }
        case OPT_VERSION:
            printf("gantry-scheduler %s\n", GANTRY_VERSION);
            return 0;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "gantry-scheduler: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    if (cfg.node.id == 0 || cfg.node.data_dir == NULL) {
        fprintf(stderr, "gantry-scheduler: --id and --data-dir are required\n");
        usage(stderr);
        return 2;
    }
    if (cfg.node.bootstrap != NULL && cfg.join_url != NULL) {
        fprintf(stderr, "gantry-scheduler: --bootstrap and --join exclude each other\n");
        return 2;
    }
    if (cfg.node.node_prefix != 0) {
        uint32_t net;
        int len;
        const char *network = cfg.node.cluster_network != NULL ? cfg.node.cluster_network
                                                               : SCH_CLUSTER_NETWORK_DEFAULT;
        gy_cidr_parse(network, 8, 28, &net, &len);
        if ((int)cfg.node.node_prefix <= len) {
            fprintf(stderr,
                    "gantry-scheduler: --node-subnet-size %u: must be longer than the cluster "
                    "network's prefix (%s)\n",
                    cfg.node.node_prefix, network);
            return 2;
        }
        cfg.node.cluster_network = network;
    }
    if (cfg.node.keep_cluster_id && cfg.node.restore_path == NULL) {
        fprintf(stderr, "gantry-scheduler: --keep-cluster-id goes with --restore\n");
        return 2;
    }
    if (restore_only && cfg.node.restore_path == NULL) {
        fprintf(stderr, "gantry-scheduler: --restore-only goes with --restore FILE\n");
        return 2;
    }
    if (cfg.node.restore_path != NULL && cfg.join_url != NULL) {
        fprintf(stderr, "gantry-scheduler: --restore starts a new cluster and excludes --join\n");
        return 2;
    }
    if (cfg.node.force_new_cluster &&
        (cfg.node.bootstrap != NULL || cfg.join_url != NULL || cfg.node.restore_path != NULL)) {
        fprintf(stderr, "gantry-scheduler: --force-new-cluster keeps this server's data and "
                        "excludes --bootstrap, --join and --restore\n");
        return 2;
    }
    /* A restored cluster starts with this server alone; the others join it. */
    static char self_bootstrap[300];
    if (cfg.node.restore_path != NULL && cfg.node.bootstrap == NULL) {
        snprintf(self_bootstrap, sizeof(self_bootstrap), "%" PRIu64 "=%s", cfg.node.id,
                 cfg.node.raft_addr);
        cfg.node.bootstrap = self_bootstrap;
    }
    if (restore_only) {
        struct gy_error err;
        if (sch_node_restore_only(&cfg.node, &err) < 0) {
            fprintf(stderr, "gantry-scheduler: %s\n", err.msg);
            return 1;
        }
        printf("%s holds the restored state as server %" PRIu64 " of a new one-server cluster "
               "(Raft address %s).\nStart the server from it without --restore or --bootstrap, "
               "then add the others with --join.\n",
               cfg.node.data_dir, cfg.node.id, cfg.node.raft_addr);
        return 0;
    }
    /* A new cluster's network must not cover a network this host already routes to (a
     * podman or Docker bridge, a VPN): replicas there would be unreachable. Checked only
     * for a new cluster (no Raft data yet): later, the host's own gantry bridges carry
     * subnets of it. */
    if (cfg.node.bootstrap != NULL && cfg.node.restore_path == NULL) {
        char raft_dir[4096], found[128];
        struct stat st;
        snprintf(raft_dir, sizeof(raft_dir), "%s/raft", cfg.node.data_dir);
        const char *network = cfg.node.cluster_network != NULL ? cfg.node.cluster_network
                                                               : SCH_CLUSTER_NETWORK_DEFAULT;
        uint32_t net;
        int len;
        if (stat(raft_dir, &st) < 0 && gy_cidr_parse(network, 8, 28, &net, &len) &&
            gy_cidr_route_overlap(net, len, NULL, true, found, sizeof(found))) {
            fprintf(stderr,
                    "gantry-scheduler: cluster network %s overlaps the host's route %s; choose "
                    "another with --cluster-network\n",
                    network, found);
            return 1;
        }
    }
    if (cfg.node.heartbeat_ms * 2 > cfg.node.election_ms) {
        fprintf(stderr,
                "gantry-scheduler: --heartbeat (%ums) must be at most half the election timeout "
                "(%ums)\n",
                cfg.node.heartbeat_ms, cfg.node.election_ms);
        return 2;
    }

#ifndef GANTRY_WITH_MIMALLOC
    /* Memory with glibc's allocator (mimalloc, when linked, needs no tuning): large buffers
     * (snapshot images, restores) are mapped and unmapped on their own instead of staying
     * in the heap once freed (glibc raises its threshold after the first large free, which
     * kept a whole snapshot's worth of heap); and the few threads share two arenas rather
     * than one each. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    mallopt(M_ARENA_MAX, 2);
#endif
    /* The registry configuration and credentials, read once; the API's image lookups
     * use them until the loop has ended. */
    static struct agent_registry_config registries;
    struct agent_registry_auth *registry_auth = NULL;
    struct gy_error err;
    if (registries_path != NULL) {
        if (agent_registry_config_load(registries_path, &registries, &err) < 0 ||
            (registries.auth_file != NULL &&
             agent_registry_auth_load(registries.auth_file, &registry_auth, &err) < 0)) {
            fprintf(stderr, "gantry-scheduler: --registries: %s\n", err.msg);
            agent_registry_config_free(&registries);
            return 2;
        }
        cfg.registries = &registries;
        cfg.registry_auth = registry_auth;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    static struct sch_server server;
    int status = 0;
    if (sch_server_start(&server, &loop, &cfg, &err) < 0) {
        fprintf(stderr, "gantry-scheduler: %s\n", err.msg);
        status = 1;
    }
    /* Runs until every handle is closed, also after a failed start. */
    uv_run(&loop, UV_RUN_DEFAULT);
    sch_node_release(&server.node);
    if (server.exit_code != 0)
        status = server.exit_code;
    uv_loop_close(&loop);
    agent_registry_config_free(&registries);
    agent_registry_auth_free(registry_auth);
    if (server.restart && status == 0) {
        /* Every descriptor is closed or close-on-exec: the same process id starts afresh
         * from its data directory, as a restart by a supervisor would. */
        fflush(NULL);
        execv("/proc/self/exe", restart_argv(argc, argv));
        fprintf(stderr, "gantry-scheduler: cannot start afresh: %s\n", strerror(errno));
        return 1;
    }
    return status;
}
