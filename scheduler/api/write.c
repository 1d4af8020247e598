/* Write endpoints, served by the leader: decode and validate the request, propose one
 * command (a membership change: the Raft configuration change, then the servers-table
 * command), and answer once it is committed by a majority and applied. A leadership
 * transfer is answered once another server leads, or it failed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "proto/spec_pb.h"
#include "scheduler/api/api_internal.h"
#include "scheduler/api/json_body.h"
#include "scheduler/api/pin.h"
#include "scheduler/state/query_api.h"

/* Workloads in one apply; a larger set is refused as a whole. */
#define APPLY_MAX 1000

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The audit actor: the client's own X-Gantry-Actor (e.g. "user:cli"), else "api". */
static const char *actor_of(struct sch_call *call)
{
    const char *actor = sch_http_header(call->req, "x-gantry-actor");
    if (actor == NULL || *actor == '\0' || strlen(actor) > 100)
        return "api";
    return actor;
}

static bool key_known(const char *const *known, const char *key)
{
    for (; *known != NULL; known++)
        if (strcmp(key, *known) == 0)
            return true;
    return false;
}

/* Parses the body as a JSON object whose keys are all in known (NULL-terminated; NULL
 * takes any key) and keeps it in call->body. Answers 400 and returns NULL when it is not
 * one; the message on an unknown key ends with usage when that is given. */
static json_t *body_object(struct sch_call *call, const char *const *known, const char *usage)
{
    json_error_t jerr;
    json_t *doc = sch_json_loadb(call->req->body, call->req->body_len, &jerr);
    if (doc == NULL) {
        sch_call_error(call, 400, "invalid_json", NULL,
                       "request body is not valid JSON: %s at line %d column %d", jerr.text,
                       jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        sch_call_error(call, 400, "invalid_json", NULL, "request body must be a JSON object");
        return NULL;
    }
    call->body = doc;
    if (known == NULL)
        return doc;
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        if (key_known(known, key))
            continue;
        if (usage != NULL)
            sch_call_error(call, 400, "invalid_request", key, "unknown key \"%s\": %s", key, usage);
        else
            sch_call_error(call, 400, "invalid_request", key, "unknown key \"%s\"", key);
        return NULL;
    }
    return doc;
}

/* True when call->name is a workload name; otherwise answers 400. */
static bool workload_name_valid(struct sch_call *call)
{
    if (gy_spec_name_valid(call->name))
        return true;
    sch_call_error(call, 400, "invalid_request", "name", "\"%s\" is not a workload name",
                   call->name);
    return false;
}

/* The body of a request on workload call->name, as body_object reads it, once the name is
 * valid; NULL when either was answered with 400. */
static json_t *workload_body(struct sch_call *call, const char *const *known, const char *usage)
{
    if (!workload_name_valid(call))
        return NULL;
    return body_object(call, known, usage);
}

/* Answers a proposal that did not reach the state machine, or was rejected by it. */
static bool settled_badly(struct sch_call *call, int status, const struct sch_result *result,
                          const char *message)
{
    if (status < 0) {
        sch_call_fail(call, status, message);
        return true;
    }
    if (result->code < 0) {
        sch_call_fail(call, result->code, result->message ? result->message : "rejected");
        return true;
    }
    return false;
}

static void propose(struct sch_call *call, Gantry__Command *cmd, sch_propose_cb cb)
{
    struct gy_error err;
    cmd->time_ms = wall_ms();
    cmd->actor = (char *)actor_of(call);
    if (sch_node_propose(call->api->node, cmd, cb, call, &err) < 0)
        sch_call_fail(call, -(int)err.code, err.msg);
}

/* ---------------------------------------------------------------------------------------
 * POST /v1/apply */

