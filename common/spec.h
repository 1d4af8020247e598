/* The workload spec model of docs/spec.md: C structures, defaults, the JSON codec and
 * validation that names the key path (and, for YAML input, the line and column) of every
 * problem. */
#ifndef GANTRY_COMMON_SPEC_H
#define GANTRY_COMMON_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "common/error.h"

#define GY_SPEC_NAME_MAX     63 /* a DNS label */
#define GY_SPEC_REPLICAS_MAX 10000
#define GY_SPEC_IMAGE_MAX    255
/* The smallest memory limit a container can start with. */
#define GY_SPEC_MEMORY_MIN (INT64_C(4) << 20)
/* The kernel's PID_MAX_LIMIT: a larger pids limit means nothing. */
#define GY_SPEC_PIDS_MAX INT64_C(4194304)
/* Every duration of a spec fits the uint32 milliseconds of the wire format. */
#define GY_SPEC_DURATION_MAX_MS (INT64_C(30) * 86400 * 1000)
#define GY_SPEC_THRESHOLD_MAX   1000
/* The most ports one spec may list. */
#define GY_SPEC_PORTS_MAX 64
/* The longest port name: an IANA service name (RFC 6335 section 5.1). */
#define GY_PORT_NAME_MAX 15

enum gy_restart {
    GY_RESTART_ALWAYS = 0,
    GY_RESTART_ON_FAILURE,
    GY_RESTART_NEVER,
};

enum gy_spread {
    GY_SPREAD_NODE = 0,
    GY_SPREAD_ZONE,
    GY_SPREAD_CLOUD,
};

enum gy_strategy {
    GY_STRATEGY_SPREAD = 0, /* prefer the emptiest node */
    GY_STRATEGY_BINPACK,    /* prefer the fullest node that fits */
};

struct gy_strv {
    char **items;
    size_t n;
};

enum gy_protocol {
    GY_PROTOCOL_TCP = 0,
    GY_PROTOCOL_UDP,
};

/* A port the workload's container listens on, and where the node publishes it. */
struct gy_port {
    char *name;                /* optional, NULL when absent: an IANA service name */
    uint32_t container_port;   /* 1..65535 */
    enum gy_protocol protocol; /* default tcp */
    uint32_t host_port;        /* 0 = not published on the node */
};

struct gy_env_var {
    char *name;
    char *value;
};

struct gy_resources {
    int64_t cpu_millis;   /* 250m = 250 */
    int64_t memory_bytes; /* 64Mi = 67108864 */
    int64_t pids;         /* 0 = no limit */
};

/* At most one of exec, http (http_port != 0) and tcp (tcp_port != 0) is set; none set
 * means no health check. */
struct gy_health {
    struct gy_strv exec;
    char *http_path;
    uint32_t http_port;
    uint32_t tcp_port;
    int64_t interval_ms;
    int64_t timeout_ms;
    uint32_t failure_threshold;
    int64_t start_period_ms;
};

struct gy_placement {
    struct gy_strv clouds; /* ordered preference; empty = any cloud */
    enum gy_spread spread;
    struct gy_strv constraints; /* "key == value", "key != value" against node labels */
    enum gy_strategy strategy;
};

struct gy_metric {
    struct gy_strv exec; /* a command that prints a number */
    uint32_t http_port;  /* or an HTTP GET that answers a number */
    char *http_path;
    double target;
};

struct gy_autoscale {
    bool enabled; /* false when the block is absent or `autoscale: off` */
    uint32_t min;
    uint32_t max;
    uint32_t cpu_percent;    /* 0 = no cpu target */
    uint32_t memory_percent; /* 0 = no memory target */
    int64_t scale_down_after_ms;
    int64_t idle_after_ms; /* 0 = never retire to zero */
    bool has_metric;
    struct gy_metric metric;
};

struct gy_update {
    uint32_t max_surge;
    uint32_t max_unavailable;
};

struct gy_spec {
    char *name;
    char *image;
    struct gy_strv command; /* replaces the image's Entrypoint when not empty */
    struct gy_strv args;    /* replaces the image's Cmd when not empty (Kubernetes' args) */
    struct gy_env_var *env; /* sorted by name, names unique */
    size_t n_env;
    /* In the order written: (container_port, protocol), (host_port, protocol) and names
     * unique; at most GY_SPEC_PORTS_MAX. */
    struct gy_port *ports;
    size_t n_ports;
    uint32_t replicas;
    struct gy_resources resources;
    enum gy_restart restart;
    struct gy_health health;
    struct gy_placement placement;
    struct gy_autoscale autoscale;
    struct gy_update update;
    int64_t stop_grace_ms;
    /* How long the replicas of a node cut off from the control plane (down) are kept before
     * they are replaced elsewhere; 0 = as soon as the node is down. */
    int64_t disconnect_grace_ms;
    /* Set by the leader at apply, never read from a file or the API: the digest the image
     * reference named then ("sha256:HEX"), which every replica of the generation pulls. */
    char *image_digest;
};

