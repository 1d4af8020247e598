/* Placement; see placement.h. */
#include "scheduler/fleet/placement.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "scheduler/state/fsm.h"

struct constraint {
    char key[128];
    char value[128];
    bool equal; /* == or != */
};

/* Parses "key == value" / "key != value" (spaces optional around the operator). */
static int constraint_parse(const char *text, struct constraint *c, struct gy_error *err)
{
    const char *op = strstr(text, "==");
    c->equal = true;
    if (op == NULL) {
        op = strstr(text, "!=");
        c->equal = false;
    }
    if (op == NULL)
        return gy_error_set(err, GY_EINVAL,
                            "constraint \"%s\": expected \"key == value\" or \"key != value\"",
                            text);
    const char *k = text, *kend = op;
    while (*k == ' ')
        k++;
    while (kend > k && kend[-1] == ' ')
        kend--;
    const char *v = op + 2, *vend = text + strlen(text);
    while (*v == ' ')
        v++;
    while (vend > v && vend[-1] == ' ')
        vend--;
    size_t klen = (size_t)(kend - k), vlen = (size_t)(vend - v);
    if (klen == 0 || klen >= sizeof(c->key) || vlen >= sizeof(c->value))
        return gy_error_set(err, GY_EINVAL, "constraint \"%s\": key or value empty or too long",
                            text);
    memcpy(c->key, k, klen);
    c->key[klen] = '\0';
    memcpy(c->value, v, vlen);
    c->value[vlen] = '\0';
    return 0;
}

static bool constraint_holds(const struct sch_place_node *node, const struct constraint *c)
{
    for (size_t i = 0; i < node->n_labels; i++) {
        if (strcmp(node->labels[i].key, c->key) == 0)
            return (strcmp(node->labels[i].value, c->value) == 0) == c->equal;
    }
    /* A missing label never equals a value, so "!=" holds and "==" does not. */
    return !c->equal;
}

int sch_constraint_match(const struct sch_place_node *node, const char *constraint,
                         struct gy_error *err)
{
    struct constraint c;
    int rc = constraint_parse(constraint, &c, err);
    if (rc < 0)
        return rc;
    return constraint_holds(node, &c) ? 1 : 0;
}

/* ---------------------------------------------------------------------------------------
 * Host ports */

