/* The smaller commands: delete, scale, logs, events and version. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/quantity.h"
#include "common/spec.h"
#include "common/xalloc.h"
#include "ctl/ctl.h"

/* How long one events long-poll waits on the server, and how much longer the client gives
 * the answer before it calls the server unreachable. */
#define EVENTS_WAIT_S    30
#define EVENTS_SLACK_MS  15000L
#define EVENTS_PAGES_MAX 100000
#define EVENTS_SINCE_MAX (INT64_C(1) << 62)

int ctl_fail(struct ctl_context *ctx, const struct gy_error *err)
{
    fprintf(ctx->err, "gantry: %s\n", err->msg);
    /* A request the server refused as invalid is invalid input, like a local check. */
    return err->code == GY_EINVAL ? CTL_EXIT_USAGE : CTL_EXIT_FAILED;
}

static int bad_name(struct ctl_context *ctx, const char *command, const char *name)
{
    fprintf(ctx->err,
            "gantry: %s: \"%s\" is not a workload name (a DNS label: 1 to 63 lower-case letters, "
            "digits and '-', starting and ending with a letter or digit)\n",
            command, name);
    return CTL_EXIT_USAGE;
}

/* Sends a write and returns its JSON answer, or prints the failure. */
int ctl_write_request(struct ctl_context *ctx, const char *method, const char *path,
                      const json_t *body, json_t **answer, int *exit_code)
{
    struct ctl_response resp;
    struct gy_error err;
    *answer = NULL;
    if (ctl_client_request(&ctx->client, method, path, body, 0, &resp, &err) < 0) {
        *exit_code = ctl_fail(ctx, &err);
        return -1;
    }
    if (resp.status < 200 || resp.status >= 300) {
        ctl_response_error(&resp, &err);
        ctl_response_free(&resp);
        *exit_code = ctl_fail(ctx, &err);
        return -1;
    }
    *answer = resp.json ? json_incref(resp.json) : json_object();
    ctl_response_free(&resp);
    return 0;
}

int ctl_cmd_delete(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    const char *name = inv->args[0];
    if (inv->n_args == 2) {
        /* "delete workload web" reads naturally too. */
        if (strcmp(inv->args[0], "workload") != 0 && strcmp(inv->args[0], "workloads") != 0) {
            fprintf(ctx->err,
                    "gantry: delete: unexpected argument \"%s\" (usage: gantry delete "
                    "NAME)\n",
                    inv->args[1]);
            return CTL_EXIT_USAGE;
        }
        name = inv->args[1];
    }
    if (!gy_spec_name_valid(name))
        return bad_name(ctx, "delete", name);
    char *esc = ctl_url_escape(name);
    char *path = gy_xasprintf("/v1/workloads/%s", esc);
    free(esc);
    json_t *answer;
    int exit_code;
    int rc = ctl_write_request(ctx, "DELETE", path, NULL, &answer, &exit_code);
    free(path);
    if (rc < 0)
        return exit_code;
    fprintf(ctx->out, "workload/%s deleted\n", name);
    json_decref(answer);
    return CTL_EXIT_OK;
}

int ctl_cmd_scale(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    const char *name = inv->args[0];
    if (!gy_spec_name_valid(name))
        return bad_name(ctx, "scale", name);
    int64_t n;
    struct gy_error err;
    if (gy_count_parse(inv->args[1], GY_SPEC_REPLICAS_MAX, &n, &err) < 0) {
        fprintf(ctx->err, "gantry: scale: replicas \"%s\": must be a whole number from 0 to %d\n",
                inv->args[1], GY_SPEC_REPLICAS_MAX);
        return CTL_EXIT_USAGE;
    }
    char *esc = ctl_url_escape(name);
    char *path = gy_xasprintf("/v1/workloads/%s/scale", esc);
    free(esc);
    json_t *body = json_pack("{s:I}", "replicas", (json_int_t)n);
    json_t *answer;
    int exit_code;
    int rc = ctl_write_request(ctx, "POST", path, body, &answer, &exit_code);
    json_decref(body);
    free(path);
    if (rc < 0)
        return exit_code;
    if (strcmp(ctl_json_str(answer, "outcome"), "unchanged") == 0)
        fprintf(ctx->out, "workload/%s unchanged: already at %lld replicas (generation %lld)\n",
                name, (long long)n, ctl_json_int(answer, "generation"));
    else
        fprintf(ctx->out, "workload/%s scaled to %lld replicas (generation %lld)\n", name,
                (long long)n, ctl_json_int(answer, "generation"));
    json_decref(answer);
    return CTL_EXIT_OK;
}

