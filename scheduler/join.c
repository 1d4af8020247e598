/* Joining a running cluster: a worker thread asks it (through any server's API, which
 * forwards to the leader) to add this server; the answer carries the cluster id, which is
 * recorded in the data directory. Retried until it succeeds or the cluster refuses. */
#include <curl/curl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/server.h"

#define JOIN_RETRY_MS 1000

struct answer {
    char *buf;
    size_t len, cap;
};

static size_t collect(char *data, size_t size, size_t n, void *user)
{
    struct answer *a = user;
    size_t len = size * n;
    if (a->len + len + 1 > a->cap)
        len = a->cap - a->len - 1;
    memcpy(a->buf + a->len, data, len);
    a->len += len;
    a->buf[a->len] = '\0';
    return size * n;
}

static void join_request(uv_work_t *work)
{
    struct sch_server *server = work->data;
    const struct sch_node_config *cfg = &server->cfg.node;
    json_t *body = json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)cfg->id, "raft_address",
                             cfg->raft_addr, "api_address", cfg->api_addr, "agent_address",
                             cfg->agent_addr, "cluster_id", server->node.cluster_id);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    char url[1200];
    size_t base = strlen(server->cfg.join_url);
    while (base > 0 && server->cfg.join_url[base - 1] == '/')
        base--;
    snprintf(url, sizeof(url), "%.*s/v1/cluster/members", (int)base, server->cfg.join_url);
    struct answer a = {server->join_answer, 0, sizeof(server->join_answer)};
    server->join_answer[0] = '\0';
    server->join_status = 0;
    CURL *curl = curl_easy_init();
    if (curl != NULL) {
        struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, &a);
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
        /* Catching up a new server can take a while with a large state; an unanswered
         * request is retried, and a shutdown waits for at most this long. */
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
        CURLcode rc = curl_easy_perform(curl);
        if (rc == CURLE_OK)
            curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &server->join_status);
        else
            snprintf(server->join_answer, sizeof(server->join_answer), "%s",
                     curl_easy_strerror(rc));
        curl_slist_free_all(headers);
        curl_easy_cleanup(curl);
    }
    free(text);
}

static void join_retry(uv_timer_t *timer);

static void join_finished(uv_work_t *work, int status)
{
    struct sch_server *server = work->data;
    server->join_active = false;
    if (server->stopping || status == UV_ECANCELED)
        return;
    long code = server->join_status;
    if (code == 200) {
        json_t *doc = json_loads(server->join_answer, 0, NULL);
        const char *cluster = json_string_value(json_object_get(doc, "cluster_id"));
        struct gy_error err;
        if (cluster != NULL && *cluster != '\0' &&
            sch_node_set_cluster_id(&server->node, cluster, &err) < 0) {
            gy_log_error("refusing to run", "error=\"%s\"", err.msg);
            json_decref(doc);
            server->exit_code = 1;
            sch_server_stop(server);
            return;
        }
        gy_log_info("joined the cluster", "cluster=%s attempts=%u", cluster ? cluster : "",
                    server->join_attempts);
        json_decref(doc);
        return;
    }
    if (code >= 400 && code < 500 && code != 404 && code != 408 && code != 429) {
        /* The cluster refused this server (another cluster's data, a taken id or address):
         * retrying cannot help. */
        gy_log_error("the cluster refused to add this server", "status=%ld answer=%s", code,
                     server->join_answer);
        server->exit_code = 1;
        sch_server_stop(server);
        return;
    }
    gy_log_warn("join not done yet, retrying", "url=%s status=%ld answer=\"%s\"",
                server->cfg.join_url, code, server->join_answer);
    uv_timer_start(&server->join_timer, join_retry, JOIN_RETRY_MS, 0);
}

static void join_retry(uv_timer_t *timer)
{
    struct sch_server *server = timer->data;
    if (server->stopping || server->join_active)
        return;
    server->join_active = true;
    server->join_attempts++;
    server->join_work.data = server;
    uv_queue_work(server->loop, &server->join_work, join_request, join_finished);
}

void sch_join_start(struct sch_server *server)
{
    gy_log_info("joining", "url=%s", server->cfg.join_url);
    uv_timer_start(&server->join_timer, join_retry, 0, 0);
}
