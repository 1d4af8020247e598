/* The semantic rules of a workload spec, checked on the decoded structure so that specs
 * from every source (YAML, JSON over the API, protobuf in the Raft log) meet the same
 * rules; docs/spec.md lists them. */
#include "common/spec.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/image_ref.h"
#include "common/quantity.h"
#include "common/xalloc.h"

struct checker {
    struct gy_spec_problems *problems;
    const struct gy_spec_positions *pos;
    size_t before;
};

#define PROBLEM(c, path, ...) gy_spec_problem_add((c)->problems, (c)->pos, (path), __VA_ARGS__)

static bool has_control_or_blank(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p <= ' ' || *p == 0x7f)
            return true;
    return false;
}

static void check_name(struct checker *c, const char *name)
{
    if (name == NULL) {
        PROBLEM(c, "name", "required field is missing");
        return;
    }
    char ex[GY_SPEC_EXCERPT_BUF];
    if (!gy_spec_name_valid(name))
        PROBLEM(c, "name",
                "\"%s\" is not a DNS label: use 1 to %d lower-case letters, digits and '-', "
                "starting and ending with a letter or digit",
                gy_spec_excerpt(name, ex), GY_SPEC_NAME_MAX);
}

static void check_image(struct checker *c, const char *image)
{
    if (image == NULL) {
        PROBLEM(c, "image", "required field is missing");
        return;
    }
    char ex[GY_SPEC_EXCERPT_BUF];
    size_t len = strlen(image);
    if (len == 0)
        PROBLEM(c, "image", "must not be empty");
    else if (len > GY_SPEC_IMAGE_MAX)
        PROBLEM(c, "image", "is %zu characters long (max %d)", len, GY_SPEC_IMAGE_MAX);
    else if (has_control_or_blank(image))
        PROBLEM(c, "image", "\"%s\" must not contain blanks or control characters",
                gy_spec_excerpt(image, ex));
    else {
        /* What a node can run: a root filesystem imported under that name, or an image
         * reference it can pull (docs/images.md). */
        struct gy_image_ref ref;
        struct gy_error err;
        if (gy_image_local_name_check(image, NULL) < 0 && gy_image_ref_parse(image, &ref, &err) < 0)
            PROBLEM(c, "image", "%s; nor is it the name of an imported root filesystem", err.msg);
    }
}

/* A command list (command, health.exec, autoscale.metric.exec): when present, at least one
 * word, none of them empty. */
static void check_argv(struct checker *c, const char *path, const struct gy_strv *v, bool required)
{
    if (v->n == 0) {
        if (required)
            PROBLEM(c, path, "must list a command and its arguments");
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (v->items[i] == NULL || v->items[i][0] == '\0') {
            char *p = gy_xasprintf("%s[%zu]", path, i);
            PROBLEM(c, p, "must be a non-empty string");
            free(p);
        }
    }
}

static void check_env(struct checker *c, const struct gy_spec *spec)
{
    for (size_t i = 0; i < spec->n_env; i++) {
        const char *name = spec->env[i].name != NULL ? spec->env[i].name : "";
        char ex[GY_SPEC_EXCERPT_BUF];
        char *p = gy_xasprintf("env.%s", name);
        if (!gy_env_name_valid(name))
            PROBLEM(c, p,
                    "\"%s\" is not a valid environment variable name: use letters, digits "
                    "and '_', not starting with a digit",
                    gy_spec_excerpt(name, ex));
        else if (i > 0 && spec->env[i - 1].name != NULL && strcmp(spec->env[i - 1].name, name) >= 0)
            PROBLEM(c, p, "is listed twice or out of order (names must be unique and sorted)");
        if (spec->env[i].value == NULL)
            PROBLEM(c, p, "has no value");
        free(p);
    }
}

