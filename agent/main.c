/* gantry-agent: the node daemon (docs/agent.md), and its image commands. */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent/daemon.h"
#include "agent/image.h"
#include "agent/image_load.h"
#include "agent/image_ops.h"
#include "agent/pull.h"
#include "common/log.h"
#include "runtime/spawner.h"
#include "common/quantity.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: gantry-agent --servers HOST:PORT[,...] --name NODE --data-dir DIR [options]\n"
            "       gantry-agent --data-dir DIR image import NAME PATH\n"
            "       gantry-agent --data-dir DIR [--registries FILE] image pull REF\n"
            "       gantry-agent --data-dir DIR image load PATH [--name REF]\n"
            "       gantry-agent --data-dir DIR image list\n"
            "       gantry-agent --data-dir DIR image rm NAME\n"
            "\n"
            "  --servers LIST        agent streams of the control plane (port 7702)\n"
            "  --name NODE           this node's name (default: the host name)\n"
            "  --data-dir DIR        images, local state and replica layers\n"
            "  --cloud NAME          cloud of this node (default private)\n"
            "  --region NAME         region (default local)\n"
            "  --zone NAME           zone (default local-a)\n"
            "  --labels K=V,...      labels for placement constraints\n"
            "  --cpu N               cpu offered to replicas, cores or millicores (default: all)\n"
            "  --memory SIZE         memory offered to replicas (default: all)\n"
            "  --pids N              processes offered to replicas (default: no limit)\n"
            "  --cost N              cost per hour of this node, for cloud placement\n"
            "  --address ADDR        address of this node as others reach it\n"
            "  --subnet CIDR         replica addresses on this node (default: a subnet the\n"
            "                        leader carves from its cluster network)\n"
            "  --bridge NAME         bridge for replica networks (default gantry0)\n"
            "  --cni-conf FILE       an operator's CNI network list for the replicas (default:\n"
            "                        bridge, host-local, portmap, firewall, bandwidth)\n"
            "  --cni-bin-dir DIRS    CNI plugin directories (default /usr/lib/cni:/opt/cni/bin)\n"
            "  --cni-pool N          replica networks kept ready (default 4, 0 to 64)\n"
            "  --tunnels on|off      WireGuard tunnels to the nodes of other clouds (default on)\n"
            "  --tunnel-interface N  their interface (default gantry-wg)\n"
            "  --tunnel-port PORT    their UDP port (default 51820)\n"
            "  --runtime-root DIR    container runtime state (default /run/gantry-runtime)\n"
            "  --heartbeat DUR       heartbeat and metric sample interval (default 1s)\n"
            "  --registries FILE     registries: plain HTTP, mirrors, credentials file\n"
            "                        (docs/images.md)\n"
            "  --blob-listen ADDR    layer server for the nodes of this cloud, HOST:PORT or\n"
            "                        off (default: the --address host, port 7703)\n"
            "  --max-downloads N     blobs this node downloads at once (default 3)\n"
            "  --log-level LEVEL     debug, info, warn or error (default info)\n"
            "  --version, --help\n"
            "\n"
            "Image names: lower-case letters, digits, '.', '_', ':' and '-'. PATH is a root\n"
            "filesystem directory or a tarball (.tar, .tar.gz, .tar.xz). image load reads an\n"
            "OCI image layout (a directory, or a .tar or .tar.gz of one) or a docker save\n"
            "archive; --name REF names the image when the archive does not (docs/images.md).\n");
}

/* Sizes for people: "1.9Mi" rather than an exact byte count. */
static const char *human_size(int64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = {"", "Ki", "Mi", "Gi", "Ti"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u == 0 ? "%.0f%s" : "%.1f%s", v, units[u]);
    return buf;
}

static int bad_flag(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "gantry-agent: %s \"%s\": %s\n", flag, value, why);
    return 2;
}

/* image pull REF: into the node's store with its layers unpacked, as a replica's start
 * would, so that the first start finds the image ready. */
static int image_pull(const char *data_dir, const char *registries, const char *ref)
{
    struct gy_error err;
    struct agent_puller p;
    if (agent_puller_open(&p, data_dir, registries, &err) < 0) {
        fprintf(stderr, "gantry-agent: %s\n", err.msg);
        return 1;
    }
    struct agent_pull_result res;
    int rc = agent_image_pull_unpack(&p, ref, NULL, &res, &err);
    if (rc < 0) {
        fprintf(stderr, "gantry-agent: %s\n", err.msg);
    } else {
        char total[32], fetched[32];
        printf("%s %s@%s: %zu layers, %s, %s fetched\n", res.cached ? "up to date" : "pulled",
               res.name, res.manifest_digest, res.layers,
               human_size(res.bytes_total, total, sizeof(total)),
               human_size(res.bytes_fetched, fetched, sizeof(fetched)));
    }
    agent_puller_close(&p);
    return rc < 0 ? (err.code == GY_EINVAL ? 2 : 1) : 0;
}

