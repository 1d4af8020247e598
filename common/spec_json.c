/* The JSON form of a workload spec: a decoder that reports every problem of a document
 * with its key path, and the canonical encoder; see spec.h and docs/spec.md. */
#include "common/spec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "common/xalloc.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct decoder {
    struct gy_spec_problems *problems;
    const struct gy_spec_positions *pos;
};

#define PROBLEM(d, path, ...) gy_spec_problem_add((d)->problems, (d)->pos, (path), __VA_ARGS__)

static char *join(const char *parent, const char *key)
{
    return parent[0] == '\0' ? gy_xstrdup(key) : gy_xasprintf("%s.%s", parent, key);
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "an unknown type";
}

static void wrong_type(struct decoder *d, const char *path, const char *expected, const json_t *v)
{
    PROBLEM(d, path, "must be %s, not %s", expected, type_name(v));
}

/* The value of key in obj, or NULL when the key is absent or null: YAML writes an empty
 * value as null, and an empty optional setting means "not set". */
static json_t *get(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

/* Reports every key of obj that is not in allowed, with a hint when one is close. */
static void check_keys(struct decoder *d, const json_t *obj, const char *path,
                       const char *const *allowed, size_t n)
{
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)obj, key, value)
    {
        bool known = false;
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(key, allowed[i]) == 0;
        if (known)
            continue;
        char *p = join(path, key);
        const char *hint = gy_spec_suggest(key, allowed, n);
        if (hint != NULL) {
            PROBLEM(d, p, "unknown key; did you mean '%s'?", hint);
        } else {
            size_t cap = 16;
            for (size_t i = 0; i < n; i++)
                cap += strlen(allowed[i]) + 2;
            char *list = gy_xmalloc(cap);
            list[0] = '\0';
            for (size_t i = 0; i < n; i++) {
                if (i > 0)
                    strcat(list, ", ");
                strcat(list, allowed[i]);
            }
            PROBLEM(d, p, "unknown key (allowed here: %s)", list);
            free(list);
        }
        free(p);
    }
}

/* ---------------------------------------------------------------------------------------
 * Scalars */

/* Quantities are short; a long string is refused before the parsers quote it whole into a
 * fixed-size error message, where it could be cut inside a UTF-8 character. */
#define QUANTITY_TEXT_MAX 40

static bool quantity_text_ok(struct decoder *d, const char *path, const json_t *v, const char *what)
{
    char ex[GY_SPEC_EXCERPT_BUF];
    const char *s = json_string_value(v);
    if (strlen(s) <= QUANTITY_TEXT_MAX)
        return true;
    PROBLEM(d, path, "\"%s\" is too long to be %s", gy_spec_excerpt(s, ex), what);
    return false;
}

static bool dec_string(struct decoder *d, const char *path, const json_t *v, char **out)
{
    if (!json_is_string(v)) {
        wrong_type(d, path, "a string", v);
        return false;
    }
    free(*out);
    *out = gy_xstrdup(json_string_value(v));
    return true;
}

/* A list of strings; on any problem *out keeps its previous value. */
static bool dec_strv(struct decoder *d, const char *path, const json_t *v, struct gy_strv *out)
{
    if (!json_is_array(v)) {
        wrong_type(d, path, "a list of strings", v);
        return false;
    }
    bool ok = true;
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item)) {
            char *p = gy_xasprintf("%s[%zu]", path, i);
            wrong_type(d, p, "a string", item);
            free(p);
            ok = false;
        }
    }
    if (!ok)
        return false;
    for (size_t k = 0; k < out->n; k++)
        free(out->items[k]);
    free(out->items);
    out->n = json_array_size(v);
    out->items = out->n > 0 ? gy_xcalloc(out->n, sizeof(char *)) : NULL;
    json_array_foreach(v, i, item) out->items[i] = gy_xstrdup(json_string_value(item));
    return true;
}

static bool dec_uint(struct decoder *d, const char *path, const json_t *v, long long min,
                     long long max, uint32_t *out)
{
    if (!json_is_integer(v)) {
        wrong_type(d, path, "a whole number", v);
        return false;
    }
    long long n = json_integer_value(v);
    if (n < min || n > max) {
        PROBLEM(d, path, "must be between %lld and %lld (got %lld)", min, max, n);
        return false;
    }
    *out = (uint32_t)n;
    return true;
}

