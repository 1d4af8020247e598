/* The gantry command-line client: argument parsing, the HTTP client of the control-plane
 * API, output formatting (tables, YAML) and the commands themselves (docs/cli.md). */
#ifndef GANTRY_CTL_CTL_H
#define GANTRY_CTL_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/error.h"

/* Exit statuses of every command (docs/cli.md, "Exit status"). */
enum ctl_exit {
    CTL_EXIT_OK = 0,
    CTL_EXIT_FAILED = 1, /* the operation failed: server error, unreachable, timeout */
    CTL_EXIT_USAGE = 2,  /* bad arguments or invalid input; nothing was sent */
};

#define CTL_DEFAULT_SERVER "http://127.0.0.1:7700"

/* ---------------------------------------------------------------------------------------
 * Arguments (ctl/args.c) */

#define CTL_MAX_ARGS    8
#define CTL_MAX_OPTIONS 12

/* One flag a command takes. Flags that take a value accept "--name VALUE",
 * "--name=VALUE" and, with a short form, "-s VALUE". */
struct ctl_option {
    const char *name; /* long name without the dashes */
    char short_name;  /* 0 when there is none */
    bool takes_value;
    const char *value_name; /* shown in help: FILE, DUR, FORMAT */
    const char *help;
};

struct ctl_invocation;
struct ctl_context;

struct ctl_command {
    const char *name;
    const char *usage;   /* the part after "gantry " */
    const char *summary; /* one line for the command list */
    const char *help;    /* paragraphs and examples for --help */
    const struct ctl_option *options;
    size_t n_options;
    int min_args;
    int max_args;
    int (*run)(struct ctl_context *ctx, const struct ctl_invocation *inv);
};

/* A parsed command line. Strings point into argv. */
struct ctl_invocation {
    const struct ctl_command *command; /* NULL when only global flags were given */
    const char *args[CTL_MAX_ARGS];
    size_t n_args;
    const char *values[CTL_MAX_OPTIONS]; /* per option of the command; NULL when unset */
    bool set[CTL_MAX_OPTIONS];
    const char *server; /* --server, NULL when not given */
    bool help;          /* --help or -h anywhere */
    bool version;       /* --version before any command */
};

/* The command table, in the order of `gantry --help`. */
extern const struct ctl_command ctl_commands[];
extern const size_t ctl_n_commands;

/* Finds a command by name; NULL when there is none. */
const struct ctl_command *ctl_command_find(const char *name);

/* Parses argv (argv[0] is the program). On a usage error returns -GY_EINVAL with err
 * holding one sentence that names the bad word and, when one is close, a "did you mean"
 * hint. Positional argument counts are checked unless --help was given. */
int ctl_args_parse(int argc, char **argv, struct ctl_invocation *inv, struct gy_error *err);

/* The value of a command's option by long name, or NULL when it was not given. */
const char *ctl_opt(const struct ctl_invocation *inv, const char *name);
/* True when the option was given (for flags without a value). */
bool ctl_opt_set(const struct ctl_invocation *inv, const char *name);

/* Writes the overview (`gantry --help`) or one command's help to out. */
void ctl_usage_print(FILE *out);
void ctl_command_help_print(const struct ctl_command *command, FILE *out);

/* ---------------------------------------------------------------------------------------
 * HTTP client (ctl/client.c) */

struct ctl_client {
    char *base;       /* "http://127.0.0.1:7700", without a trailing slash */
    char *actor;      /* sent as X-Gantry-Actor for the audit trail */
    long timeout_ms;  /* whole-request limit for ordinary requests */
    unsigned retries; /* how often a 503 "no leader" answer is retried */
    void *curl;       /* CURL *, reused so that the connection stays open */
    char server[128]; /* the Server header of the last answer, "" when none */
    char final[512];  /* the URL that answered last, after redirects */
};

struct ctl_response {
    long status; /* HTTP status; 0 when no answer came */
    char *body;  /* NUL-terminated; owned */
    size_t len;
    json_t *json; /* the parsed body when it is JSON; owned */
};

/* Prepares a client for base (NULL = GANTRY_ADDR or the default). Returns -GY_EINVAL
 * when the URL is not http:// or https://. */
int ctl_client_init(struct ctl_client *client, const char *base, struct gy_error *err);
void ctl_client_free(struct ctl_client *client);
void ctl_response_free(struct ctl_response *resp);

