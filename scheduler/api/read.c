/* Reads of the replicated state: workloads with their status, replicas and nodes, in the
 * JSON of docs/api.md. They run on the leader after a barrier, or on any server with
 * ?stale=1, from that server's copy of the state (scheduler/state/query_api.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"
#include "proto/spec_pb.h"
#include "scheduler/api/api_internal.h"
#include "scheduler/fleet/fleet.h"
#include "scheduler/state/query_api.h"

/* ---------------------------------------------------------------------------------------
 * Workloads */

/* The JSON form of a stored WorkloadSpec, or null when it cannot be decoded. */
static json_t *spec_json(const void *blob, size_t len)
{
    Gantry__WorkloadSpec *msg = gantry__workload_spec__unpack(NULL, len, blob);
    if (msg == NULL)
        return json_null();
    struct gy_spec spec;
    struct gy_error err;
    json_t *out;
    if (gy_spec_from_proto(msg, &spec, &err) == 0)
        out = gy_spec_to_json(&spec);
    else
        out = json_null();
    gy_spec_free(&spec);
    gantry__workload_spec__free_unpacked(msg, NULL);
    return out ? out : json_null();
}

/* status.image of a stored WorkloadSpec whose image the leader pinned at apply: the digest
 * and the image's annotations and labels; NULL when it was not pinned. */
static json_t *image_json(const void *blob, size_t len)
{
    Gantry__WorkloadSpec *msg = gantry__workload_spec__unpack(NULL, len, blob);
    if (msg == NULL)
        return NULL;
    json_t *out = NULL;
    if (msg->image_digest != NULL && msg->image_digest[0] != '\0') {
        json_t *labels = json_object();
        for (size_t i = 0; i < msg->n_image_labels; i++)
            json_object_set_new(labels, msg->image_labels[i]->key,
                                json_string(msg->image_labels[i]->value));
        out = json_pack("{s:s,s:s,s:o}", "ref", msg->image, "digest", msg->image_digest, "labels",
                        labels);
    }
    gantry__workload_spec__free_unpacked(msg, NULL);
    return out;
}

static void condition_append(void *data, const struct sch_condition_view *c)
{
    json_array_append_new(data, json_pack("{s:s,s:s,s:I}", "type", c->kind, "message", c->message,
                                          "time_ms", (json_int_t)c->time_ms));
}

/* Adds status.autoscaler to an autoscaled workload: idle (retired to zero) or active, and,
 * when this server leads, the live figures of its autoscaler. */
static void autoscaler_status(struct sch_api *api, json_t *w)
{
    const json_t *a = json_object_get(json_object_get(w, "spec"), "autoscale");
    json_t *status = json_object_get(w, "status");
    if (!json_is_object(a) || !json_is_object(status))
        return;
    json_int_t desired = json_integer_value(json_object_get(status, "desired"));
    json_t *o = json_pack("{s:s}", "state", desired == 0 ? "idle" : "active");
    json_t *live =
        sch_fleet_autoscaler_json(api->fleet, json_string_value(json_object_get(w, "name")));
    if (live != NULL)
        json_object_set_new(o, "live", live);
    json_object_set_new(status, "autoscaler", o);
}

/* What a workload read collects: the workloads so far, and the first error. */
struct workloads_read {
    struct sch_call *call;
    json_t *items;
    int rc;
    struct gy_error err;
};

static void workload_append(void *data, const struct sch_workload_view *view)
{
    struct workloads_read *read = data;
    json_t *spec = spec_json(view->spec, view->spec_len);
    /* The stored spec is the template; the count lives in its own column. */
    if (json_is_object(spec))
        json_object_set_new(spec, "replicas", json_integer(view->desired));
    json_t *conditions = json_array();
    int rc = sch_view_conditions(&read->call->api->node->fsm, view->name, condition_append,
                                 conditions, &read->err);
    if (rc < 0 && read->rc == 0)
        read->rc = rc;
    if (view->ready < view->desired)
        json_array_append_new(conditions, json_pack("{s:s,s:s}", "type", "Progressing", "message",
                                                    "fewer ready replicas than desired"));
    else
        json_array_append_new(conditions, json_pack("{s:s,s:s}", "type", "Available", "message",
                                                    "all desired replicas are ready"));
    json_t *w = json_pack("{s:s,s:I,s:o,s:{s:I,s:I,s:I,s:I,s:o},s:I,s:I}", "name", view->name,
                          "generation", (json_int_t)view->generation, "spec", spec, "status",
                          "desired", (json_int_t)view->desired, "replicas",
                          (json_int_t)view->replicas, "running", (json_int_t)view->running, "ready",
                          (json_int_t)view->ready, "conditions", conditions, "created_ms",
                          (json_int_t)view->created_ms, "updated_ms", (json_int_t)view->updated_ms);
    json_t *image = image_json(view->spec, view->spec_len);
    if (image != NULL)
        json_object_set_new(json_object_get(w, "status"), "image", image);
    autoscaler_status(read->call->api, w);
    json_array_append_new(read->items, w);
}

