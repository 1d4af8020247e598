/* Divergence checks; see verify.h. A check runs on the leader in four steps: propose a
 * CheckDigest entry; once it is applied here, note the leader's digest at its index; ask
 * every other voter for its digest at that index (GET /v1/cluster/digest?index=N), again
 * every half second while some have not applied the entry yet, for at most 20 rounds;
 * then compare with the majority's digest and report what changed. */
#include "scheduler/raft/verify.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/log.h"
#include "scheduler/http/http.h"
#include "scheduler/raft/node.h"

#define ASK_EVERY_MS   500
#define ASK_ROUNDS     20
#define ASK_TIMEOUT_MS 2000

static struct sch_node *node_of(struct sch_verify *v)
{
    return v->node;
}

/* The audit trail's time of the commands a check proposes. */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void check_next(struct sch_verify *v);

/* Answers the callers that waited for this check (result NULL: it failed, with why). */
static void notify(struct sch_verify *v, const struct sch_verify_result *result, const char *why)
{
    unsigned n = v->n_waiters;
    v->n_waiters = 0;
    for (unsigned i = 0; i < n; i++)
        v->waiters[i].cb(v->waiters[i].data, result != NULL ? 0 : -GY_EUNAVAILABLE, result, why);
}

static void reported(void *data, int status, const struct sch_result *result, const char *message)
{
    (void)data;
    if (status < 0)
        gy_log_warn("divergence report not committed", "error=\"%s\"", message);
    else if (result != NULL && result->code < 0)
        gy_log_warn("divergence report rejected", "error=\"%s\"", result->message);
}

static void report(struct sch_verify *v, uint64_t id, uint64_t expected, bool have, uint64_t found,
                   bool resolved)
{
    char want[32], got[32];
    snprintf(want, sizeof(want), "%016" PRIx64, expected);
    snprintf(got, sizeof(got), have ? "%016" PRIx64 : "none", found);
    Gantry__ReportDivergence d = GANTRY__REPORT_DIVERGENCE__INIT;
    d.server_id = id;
    d.index = v->index;
    d.expected = want;
    d.found = got;
    d.resolved = resolved;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_REPORT_DIVERGENCE;
    cmd.report_divergence = &d;
    cmd.actor = "verifier";
    cmd.time_ms = wall_ms();
    struct gy_error err;
    if (sch_node_propose(node_of(v), &cmd, reported, v, &err) < 0)
        gy_log_warn("divergence report not proposed", "error=\"%s\"", err.msg);
    if (resolved)
        gy_log_info("server state matches again", "server=%" PRIu64 " index=%" PRIu64, id,
                    v->index);
    else
        gy_log_error("server state diverged",
                     "server=%" PRIu64 " index=%" PRIu64 " digest=%s expected=%s", id, v->index,
                     got, want);
}

/* Compares the answers: the digest more than half of the voters noted is the state; every
 * server with another (or none, once all rounds are spent) has diverged. */
static void verdict(struct sch_verify *v)
{
    struct sch_node *node = node_of(v);
    uint64_t majority = 0;
    unsigned best = 0;
    for (unsigned i = 0; i < v->n_servers; i++) {
        if (!v->servers[i].have)
            continue;
        unsigned same = 0;
        for (unsigned j = 0; j < v->n_servers; j++)
            if (v->servers[j].have && v->servers[j].digest == v->servers[i].digest)
                same++;
        if (same > best) {
            best = same;
            majority = v->servers[i].digest;
        }
    }
    v->running = false;
    v->checks++;
    v->last_index = v->index;
    v->last_ms = uv_now(node->loop) - v->started_ms;
    struct sch_verify_result res = {.index = v->index,
                                    .took_ms = v->last_ms,
                                    .majority = best * 2 > v->n_servers,
                                    .n = v->n_servers};
    for (unsigned i = 0; i < v->n_servers; i++) {
        res.servers[i].id = v->servers[i].id;
        res.servers[i].have = v->servers[i].have;
        res.servers[i].digest = v->servers[i].digest;
        res.servers[i].diverged =
            res.majority && v->servers[i].have && v->servers[i].digest != majority;
    }
    if (best * 2 <= v->n_servers) {
        v->no_majority++;
        gy_log_error("no digest has a majority", "index=%" PRIu64 " voters=%u agreeing=%u",
                     v->index, v->n_servers, best);
    } else if (sch_node_is_leader(node)) {
        for (unsigned i = 0; i < v->n_servers; i++) {
            /* An answer that did not come is not evidence: a server that is down or behind
             * is left to the next check. */
            if (!v->servers[i].have)
                continue;
            bool differs = v->servers[i].digest != majority;
            bool flagged = sch_fsm_server_diverged(&node->fsm, v->servers[i].id, NULL);
            if (differs && !flagged) {
                v->divergences++;
                report(v, v->servers[i].id, majority, true, v->servers[i].digest, false);
            } else if (!differs && flagged) {
                report(v, v->servers[i].id, majority, true, v->servers[i].digest, true);
            }
        }
    }
    gy_log_debug("divergence check done", "index=%" PRIu64 " took_ms=%" PRIu64, v->index,
                 v->last_ms);
    if (!v->wanted)
        notify(v, &res, NULL);
    if (v->wanted) {
        v->wanted = false;
        check_next(v);
    }
}

