/* Joining a running cluster: a worker thread asks it (through any server's API, which
 * forwards to the leader) to add this server; the answer carries the cluster id, which is
 * recorded in the data directory. Retried until it succeeds or the cluster refuses. A
 * follower whose addresses the state lacks (it was bootstrapped and never led) makes the
 * same request of the leader, which then records them. The request is one plain HTTP/1.1
 * POST, made here rather than through libcurl, whose libraries (TLS, Kerberos, LDAP...)
 * would otherwise cost every server about 7 MB of resident memory for this one request. */
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xalloc.h"
#include "scheduler/server.h"

#define JOIN_RETRY_MS 1000

/* Splits "http://HOST[:PORT][/PREFIX]" (checked by main) into its parts. */
static int url_split(const char *url, char *host, size_t host_len, char *port, size_t port_len,
                     char *prefix, size_t prefix_len)
{
    const char *p = url + strlen("http://");
    const char *slash = strchr(p, '/');
    size_t hp = slash ? (size_t)(slash - p) : strlen(p);
    snprintf(prefix, prefix_len, "%s", slash ? slash : "");
    size_t n = strlen(prefix);
    while (n > 0 && prefix[n - 1] == '/')
        prefix[--n] = '\0';
    const char *colon = memchr(p, ':', hp);
    if (colon != NULL) {
        snprintf(host, host_len, "%.*s", (int)(colon - p), p);
        snprintf(port, port_len, "%.*s", (int)(hp - (size_t)(colon - p) - 1), colon + 1);
    } else {
        snprintf(host, host_len, "%.*s", (int)hp, p);
        snprintf(port, port_len, "80");
    }
    return *host != '\0' && *port != '\0' ? 0 : -1;
}

/* Decodes a chunked body in place; returns its length. */
static size_t unchunk(char *body, size_t len)
{
    size_t in = 0, out = 0;
    while (in < len) {
        char *end;
        unsigned long size = strtoul(body + in, &end, 16);
        char *line = strstr(body + in, "\r\n");
        if (line == NULL || size == 0 || end == body + in)
            break;
        in = (size_t)(line - body) + 2;
        if (size > len - in)
            size = len - in;
        memmove(body + out, body + in, size);
        out += size;
        in += size + 2;
    }
    body[out] = '\0';
    return out;
}

/* POSTs text to url and reads the answer: returns the status code (0 when there was none,
 * with the reason in answer) and leaves the body in answer. */
