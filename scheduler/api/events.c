/* GET /v1/events: pages of the audit trail, and the long-poll that parks a call until an
 * applied command writes an event past its ?since, its ?wait ends, or the server stops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/api/api_internal.h"
#include "scheduler/state/query_api.h"

/* Events in one answer; a client asks again from "last" for more. */
#define EVENTS_PAGE 1000

static void event_append(void *data, const struct sch_event_view *e)
{
    json_array_append_new(data,
                          json_pack("{s:I,s:I,s:s,s:s,s:s,s:s}", "seq", (json_int_t)e->seq,
                                    "time_ms", (json_int_t)e->time_ms, "actor", e->actor, "kind",
                                    e->kind, "object", e->object, "message", e->message));
}

/* The answer to the call: {"items": [...], "last": SEQ}, "last" being the sequence number
 * of the last event in it or ?since when there is none. *status is 200, or 500 with the
 * API's error body when the trail could not be read. */
static json_t *events_answer(struct sch_call *call, int *status)
{
    json_t *items = json_array();
    struct gy_error err;
    if (sch_view_events(&call->api->node->fsm, call->since, EVENTS_PAGE, event_append, items,
                        &err) < 0) {
        json_decref(items);
        *status = 500;
        return json_pack("{s:{s:s,s:s}}", "error", "code", "internal", "message", err.msg);
    }
    size_t n = json_array_size(items);
    json_int_t last = n ? json_integer_value(json_object_get(json_array_get(items, n - 1), "seq"))
                        : (json_int_t)call->since;
    *status = 200;
    return json_pack("{s:o,s:I}", "items", items, "last", last);
}

static void unpark(struct sch_call *call)
{
    struct sch_call **p = &call->api->parked;
    while (*p != NULL && *p != call)
        p = &(*p)->next_parked;
    if (*p == call)
        *p = call->next_parked;
}

static void parked_closed(uv_handle_t *handle)
{
    sch_call_free(handle->data);
}

/* Answers a parked long-poll at once (the HTTP server may be closing right after), then
 * frees the call when its timer handle is closed. The caller has unparked it. */
static void wake(struct sch_call *call)
{
    uv_timer_stop(&call->timer);
    int status;
    json_t *body = events_answer(call, &status);
    sch_call_json_keep(call, status, body);
    uv_close((uv_handle_t *)&call->timer, parked_closed);
}

static void park_timeout(uv_timer_t *timer)
{
    struct sch_call *call = timer->data;
    unpark(call);
    wake(call);
}

void sch_api_applied(struct sch_api *api)
{
    uint64_t last = api->node->fsm.last_event;
    struct sch_call **p = &api->parked;
    while (*p != NULL) {
        struct sch_call *call = *p;
        if (last > call->since) {
            *p = call->next_parked;
            wake(call);
        } else {
            p = &call->next_parked;
        }
    }
}

void sch_api_release_parked(struct sch_api *api)
{
    while (api->parked != NULL) {
        struct sch_call *call = api->parked;
        api->parked = call->next_parked;
        wake(call);
    }
}

/* Reads ?key as a whole number up to max into *out (0 when absent); answers 400 and
 * returns false when it is not one. */
static bool query_number(struct sch_call *call, const char *key, uint64_t max, uint64_t *out)
{
    char value[32];
    *out = 0;
    if (!sch_http_query(call->req, key, value, sizeof(value)))
        return true;
    char *end;
    unsigned long long v = strtoull(value, &end, 10);
    if (*value == '\0' || *end != '\0' || *value == '-' || v > max) {
        sch_call_error(call, 400, "invalid_request", key,
                       "?%s must be a whole number from 0 to %llu", key, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

void sch_api_events_list(struct sch_call *call)
{
    struct sch_api *api = call->api;
    uint64_t wait;
    if (!query_number(call, "since", UINT64_MAX / 2, &call->since) ||
        !query_number(call, "wait", api->cfg.max_wait_s, &wait))
        return;
    call->wait_s = (unsigned)wait;
    if (api->node->fsm.last_event > call->since || call->wait_s == 0 || api->stopping) {
        int status;
        json_t *body = events_answer(call, &status);
        sch_call_json(call, status, body);
        return;
    }
    uv_timer_init(api->loop, &call->timer);
    call->timer.data = call;
    uv_timer_start(&call->timer, park_timeout, (uint64_t)call->wait_s * 1000, 0);
    call->next_parked = api->parked;
    api->parked = call;
}