/* The index of key in set, or where it would go. */
static size_t host_port_find(const struct sch_host_ports *set, uint32_t key)
{
    size_t lo = 0, hi = set->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->items[mid].key < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int sch_host_ports_add(struct sch_host_ports *set, uint32_t port, enum gy_protocol protocol,
                       uint32_t holders)
{
    uint32_t key = sch_host_port_key(port, protocol);
    size_t i = host_port_find(set, key);
    if (i < set->n && set->items[i].key == key) {
        set->items[i].holders += holders;
        return 0;
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 4;
        struct sch_host_port *items = realloc(set->items, cap * sizeof(*items));
        if (items == NULL)
            return -GY_ENOMEM;
        set->items = items;
        set->cap = cap;
    }
    memmove(&set->items[i + 1], &set->items[i], (set->n - i) * sizeof(set->items[0]));
    set->items[i] = (struct sch_host_port){.key = key, .holders = holders};
    set->n++;
    return 0;
}

uint32_t sch_host_ports_holders(const struct sch_host_ports *set, uint32_t port,
                                enum gy_protocol protocol)
{
    if (set == NULL)
        return 0;
    uint32_t key = sch_host_port_key(port, protocol);
    size_t i = host_port_find(set, key);
    return i < set->n && set->items[i].key == key ? set->items[i].holders : 0;
}

void sch_host_ports_free(struct sch_host_ports *set)
{
    free(set->items);
    memset(set, 0, sizeof(*set));
}

/* The host ports a spec publishes, gathered once per placement. */
struct host_request {
    const struct gy_port *ports[GY_SPEC_PORTS_MAX];
    size_t n;
};

static int host_request_init(struct host_request *req, const struct gy_spec *spec,
                             struct gy_error *err)
{
    req->n = 0;
    for (size_t i = 0; i < spec->n_ports; i++) {
        if (spec->ports[i].host_port == 0)
            continue;
        if (req->n == GY_SPEC_PORTS_MAX)
            return gy_error_set(err, GY_EINVAL, "placement: more than %d host ports",
                                GY_SPEC_PORTS_MAX);
        req->ports[req->n++] = &spec->ports[i];
    }
    return 0;
}

/* Replicas of the workload being placed that hold its host ports on the node. */
static uint32_t own_holders(const struct sch_place_node *n)
{
    return n->workload_replicas + n->workload_stopping;
}

/* True when none of the requested host ports is held on the node. */
static bool host_ports_free(const struct sch_place_node *n, const struct host_request *req)
{
    if (own_holders(n) > 0)
        return false;
    for (size_t i = 0; i < req->n; i++)
        if (sch_host_ports_holders(n->host_ports, req->ports[i]->host_port,
                                   req->ports[i]->protocol) > 0)
            return false;
    return true;
}

/* Records the host ports of a replica placed on the node. */
static int host_ports_take(struct sch_place_node *n, const struct host_request *req)
{
    if (n->host_ports == NULL)
        return 0;
    for (size_t i = 0; i < req->n; i++)
        if (sch_host_ports_add(n->host_ports, req->ports[i]->host_port, req->ports[i]->protocol,
                               1) < 0)
            return -1;
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Fit and score */

static int64_t free_of(int64_t cap, int64_t alloc)
{
    return cap > alloc ? cap - alloc : 0;
}

static bool fits(const struct sch_place_node *n, const struct gy_resources *req)
{
    if (free_of(n->capacity.cpu_millis, n->allocated.cpu_millis) < req->cpu_millis)
        return false;
    if (free_of(n->capacity.memory_bytes, n->allocated.memory_bytes) < req->memory_bytes)
        return false;
    if (n->capacity.pids > 0 && req->pids > 0 &&
        free_of(n->capacity.pids, n->allocated.pids) < req->pids)
        return false;
    return true;
}

/* The smaller of the free shares of cpu and memory, 0..1. */
static double free_share(const struct sch_place_node *n)
{
    double cpu = n->capacity.cpu_millis > 0
                     ? (double)free_of(n->capacity.cpu_millis, n->allocated.cpu_millis) /
                           (double)n->capacity.cpu_millis
                     : 0.0;
    double mem = n->capacity.memory_bytes > 0
                     ? (double)free_of(n->capacity.memory_bytes, n->allocated.memory_bytes) /
                           (double)n->capacity.memory_bytes
                     : 0.0;
    return cpu < mem ? cpu : mem;
}

/* ---------------------------------------------------------------------------------------
 * A binary heap of node indexes: fewest replicas of the workload first, then the best
 * score (most free for spread, least free for binpack), then the most bytes of the image
 * already on the node (ImageLocality, a tie-breaker only: it never outweighs the spread),
 * then the lowest index. */

struct heap {
    size_t *items;
    size_t n;
    size_t cap;
};

struct place_ctx {
    struct sch_place_node *nodes;
    bool binpack;
};

static bool better(const struct place_ctx *ctx, size_t a, size_t b)
{
    const struct sch_place_node *na = &ctx->nodes[a], *nb = &ctx->nodes[b];
    if (na->workload_replicas != nb->workload_replicas)
        return na->workload_replicas < nb->workload_replicas;
    double sa = free_share(na), sb = free_share(nb);
    if (sa != sb)
        return ctx->binpack ? sa < sb : sa > sb;
    if (na->image_bytes != nb->image_bytes)
        return na->image_bytes > nb->image_bytes;
    return a < b;
}

static int heap_push(struct heap *h, const struct place_ctx *ctx, size_t node)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        size_t *items = realloc(h->items, cap * sizeof(*items));
        if (items == NULL)
            return -1;
        h->items = items;
        h->cap = cap;
    }
    size_t i = h->n++;
    h->items[i] = node;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!better(ctx, h->items[i], h->items[parent]))
            break;
        size_t t = h->items[i];
        h->items[i] = h->items[parent];
        h->items[parent] = t;
        i = parent;
    }
    return 0;
}

static size_t heap_pop(struct heap *h, const struct place_ctx *ctx)
{
    size_t top = h->items[0];
    h->items[0] = h->items[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < h->n && better(ctx, h->items[l], h->items[best]))
            best = l;
        if (r < h->n && better(ctx, h->items[r], h->items[best]))
            best = r;
        if (best == i)
            break;
        size_t t = h->items[i];
        h->items[i] = h->items[best];
        h->items[best] = t;
        i = best;
    }
    return top;
}