static void dec_cpu(struct decoder *d, const char *path, const json_t *v, int64_t *out)
{
    struct gy_error err;
    if (json_is_string(v)) {
        if (quantity_text_ok(d, path, v, "a cpu quantity") &&
            gy_cpu_parse(json_string_value(v), out, &err) < 0)
            PROBLEM(d, path, "%s", err.msg);
        return;
    }
    if (json_is_integer(v)) {
        long long n = json_integer_value(v);
        if (n < 0 || n > GY_CPU_MAX_MILLIS / 1000)
            PROBLEM(d, path, "%lld cores is out of range (0 to %lld)", n,
                    (long long)(GY_CPU_MAX_MILLIS / 1000));
        else
            *out = (int64_t)n * 1000;
        return;
    }
    if (json_is_real(v)) {
        /* Rounded by hand: the bounds check comes first, so the cast cannot overflow, and
         * the library stays free of libm. */
        double x = json_real_value(v) * 1000.0;
        if (!isfinite(x) || x < 0 || x > (double)GY_CPU_MAX_MILLIS) {
            PROBLEM(d, path, "%g cores is out of range (0 to %lld)", json_real_value(v),
                    (long long)(GY_CPU_MAX_MILLIS / 1000));
            return;
        }
        double r = (double)(int64_t)(x + 0.5);
        if (x - r > 1e-6 || r - x > 1e-6)
            PROBLEM(d, path, "%g cores is finer than the smallest unit, 1m", json_real_value(v));
        else
            *out = (int64_t)r;
        return;
    }
    wrong_type(d, path, "a cpu quantity like \"250m\" or 0.5", v);
}

static void dec_memory(struct decoder *d, const char *path, const json_t *v, int64_t *out)
{
    struct gy_error err;
    if (json_is_string(v)) {
        if (quantity_text_ok(d, path, v, "a memory quantity") &&
            gy_memory_parse(json_string_value(v), out, &err) < 0)
            PROBLEM(d, path, "%s", err.msg);
        return;
    }
    if (json_is_integer(v)) {
        long long n = json_integer_value(v);
        if (n < 0 || n > GY_MEMORY_MAX_BYTES)
            PROBLEM(d, path, "%lld bytes is out of range (0 to 1Ei)", n);
        else
            *out = (int64_t)n;
        return;
    }
    wrong_type(d, path, "a memory quantity like \"64Mi\" or a whole number of bytes", v);
}

/* Durations are strings with units; a bare number would be ambiguous (seconds or
 * milliseconds?), so only 0 is accepted without one. */
static void dec_duration(struct decoder *d, const char *path, const json_t *v, int64_t *out)
{
    struct gy_error err;
    if (json_is_string(v)) {
        if (quantity_text_ok(d, path, v, "a duration") &&
            gy_duration_parse(json_string_value(v), out, &err) < 0)
            PROBLEM(d, path, "%s", err.msg);
        return;
    }
    if (json_is_integer(v) && json_integer_value(v) == 0) {
        *out = 0;
        return;
    }
    if (json_is_integer(v)) {
        long long n = json_integer_value(v);
        PROBLEM(d, path, "a duration needs a unit: write \"%llds\" or \"%lldms\"", n, n);
        return;
    }
    wrong_type(d, path, "a duration like \"30s\"", v);
}

/* A target share in percent, 1 to 100: "70%", "70" or 70. */
static void dec_percent(struct decoder *d, const char *path, const json_t *v, uint32_t *out)
{
    int64_t pct;
    struct gy_error err;
    if (json_is_string(v)) {
        if (!quantity_text_ok(d, path, v, "a percentage"))
            return;
        if (gy_percent_parse(json_string_value(v), &pct, &err) < 0) {
            PROBLEM(d, path, "%s", err.msg);
            return;
        }
    } else if (json_is_integer(v)) {
        pct = json_integer_value(v);
    } else {
        wrong_type(d, path, "a percentage like \"70%\"", v);
        return;
    }
    if (pct < 1 || pct > 100) {
        PROBLEM(d, path, "must be between 1%% and 100%% (got %lld%%)", (long long)pct);
        return;
    }
    *out = (uint32_t)pct;
}