static void check_duration(struct checker *c, const char *path, int64_t ms, bool positive)
{
    char buf[GY_QUANTITY_BUF];
    if (ms < 0 || (positive && ms == 0))
        PROBLEM(c, path, "must be %s (got %s)", positive ? "greater than 0" : "0 or more",
                gy_duration_format(ms, buf));
    else if (ms > GY_SPEC_DURATION_MAX_MS)
        PROBLEM(c, path, "must be at most 720h (got %s)", gy_duration_format(ms, buf));
}

static void check_port(struct checker *c, const char *path, uint32_t port)
{
    if (port < 1 || port > 65535)
        PROBLEM(c, path, "must be a port number between 1 and 65535 (got %" PRIu32 ")", port);
}

/* Ports: each valid, and no name, container port or host port (with its protocol) twice,
 * since the agent names, exposes and publishes them one by one. */
static void check_ports(struct checker *c, const struct gy_spec *spec)
{
    if (spec->n_ports > GY_SPEC_PORTS_MAX)
        PROBLEM(c, "ports", "lists %zu ports (max %d)", spec->n_ports, GY_SPEC_PORTS_MAX);
    for (size_t i = 0; i < spec->n_ports; i++) {
        const struct gy_port *p = &spec->ports[i];
        char path[64];
        char ex[GY_SPEC_EXCERPT_BUF];
        bool protocol_ok = (unsigned)p->protocol <= GY_PROTOCOL_UDP;
        const char *proto = gy_protocol_name(p->protocol);
        snprintf(path, sizeof(path), "ports[%zu].container_port", i);
        check_port(c, path, p->container_port);
        for (size_t j = 0; j < i && p->container_port >= 1 && p->container_port <= 65535; j++) {
            if (spec->ports[j].container_port == p->container_port &&
                spec->ports[j].protocol == p->protocol) {
                PROBLEM(c, path, "%" PRIu32 "/%s is already listed by ports[%zu]",
                        p->container_port, proto, j);
                break;
            }
        }
        snprintf(path, sizeof(path), "ports[%zu].protocol", i);
        if (!protocol_ok)
            PROBLEM(c, path, "must be tcp or udp");
        if (p->host_port != 0) {
            snprintf(path, sizeof(path), "ports[%zu].host_port", i);
            check_port(c, path, p->host_port);
            for (size_t j = 0; j < i && p->host_port <= 65535; j++) {
                if (spec->ports[j].host_port == p->host_port &&
                    spec->ports[j].protocol == p->protocol) {
                    PROBLEM(c, path, "host port %" PRIu32 "/%s is already published by ports[%zu]",
                            p->host_port, proto, j);
                    break;
                }
            }
        }
        if (p->name == NULL)
            continue;
        snprintf(path, sizeof(path), "ports[%zu].name", i);
        if (!gy_port_name_valid(p->name)) {
            PROBLEM(c, path,
                    "\"%s\" is not a port name: use 1 to %d lower-case letters, digits and '-', "
                    "with at least one letter, not starting or ending with '-' and without "
                    "\"--\" (an IANA service name)",
                    gy_spec_excerpt(p->name, ex), GY_PORT_NAME_MAX);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (spec->ports[j].name != NULL && strcmp(spec->ports[j].name, p->name) == 0) {
                PROBLEM(c, path, "port name \"%s\" is already used by ports[%zu]", p->name, j);
                break;
            }
        }
    }
}

static void check_http_path(struct checker *c, const char *path, const char *value)
{
    char ex[GY_SPEC_EXCERPT_BUF];
    if (value == NULL || value[0] != '/')
        PROBLEM(c, path, "must start with '/' (got \"%s\")", gy_spec_excerpt(value, ex));
    else if (has_control_or_blank(value))
        PROBLEM(c, path, "must not contain blanks or control characters");
}