/* ---------------------------------------------------------------------------------------
 * Groups: the unit the spread setting balances (one group for spread over nodes, one per
 * zone or per cloud otherwise). Tiers: clouds in order of preference, except that spread
 * over clouds puts every listed cloud in one tier. */

struct group {
    const char *key;
    int tier;
    int preference; /* position of the group's cloud in the workload's list */
    uint32_t count; /* replicas of the workload in the group */
    struct heap heap;
};

struct groups {
    struct group *items;
    size_t n;
    size_t cap;
};

static struct group *group_get(struct groups *g, const char *key, int tier, int preference)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->items[i].tier == tier && strcmp(g->items[i].key, key) == 0)
            return &g->items[i];
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        struct group *items = realloc(g->items, cap * sizeof(*items));
        if (items == NULL)
            return NULL;
        g->items = items;
        g->cap = cap;
    }
    struct group *grp = &g->items[g->n++];
    memset(grp, 0, sizeof(*grp));
    grp->key = key;
    grp->tier = tier;
    grp->preference = preference;
    return grp;
}

static void groups_free(struct groups *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->items[i].heap.items);
    free(g->items);
}

/* The position of a node's cloud in the workload's list (0 when the list is empty), or -1
 * when the cloud is not listed. */
static int cloud_preference(const struct gy_spec *spec, const char *cloud)
{
    const struct gy_strv *clouds = &spec->placement.clouds;
    if (clouds->n == 0)
        return 0;
    for (size_t i = 0; i < clouds->n; i++)
        if (strcmp(clouds->items[i], cloud != NULL ? cloud : "") == 0)
            return (int)i;
    return -1;
}

/* The tier a cloud preference falls in: clouds are filled in order, except that spread
 * over clouds balances all listed clouds as one tier. */
static int preference_tier(const struct gy_spec *spec, int preference)
{
    return spec->placement.spread == GY_SPREAD_CLOUD ? 0 : preference;
}

static const char *group_key(const struct gy_spec *spec, const struct sch_place_node *n)
{
    switch (spec->placement.spread) {
    case GY_SPREAD_ZONE:
        return n->zone != NULL ? n->zone : "";
    case GY_SPREAD_CLOUD:
        return n->cloud != NULL ? n->cloud : "";
    case GY_SPREAD_NODE:
    default:
        return "";
    }
}

/* ---------------------------------------------------------------------------------------
 * Why nothing more fits: counts per first failing filter, like "0/3 nodes available: 2
 * insufficient memory (needs 64Mi, most free 32Mi), 1 not in clouds [private]" or "0/2 nodes
 * available: 1 with host port 8080/tcp in use, 1 already run a replica of the workload on
 * host port 8080/tcp". */

/* Appends "8080/tcp" or "80/tcp, 443/tcp" (the first few) for the requested host ports
 * marked in pick. */
static size_t host_ports_list(const struct host_request *req, const bool *pick, char *out,
                              size_t len)
{
    size_t used = 0, listed = 0;
    out[0] = '\0';
    for (size_t i = 0; i < req->n && used < len; i++) {
        if (!pick[i])
            continue;
        if (listed == 8) {
            used += (size_t)snprintf(out + used, len - used, ", ...");
            break;
        }
        used +=
            (size_t)snprintf(out + used, len - used, "%s%" PRIu32 "/%s", listed ? ", " : "",
                             req->ports[i]->host_port, gy_protocol_name(req->ports[i]->protocol));
        listed++;
    }
    return listed;
}

/* The host-port filter of explain: false when the node is left out for its host ports,
 * counted in *in_use (held by other workloads, each such port marked in in_use_ports) or
 * *held_own (held by the workload's own replicas only; the node is marked
 * held_by_workload when it would have room once they are gone). */
static bool explain_host_ports(struct sch_place_node *n, const struct gy_spec *spec,
                               const struct host_request *req, size_t *in_use, bool *in_use_ports,
                               size_t *held_own)
{
    uint32_t own = own_holders(n);
    bool others = false;
    for (size_t p = 0; p < req->n; p++) {
        if (sch_host_ports_holders(n->host_ports, req->ports[p]->host_port,
                                   req->ports[p]->protocol) > own) {
            in_use_ports[p] = true;
            others = true;
        }
    }
    if (others) {
        (*in_use)++;
        return false;
    }
    if (own == 0)
        return true;
    (*held_own)++;
    struct sch_place_node gone = *n;
    const struct gy_resources *r = &spec->resources;
    gone.allocated.cpu_millis -= (int64_t)own * r->cpu_millis;
    gone.allocated.memory_bytes -= (int64_t)own * r->memory_bytes;
    gone.allocated.pids -= (int64_t)own * r->pids;
    n->held_by_workload = fits(&gone, r);
    return false;
}