/* An enumeration value: reports the allowed words, and the closest one as a hint. */
static int dec_enum(struct decoder *d, const char *path, const json_t *v, const char *const *names,
                    size_t n)
{
    size_t cap = 8;
    for (size_t i = 0; i < n; i++)
        cap += strlen(names[i]) + 3;
    char *list = gy_xmalloc(cap);
    list[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(list, i + 1 == n ? " or " : ", ");
        strcat(list, names[i]);
    }
    int result = -1;
    if (!json_is_string(v)) {
        PROBLEM(d, path, "must be one of %s, not %s", list, type_name(v));
    } else {
        const char *s = json_string_value(v);
        char ex[GY_SPEC_EXCERPT_BUF];
        for (size_t i = 0; i < n && result < 0; i++)
            if (strcmp(s, names[i]) == 0)
                result = (int)i;
        if (result < 0) {
            const char *hint = gy_spec_suggest(s, names, n);
            if (hint != NULL)
                PROBLEM(d, path, "\"%s\" is not one of %s; did you mean '%s'?",
                        gy_spec_excerpt(s, ex), list, hint);
            else
                PROBLEM(d, path, "\"%s\" is not one of %s", gy_spec_excerpt(s, ex), list);
        }
    }
    free(list);
    return result;
}

/* ---------------------------------------------------------------------------------------
 * Blocks */

static bool dec_object(struct decoder *d, const char *path, const json_t *v)
{
    if (!json_is_object(v)) {
        wrong_type(d, path, "an object", v);
        return false;
    }
    return true;
}

static int env_cmp(const void *a, const void *b)
{
    const struct gy_env_var *x = a, *y = b;
    return strcmp(x->name, y->name);
}

static void dec_env(struct decoder *d, const json_t *v, struct gy_spec *spec)
{
    if (!dec_object(d, "env", v))
        return;
    size_t n = json_object_size(v);
    if (n == 0)
        return;
    spec->env = gy_xcalloc(n, sizeof(spec->env[0]));
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)v, key, value)
    {
        char *p = join("env", key);
        char *text = NULL;
        if (json_is_string(value))
            text = gy_xstrdup(json_string_value(value));
        else if (json_is_integer(value))
            text = gy_xasprintf("%lld", (long long)json_integer_value(value));
        else if (json_is_boolean(value))
            text = gy_xstrdup(json_is_true(value) ? "true" : "false");
        else
            PROBLEM(d, p, "must be a string, not %s (quote the value)", type_name(value));
        free(p);
        if (text == NULL)
            continue;
        spec->env[spec->n_env].name = gy_xstrdup(key);
        spec->env[spec->n_env].value = text;
        spec->n_env++;
    }
    if (spec->n_env > 1)
        qsort(spec->env, spec->n_env, sizeof(spec->env[0]), env_cmp);
}

/* ports: a list of {container_port, protocol, host_port, name}. An item with problems is
 * kept with what could be read, so that the rules still see the others. */
static void dec_ports(struct decoder *d, const json_t *v, struct gy_spec *spec)
{
    static const char *const keys[] = {"container_port", "protocol", "host_port", "name"};
    static const char *const protocols[] = {"tcp", "udp"};
    if (!json_is_array(v)) {
        wrong_type(d, "ports", "a list of ports", v);
        return;
    }
    size_t n = json_array_size(v);
    if (n == 0)
        return;
    spec->ports = gy_xcalloc(n, sizeof(spec->ports[0]));
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        char *path = gy_xasprintf("ports[%zu]", i);
        struct gy_port *port = &spec->ports[spec->n_ports++];
        if (!dec_object(d, path, item)) {
            free(path);
            continue;
        }
        check_keys(d, item, path, keys, ARRAY_LEN(keys));
        char *p = join(path, "container_port");
        json_t *x = get(item, "container_port");
        if (x == NULL)
            PROBLEM(d, p, "required field is missing");
        else
            dec_uint(d, p, x, 1, 65535, &port->container_port);
        free(p);
        if ((x = get(item, "protocol")) != NULL) {
            p = join(path, "protocol");
            int k = dec_enum(d, p, x, protocols, ARRAY_LEN(protocols));
            if (k >= 0)
                port->protocol = (enum gy_protocol)k;
            free(p);
        }
        if ((x = get(item, "host_port")) != NULL) {
            p = join(path, "host_port");
            dec_uint(d, p, x, 1, 65535, &port->host_port);
            free(p);
        }
        if ((x = get(item, "name")) != NULL) {
            p = join(path, "name");
            dec_string(d, p, x, &port->name);
            free(p);
        }
        free(path);
    }
}