static void apply_done(void *data, int status, const struct sch_result *result, const char *message)
{
    struct sch_call *call = data;
    if (settled_badly(call, status, result, message))
        return;
    json_t *items = json_array();
    for (size_t i = 0; i < result->n_outcomes; i++) {
        const struct sch_apply_outcome *o = &result->outcomes[i];
        json_t *item =
            json_pack("{s:s,s:s,s:I}", "name", o->name, "outcome", sch_outcome_name(o->outcome),
                      "generation", (json_int_t)o->generation);
        json_t *pin = json_object_get(call->pins, o->name);
        if (pin != NULL)
            json_object_set(item, "image", pin);
        json_array_append_new(items, item);
    }
    sch_call_json(call, 200, json_pack("{s:o}", "workloads", items));
}

static void answer_problems(struct sch_call *call, const char *prefix,
                            const struct gy_spec_problems *problems)
{
    const struct gy_spec_problem *first = &problems->items[0];
    char path[512];
    if (prefix != NULL)
        snprintf(path, sizeof(path), "%s%s%s", prefix, *first->path ? "." : "", first->path);
    else
        snprintf(path, sizeof(path), "%s", first->path);
    json_t *all = json_array();
    for (size_t i = 0; i < problems->n; i++) {
        char p[512];
        if (prefix != NULL)
            snprintf(p, sizeof(p), "%s%s%s", prefix, *problems->items[i].path ? "." : "",
                     problems->items[i].path);
        else
            snprintf(p, sizeof(p), "%s", problems->items[i].path);
        json_array_append_new(
            all, json_pack("{s:s,s:s}", "path", p, "message", problems->items[i].message));
    }
    json_t *body =
        json_pack("{s:{s:s,s:s+++,s:s,s:o}}", "error", "code", "invalid_spec", "message", path,
                  *path ? ": " : "", first->message, problems->n > 1 ? " (and more problems)" : "",
                  "path", path, "problems", all);
    sch_call_json(call, 400, body);
}

static void specs_free(Gantry__WorkloadSpec **specs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (specs[i] != NULL)
            gy_spec_proto_free(specs[i]);
    free(specs);
}

static void apply_propose(struct sch_call *call, Gantry__WorkloadSpec **specs, size_t n)
{
    Gantry__ApplyWorkloads apply = GANTRY__APPLY_WORKLOADS__INIT;
    apply.workloads = specs;
    apply.n_workloads = n;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_APPLY_WORKLOADS;
    cmd.apply_workloads = &apply;
    propose(call, &cmd, apply_done);
}

/* An apply waiting for its images to be pinned (pin.h). */
struct apply_pinning {
    struct sch_call *call;
    Gantry__WorkloadSpec **specs;
    size_t n;
    bool wrapped;
    struct sch_pin_item *items;
};

/* Records item's digest and labels in spec (allocated with malloc, as gy_spec_proto_free
 * frees them). False when out of memory. */
static bool pin_record(Gantry__WorkloadSpec *spec, const struct sch_pin_item *item)
{
    free(spec->image_digest);
    if ((spec->image_digest = strdup(item->digest)) == NULL)
        return false;
    if (item->n_labels == 0)
        return true;
    spec->image_labels = calloc(item->n_labels, sizeof(*spec->image_labels));
    if (spec->image_labels == NULL)
        return false;
    for (size_t i = 0; i < item->n_labels; i++) {
        Gantry__Label *l = malloc(sizeof(*l));
        if (l == NULL)
            return false;
        gantry__label__init(l);
        l->key = strdup(item->labels[i].key);
        l->value = strdup(item->labels[i].value);
        spec->image_labels[spec->n_image_labels++] = l;
        if (l->key == NULL || l->value == NULL)
            return false;
    }
    return true;
}

/* For an image the registry could not be asked about: the digest of the newest copy the
 * nodes hold under the same reference (loaded on an air-gapped node, or pulled before),
 * with its labels, so that a cluster without its registry still pins. False when no node
 * holds it. */