/* One problem found in a spec. path is the key path ("placement.clouds[1]",
 * "resources.memory"); line and column are 1-based positions in the source document, or
 * 0 when the spec did not come from a file with positions (JSON over the API). */
struct gy_spec_problem {
    char *path;
    char *message;
    int line;
    int column;
};

struct gy_spec_problems {
    struct gy_spec_problem *items;
    size_t n;
};

void gy_spec_problems_free(struct gy_spec_problems *problems);

/* Where each key path of a document sits in its source file. The YAML reader fills one;
 * the JSON codec takes it (or NULL) to put positions into the problems it reports. */
struct gy_spec_positions;
/* Returns false when the path is not known. */
bool gy_spec_positions_lookup(const struct gy_spec_positions *pos, const char *path, int *line,
                              int *column);

/* Fills spec with the documented defaults (docs/spec.md): 1 replica, cpu 100m, memory
 * 64Mi, restart always, update max_surge 1 max_unavailable 0, stop grace 10s, health
 * interval 10s timeout 1s threshold 3 start period 0, autoscale off (when enabled: min 1,
 * scale_down_after 30s), placement spread node and strategy spread. The caller frees it
 * with gy_spec_free. */
void gy_spec_init(struct gy_spec *spec);
void gy_spec_free(struct gy_spec *spec);

/* Decodes the JSON form of a spec (docs/spec.md; quantities as strings "250m" or
 * numbers) over the defaults, then validates it. spec needs no initialisation: the call
 * starts with gy_spec_init. Problems are appended to *problems (zero it before the first
 * use), sorted by position when pos is given. Unknown keys, wrong types, bad quantities
 * and out-of-range values are reported in problems, each with its key path (and position,
 * when pos is not NULL), and make the call return -GY_EINVAL; spec is then still safe to
 * free. */
int gy_spec_from_json(const json_t *doc, const struct gy_spec_positions *pos, struct gy_spec *spec,
                      struct gy_spec_problems *problems);

/* Checks the semantic rules (DNS-label name, replicas in range, autoscale min <= max, ...)
 * of a spec however it was built, appending to *problems. Returns -GY_EINVAL when problems
 * were added. Like the decoder it allocates with gy_xmalloc (aborting when memory runs
 * out), since it runs in the API and the CLI, not on the Raft apply path. */
int gy_spec_validate(const struct gy_spec *spec, const struct gy_spec_positions *pos,
                     struct gy_spec_problems *problems);

/* The canonical JSON form: every field, defaults included, quantities printed in their
 * units ("250m", "64Mi", "30s"); settings that are off read "health": null,
 * "autoscale": "off", and autoscale targets that are not set are left out. NULL when
 * memory runs out. Equal specs give byte-identical output with
 * JSON_COMPACT | JSON_SORT_KEYS, which the server uses to tell "unchanged" from "updated". */
json_t *gy_spec_to_json(const struct gy_spec *spec);

/* Deep copy; returns 0 or -GY_ENOMEM. */
int gy_spec_copy(struct gy_spec *dst, const struct gy_spec *src);

/* True when the name is a DNS label: 1 to 63 of [a-z0-9-], starting and ending with an
 * alphanumeric. */
bool gy_spec_name_valid(const char *name);

/* Adds one problem with a printf-style message. Its position is the one recorded for
 * path, or for the nearest enclosing key path that has one (a missing key is reported
 * where its object starts). pos may be NULL. */
