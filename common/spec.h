/* The workload spec model of DESIGN.md section 5: C structures, defaults, the JSON codec
 * and validation that names the key path (and, for YAML input, the line and column) of
 * every problem. */
#ifndef GANTRY_COMMON_SPEC_H
#define GANTRY_COMMON_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/error.h"

#define GY_SPEC_NAME_MAX     63   /* a DNS label */
#define GY_SPEC_REPLICAS_MAX 10000

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
    struct gy_strv clouds;      /* ordered preference; empty = any cloud */
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
    struct gy_strv command;
    struct gy_env_var *env; /* sorted by name, names unique */
    size_t n_env;
    uint32_t replicas;
    struct gy_resources resources;
    enum gy_restart restart;
    struct gy_health health;
    struct gy_placement placement;
    struct gy_autoscale autoscale;
    struct gy_update update;
    int64_t stop_grace_ms;
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
 * interval 10s timeout 1s threshold 3. The caller frees it with gy_spec_free. */
void gy_spec_init(struct gy_spec *spec);
void gy_spec_free(struct gy_spec *spec);

/* Decodes the JSON form of a spec (DESIGN.md section 5; quantities as strings "250m" or
 * numbers) over the defaults, then validates it. Unknown keys, wrong types, bad quantities
 * and out-of-range values are reported in problems, each with its key path (and position,
 * when pos is not NULL), and make the call return -GY_EINVAL; spec is then still safe to
 * free. */
int gy_spec_from_json(const json_t *doc, const struct gy_spec_positions *pos,
                      struct gy_spec *spec, struct gy_spec_problems *problems);

/* Checks the semantic rules (DNS-label name, replicas in range, autoscale min <= max, ...)
 * of an already decoded spec. Returns -GY_EINVAL when problems were added. */
int gy_spec_validate(const struct gy_spec *spec, const struct gy_spec_positions *pos,
                     struct gy_spec_problems *problems);

/* The canonical JSON form: every field, defaults included, quantities printed in their
 * units ("250m", "64Mi", "30s"). Equal specs give byte-identical output with
 * JSON_COMPACT | JSON_SORT_KEYS, which the server uses to tell "unchanged" from "updated". */
json_t *gy_spec_to_json(const struct gy_spec *spec);

/* Deep copy; returns 0 or -GY_ENOMEM. */
int gy_spec_copy(struct gy_spec *dst, const struct gy_spec *src);

/* True when the name is a DNS label: 1 to 63 of [a-z0-9-], starting and ending with an
 * alphanumeric. */
bool gy_spec_name_valid(const char *name);

#endif