/* ---------------------------------------------------------------------------------------
 * logs */

static size_t write_out(const char *data, size_t len, void *arg)
{
    FILE *out = arg;
    size_t n = fwrite(data, 1, len, out);
    fflush(out);
    return n;
}

int ctl_cmd_logs(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    const char *replica = inv->args[0];
    if (*replica == '\0' || strlen(replica) > 253) {
        fprintf(ctx->err, "gantry: logs: \"%s\" is not a replica name\n", replica);
        return CTL_EXIT_USAGE;
    }
    char *esc = ctl_url_escape(replica);
    bool follow = ctl_opt_set(inv, "follow");
    char *path = gy_xasprintf("/v1/replicas/%s/logs%s", esc, follow ? "?follow=1" : "");
    free(esc);
    struct ctl_response resp;
    struct gy_error err;
    int rc = ctl_client_stream(&ctx->client, path, write_out, ctx->out, &resp, &err);
    if (rc < 0) {
        free(path);
        return ctl_fail(ctx, &err);
    }
    int exit_code = CTL_EXIT_OK;
    if (resp.status == 404 || resp.status == 405) {
        /* The router's own 404 names the endpoint; a replica that does not exist is a 404
         * with the replica in its message. */
        const char *message =
            json_string_value(json_object_get(json_object_get(resp.json, "error"), "message"));
        if (message == NULL || strncmp(message, "no such endpoint", 16) == 0 ||
            resp.status == 405) {
            char *bare = gy_xstrndup(path, strcspn(path, "?"));
            fprintf(ctx->err,
                    "gantry: the server does not serve logs (GET %s answered %ld); this control "
                    "plane has no log endpoint\n",
                    bare, resp.status);
            free(bare);
            exit_code = CTL_EXIT_FAILED;
        } else {
            ctl_response_error(&resp, &err);
            exit_code = ctl_fail(ctx, &err);
        }
    } else if (resp.status < 200 || resp.status >= 300) {
        ctl_response_error(&resp, &err);
        exit_code = ctl_fail(ctx, &err);
    }
    free(path);
    ctl_response_free(&resp);
    return exit_code;
}

/* ---------------------------------------------------------------------------------------
 * events */

static const char *event_time(long long ms, char buf[32])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static void event_line(FILE *out, const json_t *e)
{
    char when[32];
    fprintf(out, "%-6lld %s  %-10s %-24s %s  (%s)\n", ctl_json_int(e, "seq"),
            event_time(ctl_json_int(e, "time_ms"), when), ctl_json_str(e, "kind"),
            ctl_json_str(e, "object"), ctl_json_str(e, "message"), ctl_json_str(e, "actor"));
    fflush(out);
}