static void dec_resources(struct decoder *d, const json_t *v, struct gy_resources *r)
{
    static const char *const keys[] = {"cpu", "memory", "pids"};
    if (!dec_object(d, "resources", v))
        return;
    check_keys(d, v, "resources", keys, ARRAY_LEN(keys));
    json_t *x;
    if ((x = get(v, "cpu")) != NULL)
        dec_cpu(d, "resources.cpu", x, &r->cpu_millis);
    if ((x = get(v, "memory")) != NULL)
        dec_memory(d, "resources.memory", x, &r->memory_bytes);
    if ((x = get(v, "pids")) != NULL) {
        uint32_t pids;
        if (dec_uint(d, "resources.pids", x, 0, GY_SPEC_PIDS_MAX, &pids))
            r->pids = pids;
    }
}

/* {port, path}: the HTTP GET of a health check or a metric. */
static void dec_http(struct decoder *d, const char *path, const json_t *v, uint32_t *port,
                     char **http_path)
{
    static const char *const keys[] = {"port", "path"};
    if (!dec_object(d, path, v))
        return;
    check_keys(d, v, path, keys, ARRAY_LEN(keys));
    char *p = join(path, "port");
    json_t *x = get(v, "port");
    if (x == NULL)
        PROBLEM(d, p, "required field is missing");
    else
        dec_uint(d, p, x, 1, 65535, port);
    free(p);
    free(*http_path);
    *http_path = gy_xstrdup("/");
    if ((x = get(v, "path")) != NULL) {
        p = join(path, "path");
        dec_string(d, p, x, http_path);
        free(p);
    }
}

static void dec_health(struct decoder *d, const json_t *v, struct gy_health *h)
{
    static const char *const keys[] = {
        "exec", "http", "tcp", "interval", "timeout", "failure_threshold", "start_period"};
    if (!dec_object(d, "health", v))
        return;
    check_keys(d, v, "health", keys, ARRAY_LEN(keys));
    json_t *exec = get(v, "exec"), *http = get(v, "http"), *tcp = get(v, "tcp");
    int kinds = (exec != NULL) + (http != NULL) + (tcp != NULL);
    if (kinds == 0) {
        PROBLEM(d, "health", "needs one of exec, http or tcp");
        return;
    }
    if (kinds > 1) {
        PROBLEM(d, "health", "must have exactly one of exec, http or tcp (found %s%s%s)",
                exec != NULL ? "exec " : "", http != NULL ? "http " : "", tcp != NULL ? "tcp" : "");
        return;
    }
    if (exec != NULL && dec_strv(d, "health.exec", exec, &h->exec) && h->exec.n == 0)
        PROBLEM(d, "health.exec", "must list a command and its arguments");
    if (http != NULL)
        dec_http(d, "health.http", http, &h->http_port, &h->http_path);
    if (tcp != NULL && dec_object(d, "health.tcp", tcp)) {
        static const char *const tcp_keys[] = {"port"};
        check_keys(d, tcp, "health.tcp", tcp_keys, 1);
        json_t *port = get(tcp, "port");
        if (port == NULL)
            PROBLEM(d, "health.tcp.port", "required field is missing");
        else
            dec_uint(d, "health.tcp.port", port, 1, 65535, &h->tcp_port);
    }
    json_t *x;
    if ((x = get(v, "interval")) != NULL)
        dec_duration(d, "health.interval", x, &h->interval_ms);
    if ((x = get(v, "timeout")) != NULL)
        dec_duration(d, "health.timeout", x, &h->timeout_ms);
    if ((x = get(v, "failure_threshold")) != NULL)
        dec_uint(d, "health.failure_threshold", x, 1, GY_SPEC_THRESHOLD_MAX, &h->failure_threshold);
    if ((x = get(v, "start_period")) != NULL)
        dec_duration(d, "health.start_period", x, &h->start_period_ms);
}