/* Sends one request and reads the whole answer. body may be NULL. A leader redirect is
 * followed (method and body kept). A transport failure returns -GY_UNAVAILABLE with
 * "cannot reach the control plane at URL: ..." in err; any HTTP answer returns 0 with
 * the status in resp, which the caller frees. timeout_ms 0 uses the client's limit. */
int ctl_client_request(struct ctl_client *client, const char *method, const char *path,
                       const json_t *body, long timeout_ms, struct ctl_response *resp,
                       struct gy_error *err);

/* Like ctl_client_request but the body of a 2xx answer goes to sink as it arrives (logs
 * -f); other answers are collected into resp as usual. */
typedef size_t (*ctl_sink_fn)(const char *data, size_t len, void *arg);
int ctl_client_stream(struct ctl_client *client, const char *path, ctl_sink_fn sink, void *arg,
                      struct ctl_response *resp, struct gy_error *err);

/* Percent-encodes s for a URL path segment or query value; the caller frees it. */
char *ctl_url_escape(const char *s);
/* base alone when value is NULL, else base, joiner and the escaped value
 * ("/v1/replicas", "?workload=", "web"). The caller frees it. */
char *ctl_path(const char *base, const char *joiner, const char *value);

/* The one sentence a failed answer means to a user, without the "gantry: " prefix:
 * the server's error message when the body is the API's error JSON, else a description
 * of the status. Problems of an invalid_spec answer are appended one per line. The
 * caller frees the result. */
char *ctl_error_sentence(long status, const char *body);

/* Turns a non-2xx response into err (code by status: 4xx client errors -GY_EINVAL or
 * -GY_ENOTFOUND, 5xx -GY_UNAVAILABLE or -GY_INTERNAL) and returns the negative code. */
int ctl_response_error(const struct ctl_response *resp, struct gy_error *err);

/* GET path and require a 2xx JSON answer: 0 with *out (owned by the caller) or a negative
 * code with err holding the sentence to print. */
int ctl_get_json(struct ctl_client *client, const char *path, json_t **out, struct gy_error *err);

/* ---------------------------------------------------------------------------------------
 * Output (ctl/table.c, ctl/yaml_out.c) */

/* An aligned table: columns padded to their widest cell, separated by three spaces, the
 * last column not padded (kubectl's look). */
struct ctl_table {
    size_t n_cols;
    size_t n_rows; /* including the header row */
    char **cells;  /* n_rows * n_cols, owned */
};

void ctl_table_init(struct ctl_table *t, size_t n_cols, const char *const *headers);
/* Appends a row of n_cols cells; NULL cells print as "<none>". */
void ctl_table_add(struct ctl_table *t, const char *const *cells);
/* printf-style helper for one cell (the result is owned by the caller). */
char *ctl_cell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void ctl_table_print(const struct ctl_table *t, FILE *out);
/* The same with indent before every line (tables nested under a heading). */
void ctl_table_print_indent(const struct ctl_table *t, const char *indent, FILE *out);
void ctl_table_free(struct ctl_table *t);

/* kubectl-like age of a timestamp: "45s", "12m", "3h", "5d", "2y"; "<unknown>" when then
 * is 0; "0s" when then lies in the future (clock skew). */
const char *ctl_age_format(uint64_t now_ms, uint64_t then_ms, char buf[32]);
uint64_t ctl_now_ms(void);

/* Writes value as YAML in block style (lists of scalars in flow style), with strings
 * quoted when plain text would read back as another type, so the output applies as it
 * is. */
void ctl_yaml_print(const json_t *value, FILE *out);

/* A string member of an object, "" when it is missing or not a string. */
const char *ctl_json_str(const json_t *obj, const char *key);
/* An integer member of an object, 0 when it is missing or not an integer. */
long long ctl_json_int(const json_t *obj, const char *key);

/* Pretty JSON (indent 2) followed by a newline. */
void ctl_json_print(const json_t *value, FILE *out);

/* ---------------------------------------------------------------------------------------
 * Commands (ctl/cmd_*.c) */

struct ctl_context {
    struct ctl_client client;
    FILE *out;
    FILE *err;
};

/* Prints "gantry: MESSAGE" for a failure and returns the exit status it means. */
int ctl_fail(struct ctl_context *ctx, const struct gy_error *err);