static bool pin_from_nodes(struct sch_api *api, struct sch_pin_item *item)
{
    struct gy_image_ref ref;
    char name[GY_IMAGE_REF_MAX + 32];
    if (gy_image_ref_parse(item->image, &ref, NULL) < 0 || ref.digest[0] != '\0' ||
        gy_image_ref_format(&ref, name, sizeof(name)) < 0)
        return false;
    struct gy_error err;
    json_t *all = sch_fleet_images(api->fleet, NULL, &err);
    const json_t *best = NULL;
    json_int_t best_ms = -1;
    size_t i;
    const json_t *it;
    json_array_foreach(json_object_get(all, "items"), i, it)
    {
        const char *held = json_string_value(json_object_get(it, "name"));
        json_int_t ms = json_integer_value(json_object_get(it, "pulled_ms"));
        if (held != NULL && strcmp(held, name) == 0 && ms > best_ms) {
            best = it;
            best_ms = ms;
        }
    }
    bool found = false;
    if (best != NULL) {
        const char *resolved = json_string_value(json_object_get(best, "resolved"));
        const char *digest = json_string_value(json_object_get(best, "digest"));
        const char *pin = resolved != NULL && *resolved ? resolved : digest;
        if (pin != NULL && gy_image_digest_valid(pin)) {
            snprintf(item->digest, sizeof(item->digest), "%s", pin);
            item->n_labels = 0;
            const char *key;
            json_t *value;
            json_object_foreach((json_t *)json_object_get(best, "labels"), key, value)
            {
                if (item->n_labels == SCH_PIN_LABELS_MAX || !json_is_string(value))
                    break;
                struct sch_pin_label *l = &item->labels[item->n_labels++];
                snprintf(l->key, sizeof(l->key), "%s", key);
                snprintf(l->value, sizeof(l->value), "%s", json_string_value(value));
            }
            char why[256];
            snprintf(why, sizeof(why), "%.255s", item->message);
            snprintf(item->message, sizeof(item->message),
                     "the registry could not be reached (%s); pinned to the copy the nodes hold",
                     why);
            item->outcome = SCH_PIN_PINNED;
            found = true;
        }
    }
    json_decref(all);
    return found;
}

static void apply_pinned(void *data, struct sch_pin_item *items, size_t n)
{
    struct apply_pinning *ap = data;
    struct sch_call *call = ap->call;
    bool answered = false;
    json_t *pins = json_object();
    for (size_t i = 0; i < n && !answered; i++) {
        const struct sch_pin_item *item = &items[i];
        Gantry__WorkloadSpec *spec = ap->specs[i];
        char path[80];
        if (ap->wrapped)
            snprintf(path, sizeof(path), "workloads[%zu].image", i);
        else
            snprintf(path, sizeof(path), "image");
        switch (item->outcome) {
        case SCH_PIN_SKIPPED:
            break;
        case SCH_PIN_REFUSED:
            sch_call_error(call, 400, "image_unresolved", path, "%s: image \"%s\": %s", path,
                           item->image, item->message);
            answered = true;
            break;
        case SCH_PIN_UNRESOLVED:
            if (pin_from_nodes(call->api, &items[i])) {
                gy_log_warn("image pinned from the nodes", "workload=%s image=%s digest=%s",
                            spec->name, item->image, item->digest);
                goto pinned;
            }
            gy_log_warn("image not pinned", "workload=%s image=%s error=\"%s\"", spec->name,
                        item->image, item->message);
            json_object_set_new(pins, spec->name,
                                json_pack("{s:s,s:b,s:s}", "ref", item->image, "pinned", 0,
                                          "warning", item->message));
            break;
        case SCH_PIN_PINNED:
        pinned : {
            if (!pin_record(spec, item)) {
                sch_call_error(call, 500, "internal", NULL, "out of memory pinning images");
                answered = true;
                break;
            }
            json_t *labels = json_object();
            for (size_t j = 0; j < item->n_labels; j++)
                json_object_set_new(labels, item->labels[j].key,
                                    json_string(item->labels[j].value));
            json_t *pin = json_pack("{s:s,s:b,s:s,s:o}", "ref", item->image, "pinned", 1, "digest",
                                    item->digest, "labels", labels);
            if (item->message[0] != '\0')
                json_object_set_new(pin, "warning", json_string(item->message));
            json_object_set_new(pins, spec->name, pin);
            break;
        }
        }
    }
    if (!answered) {
        call->pins = pins;
        apply_propose(call, ap->specs, ap->n);
    } else {
        json_decref(pins);
    }
    specs_free(ap->specs, ap->n);
    free(ap->items);
    free(ap);
}