static void explain(struct sch_place_node *nodes, size_t n_nodes, const struct gy_spec *spec,
                    const struct constraint *cons, size_t n_cons, const struct host_request *hreq,
                    struct sch_place_result *result)
{
    char *out = result->reason;
    size_t len = sizeof(result->reason);
    size_t not_ready = 0, storage = 0, wrong_cloud = 0, no_match = 0, no_cpu = 0, no_mem = 0,
           no_pids = 0, port_in_use = 0, port_own = 0;
    bool in_use_ports[GY_SPEC_PORTS_MAX] = {false};
    int64_t most_cpu = 0, most_mem = 0, most_pids = 0;
    const struct gy_resources *req = &spec->resources;
    for (size_t i = 0; i < n_nodes; i++) {
        struct sch_place_node *n = &nodes[i];
        if (!n->schedulable) {
            not_ready++;
            continue;
        }
        if (n->storage_pressure) {
            storage++;
            continue;
        }
        if (cloud_preference(spec, n->cloud) < 0) {
            wrong_cloud++;
            continue;
        }
        bool match = true;
        for (size_t c = 0; c < n_cons && match; c++)
            match = constraint_holds(n, &cons[c]);
        if (!match) {
            no_match++;
            continue;
        }
        if (hreq->n > 0 &&
            !explain_host_ports(n, spec, hreq, &port_in_use, in_use_ports, &port_own)) {
            if (n->held_by_workload)
                result->held_by_workload++;
            continue;
        }
        int64_t fc = free_of(n->capacity.cpu_millis, n->allocated.cpu_millis);
        int64_t fm = free_of(n->capacity.memory_bytes, n->allocated.memory_bytes);
        int64_t fp = free_of(n->capacity.pids, n->allocated.pids);
        most_cpu = fc > most_cpu ? fc : most_cpu;
        most_mem = fm > most_mem ? fm : most_mem;
        most_pids = fp > most_pids ? fp : most_pids;
        if (fm < req->memory_bytes)
            no_mem++;
        else if (fc < req->cpu_millis)
            no_cpu++;
        else if (n->capacity.pids > 0 && req->pids > 0 && fp < req->pids)
            no_pids++;
    }
    size_t used = (size_t)snprintf(out, len, "0/%zu nodes available", n_nodes);
    const char *sep = ": ";
    char a[GY_QUANTITY_BUF], b[GY_QUANTITY_BUF];
#define APPEND(...)                                                                                \
    do {                                                                                           \
        if (used < len)                                                                            \
            used += (size_t)snprintf(out + used, len - used, __VA_ARGS__);                         \
        sep = ", ";                                                                                \
    } while (0)
    if (no_mem > 0)
        APPEND("%s%zu insufficient memory (needs %s, most free %s)", sep, no_mem,
               gy_memory_format(req->memory_bytes, a), gy_memory_format(most_mem, b));
    if (no_cpu > 0)
        APPEND("%s%zu insufficient cpu (needs %s, most free %s)", sep, no_cpu,
               gy_cpu_format(req->cpu_millis, a), gy_cpu_format(most_cpu, b));
    if (no_pids > 0)
        APPEND("%s%zu insufficient pids (needs %lld, most free %lld)", sep, no_pids,
               (long long)req->pids, (long long)most_pids);
    if (port_in_use > 0) {
        char list[160];
        size_t listed = host_ports_list(hreq, in_use_ports, list, sizeof(list));
        APPEND("%s%zu with host port%s %s in use", sep, port_in_use, listed > 1 ? "s" : "", list);
    }
    if (port_own > 0) {
        bool all[GY_SPEC_PORTS_MAX];
        for (size_t p = 0; p < GY_SPEC_PORTS_MAX; p++)
            all[p] = true;
        char list[160];
        size_t listed = host_ports_list(hreq, all, list, sizeof(list));
        APPEND("%s%zu already run a replica of the workload on host port%s %s", sep, port_own,
               listed > 1 ? "s" : "", list);
    }
    if (no_match > 0)
        APPEND("%s%zu do not match the constraints", sep, no_match);
    if (wrong_cloud > 0) {
        APPEND("%s%zu not in clouds [", sep, wrong_cloud);
        for (size_t i = 0; i < spec->placement.clouds.n; i++)
            APPEND("%s%s", i > 0 ? ", " : "", spec->placement.clouds.items[i]);
        APPEND("]");
    }
    if (storage > 0)
        APPEND("%s%zu under " SCH_NODE_CONDITION_STORAGE " (the agent's database refuses writes)",
               sep, storage);
    if (not_ready > 0)
        APPEND("%s%zu not ready or cordoned", sep, not_ready);
#undef APPEND
}