void gy_spec_problem_add(struct gy_spec_problems *problems, const struct gy_spec_positions *pos,
                         const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Like gy_spec_problem_add at an explicit position (1-based; 0 for none). */
void gy_spec_problem_add_at(struct gy_spec_problems *problems, const char *path, int line,
                            int column, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Sorts problems->items[from..] by line and column, keeping the order of problems at the
 * same position. */
void gy_spec_problems_sort(struct gy_spec_problems *problems, size_t from);

/* "FILE:LINE:COLUMN: path: message"; without a position "FILE: path: message", and
 * without a file (NULL) the file part is left out. The caller frees the result. */
char *gy_spec_problem_format(const char *file, const struct gy_spec_problem *problem);

/* An empty position table; NULL when out of memory. */
struct gy_spec_positions *gy_spec_positions_new(void);
/* Records where path sits; a path recorded twice keeps its first position. Returns 0 or
 * -GY_ENOMEM. */
int gy_spec_positions_add(struct gy_spec_positions *pos, const char *path, int line, int column);
size_t gy_spec_positions_count(const struct gy_spec_positions *pos);
void gy_spec_positions_free(struct gy_spec_positions *pos);

/* Field-by-field equality, the relation that gy_spec_to_json's canonical output
 * preserves. */
bool gy_spec_equal(const struct gy_spec *a, const struct gy_spec *b);

/* Names of the enumerations as the spec spells them ("on-failure", "zone", "binpack"), and
 * their parsers, which return false for a word that is not one of them. */
const char *gy_restart_name(enum gy_restart restart);
bool gy_restart_parse(const char *s, enum gy_restart *out);
const char *gy_spread_name(enum gy_spread spread);
bool gy_spread_parse(const char *s, enum gy_spread *out);
const char *gy_strategy_name(enum gy_strategy strategy);
bool gy_strategy_parse(const char *s, enum gy_strategy *out);
const char *gy_protocol_name(enum gy_protocol protocol);
bool gy_protocol_parse(const char *s, enum gy_protocol *out);

/* True for a port name: an IANA service name (RFC 6335 section 5.1), 1 to 15 of
 * [a-z0-9-] with at least one letter, not starting or ending with '-' and without "--". */
bool gy_port_name_valid(const char *name);

/* True when the spec publishes at least one port on its node (a host_port). */
bool gy_spec_has_host_ports(const struct gy_spec *spec);

/* A placement constraint "key == value" or "key != value" against a node label. The key
 * is 1 to 253 of [A-Za-z0-9._/-], the value 1 to 63 of [A-Za-z0-9._-]; blanks around the
 * operator are optional. The caller frees key and value with gy_constraint_free. */
struct gy_constraint {
    char *key;
    char *value;
    bool negated; /* true for != */
};
int gy_constraint_parse(const char *text, struct gy_constraint *out, struct gy_error *err);
void gy_constraint_free(struct gy_constraint *c);

/* True for an environment variable name: [A-Za-z_][A-Za-z0-9_]*. */
bool gy_env_name_valid(const char *name);

/* Room for an excerpt of a value quoted in a message. */
#define GY_SPEC_EXCERPT_BUF 64
/* s itself when it is short, else its first characters and "...", cut at a UTF-8
 * character boundary so that messages stay valid UTF-8 (the API sends them as JSON). */
const char *gy_spec_excerpt(const char *s, char buf[GY_SPEC_EXCERPT_BUF]);

/* Edit distance helper behind the "did you mean" hints: the candidate closest to word,
 * or NULL when none is close enough to be a likely typo. */
const char *gy_spec_suggest(const char *word, const char *const *candidates, size_t n);

/* ---------------------------------------------------------------------------------------
 * YAML spec files (common/spec_yaml.c). */

/* Largest spec file read, like the API's body limit, so a stray large file fails fast. */
#define GY_SPEC_FILE_MAX (16u << 20)
/* Deepest nesting of mappings and lists accepted in a YAML document. */
#define GY_SPEC_YAML_DEPTH_MAX 64

/* One YAML document as a JSON tree, with the position of every key path in it. */
struct gy_yaml_document {
    json_t *doc;
    struct gy_spec_positions *pos;
};

/* Parses YAML text (several documents separated by `---`; empty documents are skipped)
 * into JSON trees. Plain scalars are resolved by the YAML 1.2 core schema (null, true and
 * false, integers, decimal and 0x/0o integers, floats); quoted and block scalars stay
 * strings. A key path's position is where its key starts, a list item's where the item
 * starts, and "" is where the document's content starts. Duplicate keys, anchors and
 * aliases, tags other than !!str, keys that are not scalars, NUL characters, infinite or
 * NaN numbers, integers beyond 64 bits and nesting deeper than GY_SPEC_YAML_DEPTH_MAX are
 * problems; a syntax error is a problem at libyaml's mark and ends the parse, keeping the
 * documents read before it. Returns 0, or -GY_EINVAL when problems were added. The
 * caller frees *docs with gy_yaml_documents_free. */
int gy_yaml_parse(const char *text, size_t len, struct gy_yaml_document **docs, size_t *n_docs,
                  struct gy_spec_problems *problems);
void gy_yaml_documents_free(struct gy_yaml_document *docs, size_t n_docs);

/* The workload specs of one file, in document order, and every problem found in it. */
struct gy_spec_file {
    char *name; /* as shown in problems: the path, "<stdin>", or the caller's label */
    struct gy_spec *specs;
    size_t n_specs;
    struct gy_spec_problems problems;
};

/* Loads every spec of a YAML text: parse, decode and validate each document, and check
 * that no workload name appears twice. Returns 0 when all is well; -GY_EINVAL when
 * problems were found (out->problems, sorted by position; out->specs then holds what
 * could be decoded and must not be applied), with a one-line summary in err. A file
 * without any document is a problem too. name labels the text in problems. The caller
 * frees out with gy_spec_file_free in every case. */
int gy_spec_file_load_string(const char *name, const char *text, size_t len,
                             struct gy_spec_file *out, struct gy_error *err);
/* The same for a file; path "-" reads standard input. Reading errors return -GY_ESYS or
 * -GY_ETOOBIG (over GY_SPEC_FILE_MAX) with err filled. */
int gy_spec_file_load_path(const char *path, struct gy_spec_file *out, struct gy_error *err);
/* The same for an open stream, read to its end; name labels it in problems. */
int gy_spec_file_load_stream(const char *name, FILE *stream, struct gy_spec_file *out,
                             struct gy_error *err);
void gy_spec_file_free(struct gy_spec_file *file);

/* Writes every problem of file to stream, one "FILE:LINE:COLUMN: path: message" a line. */
void gy_spec_file_print_problems(const struct gy_spec_file *file, FILE *stream);

#endif