static void dec_placement(struct decoder *d, const json_t *v, struct gy_placement *p)
{
    static const char *const keys[] = {"clouds", "spread", "constraints", "strategy"};
    static const char *const spreads[] = {"node", "zone", "cloud"};
    static const char *const strategies[] = {"spread", "binpack"};
    if (!dec_object(d, "placement", v))
        return;
    check_keys(d, v, "placement", keys, ARRAY_LEN(keys));
    json_t *x;
    if ((x = get(v, "clouds")) != NULL)
        dec_strv(d, "placement.clouds", x, &p->clouds);
    if ((x = get(v, "spread")) != NULL) {
        int i = dec_enum(d, "placement.spread", x, spreads, ARRAY_LEN(spreads));
        if (i >= 0)
            p->spread = (enum gy_spread)i;
    }
    if ((x = get(v, "constraints")) != NULL &&
        dec_strv(d, "placement.constraints", x, &p->constraints)) {
        /* Store each constraint in one spelling, "key == value", so that specs that differ
         * only in blanks are equal. */
        for (size_t i = 0; i < p->constraints.n; i++) {
            struct gy_constraint c;
            struct gy_error err;
            if (gy_constraint_parse(p->constraints.items[i], &c, &err) < 0)
                continue; /* gy_spec_validate reports it with its path */
            free(p->constraints.items[i]);
            p->constraints.items[i] =
                gy_xasprintf("%s %s %s", c.key, c.negated ? "!=" : "==", c.value);
            gy_constraint_free(&c);
        }
    }
    if ((x = get(v, "strategy")) != NULL) {
        int i = dec_enum(d, "placement.strategy", x, strategies, ARRAY_LEN(strategies));
        if (i >= 0)
            p->strategy = (enum gy_strategy)i;
    }
}

static void dec_metric(struct decoder *d, const json_t *v, struct gy_autoscale *a)
{
    static const char *const keys[] = {"exec", "http", "target"};
    if (!dec_object(d, "autoscale.metric", v))
        return;
    check_keys(d, v, "autoscale.metric", keys, ARRAY_LEN(keys));
    a->has_metric = true;
    struct gy_metric *m = &a->metric;
    json_t *exec = get(v, "exec"), *http = get(v, "http"), *target = get(v, "target");
    if ((exec != NULL) == (http != NULL)) {
        PROBLEM(d, "autoscale.metric", "must have exactly one of exec or http");
    } else if (exec != NULL) {
        if (dec_strv(d, "autoscale.metric.exec", exec, &m->exec) && m->exec.n == 0)
            PROBLEM(d, "autoscale.metric.exec", "must list a command and its arguments");
    } else {
        dec_http(d, "autoscale.metric.http", http, &m->http_port, &m->http_path);
    }
    if (target == NULL)
        PROBLEM(d, "autoscale.metric.target", "required field is missing");
    else if (!json_is_number(target))
        wrong_type(d, "autoscale.metric.target", "a number", target);
    else
        m->target = json_number_value(target);
}

static void dec_autoscale(struct decoder *d, const json_t *v, struct gy_autoscale *a)
{
    static const char *const keys[] = {
        "min", "max", "cpu", "memory", "metric", "scale_down_after", "idle_after"};
    char ex[GY_SPEC_EXCERPT_BUF];
    if (json_is_string(v) && strcmp(json_string_value(v), "off") == 0)
        return;
    if (!json_is_object(v)) {
        if (json_is_string(v))
            PROBLEM(d, "autoscale", "must be an object or \"off\", not \"%s\"",
                    gy_spec_excerpt(json_string_value(v), ex));
        else
            wrong_type(d, "autoscale", "an object or \"off\"", v);
        return;
    }
    check_keys(d, v, "autoscale", keys, ARRAY_LEN(keys));
    a->enabled = true;
    a->min = 1;
    a->scale_down_after_ms = 30000;
    json_t *x;
    if ((x = get(v, "min")) != NULL)
        dec_uint(d, "autoscale.min", x, 0, GY_SPEC_REPLICAS_MAX, &a->min);
    if ((x = get(v, "max")) == NULL)
        PROBLEM(d, "autoscale.max", "required field is missing");
    else
        dec_uint(d, "autoscale.max", x, 1, GY_SPEC_REPLICAS_MAX, &a->max);
    if ((x = get(v, "cpu")) != NULL)
        dec_percent(d, "autoscale.cpu", x, &a->cpu_percent);
    if ((x = get(v, "memory")) != NULL)
        dec_percent(d, "autoscale.memory", x, &a->memory_percent);
    if ((x = get(v, "metric")) != NULL)
        dec_metric(d, x, a);
    if ((x = get(v, "scale_down_after")) != NULL)
        dec_duration(d, "autoscale.scale_down_after", x, &a->scale_down_after_ms);
    if ((x = get(v, "idle_after")) != NULL)
        dec_duration(d, "autoscale.idle_after", x, &a->idle_after_ms);
}

