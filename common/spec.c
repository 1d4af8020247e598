/* The spec model: defaults, deep copy, equality, enumeration names, constraints, problem
 * lists and the position table; see spec.h. The JSON codec is in spec_json.c and the
 * semantic rules in spec_validate.c. */
#include "common/spec.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The position table promises -GY_ENOMEM, not an abort, when it cannot grow: in uthash's
 * non-fatal mode an entry the table has no room for is left out and marked lost. */
#define HASH_NONFATAL_OOM          1
#define uthash_nonfatal_oom(entry) ((entry)->lost = true)
#include "common/hash.h"
#include "common/xalloc.h"

/* ---------------------------------------------------------------------------------------
 * Lifetime */

void gy_spec_init(struct gy_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->replicas = 1;
    spec->resources.cpu_millis = 100;
    spec->resources.memory_bytes = INT64_C(64) << 20;
    spec->resources.pids = 0;
    spec->restart = GY_RESTART_ALWAYS;
    spec->health.interval_ms = 10000;
    spec->health.timeout_ms = 1000;
    spec->health.failure_threshold = 3;
    spec->health.start_period_ms = 0;
    spec->placement.spread = GY_SPREAD_NODE;
    spec->placement.strategy = GY_STRATEGY_SPREAD;
    spec->autoscale.enabled = false;
    spec->update.max_surge = 1;
    spec->update.max_unavailable = 0;
    spec->stop_grace_ms = 10000;
}

static void strv_free(struct gy_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->items[i]);
    free(v->items);
    v->items = NULL;
    v->n = 0;
}

void gy_spec_free(struct gy_spec *spec)
{
    if (spec == NULL)
        return;
    free(spec->name);
    free(spec->image);
    free(spec->image_digest);
    strv_free(&spec->command);
    strv_free(&spec->args);
    for (size_t i = 0; i < spec->n_env; i++) {
        free(spec->env[i].name);
        free(spec->env[i].value);
    }
    free(spec->env);
    for (size_t i = 0; i < spec->n_ports; i++)
        free(spec->ports[i].name);
    free(spec->ports);
    strv_free(&spec->health.exec);
    free(spec->health.http_path);
    strv_free(&spec->placement.clouds);
    strv_free(&spec->placement.constraints);
    strv_free(&spec->autoscale.metric.exec);
    free(spec->autoscale.metric.http_path);
    memset(spec, 0, sizeof(*spec));
}

/* Copies a string that may be NULL; returns false only when memory ran out. */
static bool str_copy(char **dst, const char *src)
{
    *dst = NULL;
    if (src == NULL)
        return true;
    *dst = strdup(src);
    return *dst != NULL;
}

static bool strv_copy(struct gy_strv *dst, const struct gy_strv *src)
{
    dst->items = NULL;
    dst->n = 0;
    if (src->n == 0)
        return true;
    dst->items = calloc(src->n, sizeof(char *));
    if (dst->items == NULL)
        return false;
    for (size_t i = 0; i < src->n; i++) {
        if (!str_copy(&dst->items[i], src->items[i])) {
            dst->n = i;
            return false;
        }
    }
    dst->n = src->n;
    return true;
}