static void check_resources(struct checker *c, const struct gy_resources *r)
{
    char buf[GY_QUANTITY_BUF];
    if (r->cpu_millis <= 0)
        PROBLEM(c, "resources.cpu", "must be greater than 0 (got %s)",
                gy_cpu_format(r->cpu_millis, buf));
    else if (r->cpu_millis > GY_CPU_MAX_MILLIS)
        PROBLEM(c, "resources.cpu", "must be at most %" PRId64 " cores", GY_CPU_MAX_MILLIS / 1000);
    if (r->memory_bytes < GY_SPEC_MEMORY_MIN)
        PROBLEM(c, "resources.memory", "must be at least 4Mi (got %s)",
                gy_memory_format(r->memory_bytes, buf));
    else if (r->memory_bytes > GY_MEMORY_MAX_BYTES)
        PROBLEM(c, "resources.memory", "must be at most 1Ei");
    if (r->pids < 0 || r->pids > GY_SPEC_PIDS_MAX)
        PROBLEM(c, "resources.pids",
                "must be between 0 (no limit) and %" PRId64 " (got %" PRId64 ")", GY_SPEC_PIDS_MAX,
                r->pids);
}

static void check_health(struct checker *c, const struct gy_health *h)
{
    int kinds = (h->exec.n > 0) + (h->http_port != 0) + (h->tcp_port != 0);
    if (kinds == 0)
        return;
    if (kinds > 1)
        PROBLEM(c, "health", "must have exactly one of exec, http or tcp");
    if (h->exec.n > 0)
        check_argv(c, "health.exec", &h->exec, true);
    if (h->http_port != 0) {
        check_port(c, "health.http.port", h->http_port);
        check_http_path(c, "health.http.path", h->http_path);
    }
    if (h->tcp_port != 0)
        check_port(c, "health.tcp.port", h->tcp_port);
    check_duration(c, "health.interval", h->interval_ms, true);
    check_duration(c, "health.timeout", h->timeout_ms, true);
    check_duration(c, "health.start_period", h->start_period_ms, false);
    if (h->failure_threshold < 1 || h->failure_threshold > GY_SPEC_THRESHOLD_MAX)
        PROBLEM(c, "health.failure_threshold", "must be between 1 and %d (got %" PRIu32 ")",
                GY_SPEC_THRESHOLD_MAX, h->failure_threshold);
}

static void check_placement(struct checker *c, const struct gy_placement *p)
{
    for (size_t i = 0; i < p->clouds.n; i++) {
        const char *cloud = p->clouds.items[i] != NULL ? p->clouds.items[i] : "";
        char *path = gy_xasprintf("placement.clouds[%zu]", i);
        char ex[GY_SPEC_EXCERPT_BUF];
        bool dup = false;
        for (size_t j = 0; j < i; j++)
            if (p->clouds.items[j] != NULL && strcmp(p->clouds.items[j], cloud) == 0)
                dup = true;
        if (cloud[0] == '\0' || strlen(cloud) > 63)
            PROBLEM(c, path, "a cloud name must be 1 to 63 characters");
        else if (has_control_or_blank(cloud))
            PROBLEM(c, path, "cloud \"%s\" must not contain blanks or control characters",
                    gy_spec_excerpt(cloud, ex));
        else if (dup)
            PROBLEM(c, path, "cloud \"%s\" is listed twice", gy_spec_excerpt(cloud, ex));
        free(path);
    }
    if ((unsigned)p->spread > GY_SPREAD_CLOUD)
        PROBLEM(c, "placement.spread", "must be one of node, zone, cloud");
    for (size_t i = 0; i < p->constraints.n; i++) {
        char *path = gy_xasprintf("placement.constraints[%zu]", i);
        struct gy_constraint con;
        struct gy_error err;
        if (gy_constraint_parse(p->constraints.items[i] != NULL ? p->constraints.items[i] : "",
                                &con, &err) < 0)
            PROBLEM(c, path, "%s", err.msg);
        else
            gy_constraint_free(&con);
        free(path);
    }
    if ((unsigned)p->strategy > GY_STRATEGY_BINPACK)
        PROBLEM(c, "placement.strategy", "must be one of spread, binpack");
}

