/* CNI plugins driven per the spec; see cni.h. */
#include "agent/cni.h"

#include "common/io.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* How long one plugin may take before it is killed; a plugin that hangs must not hold a
 * worker thread of the agent for ever. */
#define PLUGIN_TIMEOUT_MS 60000
/* The most a plugin may print: a result is a few KiB. */
#define PLUGIN_OUTPUT_MAX (1 << 20)
#define CONFLIST_MAX      (1 << 20)

/* One chain of plugins runs at a time in the agent: the reference plugins that make
 * iptables chains (firewall, portmap) race when two run at once, and one of them fails
 * with "CHAIN_USER_ADD failed (File exists)". The plugins are processes, mostly CPU bound;
 * running them one after another costs a start little on a small machine. */
static pthread_mutex_t chain_lock = PTHREAD_MUTEX_INITIALIZER;

struct agent_cni {
    char *path;
    char *text; /* the conflist as read; each call parses its own copy */
    char *name;
    char *version;
    char *bin_dirs;
    char *cache_dir;
};

bool agent_cni_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > AGENT_CNI_ID_MAX || id[0] == '.' || id[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static bool name_valid(const char *s)
{
    return s != NULL && agent_cni_id_valid(s);
}

/* Versions of the spec the agent speaks: results of 0.3.0 and later have the same form. */
static bool version_known(const char *v)
{
    static const char *const known[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
        if (strcmp(v, known[i]) == 0)
            return true;
    return false;
}

static int version_cmp(const char *a, const char *b)
{
    int x[3] = {0}, y[3] = {0};
    sscanf(a, "%d.%d.%d", &x[0], &x[1], &x[2]);
    sscanf(b, "%d.%d.%d", &y[0], &y[1], &y[2]);
    for (int i = 0; i < 3; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

static int conflist_check(const char *path, json_t *doc, struct gy_error *err)
{
    if (!json_is_object(doc))
        return gy_error_set(err, GY_EINVAL, "%s: a CNI network configuration list is an object",
                            path);
    const char *version = json_string_value(json_object_get(doc, "cniVersion"));
    if (version == NULL)
        return gy_error_set(err, GY_EINVAL, "%s: field \"cniVersion\": a string is required", path);
    if (!version_known(version))
        return gy_error_set(err, GY_EINVAL,
                            "%s: field \"cniVersion\": \"%.32s\" is not one of 0.3.0, 0.3.1, "
                            "0.4.0, 1.0.0, 1.1.0",
                            path, version);
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!name_valid(name))
        return gy_error_set(err, GY_EINVAL,
                            "%s: field \"name\": 1 to %d letters, digits, '-', '_' or '.'", path,
                            AGENT_CNI_ID_MAX);
    json_t *plugins = json_object_get(doc, "plugins");
    if (!json_is_array(plugins) || json_array_size(plugins) == 0)
        return gy_error_set(err, GY_EINVAL,
                            "%s: field \"plugins\": a list of at least one plugin is required",
                            path);
    size_t i;
    json_t *p;
    json_array_foreach(plugins, i, p)
    {
        const char *type = json_string_value(json_object_get(p, "type"));
        if (!json_is_object(p) || !name_valid(type) || type[0] == '.')
            return gy_error_set(err, GY_EINVAL,
                                "%s: field \"plugins[%zu].type\": the name of a plugin binary "
                                "is required",
                                path, i);
        json_t *caps = json_object_get(p, "capabilities");
        if (caps != NULL && !json_is_object(caps))
            return gy_error_set(err, GY_EINVAL,
                                "%s: field \"plugins[%zu].capabilities\": an object is expected",
                                path, i);
    }
    return 0;
}

int agent_cni_open(struct agent_cni **out, const char *path, const char *bin_dirs,
                   const char *cache_dir, struct gy_error *err)
{
    char *text = NULL;
    size_t len = 0;
    int rc = gy_read_file(path, CONFLIST_MAX, &text, &len, err);
    if (rc < 0)
        return gy_error_wrap(err, "CNI configuration");
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (doc == NULL) {
        free(text);
        return gy_error_set(err, GY_EINVAL, "%s: line %d, column %d: %s", path, jerr.line,
                            jerr.column, jerr.text);
    }
    if ((rc = conflist_check(path, doc, err)) < 0) {
        json_decref(doc);
        free(text);
        return rc;
    }
    if (mkdir(cache_dir, 0700) < 0 && errno != EEXIST) {
        rc = gy_error_set(err, GY_EIO, "CNI cache directory %s: %s", cache_dir, strerror(errno));
        json_decref(doc);
        free(text);
        return rc;
    }
    struct agent_cni *cni = gy_xcalloc(1, sizeof(*cni));
    cni->path = gy_xstrdup(path);
    cni->text = text;
    cni->name = gy_xstrdup(json_string_value(json_object_get(doc, "name")));
    cni->version = gy_xstrdup(json_string_value(json_object_get(doc, "cniVersion")));
    cni->bin_dirs = gy_xstrdup(bin_dirs);
    cni->cache_dir = gy_xstrdup(cache_dir);
    json_decref(doc);
    *out = cni;
    return 0;
}

void agent_cni_close(struct agent_cni *cni)
{
    if (cni == NULL)
        return;
    free(cni->path);
    free(cni->text);
    free(cni->name);
    free(cni->version);
    free(cni->bin_dirs);
    free(cni->cache_dir);
    free(cni);
}

const char *agent_cni_name(const struct agent_cni *cni)
{
    return cni->name;
}

const char *agent_cni_version(const struct agent_cni *cni)
{
    return cni->version;
}

static int write_json_atomic(const char *path, json_t *doc, struct gy_error *err)
{
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (text == NULL)
        return gy_error_set(err, GY_ENOMEM, "%s: cannot encode", path);
    int rc = gy_write_file_atomic(path, text, strlen(text), 0600, err);
    free(text);
    return rc;
}

int agent_cni_write_default(const char *path, const char *bridge, const char *subnet,
                            const char *ipam_dir, struct gy_error *err)
{
    /* The subnet's first address is the gateway, on the bridge (network.h). */
    char net[64];
    const char *slash = strchr(subnet, '/');
    if (slash == NULL || (size_t)(slash - subnet) >= sizeof(net))
        return gy_error_set(err, GY_EINVAL, "subnet \"%s\": expected ADDRESS/PREFIX", subnet);
    memcpy(net, subnet, (size_t)(slash - subnet));
    net[slash - subnet] = '\0';
    struct in_addr in;
    if (inet_pton(AF_INET, net, &in) != 1)
        return gy_error_set(err, GY_EINVAL, "subnet \"%s\": not an IPv4 network", subnet);
    in.s_addr = htonl(ntohl(in.s_addr) + 1);
    char gateway[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &in, gateway, sizeof(gateway));
    /* disableCheck: Debian's portmap (1.1.1) fails CHECK on hosts without IPv6 NAT chains
     * ("could not check ipv6 dnat"), which would restart every replica with a published
     * port after each restart of the agent. */
    json_t *doc = json_pack(
        "{s:s, s:s, s:b, s:[{s:s, s:s, s:b, s:b, s:b, s:{s:s, s:[[{s:s, s:s}]], s:[{s:s}], s:s}},"
        " {s:s, s:{s:b}, s:b}, {s:s, s:s}, {s:s, s:{s:b}}]}",
        "cniVersion", "1.0.0", "name", "gantry", "disableCheck", 1, "plugins", "type", "bridge",
        "bridge", bridge, "isGateway", 1, "ipMasq", 0, "hairpinMode", 1, "ipam", "type",
        "host-local", "ranges", "subnet", subnet, "gateway", gateway, "routes", "dst", "0.0.0.0/0",
        "dataDir", ipam_dir, "type", "portmap", "capabilities", "portMappings", 1, "snat", 1,
        "type", "firewall", "backend", "iptables", "type", "bandwidth", "capabilities", "bandwidth",
        1);
    if (doc == NULL)
        return gy_error_set(err, GY_EINVAL, "cannot build the default CNI configuration");
    int rc = write_json_atomic(path, doc, err);
    json_decref(doc);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Running one plugin */

static int find_plugin(const struct agent_cni *cni, const char *type, char *out, size_t len,
                       struct gy_error *err)
{
    const char *p = cni->bin_dirs;
    while (*p != '\0') {
        const char *end = strchr(p, ':');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n > 0 && snprintf(out, len, "%.*s/%s", (int)n, p, type) < (int)len &&
            access(out, X_OK) == 0)
            return 0;
        p += n;
        if (*p == ':')
            p++;
    }
    return gy_error_set(err, GY_ENOTFOUND, "CNI plugin \"%s\" is not in %s", type, cni->bin_dirs);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct invocation {
    const char *command; /* ADD, DEL, CHECK, GC */
    const char *container_id;
    const char *netns;
    const char *ifname;
};

/* The plugin's error object ({"code", "msg", "details"}) or its stderr, into err. */
static int plugin_error(const char *type, const struct invocation *inv, const char *out,
                        size_t out_len, int status, struct gy_error *err)
{
    json_t *doc = out_len > 0 ? json_loadb(out, out_len, 0, NULL) : NULL;
    const char *msg = json_string_value(json_object_get(doc, "msg"));
    const char *details = json_string_value(json_object_get(doc, "details"));
    json_int_t code = json_integer_value(json_object_get(doc, "code"));
    char why[64];
    if (WIFSIGNALED(status))
        snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(status));
    else
        snprintf(why, sizeof(why), "exit %d", WEXITSTATUS(status));
    int rc;
    if (msg != NULL)
        rc = gy_error_set(err, GY_EIO, "CNI plugin %s %s for %s: %.200s%s%.200s (code %lld)", type,
                          inv->command, inv->container_id, msg, details != NULL ? ": " : "",
                          details != NULL ? details : "", (long long)code);
    else
        rc = gy_error_set(err, GY_EIO, "CNI plugin %s %s for %s failed (%s): %.200s", type,
                          inv->command, inv->container_id, why, out_len > 0 ? out : "no output");
    json_decref(doc);
    return rc;
}

/* Runs plugin type with config on stdin; its stdout, parsed, into *result when not NULL
 * (an empty output is JSON null). */
static int plugin_run(const struct agent_cni *cni, const char *type, const struct invocation *inv,
                      json_t *config, json_t **result, struct gy_error *err)
{
    char exe[4096];
    int rc = find_plugin(cni, type, exe, sizeof(exe), err);
    if (rc < 0)
        return rc;
    char *input = json_dumps(config, JSON_COMPACT);
    if (input == NULL)
        return gy_error_set(err, GY_ENOMEM, "CNI plugin %s: cannot encode its configuration", type);
    size_t n_env = 0;
    while (environ[n_env] != NULL)
        n_env++;
    char **envp = gy_xcalloc(n_env + 8, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n_env; i++)
        if (strncmp(environ[i], "CNI_", 4) != 0)
            envp[k++] = environ[i];
    char e_cmd[32], e_id[AGENT_CNI_ID_MAX + 32], e_ns[4200], e_if[64], e_path[4200];
    snprintf(e_cmd, sizeof(e_cmd), "CNI_COMMAND=%s", inv->command);
    snprintf(e_id, sizeof(e_id), "CNI_CONTAINERID=%s", inv->container_id);
    snprintf(e_ns, sizeof(e_ns), "CNI_NETNS=%s", inv->netns);
    snprintf(e_if, sizeof(e_if), "CNI_IFNAME=%s", inv->ifname);
    snprintf(e_path, sizeof(e_path), "CNI_PATH=%s", cni->bin_dirs);
    envp[k++] = e_cmd;
    if (inv->container_id[0] != '\0')
        envp[k++] = e_id;
    if (inv->netns[0] != '\0')
        envp[k++] = e_ns;
    if (inv->ifname[0] != '\0')
        envp[k++] = e_if;
    envp[k++] = e_path;
    envp[k++] = "CNI_ARGS=";
    envp[k] = NULL;

    int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    pid_t pid = -1;
    char *out = NULL;
    size_t out_len = 0;
    if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
        rc = gy_error_set(err, GY_EIO, "CNI plugin %s: pipe: %s", type, strerror(errno));
        goto out;
    }
    posix_spawn_file_actions_adddup2(&fa, in_pipe[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out_pipe[1], 1);
    char *argv[] = {exe, NULL};
    int sp = posix_spawn(&pid, exe, &fa, NULL, argv, envp);
    if (sp != 0) {
        pid = -1;
        rc = gy_error_set(err, GY_EIO, "CNI plugin %s: cannot run %s: %s", type, exe, strerror(sp));
        goto out;
    }
    close(in_pipe[0]);
    close(out_pipe[1]);
    in_pipe[0] = out_pipe[1] = -1;
    fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
    size_t in_len = strlen(input), in_off = 0;
    size_t cap = 4096;
    out = gy_xmalloc(cap);
    int64_t deadline = now_ms() + PLUGIN_TIMEOUT_MS;
    bool timed_out = false;
    while (out_pipe[0] >= 0) {
        struct pollfd fds[2];
        int nf = 0;
        fds[nf++] = (struct pollfd){.fd = out_pipe[0], .events = POLLIN};
        if (in_pipe[1] >= 0)
            fds[nf++] = (struct pollfd){.fd = in_pipe[1], .events = POLLOUT};
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int pr = poll(fds, (nfds_t)nf, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr < 0)
            break;
        if (nf == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in_pipe[1], input + in_off, in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                in_off = in_len; /* the plugin closed its stdin: it has what it reads */
            if (in_off == in_len) {
                close(in_pipe[1]);
                in_pipe[1] = -1;
            }
        }
        if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) {
            if (out_len + 1 >= cap) {
                if (cap >= PLUGIN_OUTPUT_MAX)
                    break;
                cap *= 2;
                out = gy_xrealloc(out, cap);
            }
            ssize_t r = read(out_pipe[0], out + out_len, cap - out_len - 1);
            if (r > 0)
                out_len += (size_t)r;
            else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(out_pipe[0]);
                out_pipe[0] = -1;
            }
        }
    }
    out[out_len] = '\0';
    if (timed_out || out_pipe[0] >= 0)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    if (timed_out) {
        rc = gy_error_set(err, GY_ETIMEOUT, "CNI plugin %s %s for %s took more than %d s", type,
                          inv->command, inv->container_id, PLUGIN_TIMEOUT_MS / 1000);
        goto out;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        rc = plugin_error(type, inv, out, out_len, status, err);
        goto out;
    }
    if (result != NULL) {
        if (out_len == 0) {
            *result = json_null();
        } else {
            json_error_t jerr;
            *result = json_loadb(out, out_len, 0, &jerr);
            if (*result == NULL) {
                rc = gy_error_set(err, GY_EIO, "CNI plugin %s %s for %s printed no JSON: %s", type,
                                  inv->command, inv->container_id, jerr.text);
                goto out;
            }
        }
    }
    rc = 0;
out:
    if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    for (int i = 0; i < 2; i++) {
        if (in_pipe[i] >= 0)
            close(in_pipe[i]);
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
    }
    posix_spawn_file_actions_destroy(&fa);
    free(out);
    free(envp);
    free(input);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Lists */

/* The capability arguments of one attachment, as runtimeConfig keys. */
static json_t *args_json(const struct agent_cni_args *args)
{
    json_t *caps = json_object();
    if (args != NULL && args->n_ports > 0) {
        json_t *maps = json_array();
        for (size_t i = 0; i < args->n_ports; i++)
            json_array_append_new(maps, json_pack("{s:i, s:i, s:s}", "hostPort",
                                                  (int)args->ports[i].host_port, "containerPort",
                                                  (int)args->ports[i].container_port, "protocol",
                                                  args->ports[i].udp ? "udp" : "tcp"));
        json_object_set_new(caps, "portMappings", maps);
    }
    return caps;
}

/* Plugins whose only work is a capability: given none of theirs, they hand prevResult on
 * unchanged and touch nothing (the reference portmap and bandwidth plugins), so the agent
 * does not start them. Any other plugin always runs. */
static bool plugin_idle(json_t *plugin, json_t *caps)
{
    const char *type = json_string_value(json_object_get(plugin, "type"));
    const char *cap = NULL;
    if (strcmp(type, "portmap") == 0)
        cap = "portMappings";
    else if (strcmp(type, "bandwidth") == 0)
        cap = "bandwidth";
    else
        return false;
    /* A bandwidth plugin with rates in its own configuration has work without arguments. */
    const char *own[] = {"ingressRate", "egressRate", "ingressBurst", "egressBurst"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (json_object_get(plugin, own[i]) != NULL)
            return false;
    json_t *declared = json_object_get(json_object_get(plugin, "capabilities"), cap);
    return !json_is_true(declared) || json_object_get(caps, cap) == NULL;
}

/* The configuration plugin i of list receives: its own object, the list's cniVersion and
 * name, the runtimeConfig of the capabilities it declares, and prevResult when given. */
static json_t *plugin_config(json_t *list, json_t *plugin, json_t *caps, json_t *prev)
{
    json_t *conf = json_deep_copy(plugin);
    json_object_set(conf, "cniVersion", json_object_get(list, "cniVersion"));
    json_object_set(conf, "name", json_object_get(list, "name"));
    json_t *declared = json_object_get(plugin, "capabilities");
    json_t *rc = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(declared, key, v)
    {
        json_t *arg = json_object_get(caps, key);
        if (json_is_true(v) && arg != NULL)
            json_object_set(rc, key, arg);
    }
    if (json_object_size(rc) > 0)
        json_object_set(conf, "runtimeConfig", rc);
    json_decref(rc);
    if (prev != NULL && !json_is_null(prev))
        json_object_set(conf, "prevResult", prev);
    return conf;
}

static int cache_path(const struct agent_cni *cni, const char *id, const char *ifname, char *out,
                      size_t len, struct gy_error *err)
{
    if (!agent_cni_id_valid(id) || !name_valid(ifname))
        return gy_error_set(err, GY_EINVAL, "CNI container id \"%.80s\" or interface \"%.20s\"", id,
                            ifname);
    if (snprintf(out, len, "%s/%s-%s-%s.json", cni->cache_dir, cni->name, id, ifname) >= (int)len)
        return gy_error_set(err, GY_EINVAL, "CNI cache path too long");
    return 0;
}

static int cache_load(const struct agent_cni *cni, const char *id, const char *ifname, json_t **doc,
                      struct gy_error *err)
{
    char path[4096];
    int rc = cache_path(cni, id, ifname, path, sizeof(path), err);
    if (rc < 0)
        return rc;
    char *text = NULL;
    size_t len = 0;
    if ((rc = gy_read_file(path, CONFLIST_MAX * 2, &text, &len, err)) < 0)
        return rc;
    *doc = json_loadb(text, len, 0, NULL);
    free(text);
    if (!json_is_object(*doc) || !json_is_object(json_object_get(*doc, "config"))) {
        json_decref(*doc);
        *doc = NULL;
        return gy_error_set(err, GY_EINVAL, "CNI cache file %s is damaged", path);
    }
    return 0;
}

static int result_address(json_t *result, struct agent_cni_result *res, struct gy_error *err)
{
    json_t *ips = json_object_get(result, "ips");
    json_t *ifaces = json_object_get(result, "interfaces");
    size_t i;
    json_t *ip;
    json_array_foreach(ips, i, ip)
    {
        const char *cidr = json_string_value(json_object_get(ip, "address"));
        json_t *index = json_object_get(ip, "interface");
        /* An address on an interface of the host side (bridge, veth) is not the replica's. */
        if (json_is_integer(index)) {
            json_t *iface = json_array_get(ifaces, (size_t)json_integer_value(index));
            if (iface != NULL && json_object_get(iface, "sandbox") == NULL)
                continue;
        }
        char addr[64];
        const char *slash = cidr != NULL ? strchr(cidr, '/') : NULL;
        if (slash == NULL || (size_t)(slash - cidr) >= sizeof(addr))
            continue;
        memcpy(addr, cidr, (size_t)(slash - cidr));
        addr[slash - cidr] = '\0';
        struct in_addr in;
        if (inet_pton(AF_INET, addr, &in) != 1)
            continue;
        res->address = ntohl(in.s_addr);
        res->prefix_len = atoi(slash + 1);
        return 0;
    }
    return gy_error_set(err, GY_EINVAL, "the CNI result has no IPv4 address for the container");
}

/* Runs plugins[from..to) of list for inv in order (ADD, with prevResult chained) or in
 * reverse (DEL, CHECK, with prev given to each). *n_done counts the ones that succeeded. */
static int list_run_locked(struct agent_cni *cni, json_t *list, const struct invocation *inv,
                           json_t *caps, json_t *prev, bool add, json_t **result, size_t *n_done,
                           struct gy_error *err)
{
    json_t *plugins = json_object_get(list, "plugins");
    size_t n = json_array_size(plugins);
    json_t *chain = prev != NULL ? json_incref(prev) : NULL;
    int first_rc = 0;
    struct gy_error first;
    *n_done = 0;
    for (size_t k = 0; k < n; k++) {
        json_t *plugin = json_array_get(plugins, add ? k : n - 1 - k);
        if (plugin_idle(plugin, caps))
            continue;
        json_t *conf = plugin_config(list, plugin, caps, chain);
        json_t *out = NULL;
        int rc = plugin_run(cni, json_string_value(json_object_get(plugin, "type")), inv, conf,
                            add ? &out : NULL, err);
        json_decref(conf);
        if (rc < 0) {
            if (add) {
                json_decref(chain);
                return rc;
            }
            /* DEL goes on with the other plugins, so one failure leaves the least behind;
             * the first error is the one returned. */
            if (first_rc == 0) {
                first_rc = rc;
                first = *err;
            }
            continue;
        }
        (*n_done)++;
        if (add) {
            json_decref(chain);
            chain = out;
        }
    }
    if (first_rc < 0) {
        *err = first;
        json_decref(chain);
        return first_rc;
    }
    if (result != NULL)
        *result = chain;
    else
        json_decref(chain);
    return 0;
}

static int list_run(struct agent_cni *cni, json_t *list, const struct invocation *inv, json_t *caps,
                    json_t *prev, bool add, json_t **result, size_t *n_done, struct gy_error *err)
{
    pthread_mutex_lock(&chain_lock);
    int rc = list_run_locked(cni, list, inv, caps, prev, add, result, n_done, err);
    pthread_mutex_unlock(&chain_lock);
    return rc;
}

int agent_cni_add(struct agent_cni *cni, const char *container_id, const char *netns,
                  const char *ifname, const struct agent_cni_args *args,
                  struct agent_cni_result *res, struct gy_error *err)
{
    char path[4096];
    int rc = cache_path(cni, container_id, ifname, path, sizeof(path), err);
    if (rc < 0)
        return rc;
    json_t *list = json_loads(cni->text, 0, NULL);
    json_t *caps = args_json(args);
    json_t *result = NULL;
    size_t done = 0;
    struct invocation inv = {"ADD", container_id, netns, ifname};
    rc = list_run(cni, list, &inv, caps, NULL, true, &result, &done, err);
    if (rc == 0 && (rc = result_address(result, res, err)) < 0)
        gy_error_wrap(err, "CNI ADD for %s", container_id);
    if (rc == 0) {
        json_t *cache =
            json_pack("{s:s, s:s, s:s, s:s, s:O, s:O, s:O}", "kind", "cniCacheV1", "containerId",
                      container_id, "ifName", ifname, "networkName", cni->name, "config", list,
                      "capabilityArgs", caps, "result", result);
        rc = write_json_atomic(path, cache, err);
        json_decref(cache);
    }
    if (rc < 0 && done > 0) {
        /* Undo what ran: DEL of the whole list, as the spec asks after a failed ADD. */
        struct gy_error derr;
        struct invocation del = {"DEL", container_id, netns, ifname};
        size_t n;
        list_run(cni, list, &del, caps, NULL, false, NULL, &n, &derr);
    }
    json_decref(result);
    json_decref(caps);
    json_decref(list);
    return rc;
}

int agent_cni_del(struct agent_cni *cni, const char *container_id, const char *netns,
                  const char *ifname, struct gy_error *err)
{
    char path[4096];
    int rc = cache_path(cni, container_id, ifname, path, sizeof(path), err);
    if (rc < 0)
        return rc;
    json_t *cache = NULL;
    struct gy_error cerr;
    json_t *list, *caps, *prev = NULL;
    if (cache_load(cni, container_id, ifname, &cache, &cerr) == 0) {
        list = json_incref(json_object_get(cache, "config"));
        caps = json_incref(json_object_get(cache, "capabilityArgs"));
        if (!json_is_object(caps)) {
            json_decref(caps);
            caps = json_object();
        }
        prev = json_object_get(cache, "result");
    } else {
        list = json_loads(cni->text, 0, NULL);
        caps = json_object();
    }
    /* Lists before 1.0.0 give DEL the result; from 1.0.0 it is prevResult too (spec 1.0,
     * "Deleting a network attachment"). */
    struct invocation inv = {"DEL", container_id, netns, ifname};
    size_t done;
    rc = list_run(cni, list, &inv, caps, prev, false, NULL, &done, err);
    if (rc == 0 && unlink(path) < 0 && errno != ENOENT)
        rc = gy_error_set(err, GY_EIO, "%s: %s", path, strerror(errno));
    json_decref(list);
    json_decref(caps);
    json_decref(cache);
    return rc;
}

int agent_cni_check(struct agent_cni *cni, const char *container_id, const char *netns,
                    const char *ifname, struct gy_error *err)
{
    if (version_cmp(cni->version, "0.4.0") < 0)
        return 0;
    json_t *cache = NULL;
    int rc = cache_load(cni, container_id, ifname, &cache, err);
    if (rc < 0)
        return rc;
    json_t *list = json_object_get(cache, "config");
    json_t *caps = json_object_get(cache, "capabilityArgs");
    if (json_is_true(json_object_get(list, "disableCheck"))) {
        json_decref(cache);
        return 0;
    }
    struct invocation inv = {"CHECK", container_id, netns, ifname};
    json_t *plugins = json_object_get(list, "plugins");
    pthread_mutex_lock(&chain_lock);
    for (size_t k = 0; k < json_array_size(plugins) && rc == 0; k++) {
        json_t *plugin = json_array_get(plugins, k);
        if (plugin_idle(plugin, caps))
            continue;
        json_t *conf = plugin_config(list, plugin, caps, json_object_get(cache, "result"));
        rc = plugin_run(cni, json_string_value(json_object_get(plugin, "type")), &inv, conf, NULL,
                        err);
        json_decref(conf);
    }
    pthread_mutex_unlock(&chain_lock);
    json_decref(cache);
    return rc;
}

int agent_cni_cached(struct agent_cni *cni, const char *container_id, const char *ifname,
                     struct agent_cni_result *res, struct gy_error *err)
{
    json_t *cache = NULL;
    int rc = cache_load(cni, container_id, ifname, &cache, err);
    if (rc < 0)
        return rc;
    rc = result_address(json_object_get(cache, "result"), res, err);
    json_decref(cache);
    return rc;
}

bool agent_cni_cached_reusable(struct agent_cni *cni, const char *container_id, const char *ifname)
{
    json_t *cache = NULL;
    struct gy_error err;
    if (cache_load(cni, container_id, ifname, &cache, &err) < 0)
        return false;
    json_t *now = json_loads(cni->text, 0, NULL);
    json_t *caps = json_object_get(cache, "capabilityArgs");
    bool same = now != NULL && json_equal(json_object_get(cache, "config"), now) &&
                (caps == NULL || json_object_size(caps) == 0);
    json_decref(now);
    json_decref(cache);
    return same;
}

int agent_cni_cached_list(struct agent_cni *cni, char ***ids, size_t *n, struct gy_error *err)
{
    *ids = NULL;
    *n = 0;
    DIR *d = opendir(cni->cache_dir);
    if (d == NULL)
        return errno == ENOENT
                   ? 0
                   : gy_error_set(err, GY_EIO, "%s: %s", cni->cache_dir, strerror(errno));
    size_t cap = 0;
    size_t prefix = strlen(cni->name) + 1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        /* NAME-ID-IFNAME.json, the interface name being the last '-' part. */
        if (len <= prefix + 5 || strncmp(de->d_name, cni->name, prefix - 1) != 0 ||
            de->d_name[prefix - 1] != '-' || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        char id[AGENT_CNI_ID_MAX + 32];
        snprintf(id, sizeof(id), "%.*s", (int)(len - 5 - prefix), de->d_name + prefix);
        char *dash = strrchr(id, '-');
        if (dash == NULL)
            continue;
        *dash = '\0';
        if (!agent_cni_id_valid(id))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *ids = gy_xrealloc(*ids, cap * sizeof(char *));
        }
        (*ids)[(*n)++] = gy_xstrdup(id);
    }
    closedir(d);
    return 0;
}

int agent_cni_gc(struct agent_cni *cni, const char *const *valid, size_t n, const char *ifname,
                 struct gy_error *err)
{
    if (version_cmp(cni->version, "1.1.0") < 0)
        return 0;
    json_t *list = json_loads(cni->text, 0, NULL);
    json_t *attachments = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(attachments,
                              json_pack("{s:s, s:s}", "containerID", valid[i], "ifname", ifname));
    json_t *caps = json_object();
    struct invocation inv = {"GC", "", "", ""};
    json_t *plugins = json_object_get(list, "plugins");
    int rc = 0;
    pthread_mutex_lock(&chain_lock);
    for (size_t k = 0; k < json_array_size(plugins) && rc == 0; k++) {
        json_t *conf = plugin_config(list, json_array_get(plugins, k), caps, NULL);
        json_object_set(conf, "cni.dev/valid-attachments", attachments);
        rc = plugin_run(cni, json_string_value(json_object_get(json_array_get(plugins, k), "type")),
                        &inv, conf, NULL, err);
        json_decref(conf);
    }
    pthread_mutex_unlock(&chain_lock);
    json_decref(caps);
    json_decref(attachments);
    json_decref(list);
    return rc;
}