static void dec_update(struct decoder *d, const json_t *v, struct gy_update *u)
{
    static const char *const keys[] = {"max_surge", "max_unavailable"};
    if (!dec_object(d, "update", v))
        return;
    check_keys(d, v, "update", keys, ARRAY_LEN(keys));
    json_t *x;
    if ((x = get(v, "max_surge")) != NULL)
        dec_uint(d, "update.max_surge", x, 0, GY_SPEC_REPLICAS_MAX, &u->max_surge);
    if ((x = get(v, "max_unavailable")) != NULL)
        dec_uint(d, "update.max_unavailable", x, 0, GY_SPEC_REPLICAS_MAX, &u->max_unavailable);
}

/* ---------------------------------------------------------------------------------------
 * Document */

/* True when a problem at path a and one at path b concern the same value: equal paths, or
 * one inside the other ("health" and "health.interval"). */
static bool paths_overlap(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t n = la < lb ? la : lb;
    if (strncmp(a, b, n) != 0)
        return false;
    if (la == lb)
        return true;
    char next = la < lb ? b[n] : a[n];
    return next == '.' || next == '[';
}

int gy_spec_from_json(const json_t *doc, const struct gy_spec_positions *pos, struct gy_spec *spec,
                      struct gy_spec_problems *problems)
{
    static const char *const keys[] = {"name",    "image",      "command",         "args",
                                       "env",     "ports",      "replicas",        "resources",
                                       "restart", "health",     "placement",       "autoscale",
                                       "update",  "stop_grace", "disconnect_grace"};
    static const char *const restarts[] = {"always", "on-failure", "never"};
    gy_spec_init(spec);
    struct decoder d = {.problems = problems, .pos = pos};
    size_t before = problems->n;
    if (doc == NULL || !json_is_object(doc)) {
        PROBLEM(&d, "", "a workload spec must be an object, not %s",
                doc != NULL ? type_name(doc) : "empty");
        return -GY_EINVAL;
    }
    check_keys(&d, doc, "", keys, ARRAY_LEN(keys));
    json_t *x;
    if ((x = get(doc, "name")) != NULL)
        dec_string(&d, "name", x, &spec->name);
    if ((x = get(doc, "image")) != NULL)
        dec_string(&d, "image", x, &spec->image);
    if ((x = get(doc, "command")) != NULL)
        dec_strv(&d, "command", x, &spec->command);
    if ((x = get(doc, "args")) != NULL)
        dec_strv(&d, "args", x, &spec->args);
    if ((x = get(doc, "env")) != NULL)
        dec_env(&d, x, spec);
    if ((x = get(doc, "ports")) != NULL)
        dec_ports(&d, x, spec);
    if ((x = get(doc, "replicas")) != NULL)
        dec_uint(&d, "replicas", x, 0, GY_SPEC_REPLICAS_MAX, &spec->replicas);
    if ((x = get(doc, "resources")) != NULL)
        dec_resources(&d, x, &spec->resources);
    if ((x = get(doc, "restart")) != NULL) {
        int i = dec_enum(&d, "restart", x, restarts, ARRAY_LEN(restarts));
        if (i >= 0)
            spec->restart = (enum gy_restart)i;
    }
    if ((x = get(doc, "health")) != NULL)
        dec_health(&d, x, &spec->health);
    if ((x = get(doc, "placement")) != NULL)
        dec_placement(&d, x, &spec->placement);
    if ((x = get(doc, "autoscale")) != NULL)
        dec_autoscale(&d, x, &spec->autoscale);
    if ((x = get(doc, "update")) != NULL)
        dec_update(&d, x, &spec->update);
    if ((x = get(doc, "stop_grace")) != NULL)
        dec_duration(&d, "stop_grace", x, &spec->stop_grace_ms);
    if ((x = get(doc, "disconnect_grace")) != NULL)
        dec_duration(&d, "disconnect_grace", x, &spec->disconnect_grace_ms);