int ctl_cmd_events(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    int64_t since = 0;
    const char *since_text = ctl_opt(inv, "since");
    struct gy_error err;
    if (since_text != NULL && gy_count_parse(since_text, EVENTS_SINCE_MAX, &since, &err) < 0) {
        fprintf(ctx->err,
                "gantry: events: --since \"%s\": must be a sequence number (a whole "
                "number, 0 or more)\n",
                since_text);
        return CTL_EXIT_USAGE;
    }
    const char *workload = ctl_opt(inv, "workload");
    if (workload != NULL && !gy_spec_name_valid(workload))
        return bad_name(ctx, "events --workload", workload);
    char *object = workload ? gy_xasprintf("workload/%s", workload) : NULL;
    bool follow = ctl_opt_set(inv, "follow");
    struct ctl_table t;
    static const char *const head[] = {"SEQ", "TIME", "KIND", "OBJECT", "MESSAGE", "ACTOR"};
    ctl_table_init(&t, 6, head);
    int exit_code = CTL_EXIT_OK;
    bool caught_up = false;
    for (long page = 0; follow || page < EVENTS_PAGES_MAX; page++) {
        char path[96];
        /* Until the trail is read to its end, pages come back at once; after that a
         * follower parks on the server until something happens. */
        int wait = follow && caught_up ? EVENTS_WAIT_S : 0;
        snprintf(path, sizeof(path), "/v1/events?since=%lld&wait=%d", (long long)since, wait);
        struct ctl_response resp;
        if (ctl_client_request(&ctx->client, "GET", path, NULL,
                               wait ? wait * 1000L + EVENTS_SLACK_MS : 0, &resp, &err) < 0) {
            exit_code = ctl_fail(ctx, &err);
            break;
        }
        if (resp.status != 200 || !json_is_array(json_object_get(resp.json, "items"))) {
            if (resp.status == 200)
                gy_error_set(&err, GY_EPROTO, "the server's events answer has no \"items\" list");
            else
                ctl_response_error(&resp, &err);
            ctl_response_free(&resp);
            exit_code = ctl_fail(ctx, &err);
            break;
        }
        const json_t *items = json_object_get(resp.json, "items");
        size_t i;
        const json_t *e;
        json_array_foreach(items, i, e)
        {
            if (object != NULL && strcmp(ctl_json_str(e, "object"), object) != 0)
                continue;
            if (follow) {
                event_line(ctx->out, e);
                continue;
            }
            char when[32];
            char *cells[6] = {ctl_cell("%lld", ctl_json_int(e, "seq")),
                              gy_xstrdup(event_time(ctl_json_int(e, "time_ms"), when)),
                              gy_xstrdup(ctl_json_str(e, "kind")),
                              gy_xstrdup(ctl_json_str(e, "object")),
                              gy_xstrdup(ctl_json_str(e, "message")),
                              gy_xstrdup(ctl_json_str(e, "actor"))};
            ctl_table_add(&t, (const char *const *)cells);
            for (int k = 0; k < 6; k++)
                free(cells[k]);
        }
        long long last = ctl_json_int(resp.json, "last");
        size_t n = json_array_size(items);
        ctl_response_free(&resp);
        if (last > since)
            since = last;
        if (n == 0) {
            if (!follow)
                break;
            caught_up = true;
        }
    }
    if (!follow && exit_code == CTL_EXIT_OK) {
        if (t.n_rows > 1)
            ctl_table_print(&t, ctx->out);
        else
            fprintf(ctx->err, "No events found.\n");
    }
    ctl_table_free(&t);
    free(object);
    return exit_code;
}

/* ---------------------------------------------------------------------------------------
 * version */

int ctl_cmd_version(struct ctl_context *ctx, const struct ctl_invocation *inv)
{
    (void)inv;
    fprintf(ctx->out, "Client: gantry %s\n", GANTRY_VERSION);
    fflush(ctx->out);
    json_t *doc;
    struct gy_error err;
    if (ctl_get_json(&ctx->client, "/healthz", &doc, &err) < 0)
        return ctl_fail(ctx, &err);
    /* The version comes from the answer's "version" field or its Server header, whichever
     * the control plane sends. */
    const char *version = json_string_value(json_object_get(doc, "version"));
    if (version != NULL)
        fprintf(ctx->out, "Server: gantry-scheduler %s at %s\n", version, ctx->client.base);
    else if (ctx->client.server[0] != '\0')
        fprintf(ctx->out, "Server: %s at %s\n", ctx->client.server, ctx->client.base);
    else
        fprintf(ctx->out, "Server: reachable at %s (it does not report its version)\n",
                ctx->client.base);
    json_decref(doc);
    return CTL_EXIT_OK;
}