/* image load PATH [--name REF]: an image from a file into the node's store, for nodes that
 * reach no registry. */
static int image_load(const char *data_dir, int argc, char **argv)
{
    const char *path = NULL, *name = NULL;
    bool bad = false;
    for (int i = 1; i < argc && !bad; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc && name == NULL)
            name = argv[++i];
        else if (path == NULL && argv[i][0] != '-')
            path = argv[i];
        else
            bad = true;
    }
    if (bad || path == NULL) {
        fprintf(stderr, "gantry-agent: usage: image load PATH [--name REF]\n");
        return 2;
    }
    struct gy_error err;
    struct agent_puller p;
    if (agent_puller_open(&p, data_dir, NULL, &err) < 0) {
        fprintf(stderr, "gantry-agent: %s\n", err.msg);
        return 1;
    }
    struct agent_load_options opts = {.name = name};
    struct agent_load_result res;
    int rc = agent_image_load(p.store, path, &opts, &res, &err);
    if (rc < 0)
        fprintf(stderr, "gantry-agent: %s\n", err.msg);
    for (size_t i = 0; rc == 0 && i < res.n_images; i++) {
        char size[32];
        printf("loaded %s@%s: %zu layers, %s\n", res.images[i].name, res.images[i].manifest_digest,
               res.images[i].layers, human_size(res.images[i].bytes, size, sizeof(size)));
    }
    agent_load_result_free(&res);
    agent_puller_close(&p);
    return rc < 0 ? 1 : 0;
}