void sch_api_apply(struct sch_call *call)
{
    json_t *doc = body_object(call, NULL, NULL);
    if (doc == NULL)
        return;
    json_t *list = json_object_get(doc, "workloads");
    bool wrapped = list != NULL;
    if (wrapped) {
        const char *key;
        json_t *value;
        json_object_foreach(doc, key, value)
        {
            if (strcmp(key, "workloads") != 0) {
                sch_call_error(call, 400, "invalid_request", key,
                               "unknown key \"%s\": the body is {\"workloads\":[SPEC, ...]} or "
                               "one SPEC",
                               key);
                return;
            }
        }
        if (!json_is_array(list) || json_array_size(list) == 0) {
            sch_call_error(call, 400, "invalid_request", "workloads",
                           "workloads must be a non-empty list of specs");
            return;
        }
        if (json_array_size(list) > APPLY_MAX) {
            sch_call_error(call, 400, "invalid_request", "workloads",
                           "at most %d workloads per apply (got %zu)", APPLY_MAX,
                           json_array_size(list));
            return;
        }
    }
    size_t n = wrapped ? json_array_size(list) : 1;
    Gantry__WorkloadSpec **specs = gy_xcalloc(n, sizeof(*specs));
    const char *problem = NULL;
    for (size_t i = 0; i < n && problem == NULL; i++) {
        const json_t *one = wrapped ? json_array_get(list, i) : doc;
        char prefix[64];
        snprintf(prefix, sizeof(prefix), "workloads[%zu]", i);
        if (!json_is_object(one)) {
            sch_call_error(call, 400, "invalid_spec", prefix, "%s must be a spec object", prefix);
            problem = "answered";
            break;
        }
        struct gy_spec spec;
        struct gy_spec_problems problems = {0};
        gy_spec_init(&spec);
        if (gy_spec_from_json(one, NULL, &spec, &problems) < 0) {
            if (problems.n > 0)
                answer_problems(call, wrapped ? prefix : NULL, &problems);
            else
                sch_call_error(call, 400, "invalid_spec", wrapped ? prefix : NULL,
                               "the spec is not valid");
            gy_spec_problems_free(&problems);
            gy_spec_free(&spec);
            problem = "answered";
            break;
        }
        gy_spec_problems_free(&problems);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(specs[j]->name, spec.name) == 0) {
                char path[80];
                snprintf(path, sizeof(path), "workloads[%zu].name", i);
                sch_call_error(call, 400, "invalid_spec", path,
                               "%s: workload \"%s\" appears twice in one apply", path, spec.name);
                problem = "answered";
                break;
            }
        }
        if (problem == NULL && (specs[i] = gy_spec_to_proto(&spec)) == NULL) {
            sch_call_error(call, 500, "internal", NULL, "out of memory encoding the spec");
            problem = "answered";
        }
        gy_spec_free(&spec);
    }
    if (problem != NULL) {
        specs_free(specs, n);
        return;
    }
    size_t wanted = 0;
    for (size_t i = 0; i < n; i++)
        wanted += sch_pin_wanted(specs[i]->image);
    if (wanted == 0) {
        apply_propose(call, specs, n);
        specs_free(specs, n);
        return;
    }
    struct apply_pinning *ap = gy_xcalloc(1, sizeof(*ap));
    ap->call = call;
    ap->specs = specs;
    ap->n = n;
    ap->wrapped = wrapped;
    ap->items = gy_xcalloc(n, sizeof(*ap->items));
    for (size_t i = 0; i < n; i++)
        snprintf(ap->items[i].image, sizeof(ap->items[i].image), "%s", specs[i]->image);
    if (sch_pin_start(call->api->loop, call->api->registries, call->api->registry_auth, ap->items,
                      n, apply_pinned, ap) != 0) {
        sch_call_error(call, 503, "unavailable", NULL, "cannot queue the image lookups");
        specs_free(specs, n);
        free(ap->items);
        free(ap);
    }
}