int gy_spec_copy(struct gy_spec *dst, const struct gy_spec *src)
{
    /* Start from a shallow copy so every scalar is right, then replace each owned pointer
     * with a copy of its own; on failure the pointers not yet replaced are cleared so that
     * gy_spec_free frees only what dst owns. */
    *dst = *src;
    dst->name = dst->image = dst->image_digest = NULL;
    dst->command = (struct gy_strv){0};
    dst->args = (struct gy_strv){0};
    dst->env = NULL;
    dst->n_env = 0;
    dst->ports = NULL;
    dst->n_ports = 0;
    dst->health.exec = (struct gy_strv){0};
    dst->health.http_path = NULL;
    dst->placement.clouds = (struct gy_strv){0};
    dst->placement.constraints = (struct gy_strv){0};
    dst->autoscale.metric.exec = (struct gy_strv){0};
    dst->autoscale.metric.http_path = NULL;

    bool ok = str_copy(&dst->name, src->name) && str_copy(&dst->image, src->image) &&
              str_copy(&dst->image_digest, src->image_digest) &&
              strv_copy(&dst->command, &src->command) && strv_copy(&dst->args, &src->args) &&
              strv_copy(&dst->health.exec, &src->health.exec) &&
              str_copy(&dst->health.http_path, src->health.http_path) &&
              strv_copy(&dst->placement.clouds, &src->placement.clouds) &&
              strv_copy(&dst->placement.constraints, &src->placement.constraints) &&
              strv_copy(&dst->autoscale.metric.exec, &src->autoscale.metric.exec) &&
              str_copy(&dst->autoscale.metric.http_path, src->autoscale.metric.http_path);
    if (ok && src->n_env > 0) {
        dst->env = calloc(src->n_env, sizeof(*dst->env));
        ok = dst->env != NULL;
        for (size_t i = 0; ok && i < src->n_env; i++) {
            dst->n_env = i + 1;
            ok = str_copy(&dst->env[i].name, src->env[i].name) &&
                 str_copy(&dst->env[i].value, src->env[i].value);
        }
    }
    if (ok && src->n_ports > 0) {
        dst->ports = calloc(src->n_ports, sizeof(*dst->ports));
        ok = dst->ports != NULL;
        for (size_t i = 0; ok && i < src->n_ports; i++) {
            dst->ports[i] = src->ports[i];
            dst->n_ports = i + 1;
            ok = str_copy(&dst->ports[i].name, src->ports[i].name);
        }
    }
    if (!ok) {
        gy_spec_free(dst);
        return -GY_ENOMEM;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Equality */

static bool str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

static bool strv_eq(const struct gy_strv *a, const struct gy_strv *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (!str_eq(a->items[i], b->items[i]))
            return false;
    return true;
}

static bool health_set(const struct gy_health *h)
{
    return h->exec.n > 0 || h->http_port != 0 || h->tcp_port != 0;
}

/* Timing settings of a spec without a health check mean nothing and are not part of its
 * canonical form, so they do not make two specs differ. */
static bool health_eq(const struct gy_health *a, const struct gy_health *b)
{
    if (!health_set(a) && !health_set(b))
        return true;
    return strv_eq(&a->exec, &b->exec) && str_eq(a->http_path, b->http_path) &&
           a->http_port == b->http_port && a->tcp_port == b->tcp_port &&
           a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
           a->failure_threshold == b->failure_threshold && a->start_period_ms == b->start_period_ms;
}

static bool autoscale_eq(const struct gy_autoscale *a, const struct gy_autoscale *b)
{
    if (a->enabled != b->enabled)
        return false;
    if (!a->enabled)
        return true;
    if (a->min != b->min || a->max != b->max || a->cpu_percent != b->cpu_percent ||
        a->memory_percent != b->memory_percent ||
        a->scale_down_after_ms != b->scale_down_after_ms || a->idle_after_ms != b->idle_after_ms ||
        a->has_metric != b->has_metric)
        return false;
    if (!a->has_metric)
        return true;
    return strv_eq(&a->metric.exec, &b->metric.exec) &&
           a->metric.http_port == b->metric.http_port &&
           str_eq(a->metric.http_path, b->metric.http_path) && a->metric.target == b->metric.target;
}

bool gy_spec_equal(const struct gy_spec *a, const struct gy_spec *b)
{
    if (!str_eq(a->name, b->name) || !str_eq(a->image, b->image) ||
        !str_eq(a->image_digest, b->image_digest) || !strv_eq(&a->command, &b->command) ||
        !strv_eq(&a->args, &b->args) || a->n_env != b->n_env || a->replicas != b->replicas ||
        a->resources.cpu_millis != b->resources.cpu_millis ||
        a->resources.memory_bytes != b->resources.memory_bytes ||
        a->resources.pids != b->resources.pids || a->restart != b->restart ||
        !health_eq(&a->health, &b->health) ||
        !strv_eq(&a->placement.clouds, &b->placement.clouds) ||
        a->placement.spread != b->placement.spread ||
        !strv_eq(&a->placement.constraints, &b->placement.constraints) ||
        a->placement.strategy != b->placement.strategy ||
        !autoscale_eq(&a->autoscale, &b->autoscale) || a->update.max_surge != b->update.max_surge ||
        a->update.max_unavailable != b->update.max_unavailable ||
        a->stop_grace_ms != b->stop_grace_ms || a->disconnect_grace_ms != b->disconnect_grace_ms ||
        a->n_ports != b->n_ports)
        return false;
    for (size_t i = 0; i < a->n_env; i++)
        if (!str_eq(a->env[i].name, b->env[i].name) || !str_eq(a->env[i].value, b->env[i].value))
            return false;
    for (size_t i = 0; i < a->n_ports; i++) {
        const struct gy_port *p = &a->ports[i], *q = &b->ports[i];
        if (!str_eq(p->name, q->name) || p->container_port != q->container_port ||
            p->protocol != q->protocol || p->host_port != q->host_port)
            return false;
    }
    return true;
}

/* ---------------------------------------------------------------------------------------
 * Enumerations */

static const char *const restart_names[] = {"always", "on-failure", "never"};
static const char *const spread_names[] = {"node", "zone", "cloud"};
static const char *const strategy_names[] = {"spread", "binpack"};
static const char *const protocol_names[] = {"tcp", "udp"};

static int enum_parse(const char *s, const char *const *names, int n)
{
    if (s == NULL)
        return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

const char *gy_restart_name(enum gy_restart restart)
{
    return (unsigned)restart < 3 ? restart_names[restart] : "unknown";
}

bool gy_restart_parse(const char *s, enum gy_restart *out)
{
    int i = enum_parse(s, restart_names, 3);
    if (i < 0)
        return false;
    *out = (enum gy_restart)i;
    return true;
}

const char *gy_spread_name(enum gy_spread spread)
{
    return (unsigned)spread < 3 ? spread_names[spread] : "unknown";
}

bool gy_spread_parse(const char *s, enum gy_spread *out)
{
    int i = enum_parse(s, spread_names, 3);
    if (i < 0)
        return false;
    *out = (enum gy_spread)i;
    return true;
}

const char *gy_strategy_name(enum gy_strategy strategy)
{
    return (unsigned)strategy < 2 ? strategy_names[strategy] : "unknown";
}

bool gy_strategy_parse(const char *s, enum gy_strategy *out)
{
    int i = enum_parse(s, strategy_names, 2);
    if (i < 0)
        return false;
    *out = (enum gy_strategy)i;
    return true;
}

const char *gy_protocol_name(enum gy_protocol protocol)
{
    return (unsigned)protocol < 2 ? protocol_names[protocol] : "unknown";
}

bool gy_protocol_parse(const char *s, enum gy_protocol *out)
{
    int i = enum_parse(s, protocol_names, 2);
    if (i < 0)
        return false;
    *out = (enum gy_protocol)i;
    return true;
}

/* ---------------------------------------------------------------------------------------
 * Names and constraints */

bool gy_spec_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t len = strlen(name);
    if (len == 0 || len > GY_SPEC_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < len))
            return false;
    }
    return true;
}