/* Reads the workload called name, or every workload when name is NULL, into read->items;
 * answers 500 and returns false on failure. */
static bool workloads_read(struct workloads_read *read, const char *name)
{
    read->items = json_array();
    read->rc = 0;
    int rc =
        sch_view_workloads(&read->call->api->node->fsm, name, workload_append, read, &read->err);
    if (rc >= 0 && read->rc < 0)
        rc = read->rc;
    if (rc < 0) {
        json_decref(read->items);
        sch_call_error(read->call, 500, "internal", NULL, "%s", read->err.msg);
        return false;
    }
    return true;
}

void sch_api_workloads_list(struct sch_call *call)
{
    struct workloads_read read = {.call = call};
    if (workloads_read(&read, NULL))
        sch_call_json(call, 200, json_pack("{s:o}", "items", read.items));
}

void sch_api_workload_get(struct sch_call *call)
{
    struct workloads_read read = {.call = call};
    if (!workloads_read(&read, call->name))
        return;
    if (json_array_size(read.items) == 0) {
        json_decref(read.items);
        sch_call_error(call, 404, "not_found", "name", "workload \"%s\" not found", call->name);
        return;
    }
    json_t *w = json_incref(json_array_get(read.items, 0));
    json_decref(read.items);
    sch_call_json(call, 200, w);
}

/* ---------------------------------------------------------------------------------------
 * Replicas and nodes */

static void replica_append(void *data, const struct sch_replica_view *r)
{
    json_array_append_new(
        data, json_pack("{s:s,s:s,s:I,s:s,s:s,s:s,s:b,s:I,s:I,s:s,s:s}", "id", r->id, "workload",
                        r->workload, "generation", (json_int_t)r->generation, "node", r->node,
                        "cloud", r->cloud, "state", sch_replica_state_name(r->state), "ready",
                        r->ready, "restarts", (json_int_t)r->restarts, "exit_code",
                        (json_int_t)r->exit_code, "address", r->address, "reason", r->reason));
}

/* Answers {"items": ITEMS} once a view has filled them, or 500 when it failed (rc < 0). */
static void items_answer(struct sch_call *call, int rc, json_t *items, const struct gy_error *err)
{
    if (rc < 0) {
        json_decref(items);
        sch_call_error(call, 500, "internal", NULL, "%s", err->msg);
        return;
    }
    sch_call_json(call, 200, json_pack("{s:o}", "items", items));
}

void sch_api_replicas_list(struct sch_call *call)
{
    char workload[128];
    bool filter = sch_http_query(call->req, "workload", workload, sizeof(workload));
    json_t *items = json_array();
    struct gy_error err;
    int rc = sch_view_replicas(&call->api->node->fsm, filter ? workload : NULL, replica_append,
                               items, &err);
    items_answer(call, rc, items, &err);
}

/* What a node read collects: the nodes so far, and the first error. */
struct nodes_read {
    struct sch_fsm *fsm;
    json_t *items;
    int rc;
    struct gy_error err;
};

static void node_append(void *data, const struct sch_node_view *n)
{
    struct nodes_read *read = data;
    json_t *labels = json_loads(n->labels, 0, NULL);
    json_t *conditions = json_array();
    struct gy_error err;
    int rc = sch_view_node_conditions(read->fsm, n->name, condition_append, conditions, &err);
    if (rc < 0 && read->rc == 0) {
        read->rc = rc;
        read->err = err;
    }
    json_array_append_new(
        read->items,
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:{s:I,s:I,s:I},s:{s:I,s:I,s:I},s:f,s:s,s:o}",
                  "name", n->name, "cloud", n->cloud, "region", n->region, "zone", n->zone,
                  "address", n->address, "subnet", n->subnet, "tunnel_key", n->tunnel_key, "labels",
                  labels ? labels : json_object(), "capacity", "cpu_millis",
                  (json_int_t)n->cpu_millis, "memory_bytes", (json_int_t)n->memory_bytes, "pids",
                  (json_int_t)n->pids, "allocated", "replicas", (json_int_t)n->active_replicas,
                  "cpu_millis", (json_int_t)n->allocated_cpu_millis, "memory_bytes",
                  (json_int_t)n->allocated_memory_bytes, "cost", n->cost, "state",
                  sch_node_state_name(n->state), "conditions", conditions));
}

void sch_api_nodes_list(struct sch_call *call)
{
    struct nodes_read read = {.fsm = &call->api->node->fsm, .items = json_array()};
    int rc = sch_view_nodes(read.fsm, node_append, &read, &read.err);
    if (rc >= 0 && read.rc < 0)
        rc = read.rc;
    items_answer(call, rc, read.items, &read.err);
}