static void ask_round(struct sch_verify *v);

static void ask_timer_cb(uv_timer_t *timer)
{
    ask_round(timer->data);
}

/* Every answer of a round is in: ask again those that had nothing yet, or decide. */
static void round_done(struct sch_verify *v)
{
    bool missing = false;
    for (unsigned i = 0; i < v->n_servers; i++)
        missing |= !v->servers[i].have;
    if (missing && v->attempts < ASK_ROUNDS)
        uv_timer_start(&v->timer, ask_timer_cb, ASK_EVERY_MS, 0);
    else
        verdict(v);
}

/* The context of one question to one voter. */
struct question {
    struct sch_verify *v;
    uint64_t index;
    unsigned server;
};

static void on_answer(void *data, int status, const char *body, size_t len, const char *failure)
{
    (void)len;
    struct question *q = data;
    struct sch_verify *v = q->v;
    if (v->running && q->index == v->index) {
        if (status == 200) {
            json_error_t jerr;
            json_t *doc = json_loads(body, 0, &jerr);
            const char *digest = json_string_value(json_object_get(doc, "digest"));
            if (digest != NULL) {
                v->servers[q->server].digest = strtoull(digest, NULL, 16);
                v->servers[q->server].have = true;
            }
            json_decref(doc);
        } else if (failure != NULL) {
            gy_log_debug("digest not read", "server=%" PRIu64 " error=\"%s\"",
                         v->servers[q->server].id, failure);
        }
        if (--v->asking == 0)
            round_done(v);
    }
    free(q);
}

static void ask_round(struct sch_verify *v)
{
    struct sch_node *node = node_of(v);
    if (!v->running)
        return;
    if (!sch_node_is_leader(node)) {
        v->running = false; /* the next leader checks for itself */
        notify(v, NULL, "leadership moved during the check");
        return;
    }
    v->attempts++;
    v->asking = 1; /* held until every question is out, so no answer ends the round early */
    char path[96];
    snprintf(path, sizeof(path), "/v1/cluster/digest?index=%" PRIu64 "&stale=1", v->index);
    for (unsigned i = 0; i < v->n_servers; i++) {
        if (v->servers[i].have || v->servers[i].api[0] == '\0')
            continue;
        struct question *q = calloc(1, sizeof(*q));
        if (q == NULL)
            break;
        q->v = v;
        q->index = v->index;
        q->server = i;
        v->asking++;
        struct gy_error err;
        if (sch_http_get(node->loop, v->servers[i].api, path, ASK_TIMEOUT_MS, 4096, on_answer, q,
                         &err) < 0) {
            v->asking--;
            free(q);
        }
    }
    if (--v->asking == 0)
        round_done(v);
}

/* The CheckDigest entry is applied here: this server's note at its index is the leader's
 * digest; the voters of the configuration are asked for theirs. */
