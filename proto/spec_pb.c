/* struct gy_spec <-> gantry.WorkloadSpec; see spec_pb.h. Plain malloc throughout, since
 * the Raft state machine converts specs on its apply path and must survive running out of
 * memory with an error rather than an abort. */
#include "proto/spec_pb.h"

#include "common/image_ref.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------
 * To the wire */

static uint32_t clamp_u32(int64_t v)
{
    if (v < 0)
        return 0;
    if (v > (int64_t)UINT32_MAX)
        return UINT32_MAX;
    return (uint32_t)v;
}

static char *dup_or_empty(const char *s)
{
    return strdup(s != NULL ? s : "");
}

/* Copies a string list into a repeated string field; *n is set before the copies so that
 * a partial copy is freed correctly. */
static bool strv_to_wire(const struct gy_strv *v, size_t *n, char ***items)
{
    *n = 0;
    *items = NULL;
    if (v->n == 0)
        return true;
    *items = calloc(v->n, sizeof(char *));
    if (*items == NULL)
        return false;
    *n = v->n;
    for (size_t i = 0; i < v->n; i++)
        if (((*items)[i] = dup_or_empty(v->items[i])) == NULL)
            return false;
    return true;
}

static void strv_wire_free(size_t n, char **items)
{
    for (size_t i = 0; i < n; i++)
        free(items[i]);
    free(items);
}

void gy_spec_proto_free(Gantry__WorkloadSpec *msg)
{
    if (msg == NULL)
        return;
    free(msg->name);
    free(msg->image);
    free(msg->image_digest);
    for (size_t i = 0; i < msg->n_image_labels; i++) {
        if (msg->image_labels[i] != NULL) {
            free(msg->image_labels[i]->key);
            free(msg->image_labels[i]->value);
            free(msg->image_labels[i]);
        }
    }
    free(msg->image_labels);
    strv_wire_free(msg->n_command, msg->command);
    strv_wire_free(msg->n_args, msg->args);
    for (size_t i = 0; i < msg->n_env; i++) {
        if (msg->env[i] != NULL) {
            free(msg->env[i]->name);
            free(msg->env[i]->value);
            free(msg->env[i]);
        }
    }
    free(msg->env);
    for (size_t i = 0; i < msg->n_ports; i++) {
        if (msg->ports[i] != NULL) {
            free(msg->ports[i]->name);
            free(msg->ports[i]);
        }
    }
    free(msg->ports);
    free(msg->resources);
    if (msg->health != NULL) {
        strv_wire_free(msg->health->n_exec, msg->health->exec);
        free(msg->health->http_path);
        free(msg->health);
    }
    if (msg->placement != NULL) {
        strv_wire_free(msg->placement->n_clouds, msg->placement->clouds);
        free(msg->placement->spread);
        strv_wire_free(msg->placement->n_constraints, msg->placement->constraints);
        free(msg->placement->strategy);
        free(msg->placement);
    }
    if (msg->autoscale != NULL) {
        Gantry__MetricSource *m = msg->autoscale->metric;
        if (m != NULL) {
            strv_wire_free(m->n_exec, m->exec);
            free(m->http_path);
            free(m);
        }
        free(msg->autoscale);
    }
    free(msg->update);
    free(msg);
}

static bool env_to_wire(const struct gy_spec *spec, Gantry__WorkloadSpec *msg)
{
    if (spec->n_env == 0)
        return true;
    msg->env = calloc(spec->n_env, sizeof(msg->env[0]));
    if (msg->env == NULL)
        return false;
    msg->n_env = spec->n_env;
    for (size_t i = 0; i < spec->n_env; i++) {
        Gantry__EnvVar *e = malloc(sizeof(*e));
        if (e == NULL)
            return false;
        gantry__env_var__init(e);
        e->name = NULL;
        e->value = NULL;
        msg->env[i] = e;
        if ((e->name = dup_or_empty(spec->env[i].name)) == NULL ||
            (e->value = dup_or_empty(spec->env[i].value)) == NULL)
            return false;
    }
    return true;
}