/* ---------------------------------------------------------------------------------------
 * DELETE /v1/workloads/NAME and POST /v1/workloads/NAME/scale */

static void delete_done(void *data, int status, const struct sch_result *result,
                        const char *message)
{
    struct sch_call *call = data;
    if (settled_badly(call, status, result, message))
        return;
    sch_call_json(call, 200, json_pack("{s:s,s:b}", "name", call->name, "deleted", 1));
}

void sch_api_workload_delete(struct sch_call *call)
{
    if (!workload_name_valid(call))
        return;
    Gantry__DeleteWorkload del = GANTRY__DELETE_WORKLOAD__INIT;
    del.name = call->name;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_DELETE_WORKLOAD;
    cmd.delete_workload = &del;
    propose(call, &cmd, delete_done);
}

static void scale_done(void *data, int status, const struct sch_result *result, const char *message)
{
    struct sch_call *call = data;
    if (settled_badly(call, status, result, message))
        return;
    json_t *replicas = json_object_get(call->body, "replicas");
    sch_call_json(
        call, 200,
        json_pack("{s:s,s:O,s:I,s:s}", "name", call->name, "replicas", replicas, "generation",
                  (json_int_t)(result->n_outcomes ? result->outcomes[0].generation : 0), "outcome",
                  result->n_outcomes ? sch_outcome_name(result->outcomes[0].outcome) : "updated"));
}

void sch_api_workload_scale(struct sch_call *call)
{
    static const char *const known[] = {"replicas", "reason", NULL};
    json_t *doc = workload_body(call, known, "the body is {\"replicas\":N}");
    if (doc == NULL)
        return;
    json_t *replicas = json_object_get(doc, "replicas");
    json_t *reason = json_object_get(doc, "reason");
    if (!json_is_integer(replicas) || json_integer_value(replicas) < 0 ||
        json_integer_value(replicas) > GY_SPEC_REPLICAS_MAX) {
        sch_call_error(call, 400, "invalid_request", "replicas",
                       "replicas must be a whole number from 0 to %d", GY_SPEC_REPLICAS_MAX);
        return;
    }
    if (reason != NULL && !json_is_string(reason)) {
        sch_call_error(call, 400, "invalid_request", "reason", "reason must be a string");
        return;
    }
    Gantry__ScaleWorkload scale = GANTRY__SCALE_WORKLOAD__INIT;
    scale.name = call->name;
    scale.replicas = (uint32_t)json_integer_value(replicas);
    scale.reason = (char *)(reason ? json_string_value(reason) : "manual");
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_SCALE_WORKLOAD;
    cmd.scale_workload = &scale;
    propose(call, &cmd, scale_done);
}

/* ---------------------------------------------------------------------------------------
 * POST /v1/workloads/NAME/move */

static void move_done(void *data, int status, const struct sch_result *result, const char *message)
{
    struct sch_call *call = data;
    if (settled_badly(call, status, result, message))
        return;
    sch_call_json(
        call, 200,
        json_pack("{s:s,s:O,s:I,s:s}", "name", call->name, "to", json_object_get(call->body, "to"),
                  "generation",
                  (json_int_t)(result->n_outcomes ? result->outcomes[0].generation : 0), "outcome",
                  result->n_outcomes && result->outcomes[0].outcome == SCH_OUTCOME_UNCHANGED
                      ? "unchanged"
                      : "moving"));
}

/* What a move needs to know of the clouds: the ready nodes of the target cloud, and the
 * clouds that have any, for the error. */
struct clouds_ready {
    const char *target;
    int64_t target_ready;
    char names[512];
};