int ctl_cmd_apply(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_get(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_describe(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_delete(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_scale(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_logs(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_top(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_move(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_drain(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_cordon(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_uncordon(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_remove_node(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_rotate_key(struct ctl_context *ctx, const struct ctl_invocation *inv);

/* Sends a write and reads its JSON answer; on failure prints the error and sets
 * *exit_code. Returns 0 or -1. */
int ctl_write_request(struct ctl_context *ctx, const char *method, const char *path,
                      const json_t *body, json_t **answer, int *exit_code);
int ctl_cmd_events(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_cluster(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_version(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_dev(struct ctl_context *ctx, const struct ctl_invocation *inv);
int ctl_cmd_image(struct ctl_context *ctx, const struct ctl_invocation *inv);

/* ---------------------------------------------------------------------------------------
 * Images on the nodes (ctl/cmd_image.c): `gantry get images` and `gantry image ls` share
 * one listing; the printers are split out so that they are tested without a server. */

/* Lists GET /v1/images (only node's when node is not NULL; only the images called name,
 * as written or normalised, when name is not NULL) in format: NULL or "table", "wide",
 * "json", "yaml" or "name". Returns the exit status. */
int ctl_images_get(struct ctl_context *ctx, const char *node, const char *format, const char *name);
/* The table of `gantry get images`: NAME, DIGEST (12 hex digits), SIZE, NODES (the names,
 * or a count past three); wide adds the OCI annotations SOURCE, REVISION, CREATED, VENDOR,
 * LICENSES and AUTHORS (org.opencontainers.image.*). items is the answer's "items". */
void ctl_images_print(const json_t *items, bool wide, FILE *out);
/* Prints the answer of POST /v1/images/pull, one row per node (NODE, DIGEST, SIZE, FROM
 * REGISTRY, FROM PEERS, RESULT: "pulled" or "failed: " and the node's words) and returns
 * CTL_EXIT_FAILED when a node failed, else CTL_EXIT_OK. */
int ctl_image_pull_print(const json_t *answer, FILE *out);
/* The first 12 hex digits of a digest ("<none>" for an empty one); the caller frees it. */
char *ctl_digest_short(const char *digest);

/* The table of `gantry get workloads`: NAME, DESIRED, RUNNING, READY, GENERATION, AGE; wide
 * adds IMAGE, CPU, MEMORY, RESTART, CLOUDS and PORTS. items is the answer's "items". */
void ctl_workloads_print(const json_t *items, bool wide, uint64_t now_ms, FILE *out);
/* A spec's ports ("ports" of its JSON form) in short: "80/tcp, 8080:80/udp", a published
 * port as HOST:CONTAINER/PROTOCOL; with names each named one is followed by its name in
 * parentheses. "" for none. The caller frees it. */
char *ctl_ports_text(const json_t *ports, bool names);
/* The image's ExposedPorts as the leader records them (the label
 * org.opencontainers.image.exposedPorts, "80/tcp,53/udp") in the form of ctl_ports_text,
 * "80/tcp, 53/udp"; a port without a protocol is tcp (OCI image-spec, config.ExposedPorts).
 * The caller frees it. */
char *ctl_exposed_ports_text(const char *label);

/* ---------------------------------------------------------------------------------------
 * cluster (ctl/cmd_cluster.c): the control plane's servers, its leader and its backups.
 * The decisions and the output are split out so that they are tested without a server. */

enum ctl_cluster_op {
    CTL_CLUSTER_STATUS = 0,
    CTL_CLUSTER_MEMBERS,
    CTL_CLUSTER_REMOVE,
    CTL_CLUSTER_TRANSFER,
    CTL_CLUSTER_SNAPSHOT_SAVE,
    CTL_CLUSTER_SNAPSHOT_RESTORE,
    CTL_CLUSTER_VERIFY,
    CTL_CLUSTER_JOIN_TOKEN,
};

/* Whom `cluster join-token` prints the command line for. */
enum ctl_join_role {
    CTL_JOIN_ANY = 0, /* no --role: a server and a node */
    CTL_JOIN_SERVER,
    CTL_JOIN_NODE,
};

/* What `gantry cluster ...` asks for. */
struct ctl_cluster_request {
    enum ctl_cluster_op op;
    uint64_t id;             /* remove: the server; transfer-leader: the server, 0 for any voter */
    const char *file;        /* snapshot save: where to write the image (points into argv) */
    bool json;               /* status, members, verify: -o json */
    enum ctl_join_role role; /* join-token: --role */
    bool quiet;              /* join-token: -q, the command lines alone */
    const char *host;        /* join-token: --host, the new server's address, or NULL */
    /* snapshot restore: the data directory to prepare (--data-dir), the new server's id
     * (--id, default "1") and Raft address (--raft-addr, default 127.0.0.1:7701), and
     * --keep-cluster-id; file is the snapshot. */
    const char *data_dir;
    const char *server_id;
    const char *raft_addr;
    bool keep_cluster_id;
};

/* Reads the subcommand and arguments of an invocation of `cluster`. A usage error (unknown
 * subcommand with a did-you-mean hint, missing or surplus argument, an id that is not a
 * positive whole number, -o other than json, --role other than server or node, a flag that
 * does not go with the subcommand) returns -GY_EINVAL with one sentence in err. */
int ctl_cluster_parse(const struct ctl_invocation *inv, struct ctl_cluster_request *req,
                      struct gy_error *err);

/* What the header of a snapshot image says (docs/operations.md, "Backup"). */
struct ctl_snapshot_info {
    uint64_t index;          /* the Raft index of the state it holds */
    uint64_t database_bytes; /* the size of the SQLite database behind the header */
    char cluster_id[80];
};

/* Checks that buf is a whole snapshot image (as GET /v1/cluster/snapshot answers): the
 * Gantry header of an image, then an SQLite database of the size it gives. -GY_EPROTO
 * with the problem in err otherwise. */
int ctl_snapshot_info(const void *buf, size_t len, struct ctl_snapshot_info *info,
                      struct gy_error *err);

/* Writes len bytes to path so that path holds either its old content or all of the new
 * (a temporary file in the same directory, synced, renamed over path, directory synced). */
int ctl_file_write_atomic(const char *path, const void *data, size_t len, struct gy_error *err);

/* A size for people: "812 B", "1.2 KiB", "34.5 MiB", "2.0 GiB". */
const char *ctl_size_format(uint64_t bytes, char buf[32]);

/* Prints the answer of GET /v1/cluster/members as `gantry cluster members` does: a
 * heading with the cluster and the leader, then one row per server. applied[i] is the
 * applied index server i (in the answer's order) reported itself, or -1 when it did not
 * answer; applied may be NULL. */
void ctl_members_print(const json_t *members, const long long *applied, FILE *out);

/* Prints the answer of GET /v1/cluster as `gantry cluster status` does: the answering
 * server, the leader, the indexes, the servers flagged diverged and the leader's last
 * divergence check, then one row per server. leader_view is the leader's own GET
 * /v1/cluster when another server answered (the leader runs the checks), or NULL when the
 * answering server leads or the leader did not answer. */
void ctl_cluster_status_print(const json_t *view, const json_t *leader_view, FILE *out);

/* The exit status the answer of POST /v1/cluster/verify means: CTL_EXIT_OK when every
 * voter answered with the majority's digest, CTL_EXIT_FAILED when one diverged, did not
 * answer, or no digest had a majority. */
int ctl_verify_exit(const json_t *answer);
/* Prints that answer as `gantry cluster verify` does (a SERVER, DIGEST, STATE table, then
 * one line per finding: "3 servers agree at index 34", "server 2 diverged at index 34: ...")
 * and returns ctl_verify_exit(answer). */
int ctl_verify_print(const json_t *answer, FILE *out);

/* The command line that adds a member to the cluster described by members (the answer of
 * GET /v1/cluster/members), as `cluster join-token` prints it. CTL_JOIN_SERVER: a
 * gantry-scheduler line with the next free id (one above the highest member) and --join at
 * the leader's API address (else any member's, else fallback_url, an http:// URL, may be
 * NULL); the new server's own host is host, or the placeholder NEW_HOST when host is NULL.
 * CTL_JOIN_NODE: a
 * gantry-agent line with every member's agent-stream address. Returns the line (the caller
 * frees it), or NULL with GY_ENOTFOUND in err when no member has recorded the address
 * needed yet. role must not be CTL_JOIN_ANY. */
char *ctl_join_command(const json_t *members, enum ctl_join_role role, const char *fallback_url,
                       const char *host, struct gy_error *err);

/* Workload progress for apply --wait (ctl/cmd_apply.c), split out so that its decisions
 * are tested without a server. */
enum ctl_wait_state {
    CTL_WAIT_PROGRESSING = 0,
    CTL_WAIT_DONE,   /* running and ready equal desired */
    CTL_WAIT_FAILED, /* the server reports a crash loop or a placement failure */
};

/* Reads one workload object of GET /v1/workloads/NAME (and its replicas, which may be
 * NULL) and decides where it stands. summary receives "2/3 ready (1 pending)"; reason, on
 * CTL_WAIT_FAILED, the sentence naming the failure. */
enum ctl_wait_state ctl_wait_assess(const json_t *workload, const json_t *replicas, char *summary,
                                    size_t summary_len, char *reason, size_t reason_len);

#endif
