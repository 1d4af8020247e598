/* The images on the nodes (docs/api.md, "Images"), served by the leader: what the agents
 * report (GET /v1/images), and pulls and removals on chosen nodes, which the fleet relays
 * to their agents (POST /v1/images/pull, POST /v1/images/rm). Nothing here goes through
 * Raft: the images a node holds are the node's own state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/image_ref.h"
#include "scheduler/api/api_internal.h"
#include "scheduler/api/json_body.h"

/* GET /v1/images[?node=NAME]. */
void sch_api_images_list(struct sch_call *call)
{
    char node[256];
    bool one = sch_http_query(call->req, "node", node, sizeof(node));
    if (one && node[0] == '\0') {
        sch_call_error(call, 400, "invalid_request", "node", "?node= needs a node name");
        return;
    }
    struct gy_error err;
    json_t *answer = sch_fleet_images(call->api->fleet, one ? node : NULL, &err);
    if (answer != NULL) {
        sch_call_json(call, 200, answer);
        return;
    }
    struct sch_fleet_stats stats;
    sch_fleet_stats(call->api->fleet, &stats);
    if (err.code == GY_ENOTFOUND)
        sch_call_error(call, 404, "not_found", NULL, "%s", err.msg);
    else if (err.code == GY_EUNAVAILABLE && stats.leading && stats.caught_up)
        sch_call_error(call, 503, "node_unavailable", NULL, "%s", err.msg);
    else if (err.code == GY_EUNAVAILABLE)
        sch_call_error(call, 503, "no_leader", NULL, "%s", err.msg);
    else
        sch_call_error(call, 500, "internal", NULL, "%s", err.msg);
}

/* An optional string member: NULL when absent; answers 400 naming it and returns false
 * when it is there but not a non-empty string. */
static bool string_member(struct sch_call *call, const json_t *body, const char *key,
                          const char **out)
{
    const json_t *v = json_object_get(body, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return true;
    if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > 255 ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        sch_call_error(call, 400, "invalid_request", key,
                       "%s: expected a non-empty string of at most 255 bytes", key);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* The request's body {"ref", "node", "cloud"} (cloud only for a pull), checked; false once
 * answered 400. */
static bool image_body(struct sch_call *call, bool pull, const char **ref,
                       struct sch_fleet_image_target *target)
{
    json_error_t jerr;
    json_t *doc = sch_json_loadb(call->req->body, call->req->body_len, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        if (doc == NULL)
            sch_call_error(call, 400, "invalid_json", NULL,
                           "request body is not valid JSON: %s at line %d column %d", jerr.text,
                           jerr.line, jerr.column);
        else
            sch_call_error(call, 400, "invalid_json", NULL, "request body must be a JSON object");
        json_decref(doc);
        return false;
    }
    call->body = doc;
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        if (strcmp(key, "ref") == 0 || strcmp(key, "node") == 0 ||
            (pull && strcmp(key, "cloud") == 0))
            continue;
        sch_call_error(call, 400, "invalid_request", key, "unknown key \"%s\": the body is %s", key,
                       pull ? "{\"ref\": REF, \"node\": NODE} or {\"ref\": REF, \"cloud\": CLOUD}"
                            : "{\"ref\": REF, \"node\": NODE}");
        return false;
    }
    if (!string_member(call, doc, "ref", ref) || !string_member(call, doc, "node", &target->node) ||
        !string_member(call, doc, "cloud", &target->cloud))
        return false;
    if (*ref == NULL) {
        sch_call_error(call, 400, "invalid_request", "ref", "ref: required (an image reference%s)",
                       pull ? "" : " or an imported image's name");
        return false;
    }
    struct gy_error err;
    /* A pull needs a reference a registry serves; a removal also takes the name of a root
     * filesystem imported on the node. */
    if (gy_image_ref_parse(*ref, &(struct gy_image_ref){0}, &err) < 0 &&
        (pull || gy_image_local_name_check(*ref, NULL) < 0)) {
        sch_call_error(call, 400, "invalid_request", "ref", "ref: %s", err.msg);
        return false;
    }
    if (target->node != NULL && target->cloud != NULL) {
        sch_call_error(call, 400, "invalid_request", "cloud",
                       "node and cloud: give one of them, or neither for every ready node");
        return false;
    }
    if (!pull && target->node == NULL) {
        sch_call_error(call, 400, "invalid_request", "node",
                       "node: required (the node to remove the image from)");
        return false;
    }
    return true;
}

/* Answers a request that could not be sent. */
static void image_refused(struct sch_call *call, const struct gy_error *err)
{
    if (err->code == GY_ENOTFOUND) {
        sch_call_error(call, 404, "not_found", NULL, "%s", err->msg);
        return;
    }
    struct sch_fleet_stats stats;
    sch_fleet_stats(call->api->fleet, &stats);
    if (err->code == GY_EUNAVAILABLE)
        sch_call_error(call, 503,
                       stats.leading && stats.caught_up ? "node_unavailable" : "no_leader", NULL,
                       "%s", err->msg);
    else
        sch_call_error(call, 500, "internal", NULL, "%s", err->msg);
}

/* Every node of a pull answered: 200 with each node's outcome, failed or not. */
static void pull_done(void *data, json_t *results, size_t failed)
{
    struct sch_call *call = data;
    const char *ref = json_string_value(json_object_get(call->body, "ref"));
    sch_call_json(
        call, 200,
        json_pack("{s:s,s:o,s:I}", "ref", ref, "results", results, "failed", (json_int_t)failed));
}

/* POST /v1/images/pull {"ref", "node" | "cloud"}. */
void sch_api_image_pull(struct sch_call *call)
{
    const char *ref;
    struct sch_fleet_image_target target = {0};
    if (!image_body(call, true, &ref, &target))
        return;
    struct gy_error err;
    if (sch_fleet_image_request(call->api->fleet, "pull", ref, &target, SCH_API_IMAGE_PULL_MS,
                                pull_done, call, &err) < 0)
        image_refused(call, &err);
}

/* The node's answer to a removal: 200, or the node's words with the status they mean. */
static void rm_done(void *data, json_t *results, size_t failed)
{
    struct sch_call *call = data;
    const char *ref = json_string_value(json_object_get(call->body, "ref"));
    if (failed == 0) {
        sch_call_json(call, 200, json_pack("{s:s,s:o}", "ref", ref, "results", results));
        return;
    }
    const json_t *first = json_array_get(results, 0);
    const char *node = json_string_value(json_object_get(first, "node"));
    const char *error = json_string_value(json_object_get(first, "error"));
    node = node != NULL ? node : "";
    error = error != NULL ? error : "failed";
    /* The agent's sentences (docs/agent-protocol.md, "Images"). */
    if (strstr(error, " is in use by replica ") != NULL)
        sch_call_error(call, 409, "conflict", NULL, "node %s: %s", node, error);
    else if (strstr(error, " not found on node ") != NULL)
        sch_call_error(call, 404, "not_found", NULL, "node %s: %s", node, error);
    else
        sch_call_error(call, 502, "node_failed", NULL, "node %s: %s", node, error);
    json_decref(results);
}

/* POST /v1/images/rm {"ref", "node"}. */
void sch_api_image_rm(struct sch_call *call)
{
    const char *ref;
    struct sch_fleet_image_target target = {0};
    if (!image_body(call, false, &ref, &target))
        return;
    struct gy_error err;
    if (sch_fleet_image_request(call->api->fleet, "rm", ref, &target, SCH_API_IMAGE_RM_MS, rm_done,
                                call, &err) < 0)
        image_refused(call, &err);
}