static void cloud_seen(void *data, const char *cloud, int64_t ready_nodes)
{
    struct clouds_ready *c = data;
    if (strcmp(cloud, c->target) == 0)
        c->target_ready = ready_nodes;
    size_t used = strlen(c->names);
    if (ready_nodes > 0)
        snprintf(c->names + used, sizeof(c->names) - used, "%s%s", used ? ", " : "", cloud);
}

void sch_api_workload_move(struct sch_call *call)
{
    static const char *const known[] = {"to", NULL};
    json_t *doc = workload_body(call, known, "the body is {\"to\":\"CLOUD\"}");
    if (doc == NULL)
        return;
    json_t *to = json_object_get(doc, "to");
    if (!json_is_string(to) || json_string_length(to) == 0 || json_string_length(to) > 63) {
        sch_call_error(call, 400, "invalid_request", "to",
                       "to must name a cloud (1 to 63 characters)");
        return;
    }
    struct clouds_ready clouds = {.target = json_string_value(to)};
    struct gy_error err;
    if (sch_view_clouds(&call->api->node->fsm, cloud_seen, &clouds, &err) < 0) {
        sch_call_fail(call, -(int)err.code, err.msg);
        return;
    }
    if (clouds.target_ready == 0) {
        sch_call_error(call, 409, "conflict", "to",
                       "cloud \"%s\" has no ready node (clouds with ready nodes: %s); nothing "
                       "was changed",
                       clouds.target, *clouds.names ? clouds.names : "none");
        return;
    }
    Gantry__MoveWorkload move = GANTRY__MOVE_WORKLOAD__INIT;
    move.name = call->name;
    move.to = (char *)json_string_value(to);
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_MOVE_WORKLOAD;
    cmd.move_workload = &move;
    propose(call, &cmd, move_done);
}

/* ---------------------------------------------------------------------------------------
 * POST /v1/nodes/NAME/drain, /cordon, /uncordon */

static void node_state_done(void *data, int status, const struct sch_result *result,
                            const char *message)
{
    struct sch_call *call = data;
    if (settled_badly(call, status, result, message))
        return;
    sch_call_json(
        call, 200,
        json_pack("{s:s,s:s}", "name", call->name, "state", sch_node_state_name(call->node_state)));
}

/* Proposes that node call->name be in state, for reason. */
static void node_state_set(struct sch_call *call, Gantry__NodeState state, const char *reason)
{
    struct gy_error err;
    int current = sch_view_node_state(&call->api->node->fsm, call->name, &err);
    if (current == -GY_ENOTFOUND) {
        sch_call_error(call, 404, "not_found", "name", "node \"%s\" not found", call->name);
        return;
    }
    if (current < 0) {
        sch_call_fail(call, current, err.msg);
        return;
    }
    if (state == GANTRY__NODE_STATE__NODE_READY && current == GANTRY__NODE_STATE__NODE_DOWN) {
        sch_call_error(call, 409, "conflict", "name",
                       "node \"%s\" is down; it becomes ready when its agent reconnects",
                       call->name);
        return;
    }
    Gantry__SetNodeState set = GANTRY__SET_NODE_STATE__INIT;
    set.name = call->name;
    set.state = state;
    set.reason = (char *)reason;
    call->node_state = (int)state;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_SET_NODE_STATE;
    cmd.set_node_state = &set;
    propose(call, &cmd, node_state_done);
}

void sch_api_node_drain(struct sch_call *call)
{
    node_state_set(call, GANTRY__NODE_STATE__NODE_DRAINING, "drain requested");
}

void sch_api_node_cordon(struct sch_call *call)
{
    node_state_set(call, GANTRY__NODE_STATE__NODE_CORDONED, "cordoned");
}

void sch_api_node_uncordon(struct sch_call *call)
{
    node_state_set(call, GANTRY__NODE_STATE__NODE_READY, "uncordoned");
}

/* DELETE /v1/nodes/NAME: forgets a node that is down; its subnet is free again, and the
 * other nodes drop their route to it. */
static void node_removed(void *data, int status, const struct sch_result *result,
                         const char *message)
{
    struct sch_call *call = data;
    if (settled_badly(call, status, result, message))
        return;
    sch_fleet_network_changed(call->api->fleet);
    sch_call_json(call, 200, json_pack("{s:s,s:b}", "name", call->name, "removed", 1));
}