/* ---------------------------------------------------------------------------------------
 * The placement loop */

int sch_place(struct sch_place_node *nodes, size_t n_nodes, const struct gy_spec *spec,
              uint32_t count, struct sch_place_result *result, struct gy_error *err)
{
    result->placed = 0;
    result->reason[0] = '\0';
    result->held_by_workload = 0;
    size_t n_cons = spec->placement.constraints.n;
    struct constraint *cons = NULL;
    struct groups groups = {0};
    struct host_request hreq;
    int rc = host_request_init(&hreq, spec, err);
    if (rc < 0)
        return rc;
    if (n_cons > 0) {
        cons = calloc(n_cons, sizeof(*cons));
        if (cons == NULL)
            return gy_error_set(err, GY_ENOMEM, "placement: allocate constraints");
    }
    for (size_t c = 0; c < n_cons; c++) {
        rc = constraint_parse(spec->placement.constraints.items[c], &cons[c], err);
        if (rc < 0) {
            gy_error_wrap(err, "placement.constraints[%zu]", c);
            goto out;
        }
    }

    struct place_ctx ctx = {.nodes = nodes,
                            .binpack = spec->placement.strategy == GY_STRATEGY_BINPACK};
    int max_tier = -1;
    for (size_t i = 0; i < n_nodes; i++) {
        struct sch_place_node *n = &nodes[i];
        n->held_by_workload = false;
        int preference = cloud_preference(spec, n->cloud);
        if (!n->schedulable || n->storage_pressure || preference < 0)
            continue;
        int tier = preference_tier(spec, preference);
        bool match = true;
        for (size_t c = 0; c < n_cons && match; c++)
            match = constraint_holds(n, &cons[c]);
        if (!match)
            continue;
        struct group *g = group_get(&groups, group_key(spec, n), tier, preference);
        if (g == NULL)
            goto oom;
        g->count += n->workload_replicas;
        if (fits(n, &spec->resources) && (hreq.n == 0 || host_ports_free(n, &hreq)) &&
            heap_push(&g->heap, &ctx, i) < 0)
            goto oom;
        if (tier > max_tier)
            max_tier = tier;
    }

    int tier = 0;
    while (result->placed < count && tier <= max_tier) {
        /* The group of this tier with the fewest replicas that still has a candidate. */
        struct group *best = NULL;
        for (size_t g = 0; g < groups.n; g++) {
            struct group *grp = &groups.items[g];
            if (grp->tier != tier || grp->heap.n == 0)
                continue;
            if (best == NULL || grp->count < best->count ||
                (grp->count == best->count && grp->preference < best->preference))
                best = grp;
        }
        if (best == NULL) {
            tier++;
            continue;
        }
        size_t idx = heap_pop(&best->heap, &ctx);
        struct sch_place_node *n = &nodes[idx];
        /* Allocations only grow, so a node that no longer fits never will again. */
        if (!fits(n, &spec->resources))
            continue;
        n->allocated.cpu_millis += spec->resources.cpu_millis;
        n->allocated.memory_bytes += spec->resources.memory_bytes;
        n->allocated.pids += spec->resources.pids;
        n->workload_replicas++;
        best->count++;
        result->node_index[result->placed++] = idx;
        /* With host ports the node is taken now: its replica holds them. */
        if (hreq.n > 0) {
            if (host_ports_take(n, &hreq) < 0)
                goto oom;
            continue;
        }
        if (fits(n, &spec->resources) && heap_push(&best->heap, &ctx, idx) < 0)
            goto oom;
    }
    if (result->placed < count)
        explain(nodes, n_nodes, spec, cons, n_cons, &hreq, result);
    goto out;
oom:
    rc = gy_error_set(err, GY_ENOMEM, "placement: out of memory");
out:
    groups_free(&groups);
    free(cons);
    return rc;
}