static long http_post(const char *url, const char *text, char *answer, size_t len)
{
    char host[256], port[16], prefix[700];
    answer[0] = '\0';
    if (url_split(url, host, sizeof(host), port, sizeof(port), prefix, sizeof(prefix)) < 0) {
        snprintf(answer, len, "cannot parse URL %s", url);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int grc = getaddrinfo(host, port, &hints, &res);
    if (grc != 0) {
        snprintf(answer, len, "resolve %s: %s", host, gai_strerror(grc));
        return 0;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai != NULL && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        /* Connecting gives up after 2 s; catching up a new server can take a while with a
         * large state, so the answer is awaited for 20 s (then the request is retried). */
        struct timeval connect_tv = {.tv_sec = 2}, answer_tv = {.tv_sec = 20};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &connect_tv, sizeof(connect_tv));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &answer_tv, sizeof(answer_tv));
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            snprintf(answer, len, "connect to %s:%s: %s", host, port, strerror(errno));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return 0;
    size_t body_len = strlen(text);
    size_t req_cap = body_len + 1024;
    char *req = gy_xmalloc(req_cap);
    int req_len = snprintf(req, req_cap,
                           "POST %s/v1/cluster/members HTTP/1.1\r\nHost: %s:%s\r\n"
                           "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                           "Connection: close\r\n\r\n%s",
                           prefix, host, port, body_len, text);
    long status = 0;
    size_t sent = 0;
    while (sent < (size_t)req_len) {
        ssize_t n = send(fd, req + sent, (size_t)req_len - sent, MSG_NOSIGNAL);
        if (n <= 0) {
            snprintf(answer, len, "send to %s:%s: %s", host, port,
                     n < 0 ? strerror(errno) : "closed");
            break;
        }
        sent += (size_t)n;
    }
    free(req);
    if (sent == (size_t)req_len) {
        size_t cap = 65536, have = 0;
        char *buf = gy_xmalloc(cap + 1);
        for (;;) {
            ssize_t n = recv(fd, buf + have, cap - have, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0 || (have += (size_t)n) == cap)
                break;
            /* Done once a body of known length is complete (else at the close). */
            buf[have] = '\0';
            char *head_end = strstr(buf, "\r\n\r\n");
            char *cl = head_end ? strcasestr(buf, "\r\ncontent-length:") : NULL;
            if (cl != NULL && cl < head_end &&
                have >= (size_t)(head_end + 4 - buf) + strtoul(cl + 17, NULL, 10))
                break;
        }
        buf[have] = '\0';
        char *end = strstr(buf, "\r\n\r\n");
        if (have >= 12 && strncmp(buf, "HTTP/1.", 7) == 0 && end != NULL) {
            status = strtol(buf + 9, NULL, 10);
            char *body = end + 4;
            size_t blen = have - (size_t)(body - buf);
            *end = '\0';
            if (strcasestr(buf, "\r\ntransfer-encoding: chunked") != NULL)
                blen = unchunk(body, blen);
            snprintf(answer, len, "%.*s", (int)blen, body);
        } else {
            snprintf(answer, len, "no HTTP answer from %s:%s%s%s", host, port,
                     have == 0 && errno != 0 ? ": " : "",
                     have == 0 && errno ? strerror(errno) : "");
        }
        free(buf);
    }
    close(fd);
    return status;
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
    server->join_status =
        http_post(server->join_target, text, server->join_answer, sizeof(server->join_answer));
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
    if (server->registering) {
        /* Tried again by the next check if it did not take. */
        server->registering = false;
        if (code == 200)
            gy_log_info("addresses recorded by the leader", "url=%s", server->join_target);
        else
            gy_log_debug("addresses not recorded yet", "url=%s status=%ld answer=\"%s\"",
                         server->join_target, code, server->join_answer);
        return;
    }
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
        server->joined = true;
        json_decref(doc);
        return;
    }
    /* Another server joining at the same time holds the one membership change Raft allows
     * at a time: that refusal passes. */
    bool busy = code == 409 && strstr(server->join_answer, "in progress") != NULL;
    if (code >= 400 && code < 500 && code != 404 && code != 408 && code != 429 && !busy) {
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
    snprintf(server->join_target, sizeof(server->join_target), "%s", server->cfg.join_url);
    uv_timer_start(&server->join_timer, join_retry, 0, 0);
}

void sch_join_register_check(struct sch_server *server)
{
    struct sch_node *node = &server->node;
    const struct sch_node_config *cfg = &server->cfg.node;
    if (server->stopping || server->join_active || !server->joined || !node->raft_started ||
        sch_node_is_leader(node))
        return;
    /* Only a voter: a removed server must not add itself back. */
    bool voter = false;
    for (unsigned i = 0; i < node->raft.configuration.n; i++)
        if (node->raft.configuration.servers[i].id == cfg->id)
            voter = node->raft.configuration.servers[i].role == RAFT_VOTER;
    char leader_api[256];
    if (!voter || sch_node_leader(node, leader_api, sizeof(leader_api)) == 0 || *leader_api == '\0')
        return;
    sch_fsm_drain(&node->fsm);
    if (sch_fsm_server_recorded(&node->fsm, cfg->id, cfg->raft_addr, cfg->api_addr,
                                cfg->agent_addr))
        return;
    snprintf(server->join_target, sizeof(server->join_target), "http://%s", leader_api);
    server->registering = true;
    server->join_active = true;
    server->join_work.data = server;
    if (uv_queue_work(server->loop, &server->join_work, join_request, join_finished) != 0)
        server->join_active = server->registering = false;
}