void sch_api_node_remove(struct sch_call *call)
{
    Gantry__RemoveNode rm = GANTRY__REMOVE_NODE__INIT;
    rm.name = call->name;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_REMOVE_NODE;
    cmd.remove_node = &rm;
    propose(call, &cmd, node_removed);
}

/* ---------------------------------------------------------------------------------------
 * Membership: POST /v1/cluster/members and DELETE /v1/cluster/members/ID */

static void member_recorded(void *data, int status, const struct sch_result *result,
                            const char *message)
{
    struct sch_call *call = data;
    if (settled_badly(call, status, result, message))
        return;
    char cluster[80];
    sch_fsm_cluster_id(&call->api->node->fsm, cluster, sizeof(cluster));
    if (call->route == SCH_ROUTE_MEMBER_ADD)
        sch_call_json(call, 200,
                      json_pack("{s:I,s:s,s:s}", "id", (json_int_t)call->member_id, "cluster_id",
                                cluster, "role", "voter"));
    else
        sch_call_json(call, 200,
                      json_pack("{s:I,s:b}", "id", (json_int_t)call->member_id, "removed", 1));
}

static void member_added(void *data, int status, const char *message)
{
    struct sch_call *call = data;
    if (status < 0) {
        sch_call_fail(call, status, message);
        return;
    }
    /* The new voter's addresses go into the replicated servers table. */
    Gantry__SetServer set = GANTRY__SET_SERVER__INIT;
    set.id = call->member_id;
    set.raft_address = (char *)json_string_value(json_object_get(call->body, "raft_address"));
    set.api_address = (char *)json_string_value(json_object_get(call->body, "api_address"));
    set.agent_address = (char *)json_string_value(json_object_get(call->body, "agent_address"));
    if (set.agent_address == NULL)
        set.agent_address = (char *)"";
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_SET_SERVER;
    cmd.set_server = &set;
    propose(call, &cmd, member_recorded);
}

