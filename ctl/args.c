/* The command table and the command-line parser: global flags anywhere, one command word,
 * then the command's flags and arguments in any order. Every mistake is one sentence that
 * names the word at fault and, when a known word is close, suggests it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"
#include "ctl/ctl.h"

#define N_OPTS(a) (sizeof(a) / sizeof((a)[0]))

static const struct ctl_option apply_options[] = {
    {"filename", 'f', true, "FILE",
     "a spec file, a directory of *.yaml, *.yml and *.json files, "
     "or - for standard input"},
    {"wait", 0, false, NULL,
     "wait until every replica of the applied workloads is running and "
     "ready"},
    {"timeout", 0, true, "DUR", "how long --wait waits (default 2m)"},
};

static const struct ctl_option get_options[] = {
    {"output", 'o', true, "FORMAT", "table (default), wide, json, yaml or name"},
    {"workload", 0, true, "NAME", "replicas: only those of this workload"},
    {"node", 0, true, "NAME", "images: only those on this node"},
};

static const struct ctl_option image_options[] = {
    {"node", 0, true, "NAME", "ls: only this node's images; pull, rm: on this node"},
    {"cloud", 0, true, "CLOUD", "pull: on every ready node of this cloud"},
    {"output", 'o', true, "FORMAT", "ls: table (default), wide, json, yaml or name"},
};

static const struct ctl_option move_options[] = {
    {"to", 0, true, "CLOUD", "the cloud to move the workload's replicas to (required)"},
    {"wait", 0, false, NULL, "show progress until every replica runs in CLOUD"},
    {"timeout", 0, true, "DUR", "how long --wait waits (default 5m)"},
};

static const struct ctl_option drain_options[] = {
    {"wait", 0, false, NULL, "show progress until the node holds no replica"},
    {"timeout", 0, true, "DUR", "how long --wait waits (default 5m)"},
};

static const struct ctl_option top_options[] = {
    {"output", 'o', true, "FORMAT", "table (default) or json"},
};

static const struct ctl_option follow_options[] = {
    {"follow", 'f', false, NULL, "keep printing as new output arrives (Ctrl-C stops)"},
};

static const struct ctl_option cluster_options[] = {
    {"output", 'o', true, "FORMAT", "status, members and verify: json prints the server's answer"},
    {"role", 0, true, "ROLE", "join-token: server or node (default: both)"},
    {"quiet", 'q', false, NULL, "join-token: print the command lines alone"},
    {"host", 0, true, "HOST", "join-token: the new server's own address (default: NEW_HOST)"},
    {"data-dir", 0, true, "DIR", "snapshot restore: the new server's data directory"},
    {"id", 0, true, "N", "snapshot restore: the new server's id (default 1)"},
    {"raft-addr", 0, true, "HOST:PORT",
     "snapshot restore: the new server's Raft address (default 127.0.0.1:7701)"},
    {"keep-cluster-id", 0, false, NULL, "snapshot restore: keep the snapshot's cluster id"},
};

static const struct ctl_option dev_options[] = {
    {"data-dir", 0, true, "DIR", "where the server and the agent keep their data"},
};
static const struct ctl_option events_options[] = {
    {"follow", 'f', false, NULL, "keep waiting for new events (Ctrl-C stops)"},
    {"since", 0, true, "SEQ", "only events after this sequence number"},
    {"workload", 0, true, "NAME", "only events about this workload"},
};

const struct ctl_command ctl_commands[] = {
    {"apply", "apply -f FILE|DIR|- [--wait] [--timeout DUR]",
     "create or update workloads from spec files",
     "Reads every document of the files, checks them all, and sends them in one request that\n"
     "the control plane applies as a whole: when any document has a problem, every problem is\n"
     "printed as FILE:LINE:COLUMN: key.path: message and nothing is applied.\n"
     "\n"
     "Examples:\n"
     "  gantry apply -f examples/hello.yaml\n"
     "  gantry apply -f specs/ --wait --timeout 5m\n"
     "  cat web.yaml | gantry apply -f -\n",
     apply_options, N_OPTS(apply_options), 0, 0, ctl_cmd_apply},
    {"get",
     "get workloads|replicas|nodes|images [NAME] [-o wide|json|yaml|name] [--workload NAME] "
     "[--node NAME]",
     "list workloads, replicas, nodes or the images the nodes hold",
     "Prints an aligned table; -o wide adds columns, -o json prints the server's answer,\n"
     "-o yaml prints YAML (a workload as its full spec with defaults, ready to apply), and\n"
     "-o name prints one name a line. Images are grouped by name and digest with the nodes\n"
     "that hold them; -o wide adds their OCI annotations (source, revision, created, ...).\n"
     "\n"
     "Examples:\n"
     "  gantry get workloads\n"
     "  gantry get workloads web -o yaml > web.yaml\n"
     "  gantry get replicas --workload web -o wide\n"
     "  gantry get nodes -o json\n"
     "  gantry get images --node node1 -o wide\n",
     get_options, N_OPTS(get_options), 1, 2, ctl_cmd_get},
    {"describe", "describe workload NAME",
     "show a workload's spec, replicas, conditions and events",
     "Examples:\n"
     "  gantry describe workload web\n",
     NULL, 0, 2, 2, ctl_cmd_describe},
    {"delete", "delete NAME", "stop and remove a workload and all its replicas",
     "Examples:\n"
     "  gantry delete web\n",
     NULL, 0, 1, 2, ctl_cmd_delete},
    {"scale", "scale NAME N", "set a workload's replica count",
     "N is a whole number from 0 to 10000.\n"
     "\n"
     "Examples:\n"
     "  gantry scale web 5\n",
     NULL, 0, 2, 2, ctl_cmd_scale},
    {"move", "move NAME --to CLOUD [--wait] [--timeout DUR]",
     "move a workload's replicas to another cloud without downtime",
     "Sets the workload's placement to CLOUD and replaces its replicas make-before-break:\n"
     "each new replica runs (and passes its health check) before an old one stops, so the\n"
     "ready count never drops below the desired count. If a new replica cannot be placed or\n"
     "fails, the move stops and says why; the old replicas keep serving. The move lives in\n"
     "the replicated state, so it survives a leader change.\n"
     "\n"
     "Examples:\n"
     "  gantry move web --to public --wait\n",
     move_options, N_OPTS(move_options), 1, 1, ctl_cmd_move},
    {"drain", "drain NODE [--wait] [--timeout DUR]",
     "move every replica off a node, make-before-break, then cordon it",
     "Replicas on the node are replaced on other nodes (each replacement ready before the\n"
     "old replica stops); once empty the node is cordoned and takes no new replicas until\n"
     "'gantry uncordon NODE'.\n"
     "\n"
     "Examples:\n"
     "  gantry drain node3 --wait\n",
     drain_options, N_OPTS(drain_options), 1, 1, ctl_cmd_drain},
    {"cordon", "cordon NODE", "stop placing new replicas on a node (running ones stay)",
     "Examples:\n"
     "  gantry cordon node3\n",
     NULL, 0, 1, 1, ctl_cmd_cordon},
    {"uncordon", "uncordon NODE", "let a cordoned or drained node take replicas again",
     "Examples:\n"
     "  gantry uncordon node3\n",
     NULL, 0, 1, 1, ctl_cmd_uncordon},
    {"remove-node", "remove-node NODE",
     "forget a node that is down: its replicas go elsewhere, its subnet is free again",
     "The node must be down (its agent stopped); drain it first to move its replicas\n"
     "make-before-break. The other nodes drop their route to its replica subnet.\n"
     "Examples:\n"
     "  gantry drain node3 --wait && (stop node3's agent) && gantry remove-node node3\n",
     NULL, 0, 1, 1, ctl_cmd_remove_node},
    {"rotate-key", "rotate-key NODE",
     "give a node a new WireGuard key pair for the tunnels between clouds",
     "The node's agent makes the key pair (the private key never leaves the node) and\n"
     "reports the public key; the leader records it and the nodes of other clouds use it\n"
     "from then on. Traffic between clouds pauses for a moment while they switch.\n"
     "Examples:\n"
     "  gantry rotate-key node3\n",
     NULL, 0, 1, 1, ctl_cmd_rotate_key},
    {"top", "top [WORKLOAD] [-o json]", "show CPU and memory use of workloads and replicas",
     "CPU (averaged over the last two seconds) and memory of every running replica and the\n"
     "total of each workload, also as a share of what the spec requests (resources.cpu and\n"
     "resources.memory): the figures the autoscaler acts on.\n"
     "\n"
     "Examples:\n"
     "  gantry top\n"
     "  gantry top web\n",
     top_options, N_OPTS(top_options), 0, 1, ctl_cmd_top},
    {"logs", "logs REPLICA [-f]", "print a replica's output",
     "Examples:\n"
     "  gantry logs web-1a2b3c\n"
     "  gantry logs web-1a2b3c -f\n",
     follow_options, N_OPTS(follow_options), 1, 1, ctl_cmd_logs},
    {"image",
     "image ls [NAME] [--node NODE] [-o wide|json|yaml|name] | pull REF [--node NODE | "
     "--cloud CLOUD] | rm REF --node NODE",
     "list, pull or remove the images the nodes hold",
     "Subcommands:\n"
     "  ls [NAME]   the images every node connected to the leader holds, grouped by name\n"
     "              and digest (the same as 'gantry get images')\n"
     "  pull REF    pull REF on one node (--node), on every ready node of a cloud (--cloud),\n"
     "              or on every ready node, with its layers unpacked; prints each node's\n"
     "              digest and the bytes it fetched from the registry and from its peers,\n"
     "              or its error, and exits 1 when a node failed\n"
     "  rm REF      remove REF (a reference, or an imported image's name) from a node;\n"
     "              refused while a replica runs from it\n"
     "\n"
     "Examples:\n"
     "  gantry image ls --node node1\n"
     "  gantry image pull registry.example/team/web:1.4 --cloud private\n"
     "  gantry image rm registry.example/team/web:1.3 --node node1\n",
     image_options, N_OPTS(image_options), 1, 2, ctl_cmd_image},
    {"events", "events [-f] [--since SEQ] [--workload NAME]", "print the audit trail",
     "Every change the control plane commits is an event with a sequence number.\n"
     "\n"
     "Examples:\n"
     "  gantry events\n"
     "  gantry events -f --since 120\n"
     "  gantry events --workload web\n",
     events_options, N_OPTS(events_options), 0, 0, ctl_cmd_events},
    {"cluster",
     "cluster status|members|verify|remove ID|transfer-leader [ID]|snapshot save FILE|"
     "snapshot restore FILE --data-dir DIR [--id N] [--raft-addr HOST:PORT] [--keep-cluster-id]|"
     "join-token [--role server|node] [--host HOST] [-q] [-o json]",
     "show and manage the control-plane servers, the leader and backups",
     "Subcommands:\n"
     "  status                 this server's view: servers, roles, the leader, term and indexes,\n"
     "                         the servers found diverged and the leader's last check\n"
     "  members                the leader's view of every server: role, state, how far its\n"
     "                         log goes (MATCH) and the index it applied (APPLIED)\n"
     "  verify                 compare every voter's state digest now; exits 1 when a server\n"
     "                         diverged (it then rebuilds its state from the leader), did not\n"
     "                         answer, or no digest has a majority\n"
     "  remove ID              take server ID out of the cluster (then stop it)\n"
     "  transfer-leader [ID]   hand leadership to server ID, or to the most up-to-date voter;\n"
     "                         answers once the new leader is in place\n"
     "  snapshot save FILE     download a consistent image of the state into FILE (written\n"
     "                         whole or not at all)\n"
     "  snapshot restore FILE  prepare the data directory of the first server of a new\n"
     "                         cluster from a saved image (on that server's machine, with\n"
     "                         gantry-scheduler on the PATH or beside gantry); a new cluster\n"
     "                         id unless --keep-cluster-id; start the server from it after\n"
     "  join-token             print the command line that adds a server (gantry-scheduler\n"
     "                         --join, with the next free id) or a node (gantry-agent\n"
     "                         --servers) to this cluster. It carries no secret yet: anyone\n"
     "                         who reaches the API can join; tokens that authenticate come\n"
     "                         with TLS and identities\n"
     "\n"
     "Examples:\n"
     "  gantry cluster status\n"
     "  gantry cluster members\n"
     "  gantry cluster verify\n"
     "  gantry cluster transfer-leader 2\n"
     "  gantry cluster remove 4\n"
     "  gantry cluster snapshot save /var/backups/gantry-$(date +%F).snapshot\n"
     "  gantry cluster snapshot restore /var/backups/gantry.snapshot --data-dir "
     "/var/lib/gantry/s1 \\\n"
     "      --id 1 --raft-addr 10.0.0.1:7701\n"
     "  gantry cluster join-token --role node\n",
     cluster_options, N_OPTS(cluster_options), 1, 3, ctl_cmd_cluster},
    {"dev", "dev [--data-dir DIR]",
     "run a one-server control plane and a local agent, for trying Gantry out",
     "Starts gantry-scheduler and gantry-agent on this machine (as root) with their data\n"
     "under DIR (default: a new directory under /tmp), streams their logs, and on Ctrl-C\n"
     "deletes every workload, waits for the containers to stop, then stops the agent and\n"
     "the server. The API listens on http://127.0.0.1:7700, gantry's default.\n"
     "\n"
     "Examples:\n"
     "  sudo gantry dev\n"
     "  sudo gantry dev --data-dir /var/tmp/gantry\n",
     dev_options, N_OPTS(dev_options), 0, 0, ctl_cmd_dev},
    {"version", "version", "print the client's and the server's version",
     "Examples:\n"
     "  gantry version\n",
     NULL, 0, 0, 0, ctl_cmd_version},
};
const size_t ctl_n_commands = N_OPTS(ctl_commands);

const struct ctl_command *ctl_command_find(const char *name)
{
    for (size_t i = 0; i < ctl_n_commands; i++)
        if (strcmp(ctl_commands[i].name, name) == 0)
            return &ctl_commands[i];
    return NULL;
}

static int option_index(const struct ctl_command *cmd, const char *name)
{
    for (size_t i = 0; i < cmd->n_options; i++)
        if (strcmp(cmd->options[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *ctl_opt(const struct ctl_invocation *inv, const char *name)
{
    int i = inv->command ? option_index(inv->command, name) : -1;
    return i >= 0 ? inv->values[i] : NULL;
}

bool ctl_opt_set(const struct ctl_invocation *inv, const char *name)
{
    int i = inv->command ? option_index(inv->command, name) : -1;
    return i >= 0 && inv->set[i];
}

/* Appends "; did you mean X?" to err when a candidate is close to word. */
static void suggest(struct gy_error *err, const char *word, const char *const *candidates, size_t n,
                    const char *prefix)
{
    const char *best = gy_spec_suggest(word, candidates, n);
    if (best == NULL)
        return;
    size_t len = strlen(err->msg);
    snprintf(err->msg + len, sizeof(err->msg) - len, "; did you mean \"%s%s\"?", prefix, best);
}