static void checked(void *data, int status, const struct sch_result *result, const char *message)
{
    struct sch_verify *v = data;
    struct sch_node *node = node_of(v);
    uint64_t index, digest;
    if (status < 0 || (result != NULL && result->code < 0) ||
        !sch_fsm_digest_latest(&node->fsm, &index, &digest) || !sch_node_is_leader(node)) {
        if (status < 0)
            gy_log_debug("divergence check not committed", "error=\"%s\"", message);
        v->running = false;
        notify(v, NULL, status < 0 ? message : "the check entry was not applied here");
        return;
    }
    v->index = index;
    v->attempts = 0;
    v->n_servers = 0;
    const struct raft_configuration *conf = &node->raft.configuration;
    for (unsigned i = 0; i < conf->n && v->n_servers < SCH_VERIFY_MAX_SERVERS; i++) {
        if (conf->servers[i].role != RAFT_VOTER)
            continue;
        unsigned k = v->n_servers++;
        v->servers[k].id = conf->servers[i].id;
        v->servers[k].have = conf->servers[i].id == node->cfg.id;
        v->servers[k].digest = v->servers[k].have ? digest : 0;
        v->servers[k].api[0] = '\0';
        if (!v->servers[k].have)
            sch_fsm_server_api_address(&node->fsm, conf->servers[i].id, v->servers[k].api,
                                       sizeof(v->servers[k].api));
    }
    ask_round(v);
}

static void check_next(struct sch_verify *v)
{
    struct sch_node *node = node_of(v);
    if (v->running || v->closing || !sch_node_is_leader(node))
        return;
    Gantry__CheckDigest c = GANTRY__CHECK_DIGEST__INIT;
    c.round = ++v->round;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_CHECK_DIGEST;
    cmd.check_digest = &c;
    cmd.actor = "verifier";
    cmd.time_ms = wall_ms();
    struct gy_error err;
    if (sch_node_propose(node, &cmd, checked, v, &err) < 0) {
        gy_log_debug("divergence check not proposed", "error=\"%s\"", err.msg);
        notify(v, NULL, err.msg);
        return;
    }
    v->running = true;
    v->started_ms = uv_now(node->loop);
    v->next_ms = v->started_ms + v->interval_ms;
}

void sch_verify_init(struct sch_verify *v, struct sch_node *node, uv_loop_t *loop,
                     uint64_t interval_ms)
{
    memset(v, 0, sizeof(*v));
    v->node = node;
    v->interval_ms = interval_ms;
    uv_timer_init(loop, &v->timer);
    v->timer.data = v;
    uv_timer_init(loop, &v->retry);
    v->retry.data = v;
}

int sch_verify_now(struct sch_verify *v, sch_verify_cb cb, void *data)
{
    if (v->closing || !sch_node_is_leader(node_of(v)))
        return -GY_EUNAVAILABLE;
    if (cb != NULL) {
        if (v->n_waiters == SCH_VERIFY_WAITERS)
            return -GY_ECONFLICT;
        v->waiters[v->n_waiters].cb = cb;
        v->waiters[v->n_waiters].data = data;
        v->n_waiters++;
    }
    if (v->running)
        v->wanted = true;
    else
        check_next(v);
    return 0;
}

#define REBUILD_RETRY_MS 1000
#define IMAGE_TIMEOUT_MS 60000
#define IMAGE_MAX_BYTES  ((size_t)4 << 30)

static void rebuild_start(struct sch_verify *v, uint64_t index);

void sch_verify_tick(struct sch_verify *v)
{
    struct sch_node *node = node_of(v);
    if (node->fsm.image_needed != 0 && !v->rebuilding && !v->closing) {
        gy_log_warn("fetching the leader's image",
                    "index=%" PRIu64 " reason=\"this server's state database was damaged (moved "
                    "to %s)\" action=\"reads are refused meanwhile\"",
                    node->fsm.image_needed, node->fsm.damaged_path);
        rebuild_start(v, node->fsm.image_needed);
    }
    if (v->interval_ms == 0 || v->running || !sch_node_is_leader(node))
        return;
    uint64_t now = uv_now(node->loop);
    if (v->next_ms == 0)
        v->next_ms = now + v->interval_ms; /* a new leader waits one interval */
    else if (now >= v->next_ms)
        check_next(v);
}

/* ---------------------------------------------------------------------------------------
 * This server's rebuild
 *
 * A server the leader found diverged holds its applies, fetches a full image of the state
 * from the leader (GET /v1/cluster/snapshot, which the leader answers after a barrier, so
 * the image holds every entry this server executed) and installs it in place of its
 * database; the entries that waited meanwhile are then applied past the image. Its Raft
 * log is not touched: the entries are the same everywhere, only what a state made of them
 * differs. A leader hands leadership to another voter first. */

static void rebuild_try(struct sch_verify *v);

static void rebuild_retry_cb(uv_timer_t *timer)
{
    rebuild_try(timer->data);
}