static bool ports_to_wire(const struct gy_spec *spec, Gantry__WorkloadSpec *msg)
{
    if (spec->n_ports == 0)
        return true;
    msg->ports = calloc(spec->n_ports, sizeof(msg->ports[0]));
    if (msg->ports == NULL)
        return false;
    msg->n_ports = spec->n_ports;
    for (size_t i = 0; i < spec->n_ports; i++) {
        Gantry__Port *p = malloc(sizeof(*p));
        if (p == NULL)
            return false;
        gantry__port__init(p);
        p->name = NULL;
        msg->ports[i] = p;
        p->container_port = spec->ports[i].container_port;
        p->protocol = (Gantry__Protocol)spec->ports[i].protocol;
        p->host_port = spec->ports[i].host_port;
        if ((p->name = dup_or_empty(spec->ports[i].name)) == NULL)
            return false;
    }
    return true;
}

static bool health_to_wire(const struct gy_health *h, Gantry__WorkloadSpec *msg)
{
    Gantry__HealthCheck *w = malloc(sizeof(*w));
    if (w == NULL)
        return false;
    gantry__health_check__init(w);
    w->http_path = NULL;
    msg->health = w;
    w->http_port = h->http_port;
    w->tcp_port = h->tcp_port;
    w->interval_ms = clamp_u32(h->interval_ms);
    w->timeout_ms = clamp_u32(h->timeout_ms);
    w->failure_threshold = h->failure_threshold;
    w->start_period_ms = clamp_u32(h->start_period_ms);
    return (w->http_path = dup_or_empty(h->http_path)) != NULL &&
           strv_to_wire(&h->exec, &w->n_exec, &w->exec);
}

static bool placement_to_wire(const struct gy_placement *p, Gantry__WorkloadSpec *msg)
{
    Gantry__Placement *w = malloc(sizeof(*w));
    if (w == NULL)
        return false;
    gantry__placement__init(w);
    w->spread = NULL;
    w->strategy = NULL;
    msg->placement = w;
    return (w->spread = strdup(gy_spread_name(p->spread))) != NULL &&
           (w->strategy = strdup(gy_strategy_name(p->strategy))) != NULL &&
           strv_to_wire(&p->clouds, &w->n_clouds, &w->clouds) &&
           strv_to_wire(&p->constraints, &w->n_constraints, &w->constraints);
}

static bool autoscale_to_wire(const struct gy_autoscale *a, Gantry__WorkloadSpec *msg)
{
    Gantry__Autoscale *w = malloc(sizeof(*w));
    if (w == NULL)
        return false;
    gantry__autoscale__init(w);
    msg->autoscale = w;
    w->enabled = a->enabled;
    w->min = a->min;
    w->max = a->max;
    w->cpu_percent = a->cpu_percent;
    w->memory_percent = a->memory_percent;
    w->scale_down_after_ms = clamp_u32(a->scale_down_after_ms);
    w->idle_after_ms = clamp_u32(a->idle_after_ms);
    if (!a->has_metric)
        return true;
    Gantry__MetricSource *m = malloc(sizeof(*m));
    if (m == NULL)
        return false;
    gantry__metric_source__init(m);
    m->http_path = NULL;
    w->metric = m;
    m->http_port = a->metric.http_port;
    m->target = a->metric.target;
    return (m->http_path = dup_or_empty(a->metric.http_path)) != NULL &&
           strv_to_wire(&a->metric.exec, &m->n_exec, &m->exec);
}