static int unknown_command(const char *word, struct gy_error *err)
{
    const char *names[32];
    size_t n = 0;
    for (size_t i = 0; i < ctl_n_commands && n < 32; i++)
        names[n++] = ctl_commands[i].name;
    gy_error_set(err, GY_EINVAL, "unknown command \"%s\"", word);
    suggest(err, word, names, n, "");
    return -GY_EINVAL;
}

static int unknown_flag(const struct ctl_command *cmd, const char *flag, struct gy_error *err)
{
    const char *names[CTL_MAX_OPTIONS + 3];
    size_t n = 0;
    names[n++] = "server";
    names[n++] = "help";
    if (cmd == NULL)
        names[n++] = "version";
    for (size_t i = 0; cmd != NULL && i < cmd->n_options; i++)
        names[n++] = cmd->options[i].name;
    if (cmd != NULL)
        gy_error_set(err, GY_EINVAL, "%s: unknown flag \"%s\"", cmd->name, flag);
    else
        gy_error_set(err, GY_EINVAL, "unknown flag \"%s\"", flag);
    const char *word = flag;
    while (*word == '-')
        word++;
    char bare[64];
    snprintf(bare, sizeof(bare), "%.*s", (int)strcspn(word, "="), word);
    suggest(err, bare, names, n, "--");
    return -GY_EINVAL;
}