static int image_command(const char *data_dir, const char *registries, int argc, char **argv)
{
    struct gy_error err;
    if (argc >= 1 && strcmp(argv[0], "load") == 0)
        return image_load(data_dir, argc, argv);
    if (argc >= 1 && strcmp(argv[0], "pull") == 0) {
        if (argc != 2) {
            fprintf(stderr, "gantry-agent: usage: image pull REF\n");
            return 2;
        }
        return image_pull(data_dir, registries, argv[1]);
    }
    if (argc >= 1 && strcmp(argv[0], "import") == 0) {
        if (argc != 3) {
            fprintf(stderr, "gantry-agent: usage: image import NAME PATH\n");
            return 2;
        }
        struct agent_image img;
        if (agent_image_import(data_dir, argv[1], argv[2], &img, &err) < 0) {
            fprintf(stderr, "gantry-agent: %s\n", err.msg);
            return err.code == GY_EINVAL ? 2 : 1;
        }
        char size[32];
        printf("imported %s (%s)\n", img.name, human_size(img.size_bytes, size, sizeof(size)));
        return 0;
    }
    if (argc == 1 && strcmp(argv[0], "list") == 0) {
        struct agent_image *list;
        size_t n;
        if (agent_image_list(data_dir, &list, &n, &err) < 0) {
            fprintf(stderr, "gantry-agent: %s\n", err.msg);
            return 1;
        }
        printf("%-32s %-12s %s\n", "NAME", "SIZE", "IMPORTED");
        for (size_t i = 0; i < n; i++) {
            char size[32], when[32];
            time_t t = (time_t)(list[i].imported_ms / 1000);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%-32s %-12s %s\n", list[i].name,
                   human_size(list[i].size_bytes, size, sizeof(size)), when);
        }
        free(list);
        return 0;
    }
    if (argc == 2 && strcmp(argv[0], "rm") == 0) {
        if (agent_image_remove(data_dir, argv[1], &err) < 0) {
            fprintf(stderr, "gantry-agent: %s\n", err.msg);
            return err.code == GY_ENOTFOUND ? 1 : 2;
        }
        printf("removed %s\n", argv[1]);
        return 0;
    }
    fprintf(stderr, "gantry-agent: unknown image command; use import, pull, load, list or rm\n");
    return 2;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    gy_log_init("agent", GY_LOG_INFO);
    char hostname[256] = "node";
    gethostname(hostname, sizeof(hostname) - 1);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    struct agent_config cfg = {
        .name = hostname,
        .cloud = "private",
        .region = "local",
        .zone = "local-a",
        .labels = "",
        .address = "",
        .cpu_millis = cpus > 0 ? cpus * 1000 : 1000,
        .memory_bytes = pages > 0 && page > 0 ? (int64_t)pages * page : INT64_C(1) << 30,
        .subnet = NULL,
        .bridge = "gantry0",
        .ns_prefix = "gantry-",
        .runtime_root = "/run/gantry-runtime",
        .heartbeat_ms = 1000,
        .cni_bin_dirs = "/usr/lib/cni:/opt/cni/bin",
        .cni_pool = 4,
        .tunnel_interface = "gantry-wg",
        .tunnel_port = 51820,
    };
    enum {
        OPT_SERVERS = 256,
        OPT_NAME,
        OPT_DATA,
        OPT_CLOUD,
        OPT_REGION,
        OPT_ZONE,
        OPT_LABELS,
        OPT_CPU,
        OPT_MEMORY,
        OPT_PIDS,
        OPT_COST,
        OPT_ADDRESS,
        OPT_SUBNET,
        OPT_BRIDGE,
        OPT_NSPREFIX,
        OPT_CNI_CONF,
        OPT_CNI_BIN,
        OPT_CNI_POOL,
        OPT_TUNNELS,
        OPT_TUNNEL_IF,
        OPT_TUNNEL_PORT,
        OPT_RUNTIME,
        OPT_HEARTBEAT,
        OPT_REGISTRIES,
        OPT_BLOB_LISTEN,
        OPT_MAX_DOWNLOADS,
        OPT_LOG,
        OPT_VERSION,
        OPT_HELP,
    };
    static const struct option opts[] = {
        {"servers", required_argument, NULL, OPT_SERVERS},
        {"name", required_argument, NULL, OPT_NAME},
        {"data-dir", required_argument, NULL, OPT_DATA},
        {"cloud", required_argument, NULL, OPT_CLOUD},
        {"region", required_argument, NULL, OPT_REGION},
        {"zone", required_argument, NULL, OPT_ZONE},
        {"labels", required_argument, NULL, OPT_LABELS},
        {"cpu", required_argument, NULL, OPT_CPU},
        {"memory", required_argument, NULL, OPT_MEMORY},
        {"pids", required_argument, NULL, OPT_PIDS},
        {"cost", required_argument, NULL, OPT_COST},
        {"address", required_argument, NULL, OPT_ADDRESS},
        {"subnet", required_argument, NULL, OPT_SUBNET},
        {"bridge", required_argument, NULL, OPT_BRIDGE},
        {"netns-prefix", required_argument, NULL, OPT_NSPREFIX},
        {"cni-conf", required_argument, NULL, OPT_CNI_CONF},
        {"cni-bin-dir", required_argument, NULL, OPT_CNI_BIN},
        {"cni-pool", required_argument, NULL, OPT_CNI_POOL},
        {"tunnels", required_argument, NULL, OPT_TUNNELS},
        {"tunnel-interface", required_argument, NULL, OPT_TUNNEL_IF},
        {"tunnel-port", required_argument, NULL, OPT_TUNNEL_PORT},
        {"runtime-root", required_argument, NULL, OPT_RUNTIME},
        {"heartbeat", required_argument, NULL, OPT_HEARTBEAT},
        {"registries", required_argument, NULL, OPT_REGISTRIES},
        {"blob-listen", required_argument, NULL, OPT_BLOB_LISTEN},
        {"max-downloads", required_argument, NULL, OPT_MAX_DOWNLOADS},
        {"log-level", required_argument, NULL, OPT_LOG},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    struct gy_error err;
    int c;
    /* "+" stops at the first non-option, so "image import ..." reaches the subcommand. */
    while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
        int64_t v;
        switch (c) {
        case OPT_SERVERS:
            cfg.servers = optarg;
            break;
        case OPT_NAME:
            cfg.name = optarg;
            break;
        case OPT_DATA:
            cfg.data_dir = optarg;
            break;
        case OPT_CLOUD:
            cfg.cloud = optarg;
            break;
        case OPT_REGION:
            cfg.region = optarg;
            break;
        case OPT_ZONE:
            cfg.zone = optarg;
            break;
        case OPT_LABELS:
            cfg.labels = optarg;
            break;
        case OPT_CPU:
            if (gy_cpu_parse(optarg, &v, &err) < 0 || v <= 0)
                return bad_flag("--cpu", optarg, v <= 0 ? "must be more than 0" : err.msg);
            cfg.cpu_millis = v;
            break;
        case OPT_MEMORY:
            if (gy_memory_parse(optarg, &v, &err) < 0 || v <= 0)
                return bad_flag("--memory", optarg, v <= 0 ? "must be more than 0" : err.msg);
            cfg.memory_bytes = v;
            break;
        case OPT_PIDS:
            if (gy_count_parse(optarg, INT64_C(4194304), &v, &err) < 0)
                return bad_flag("--pids", optarg, err.msg);
            cfg.pids = v;
            break;
        case OPT_COST: {
            char *end;
            double cost = strtod(optarg, &end);
            if (*end != '\0' || end == optarg || cost < 0 || cost > 1e6)
                return bad_flag("--cost", optarg, "must be a number from 0 to 1000000");
            cfg.cost_per_hour = cost;
            break;
        }
        case OPT_ADDRESS:
            cfg.address = optarg;
            break;
        case OPT_SUBNET:
            cfg.subnet = optarg;
            break;
        case OPT_BRIDGE:
            cfg.bridge = optarg;
            break;
        case OPT_NSPREFIX:
            cfg.ns_prefix = optarg;
            break;
        case OPT_CNI_CONF:
            cfg.cni_conf = optarg;
            break;
        case OPT_CNI_BIN:
            if (optarg[0] == '\0')
                return bad_flag("--cni-bin-dir", optarg, "must name at least one directory");
            cfg.cni_bin_dirs = optarg;
            break;
        case OPT_CNI_POOL:
            if (gy_count_parse(optarg, 64, &v, &err) < 0)
                return bad_flag("--cni-pool", optarg, "must be a number from 0 to 64");
            cfg.cni_pool = (size_t)v;
            break;
        case OPT_TUNNELS:
            if (strcmp(optarg, "on") != 0 && strcmp(optarg, "off") != 0)
                return bad_flag("--tunnels", optarg, "use on or off");
            cfg.tunnels_off = strcmp(optarg, "off") == 0;
            break;
        case OPT_TUNNEL_IF:
            if (optarg[0] == '\0' || strlen(optarg) > 15 || strchr(optarg, '/') != NULL)
                return bad_flag("--tunnel-interface", optarg,
                                "must be an interface name of 1 to 15 characters");
            cfg.tunnel_interface = optarg;
            break;
        case OPT_TUNNEL_PORT:
            if (gy_count_parse(optarg, 65535, &v, &err) < 0 || v < 1)
                return bad_flag("--tunnel-port", optarg, "must be a UDP port from 1 to 65535");
            cfg.tunnel_port = (uint16_t)v;
            break;
        case OPT_RUNTIME:
            cfg.runtime_root = optarg;
            break;
        case OPT_HEARTBEAT:
            if (gy_duration_parse(optarg, &v, &err) < 0 || v < 100 || v > 60000)
                return bad_flag("--heartbeat", optarg, "must be a duration from 100ms to 60s");
            cfg.heartbeat_ms = (uint64_t)v;
            break;
        case OPT_REGISTRIES:
            cfg.registries = optarg;
            break;
        case OPT_BLOB_LISTEN:
            cfg.blob_listen = optarg;
            break;
        case OPT_MAX_DOWNLOADS:
            if (gy_count_parse(optarg, AGENT_PULL_MAX_DOWNLOADS_MAX, &v, &err) < 0 || v < 1)
                return bad_flag("--max-downloads", optarg, "must be a number from 1 to 64");
            cfg.max_downloads = (int)v;
            break;
        case OPT_LOG: {
            enum gy_log_level level;
            if (!gy_log_level_parse(optarg, &level))
                return bad_flag("--log-level", optarg, "use debug, info, warn or error");
            gy_log_set_level(level);
            break;
        }
        case OPT_VERSION:
            printf("gantry-agent %s\n", GANTRY_VERSION);
            return 0;
        case OPT_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (cfg.data_dir == NULL) {
        fprintf(stderr, "gantry-agent: --data-dir is required\n");
        return 2;
    }
    if (optind < argc) {
        if (strcmp(argv[optind], "image") == 0)
            return image_command(cfg.data_dir, cfg.registries, argc - optind - 1,
                                 argv + optind + 1);
        fprintf(stderr, "gantry-agent: unknown command \"%s\" (see --help)\n", argv[optind]);
        return 2;
    }
    if (cfg.servers == NULL) {
        fprintf(stderr, "gantry-agent: --servers is required\n");
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "gantry-agent: must run as root (it creates containers)\n");
        return 1;
    }
    /* Before the first thread: containers are forked from a helper that has only one
     * (runtime/spawner.h). */
    if (rt_spawner_start(&err) < 0) {
        fprintf(stderr, "gantry-agent: %s\n", err.msg);
        return 1;
    }
    if (agent_daemon_run(&cfg, &err) < 0) {
        fprintf(stderr, "gantry-agent: %s\n", err.msg);
        return 1;
    }
    return 0;
}