Gantry__WorkloadSpec *gy_spec_to_proto(const struct gy_spec *spec)
{
    Gantry__WorkloadSpec *msg = malloc(sizeof(*msg));
    if (msg == NULL)
        return NULL;
    gantry__workload_spec__init(msg);
    /* Every pointer starts NULL (the generated initialiser points strings at a shared empty
     * string), so gy_spec_proto_free can release a partly built message. */
    msg->name = NULL;
    msg->image = NULL;
    msg->image_digest = NULL;
    msg->replicas = spec->replicas;
    msg->restart = (Gantry__RestartPolicy)spec->restart;
    msg->stop_grace_ms = clamp_u32(spec->stop_grace_ms);
    msg->disconnect_grace_ms = clamp_u32(spec->disconnect_grace_ms);
    bool ok = (msg->name = dup_or_empty(spec->name)) != NULL &&
              (msg->image = dup_or_empty(spec->image)) != NULL &&
              (msg->image_digest = dup_or_empty(spec->image_digest)) != NULL &&
              strv_to_wire(&spec->command, &msg->n_command, &msg->command) &&
              strv_to_wire(&spec->args, &msg->n_args, &msg->args) && env_to_wire(spec, msg) &&
              ports_to_wire(spec, msg);
    if (ok) {
        msg->resources = malloc(sizeof(*msg->resources));
        ok = msg->resources != NULL;
    }
    if (ok) {
        gantry__resources__init(msg->resources);
        msg->resources->cpu_millis = spec->resources.cpu_millis;
        msg->resources->memory_bytes = spec->resources.memory_bytes;
        msg->resources->pids = spec->resources.pids;
        msg->update = malloc(sizeof(*msg->update));
        ok = msg->update != NULL;
    }
    if (ok) {
        gantry__update_strategy__init(msg->update);
        msg->update->max_surge = spec->update.max_surge;
        msg->update->max_unavailable = spec->update.max_unavailable;
        ok = health_to_wire(&spec->health, msg) && placement_to_wire(&spec->placement, msg) &&
             autoscale_to_wire(&spec->autoscale, msg);
    }
    if (!ok) {
        gy_spec_proto_free(msg);
        return NULL;
    }
    return msg;
}

/* ---------------------------------------------------------------------------------------
 * From the wire */

/* NULL for an empty string: the wire cannot tell "unset" from "", and the model uses NULL
 * for unset optional strings. */
static bool str_from_wire(const char *s, char **out)
{
    *out = NULL;
    if (s == NULL || s[0] == '\0')
        return true;
    *out = strdup(s);
    return *out != NULL;
}

static bool strv_from_wire(size_t n, char *const *items, struct gy_strv *out)
{
    out->items = NULL;
    out->n = 0;
    if (n == 0)
        return true;
    out->items = calloc(n, sizeof(char *));
    if (out->items == NULL)
        return false;
    out->n = n;
    for (size_t i = 0; i < n; i++)
        if ((out->items[i] = strdup(items[i] != NULL ? items[i] : "")) == NULL)
            return false;
    return true;
}

static int enums_from_wire(const Gantry__WorkloadSpec *msg, struct gy_spec *spec,
                           struct gy_error *err)
{
    if ((unsigned)msg->restart > GY_RESTART_NEVER)
        return gy_error_set(err, GY_EINVAL, "restart: unknown policy %d", (int)msg->restart);
    spec->restart = (enum gy_restart)msg->restart;
    for (size_t i = 0; i < msg->n_ports; i++) {
        if ((unsigned)msg->ports[i]->protocol > GY_PROTOCOL_UDP)
            return gy_error_set(err, GY_EINVAL, "ports[%zu].protocol: unknown protocol %d", i,
                                (int)msg->ports[i]->protocol);
        spec->ports[i].protocol = (enum gy_protocol)msg->ports[i]->protocol;
    }
    const Gantry__Placement *p = msg->placement;
    if (p == NULL)
        return 0;
    if (p->spread != NULL && p->spread[0] != '\0' &&
        !gy_spread_parse(p->spread, &spec->placement.spread))
        return gy_error_set(err, GY_EINVAL,
                            "placement.spread: \"%s\" is not one of node, zone or cloud",
                            p->spread);
    if (p->strategy != NULL && p->strategy[0] != '\0' &&
        !gy_strategy_parse(p->strategy, &spec->placement.strategy))
        return gy_error_set(err, GY_EINVAL,
                            "placement.strategy: \"%s\" is not one of spread or binpack",
                            p->strategy);
    return 0;
}