/* A word that starts with '-' but is a number (scale web -1) is an argument, so that the
 * command can say what is wrong with it. */
static bool is_number(const char *s)
{
    if (*s == '-')
        s++;
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if ((*s < '0' || *s > '9') && *s != '.')
            return false;
    return true;
}

/* Takes the value of a flag: attached ("--x=v", "-ov") or the next word. */
static int take_value(const char *flag, const char *attached, int argc, char **argv, int *i,
                      const char **out, struct gy_error *err)
{
    if (attached != NULL) {
        *out = attached;
        return 0;
    }
    if (*i + 1 >= argc)
        return gy_error_set(err, GY_EINVAL, "flag %s needs a value", flag);
    *out = argv[++*i];
    return 0;
}

/* Handles one flag word; cmd is NULL before the command word. */
static int parse_flag(const struct ctl_command *cmd, int argc, char **argv, int *i,
                      struct ctl_invocation *inv, struct gy_error *err)
{
    const char *word = argv[*i];
    char name[64];
    const char *attached = NULL;
    int idx = -1;
    if (word[1] == '-') {
        const char *eq = strchr(word + 2, '=');
        size_t len = eq ? (size_t)(eq - word - 2) : strlen(word + 2);
        if (len == 0 || len >= sizeof(name))
            return unknown_flag(cmd, word, err);
        memcpy(name, word + 2, len);
        name[len] = '\0';
        attached = eq ? eq + 1 : NULL;
        if (cmd != NULL)
            idx = option_index(cmd, name);
    } else {
        name[0] = word[1];
        name[1] = '\0';
        attached = word[2] ? word + 2 : NULL;
        if (strcmp(name, "h") == 0 && attached == NULL) {
            inv->help = true;
            return 0;
        }
        for (size_t k = 0; cmd != NULL && k < cmd->n_options; k++)
            if (cmd->options[k].short_name == word[1])
                idx = (int)k;
        if (idx < 0)
            return unknown_flag(cmd, word, err);
        snprintf(name, sizeof(name), "%s", cmd->options[idx].name);
    }
    if (idx >= 0) {
        const struct ctl_option *opt = &cmd->options[idx];
        if (!opt->takes_value) {
            if (attached != NULL && word[1] == '-')
                return gy_error_set(err, GY_EINVAL, "flag --%s takes no value", opt->name);
            if (attached != NULL)
                return gy_error_set(err, GY_EINVAL, "flag -%c takes no value", opt->short_name);
            inv->set[idx] = true;
            return 0;
        }
        char shown[80];
        snprintf(shown, sizeof(shown), "--%s", opt->name);
        if (take_value(shown, attached, argc, argv, i, &inv->values[idx], err) < 0)
            return -GY_EINVAL;
        inv->set[idx] = true;
        return 0;
    }
    if (strcmp(name, "help") == 0 && attached == NULL) {
        inv->help = true;
        return 0;
    }
    if (strcmp(name, "server") == 0)
        return take_value("--server", attached, argc, argv, i, &inv->server, err);
    if (cmd == NULL && strcmp(name, "version") == 0 && attached == NULL) {
        inv->version = true;
        return 0;
    }
    return unknown_flag(cmd, word, err);
}