    /* The semantic rules run on what could be decoded; a value already reported above is
     * not reported a second time. */
    struct gy_spec_problems rules = {0};
    gy_spec_validate(spec, pos, &rules);
    for (size_t i = 0; i < rules.n; i++) {
        bool seen = false;
        for (size_t j = before; j < problems->n && !seen; j++)
            seen = paths_overlap(problems->items[j].path, rules.items[i].path);
        if (seen) {
            free(rules.items[i].path);
            free(rules.items[i].message);
            continue;
        }
        problems->items =
            gy_xrealloc(problems->items, (problems->n + 1) * sizeof(problems->items[0]));
        problems->items[problems->n++] = rules.items[i];
    }
    free(rules.items);
    if (pos != NULL)
        gy_spec_problems_sort(problems, before);
    return problems->n > before ? -GY_EINVAL : 0;
}

/* ---------------------------------------------------------------------------------------
 * Canonical encoding */

static json_t *strv_json(const struct gy_strv *v)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < v->n; i++)
        if (json_array_append_new(a, json_string(v->items[i] != NULL ? v->items[i] : "")) < 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *duration_json(int64_t ms)
{
    char buf[GY_QUANTITY_BUF];
    return json_string(gy_duration_format(ms, buf));
}

static json_t *http_json(uint32_t port, const char *path)
{
    return json_pack("{s:I, s:s}", "port", (json_int_t)port, "path", path != NULL ? path : "/");
}

static json_t *health_json(const struct gy_health *h)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    if (h->exec.n > 0)
        rc |= json_object_set_new(o, "exec", strv_json(&h->exec));
    else if (h->http_port != 0)
        rc |= json_object_set_new(o, "http", http_json(h->http_port, h->http_path));
    else
        rc |= json_object_set_new(o, "tcp", json_pack("{s:I}", "port", (json_int_t)h->tcp_port));
    rc |= json_object_set_new(o, "interval", duration_json(h->interval_ms));
    rc |= json_object_set_new(o, "timeout", duration_json(h->timeout_ms));
    rc |= json_object_set_new(o, "failure_threshold", json_integer(h->failure_threshold));
    rc |= json_object_set_new(o, "start_period", duration_json(h->start_period_ms));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *ports_json(const struct gy_spec *spec)
{
    json_t *a = json_array();
    for (size_t i = 0; a != NULL && i < spec->n_ports; i++) {
        const struct gy_port *p = &spec->ports[i];
        json_t *o = json_pack("{s:I, s:s}", "container_port", (json_int_t)p->container_port,
                              "protocol", gy_protocol_name(p->protocol));
        int rc = o == NULL ? -1 : 0;
        /* Optional settings only when set, so that a port reads back as written. */
        if (rc == 0 && p->host_port != 0)
            rc = json_object_set_new(o, "host_port", json_integer(p->host_port));
        if (rc == 0 && p->name != NULL)
            rc = json_object_set_new(o, "name", json_string(p->name));
        if (rc < 0)
            json_decref(o);
        /* json_array_append_new takes o, also when it fails. */
        if (rc < 0 || json_array_append_new(a, o) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *autoscale_json(const struct gy_autoscale *a)
{
    if (!a->enabled)
        return json_string("off");
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    char buf[GY_QUANTITY_BUF];
    rc |= json_object_set_new(o, "min", json_integer(a->min));
    rc |= json_object_set_new(o, "max", json_integer(a->max));
    if (a->cpu_percent > 0) {
        snprintf(buf, sizeof(buf), "%u%%", (unsigned)a->cpu_percent);
        rc |= json_object_set_new(o, "cpu", json_string(buf));
    }
    if (a->memory_percent > 0) {
        snprintf(buf, sizeof(buf), "%u%%", (unsigned)a->memory_percent);
        rc |= json_object_set_new(o, "memory", json_string(buf));
    }
    if (a->has_metric) {
        json_t *m = json_object();
        if (m == NULL) {
            json_decref(o);
            return NULL;
        }
        if (a->metric.exec.n > 0)
            rc |= json_object_set_new(m, "exec", strv_json(&a->metric.exec));
        else
            rc |=
                json_object_set_new(m, "http", http_json(a->metric.http_port, a->metric.http_path));
        rc |= json_object_set_new(m, "target", json_real(a->metric.target));
        rc |= json_object_set_new(o, "metric", m);
    }
    rc |= json_object_set_new(o, "scale_down_after", duration_json(a->scale_down_after_ms));
    if (a->idle_after_ms > 0)
        rc |= json_object_set_new(o, "idle_after", duration_json(a->idle_after_ms));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *gy_spec_to_json(const struct gy_spec *spec)
{
    char cpu[GY_QUANTITY_BUF], mem[GY_QUANTITY_BUF];
    json_t *o = json_object();
    json_t *env = json_object();
    if (o == NULL || env == NULL) {
        json_decref(o);
        json_decref(env);
        return NULL;
    }
    int rc = 0;
    for (size_t i = 0; i < spec->n_env; i++)
        rc |=
            json_object_set_new(env, spec->env[i].name,
                                json_string(spec->env[i].value != NULL ? spec->env[i].value : ""));
    rc |= json_object_set_new(o, "name", json_string(spec->name != NULL ? spec->name : ""));
    rc |= json_object_set_new(o, "image", json_string(spec->image != NULL ? spec->image : ""));
    rc |= json_object_set_new(o, "command", strv_json(&spec->command));
    /* Only when given, so the canonical form of a spec without args stays as it was. */
    if (spec->args.n > 0)
        rc |= json_object_set_new(o, "args", strv_json(&spec->args));
    rc |= json_object_set_new(o, "env", env);
    /* Like args: only when given, so the canonical form of a spec without ports stays as it
     * was. */
    if (spec->n_ports > 0)
        rc |= json_object_set_new(o, "ports", ports_json(spec));
    rc |= json_object_set_new(o, "replicas", json_integer(spec->replicas));
    rc |= json_object_set_new(o, "resources",
                              json_pack("{s:s, s:s, s:I}", "cpu",
                                        gy_cpu_format(spec->resources.cpu_millis, cpu), "memory",
                                        gy_memory_format(spec->resources.memory_bytes, mem), "pids",
                                        (json_int_t)spec->resources.pids));
    rc |= json_object_set_new(o, "restart", json_string(gy_restart_name(spec->restart)));
    if (spec->health.exec.n > 0 || spec->health.http_port != 0 || spec->health.tcp_port != 0)
        rc |= json_object_set_new(o, "health", health_json(&spec->health));
    else
        rc |= json_object_set_new(o, "health", json_null());
    json_t *placement = json_object();
    if (placement != NULL) {
        rc |= json_object_set_new(placement, "clouds", strv_json(&spec->placement.clouds));
        rc |= json_object_set_new(placement, "spread",
                                  json_string(gy_spread_name(spec->placement.spread)));
        rc |=
            json_object_set_new(placement, "constraints", strv_json(&spec->placement.constraints));
        rc |= json_object_set_new(placement, "strategy",
                                  json_string(gy_strategy_name(spec->placement.strategy)));
    }
    rc |= json_object_set_new(o, "placement", placement);
    rc |= json_object_set_new(o, "autoscale", autoscale_json(&spec->autoscale));
    rc |=
        json_object_set_new(o, "update",
                            json_pack("{s:I, s:I}", "max_surge", (json_int_t)spec->update.max_surge,
                                      "max_unavailable", (json_int_t)spec->update.max_unavailable));
    rc |= json_object_set_new(o, "stop_grace", duration_json(spec->stop_grace_ms));
    /* Written only when set, like the optional figures of autoscale. */
    if (spec->disconnect_grace_ms != 0)
        rc |= json_object_set_new(o, "disconnect_grace", duration_json(spec->disconnect_grace_ms));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}