bool gy_port_name_valid(const char *name)
{
    if (name == NULL)
        return false;
    size_t len = strlen(name);
    if (len == 0 || len > GY_PORT_NAME_MAX || name[0] == '-' || name[len - 1] == '-')
        return false;
    bool letter = false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (c >= 'a' && c <= 'z')
            letter = true;
        else if (c == '-' && name[i + 1] == '-')
            return false;
        else if (!(c >= '0' && c <= '9') && c != '-')
            return false;
    }
    return letter;
}

bool gy_spec_has_host_ports(const struct gy_spec *spec)
{
    for (size_t i = 0; i < spec->n_ports; i++)
        if (spec->ports[i].host_port != 0)
            return true;
    return false;
}

bool gy_env_name_valid(const char *name)
{
    if (name == NULL || name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (const char *p = name; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

static bool label_char(char c, bool key)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || (key && c == '/');
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int gy_constraint_parse(const char *text, struct gy_constraint *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    char ex[GY_SPEC_EXCERPT_BUF];
    const char *quoted = gy_spec_excerpt(text, ex);
    const char *op = strstr(text, "==");
    const char *ne = strstr(text, "!=");
    if (op == NULL || (ne != NULL && ne < op))
        op = ne;
    if (op == NULL)
        return gy_error_set(err, GY_EINVAL,
                            "constraint \"%s\" has no operator: write \"key == value\" or "
                            "\"key != value\"",
                            quoted);
    const char *k0 = text, *k1 = op;
    while (is_blank(*k0))
        k0++;
    while (k1 > k0 && is_blank(k1[-1]))
        k1--;
    const char *v0 = op + 2, *v1 = text + strlen(text);
    while (is_blank(*v0))
        v0++;
    while (v1 > v0 && is_blank(v1[-1]))
        v1--;
    size_t klen = (size_t)(k1 - k0), vlen = (size_t)(v1 - v0);
    if (klen == 0 || klen > 253)
        return gy_error_set(err, GY_EINVAL,
                            "constraint \"%s\": the label key must be 1 to 253 characters", quoted);
    if (vlen == 0 || vlen > 63)
        return gy_error_set(err, GY_EINVAL,
                            "constraint \"%s\": the label value must be 1 to 63 characters",
                            quoted);
    for (const char *p = k0; p < k1; p++)
        if (!label_char(*p, true))
            return gy_error_set(err, GY_EINVAL,
                                "constraint \"%s\": the label key may hold only letters, digits "
                                "and . _ - /",
                                quoted);
    for (const char *p = v0; p < v1; p++)
        if (!label_char(*p, false))
            return gy_error_set(err, GY_EINVAL,
                                "constraint \"%s\": the label value may hold only letters, "
                                "digits and . _ -",
                                quoted);
    out->key = strndup(k0, klen);
    out->value = strndup(v0, vlen);
    out->negated = op[0] == '!';
    if (out->key == NULL || out->value == NULL) {
        gy_constraint_free(out);
        return gy_error_set(err, GY_ENOMEM, "constraint \"%s\": out of memory", quoted);
    }
    return 0;
}

void gy_constraint_free(struct gy_constraint *c)
{
    free(c->key);
    free(c->value);
    c->key = c->value = NULL;
}

const char *gy_spec_excerpt(const char *s, char buf[GY_SPEC_EXCERPT_BUF])
{
    if (s == NULL)
        return "";
    size_t len = strlen(s);
    if (len < GY_SPEC_EXCERPT_BUF)
        return s;
    size_t cut = GY_SPEC_EXCERPT_BUF - 4;
    /* Back up to the first byte of a character: continuation bytes have 10 as top bits. */
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
        cut--;
    memcpy(buf, s, cut);
    memcpy(buf + cut, "...", 4);
    return buf;
}

/* ---------------------------------------------------------------------------------------
 * Suggestions */

static char fold(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Edit distance, ignoring case, of strings no longer than 64 characters: insertions,
 * deletions, substitutions and swaps of two neighbours ("imgae") each count as one, since
 * those are the typos people make. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t rows[3][65];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            char ca = fold(a[i - 1]), cb = fold(b[j - 1]);
            size_t best = prev[j - 1] + (ca == cb ? 0 : 1);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && ca == fold(b[j - 2]) && fold(a[i - 2]) == cb &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

const char *gy_spec_suggest(const char *word, const char *const *candidates, size_t n)
{
    size_t wl = strlen(word);
    if (wl == 0 || wl > 64)
        return NULL;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t cl = strlen(candidates[i]);
        if (cl > 64)
            continue;
        size_t d = edit_distance(word, candidates[i]);
        /* A typo changes few letters: allow one edit in short words, two in words of five
         * letters or more, and never more than a third of the word. */
        size_t shorter = wl < cl ? wl : cl;
        size_t limit = shorter >= 5 ? 2 : 1;
        if (d <= limit && d * 3 <= (wl > cl ? wl : cl) && d < best_d) {
            best = candidates[i];
            best_d = d;
        }
    }
    return best;
}

/* ---------------------------------------------------------------------------------------
 * Problems */

void gy_spec_problems_free(struct gy_spec_problems *problems)
{
    if (problems == NULL)
        return;
    for (size_t i = 0; i < problems->n; i++) {
        free(problems->items[i].path);
        free(problems->items[i].message);
    }
    free(problems->items);
    problems->items = NULL;
    problems->n = 0;
}

/* Finds the position of path or of its nearest ancestor: "a.b[2].c" tries "a.b[2].c",
 * "a.b[2]", "a.b", "a" and finally "" (the document itself). */
static bool position_of(const struct gy_spec_positions *pos, const char *path, int *line,
                        int *column)
{
    if (pos == NULL)
        return false;
    char *p = gy_xstrdup(path);
    bool found = false;
    for (;;) {
        if (gy_spec_positions_lookup(pos, p, line, column)) {
            found = true;
            break;
        }
        if (p[0] == '\0')
            break;
        char *dot = strrchr(p, '.');
        char *bracket = strrchr(p, '[');
        char *cut = dot > bracket ? dot : bracket;
        if (cut == NULL)
            p[0] = '\0';
        else
            *cut = '\0';
    }
    free(p);
    return found;
}

static struct gy_spec_problem *problem_vadd(struct gy_spec_problems *problems, const char *path,
                                            const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static struct gy_spec_problem *problem_vadd(struct gy_spec_problems *problems, const char *path,
                                            const char *fmt, va_list ap)
{
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0 || msg == NULL) {
        fprintf(stderr, "gantry: out of memory formatting a spec problem\n");
        abort();
    }
    problems->items = gy_xrealloc(problems->items, (problems->n + 1) * sizeof(problems->items[0]));
    struct gy_spec_problem *p = &problems->items[problems->n++];
    p->path = gy_xstrdup(path);
    p->message = msg;
    p->line = 0;
    p->column = 0;
    return p;
}

void gy_spec_problem_add(struct gy_spec_problems *problems, const struct gy_spec_positions *pos,
                         const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct gy_spec_problem *p = problem_vadd(problems, path, fmt, ap);
    va_end(ap);
    if (!position_of(pos, path, &p->line, &p->column)) {
        p->line = 0;
        p->column = 0;
    }
}

void gy_spec_problem_add_at(struct gy_spec_problems *problems, const char *path, int line,
                            int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct gy_spec_problem *p = problem_vadd(problems, path, fmt, ap);
    va_end(ap);
    p->line = line;
    p->column = column;
}

static bool problem_before(const struct gy_spec_problem *a, const struct gy_spec_problem *b)
{
    return a->line < b->line || (a->line == b->line && a->column < b->column);
}

void gy_spec_problems_sort(struct gy_spec_problems *problems, size_t from)
{
    /* A stable merge sort: problems at one position keep the order they were found in,
     * which follows the spec's layout. */
    size_t n = problems->n > from ? problems->n - from : 0;
    if (n < 2)
        return;
    struct gy_spec_problem *a = problems->items + from;
    struct gy_spec_problem *tmp = gy_xcalloc(n, sizeof(*tmp));
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n;
            size_t hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi)
                tmp[k++] = problem_before(&a[j], &a[i]) ? a[j++] : a[i++];
            while (i < mid)
                tmp[k++] = a[i++];
            while (j < hi)
                tmp[k++] = a[j++];
        }
        memcpy(a, tmp, n * sizeof(*tmp));
    }
    free(tmp);
}