int ctl_args_parse(int argc, char **argv, struct ctl_invocation *inv, struct gy_error *err)
{
    memset(inv, 0, sizeof(*inv));
    gy_error_clear(err);
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *word = argv[i];
        bool flag = !only_args && word[0] == '-' && word[1] != '\0' && !is_number(word);
        if (!only_args && strcmp(word, "--") == 0) {
            only_args = true;
            continue;
        }
        if (flag) {
            if (parse_flag(inv->command, argc, argv, &i, inv, err) < 0)
                return -GY_EINVAL;
            continue;
        }
        if (inv->command == NULL) {
            if (strcmp(word, "help") == 0) {
                inv->help = true;
                if (i + 1 < argc && (inv->command = ctl_command_find(argv[i + 1])) == NULL)
                    return unknown_command(argv[i + 1], err);
                return 0;
            }
            inv->command = ctl_command_find(word);
            if (inv->command == NULL)
                return unknown_command(word, err);
            continue;
        }
        if (inv->n_args >= CTL_MAX_ARGS)
            return gy_error_set(err, GY_EINVAL, "%s: too many arguments", inv->command->name);
        inv->args[inv->n_args++] = word;
    }
    const struct ctl_command *cmd = inv->command;
    if (cmd == NULL || inv->help)
        return 0;
    if ((int)inv->n_args < cmd->min_args)
        return gy_error_set(err, GY_EINVAL, "%s: missing arguments (usage: gantry %s)", cmd->name,
                            cmd->usage);
    if ((int)inv->n_args > cmd->max_args)
        return gy_error_set(err, GY_EINVAL, "%s: unexpected argument \"%s\" (usage: gantry %s)",
                            cmd->name, inv->args[cmd->max_args], cmd->usage);
    return 0;
}