static void check_autoscale(struct checker *c, const struct gy_autoscale *a)
{
    if (!a->enabled)
        return;
    if (a->max < 1 || a->max > GY_SPEC_REPLICAS_MAX)
        PROBLEM(c, "autoscale.max", "must be between 1 and %d (got %" PRIu32 ")",
                GY_SPEC_REPLICAS_MAX, a->max);
    else if (a->min > a->max)
        PROBLEM(c, "autoscale.min", "must not be greater than max (%" PRIu32 " > %" PRIu32 ")",
                a->min, a->max);
    if (a->min == 0 && a->idle_after_ms == 0)
        PROBLEM(c, "autoscale.min",
                "may be 0 only together with idle_after (how long without load before the "
                "workload scales to zero)");
    if (a->cpu_percent > 100)
        PROBLEM(c, "autoscale.cpu", "must be between 1%% and 100%% (got %" PRIu32 "%%)",
                a->cpu_percent);
    if (a->memory_percent > 100)
        PROBLEM(c, "autoscale.memory", "must be between 1%% and 100%% (got %" PRIu32 "%%)",
                a->memory_percent);
    if (a->cpu_percent == 0 && a->memory_percent == 0 && !a->has_metric)
        PROBLEM(c, "autoscale", "needs a target: cpu, memory or metric");
    check_duration(c, "autoscale.scale_down_after", a->scale_down_after_ms, false);
    check_duration(c, "autoscale.idle_after", a->idle_after_ms, false);
    if (!a->has_metric)
        return;
    const struct gy_metric *m = &a->metric;
    if ((m->exec.n > 0) == (m->http_port != 0))
        PROBLEM(c, "autoscale.metric", "must have exactly one of exec or http");
    if (m->exec.n > 0)
        check_argv(c, "autoscale.metric.exec", &m->exec, true);
    if (m->http_port != 0) {
        check_port(c, "autoscale.metric.http.port", m->http_port);
        check_http_path(c, "autoscale.metric.http.path", m->http_path);
    }
    if (!isfinite(m->target) || m->target <= 0)
        PROBLEM(c, "autoscale.metric.target", "must be a number greater than 0");
}

int gy_spec_validate(const struct gy_spec *spec, const struct gy_spec_positions *pos,
                     struct gy_spec_problems *problems)
{
    struct checker c = {.problems = problems, .pos = pos, .before = problems->n};
    check_name(&c, spec->name);
    check_image(&c, spec->image);
    check_argv(&c, "command", &spec->command, false);
    /* args may hold empty words ("sh -c ''"), as Kubernetes' do. */
    check_env(&c, spec);
    check_ports(&c, spec);
    if (spec->replicas > GY_SPEC_REPLICAS_MAX)
        PROBLEM(&c, "replicas", "must be between 0 and %d (got %" PRIu32 ")", GY_SPEC_REPLICAS_MAX,
                spec->replicas);
    check_resources(&c, &spec->resources);
    if ((unsigned)spec->restart > GY_RESTART_NEVER)
        PROBLEM(&c, "restart", "must be one of always, on-failure, never");
    check_health(&c, &spec->health);
    check_placement(&c, &spec->placement);
    check_autoscale(&c, &spec->autoscale);
    if (spec->update.max_surge > GY_SPEC_REPLICAS_MAX)
        PROBLEM(&c, "update.max_surge", "must be between 0 and %d", GY_SPEC_REPLICAS_MAX);
    if (spec->update.max_unavailable > GY_SPEC_REPLICAS_MAX)
        PROBLEM(&c, "update.max_unavailable", "must be between 0 and %d", GY_SPEC_REPLICAS_MAX);
    if (spec->update.max_surge == 0 && spec->update.max_unavailable == 0)
        PROBLEM(&c, "update",
                "max_surge and max_unavailable must not both be 0: an update could then never "
                "replace a replica");
    check_duration(&c, "stop_grace", spec->stop_grace_ms, false);
    check_duration(&c, "disconnect_grace", spec->disconnect_grace_ms, false);
    return problems->n > c.before ? -GY_EINVAL : 0;
}