char *gy_spec_problem_format(const char *file, const struct gy_spec_problem *problem)
{
    const char *path = problem->path != NULL ? problem->path : "";
    const char *sep = path[0] != '\0' ? ": " : "";
    if (file != NULL && problem->line > 0)
        return gy_xasprintf("%s:%d:%d: %s%s%s", file, problem->line, problem->column, path, sep,
                            problem->message);
    if (file != NULL)
        return gy_xasprintf("%s: %s%s%s", file, path, sep, problem->message);
    if (problem->line > 0)
        return gy_xasprintf("%d:%d: %s%s%s", problem->line, problem->column, path, sep,
                            problem->message);
    return gy_xasprintf("%s%s%s", path, sep, problem->message);
}

/* ---------------------------------------------------------------------------------------
 * Positions: a hash table (common/hash.h) from key path to line and column. */

struct position {
    UT_hash_handle hh;
    int line;
    int column;
    bool lost; /* set when the table could not grow to take this entry */
    char path[];
};

struct gy_spec_positions {
    struct position *by_path;
};

struct gy_spec_positions *gy_spec_positions_new(void)
{
    return calloc(1, sizeof(struct gy_spec_positions));
}

int gy_spec_positions_add(struct gy_spec_positions *pos, const char *path, int line, int column)
{
    struct position *p;
    HASH_FIND_STR(pos->by_path, path, p);
    if (p != NULL)
        return 0;
    size_t len = strlen(path);
    p = calloc(1, sizeof(*p) + len + 1);
    if (p == NULL)
        return -GY_ENOMEM;
    memcpy(p->path, path, len + 1);
    p->line = line;
    p->column = column;
    HASH_ADD_KEYPTR(hh, pos->by_path, p->path, len, p);
    if (p->lost) {
        free(p);
        return -GY_ENOMEM;
    }
    return 0;
}

bool gy_spec_positions_lookup(const struct gy_spec_positions *pos, const char *path, int *line,
                              int *column)
{
    if (pos == NULL || path == NULL)
        return false;
    struct position *p;
    HASH_FIND_STR(pos->by_path, path, p);
    if (p == NULL)
        return false;
    *line = p->line;
    *column = p->column;
    return true;
}

size_t gy_spec_positions_count(const struct gy_spec_positions *pos)
{
    return pos != NULL ? HASH_COUNT(pos->by_path) : 0;
}

void gy_spec_positions_free(struct gy_spec_positions *pos)
{
    if (pos == NULL)
        return;
    while (pos->by_path != NULL) {
        struct position *p = pos->by_path;
        HASH_DEL(pos->by_path, p);
        free(p);
    }
    free(pos);
}