static bool copy_from_wire(const Gantry__WorkloadSpec *msg, struct gy_spec *spec)
{
    spec->replicas = msg->replicas;
    spec->stop_grace_ms = msg->stop_grace_ms;
    spec->disconnect_grace_ms = msg->disconnect_grace_ms;
    if (!str_from_wire(msg->name, &spec->name) || !str_from_wire(msg->image, &spec->image) ||
        !str_from_wire(msg->image_digest, &spec->image_digest) ||
        !strv_from_wire(msg->n_command, msg->command, &spec->command) ||
        !strv_from_wire(msg->n_args, msg->args, &spec->args))
        return false;
    if (msg->n_env > 0) {
        spec->env = calloc(msg->n_env, sizeof(spec->env[0]));
        if (spec->env == NULL)
            return false;
        for (size_t i = 0; i < msg->n_env; i++) {
            spec->n_env = i + 1;
            const Gantry__EnvVar *e = msg->env[i];
            if ((spec->env[i].name = strdup(e->name != NULL ? e->name : "")) == NULL ||
                (spec->env[i].value = strdup(e->value != NULL ? e->value : "")) == NULL)
                return false;
        }
    }
    if (msg->n_ports > 0) {
        spec->ports = calloc(msg->n_ports, sizeof(spec->ports[0]));
        if (spec->ports == NULL)
            return false;
        for (size_t i = 0; i < msg->n_ports; i++) {
            spec->n_ports = i + 1;
            const Gantry__Port *p = msg->ports[i];
            spec->ports[i].container_port = p->container_port;
            spec->ports[i].host_port = p->host_port;
            /* The protocol is checked and set with the other enumerations. */
            if (!str_from_wire(p->name, &spec->ports[i].name))
                return false;
        }
    }
    if (msg->resources != NULL) {
        spec->resources.cpu_millis = msg->resources->cpu_millis;
        spec->resources.memory_bytes = msg->resources->memory_bytes;
        spec->resources.pids = msg->resources->pids;
    }
    if (msg->update != NULL) {
        spec->update.max_surge = msg->update->max_surge;
        spec->update.max_unavailable = msg->update->max_unavailable;
    }
    const Gantry__HealthCheck *h = msg->health;
    if (h != NULL) {
        spec->health.http_port = h->http_port;
        spec->health.tcp_port = h->tcp_port;
        spec->health.interval_ms = h->interval_ms;
        spec->health.timeout_ms = h->timeout_ms;
        spec->health.failure_threshold = h->failure_threshold;
        spec->health.start_period_ms = h->start_period_ms;
        if (!str_from_wire(h->http_path, &spec->health.http_path) ||
            !strv_from_wire(h->n_exec, h->exec, &spec->health.exec))
            return false;
    }
    const Gantry__Placement *p = msg->placement;
    if (p != NULL &&
        (!strv_from_wire(p->n_clouds, p->clouds, &spec->placement.clouds) ||
         !strv_from_wire(p->n_constraints, p->constraints, &spec->placement.constraints)))
        return false;
    const Gantry__Autoscale *a = msg->autoscale;
    if (a != NULL) {
        struct gy_autoscale *s = &spec->autoscale;
        s->enabled = a->enabled;
        s->min = a->min;
        s->max = a->max;
        s->cpu_percent = a->cpu_percent;
        s->memory_percent = a->memory_percent;
        s->scale_down_after_ms = a->scale_down_after_ms;
        s->idle_after_ms = a->idle_after_ms;
        s->has_metric = a->metric != NULL;
        if (a->metric != NULL) {
            s->metric.http_port = a->metric->http_port;
            s->metric.target = a->metric->target;
            if (!str_from_wire(a->metric->http_path, &s->metric.http_path) ||
                !strv_from_wire(a->metric->n_exec, a->metric->exec, &s->metric.exec))
                return false;
        }
    }
    return true;
}

int gy_spec_from_proto(const Gantry__WorkloadSpec *msg, struct gy_spec *spec, struct gy_error *err)
{
    gy_spec_init(spec);
    if (!copy_from_wire(msg, spec))
        return gy_error_set(err, GY_ENOMEM, "decode workload spec: out of memory");
    int rc = enums_from_wire(msg, spec, err);
    if (rc == 0 && spec->image_digest != NULL && !gy_image_digest_valid(spec->image_digest))
        rc = gy_error_set(err, GY_EINVAL, "image_digest: \"%.80s\" is not a sha256 digest",
                          spec->image_digest);
    if (rc < 0)
        return gy_error_wrap(err, "workload spec \"%s\"", spec->name != NULL ? spec->name : "");
    struct gy_spec_problems problems = {0};
    if (gy_spec_validate(spec, NULL, &problems) < 0) {
        rc = gy_error_set(err, GY_EINVAL, "workload spec \"%s\": %s: %s",
                          spec->name != NULL ? spec->name : "", problems.items[0].path,
                          problems.items[0].message);
        gy_spec_problems_free(&problems);
        return rc;
    }
    return 0;
}