void ctl_usage_print(FILE *out)
{
    fprintf(out, "gantry: the command-line client of the Gantry control plane.\n\n"
                 "Usage: gantry [--server URL] COMMAND [ARGS] [FLAGS]\n\nCommands:\n");
    for (size_t i = 0; i < ctl_n_commands; i++)
        fprintf(out, "  %-10s %s\n", ctl_commands[i].name, ctl_commands[i].summary);
    fprintf(out,
            "\nGlobal flags:\n"
            "  --server URL  the control plane's API (default $GANTRY_ADDR, else %s)\n"
            "  -h, --help    help for gantry or for a command\n"
            "  --version     print the client's version\n"
            "\nExit status: 0 success, 1 the operation failed, 2 usage error or invalid input.\n"
            "Run 'gantry COMMAND --help' for a command's flags and examples.\n",
            CTL_DEFAULT_SERVER);
}

void ctl_command_help_print(const struct ctl_command *command, FILE *out)
{
    fprintf(out, "gantry %s: %s.\n\nUsage: gantry %s\n", command->name, command->summary,
            command->usage);
    if (command->n_options > 0) {
        fprintf(out, "\nFlags:\n");
        for (size_t i = 0; i < command->n_options; i++) {
            const struct ctl_option *o = &command->options[i];
            char left[64];
            if (o->short_name)
                snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name,
                         o->takes_value ? " " : "", o->takes_value ? o->value_name : "");
            else
                snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->takes_value ? " " : "",
                         o->takes_value ? o->value_name : "");
            fprintf(out, "  %-22s %s\n", left, o->help);
        }
    }
    fprintf(out, "\n%s\nGlobal flags: --server URL (default $GANTRY_ADDR, else %s), -h/--help.\n",
            command->help, CTL_DEFAULT_SERVER);
}