/* A rebuild is tried again until it succeeds: the server serves no reads meanwhile, and
 * nothing else brings its state back. The delay grows from 1 s to 5 s. */
static void rebuild_later(struct sch_verify *v, const char *why)
{
    v->rebuild_tries++;
    if (v->rebuild_tries == 1 || v->rebuild_tries % 10 == 0)
        gy_log_warn("state rebuild delayed", "index=%" PRIu64 " tries=%u error=\"%s\"",
                    v->rebuild_for, v->rebuild_tries, why);
    uint64_t delay = REBUILD_RETRY_MS * (v->rebuild_tries < 5 ? v->rebuild_tries : 5);
    uv_timer_start(&v->retry, rebuild_retry_cb, delay, 0);
}

static void image_fetched(void *data, int status, const char *body, size_t len, const char *failure)
{
    struct sch_verify *v = data;
    if (v->closing || !v->rebuilding)
        return;
    if (status != 200) {
        char why[256];
        snprintf(why, sizeof(why), "fetch the leader's image: %s",
                 failure != NULL ? failure : "HTTP error");
        if (status != 0)
            snprintf(why, sizeof(why), "fetch the leader's image: HTTP %d", status);
        rebuild_later(v, why);
        return;
    }
    struct gy_error err;
    if (sch_fsm_rebuild(&v->node->fsm, body, len, v->node->raft.last_stored, &err) < 0) {
        rebuild_later(v, err.msg);
        return;
    }
    v->rebuilding = false;
    v->rebuilt_for = v->rebuild_for;
    v->rebuilds++;
    gy_log_info("state rebuilt from the leader's image",
                "index=%" PRIu64 " image_bytes=%zu applied_index=%" PRIu64, v->rebuild_for, len,
                v->node->fsm.applied_index);
}

static void transferred(void *data, int status, uint64_t leader, const char *message)
{
    struct sch_verify *v = data;
    (void)leader;
    v->transferring = false;
    if (v->closing)
        return;
    if (status < 0)
        gy_log_warn("leadership not handed over before a rebuild", "error=\"%s\"", message);
    rebuild_try(v);
}

static void rebuild_try(struct sch_verify *v)
{
    struct sch_node *node = node_of(v);
    if (v->closing || !v->rebuilding || v->transferring)
        return;
    struct gy_error err;
    if (sch_node_is_leader(node)) {
        v->transferring = true;
        if (sch_node_transfer(node, 0, transferred, v, &err) < 0) {
            v->transferring = false;
            rebuild_later(v, err.msg);
        }
        return;
    }
    char api[256];
    if (sch_node_leader(node, api, sizeof(api)) == 0 || api[0] == '\0') {
        rebuild_later(v, "no leader is known");
        return;
    }
    sch_fsm_hold(&node->fsm, true);
    if (sch_http_get(node->loop, api, "/v1/cluster/snapshot", IMAGE_TIMEOUT_MS, IMAGE_MAX_BYTES,
                     image_fetched, v, &err) < 0)
        rebuild_later(v, err.msg);
}

void sch_verify_applied(struct sch_verify *v)
{
    struct sch_node *node = node_of(v);
    if (v->closing || node->fsm.divergence_epoch == v->seen_epoch)
        return;
    v->seen_epoch = node->fsm.divergence_epoch;
    uint64_t index;
    if (!sch_fsm_server_diverged(&node->fsm, node->cfg.id, &index) || v->rebuilding ||
        index == v->rebuilt_for)
        return;
    gy_log_error("this server's state diverged from the majority's",
                 "index=%" PRIu64 " action=\"rebuilding it from the leader's image; reads are "
                 "refused meanwhile\"",
                 index);
    rebuild_start(v, index);
}

static void rebuild_start(struct sch_verify *v, uint64_t index)
{
    v->rebuilding = true;
    v->rebuild_for = index;
    v->rebuild_tries = 0;
    rebuild_try(v);
}

bool sch_verify_reads_ok(const struct sch_verify *v)
{
    return !v->rebuilding;
}

void sch_verify_close(struct sch_verify *v, uv_close_cb cb)
{
    v->closing = true;
    v->running = false;
    notify(v, NULL, "the server is shutting down");
    if (v->rebuilding)
        sch_fsm_hold(&v->node->fsm, false);
    uv_close((uv_handle_t *)&v->retry, NULL);
    uv_close((uv_handle_t *)&v->timer, cb);
}