static bool host_port_valid(const char *s)
{
    const char *colon = s ? strrchr(s, ':') : NULL;
    if (colon == NULL || colon == s || colon[1] == '\0' || strlen(s) > 200)
        return false;
    for (const char *p = colon + 1; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    long port = strtol(colon + 1, NULL, 10);
    return port > 0 && port <= 65535;
}

void sch_api_member_add(struct sch_call *call)
{
    static const char *const known[] = {
        "id", "raft_address", "api_address", "agent_address", "cluster_id", NULL};
    json_t *doc = body_object(call, known, NULL);
    if (doc == NULL)
        return;
    json_t *id = json_object_get(doc, "id");
    if (!json_is_integer(id) || json_integer_value(id) <= 0) {
        sch_call_error(call, 400, "invalid_request", "id", "id must be a positive whole number");
        return;
    }
    static const char *const addresses[] = {"raft_address", "api_address"};
    for (int i = 0; i < 2; i++) {
        json_t *a = json_object_get(doc, addresses[i]);
        if (!json_is_string(a) || !host_port_valid(json_string_value(a))) {
            sch_call_error(call, 400, "invalid_request", addresses[i], "%s must be HOST:PORT",
                           addresses[i]);
            return;
        }
    }
    json_t *agent = json_object_get(doc, "agent_address");
    if (agent != NULL && (!json_is_string(agent) || (*json_string_value(agent) != '\0' &&
                                                     !host_port_valid(json_string_value(agent))))) {
        sch_call_error(call, 400, "invalid_request", "agent_address",
                       "agent_address must be HOST:PORT");
        return;
    }
    json_t *cluster = json_object_get(doc, "cluster_id");
    if (cluster != NULL && !json_is_string(cluster)) {
        sch_call_error(call, 400, "invalid_request", "cluster_id", "cluster_id must be a string");
        return;
    }
    char ours[80];
    sch_fsm_cluster_id(&call->api->node->fsm, ours, sizeof(ours));
    const char *theirs = cluster ? json_string_value(cluster) : "";
    if (*theirs != '\0' && strcmp(theirs, ours) != 0) {
        sch_call_error(call, 409, "cluster_mismatch", "cluster_id",
                       "server %lld belongs to cluster %s, but this is cluster %s",
                       (long long)json_integer_value(id), theirs, *ours ? ours : "(unnamed)");
        return;
    }
    call->member_id = (uint64_t)json_integer_value(id);
    struct gy_error err;
    if (sch_node_add_server(call->api->node, call->member_id,
                            json_string_value(json_object_get(doc, "raft_address")), member_added,
                            call, &err) < 0)
        sch_call_fail(call, -(int)err.code, err.msg);
}

static void member_removed(void *data, int status, const char *message)
{
    struct sch_call *call = data;
    if (status < 0) {
        sch_call_fail(call, status, message);
        return;
    }
    if (!sch_node_is_leader(call->api->node)) {
        /* This server removed itself and stepped down, so it cannot propose the removal of
         * its row from the servers table. The row is harmless: /v1/cluster lists the Raft
         * configuration, and followers forward only to the leader's row. */
        sch_call_json(call, 200,
                      json_pack("{s:I,s:b}", "id", (json_int_t)call->member_id, "removed", 1));
        return;
    }
    Gantry__RemoveServer rm = GANTRY__REMOVE_SERVER__INIT;
    rm.id = call->member_id;
    Gantry__Command cmd = GANTRY__COMMAND__INIT;
    cmd.cmd_case = GANTRY__COMMAND__CMD_REMOVE_SERVER;
    cmd.remove_server = &rm;
    propose(call, &cmd, member_recorded);
}

void sch_api_member_remove(struct sch_call *call)
{
    char *end;
    unsigned long long id = strtoull(call->name, &end, 10);
    if (*end != '\0' || id == 0) {
        sch_call_error(call, 400, "invalid_request", "id", "\"%s\" is not a server id", call->name);
        return;
    }
    call->member_id = id;
    struct gy_error err;
    if (sch_node_remove_server(call->api->node, id, member_removed, call, &err) < 0)
        sch_call_fail(call, -(int)err.code, err.msg);
}

/* ---------------------------------------------------------------------------------------
 * POST /v1/cluster/leader */

static void leader_transferred(void *data, int status, uint64_t leader, const char *message)
{
    struct sch_call *call = data;
    if (status == -GY_ETIMEOUT || (status == -GY_ECONFLICT && call->member_id != 0)) {
        sch_call_error(call, 409, "transfer_failed", NULL, "%s", message);
        return;
    }
    if (status < 0) {
        sch_call_fail(call, status, message);
        return;
    }
    uint64_t previous = call->api->node->cfg.id;
    sch_call_json(call, 200,
                  json_pack("{s:I,s:I,s:I,s:b}", "leader", (json_int_t)leader, "previous",
                            (json_int_t)previous, "term",
                            (json_int_t)call->api->node->raft.current_term, "transferred",
                            leader != previous));
}

void sch_api_leader_transfer(struct sch_call *call)
{
    uint64_t to = 0;
    if (call->req->body_len > 0) {
        static const char *const known[] = {"to", NULL};
        json_t *doc = body_object(call, known, "the body is {\"to\":ID} or {} for any voter");
        if (doc == NULL)
            return;
        json_t *id = json_object_get(doc, "to");
        if (id != NULL && !json_is_null(id) &&
            (!json_is_integer(id) || json_integer_value(id) <= 0)) {
            sch_call_error(call, 400, "invalid_request", "to",
                           "to must be a server id (a positive whole number)");
            return;
        }
        if (json_is_integer(id))
            to = (uint64_t)json_integer_value(id);
    }
    call->member_id = to;
    struct gy_error err;
    if (sch_node_transfer(call->api->node, to, leader_transferred, call, &err) < 0)
        sch_call_fail(call, -(int)err.code, err.msg);
}
