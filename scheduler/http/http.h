/* A small HTTP/1.1 server (and request forwarder) on a libuv loop, built on http_parser:
 * keep-alive, pipelined requests answered in order, asynchronous handlers, body size
 * limits, and timeouts for slow and idle clients. */
#ifndef GANTRY_SCHEDULER_HTTP_HTTP_H
#define GANTRY_SCHEDULER_HTTP_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "common/error.h"

struct sch_http_server;
struct sch_http_conn;

struct sch_http_header {
    char *name; /* lower-cased */
    char *value;
};

/* One parsed request. It stays valid until the handler answers it (sch_http_respond* or
 * sch_http_forward), even if the client goes away meanwhile: the answer is then dropped. */
struct sch_http_request {
    const char *method; /* "GET", "POST", ... */
    char *path;         /* percent-decoded path without the query, e.g. "/v1/workloads/web" */
    char *query;        /* raw query string without '?', or "" */
    struct sch_http_header *headers;
    size_t n_headers;
    char *body; /* NUL-terminated; body_len excludes the NUL */
    size_t body_len;
    char *raw; /* the request exactly as received (request line, headers, body), for forwarding */
    size_t raw_len;
    uint64_t received_ns;       /* uv_hrtime() when the request was complete, for latency metrics */
    struct sch_http_conn *conn; /* private */
    bool answered;              /* private */
    bool conn_gone;             /* true once the client has disconnected */
    void *user;                 /* free for the handler's use */
};

/* Called once per complete request, in the order requests arrive on a connection. The
 * handler answers now or later, exactly once. */
typedef void (*sch_http_handler)(struct sch_http_request *req, void *data);

struct sch_http_options {
    size_t max_body;            /* larger bodies get 413; default 4 MiB */
    size_t max_header;          /* request line plus headers; larger gets 431; default 64 KiB */
    uint64_t header_timeout_ms; /* a request not complete in this time: 408 and close; 10 s */
    uint64_t idle_timeout_ms;   /* a keep-alive connection idle this long is closed; 60 s */
    size_t max_connections;     /* further connections are accepted and closed; 1024 */
    /* sch_http_forward: the header added to relayed requests, so that a server that gets
     * one does not relay it again (default "X-Forwarded-Once"), and the error code of the
     * 503 that says why a relay failed (default "unavailable"). */
    const char *forward_mark;
    const char *forward_fail_code;
};

/* Listens on addr ("HOST:PORT"; port 0 picks one, see sch_http_server_port). An address in
 * use is an error that says so. */
int sch_http_server_start(uv_loop_t *loop, const char *addr, const struct sch_http_options *opts,
                          sch_http_handler handler, void *data, struct sch_http_server **out,
                          struct gy_error *err);
int sch_http_server_port(const struct sch_http_server *server);
/* Stops listening, closes every connection (pending requests are dropped) and frees the
 * server; cb (may be NULL) runs when all handles are closed. */
void sch_http_server_close(struct sch_http_server *server, void (*cb)(void *arg), void *arg);

/* Answers with a status, a content type and a body (copied). extra_headers is NULL or
 * "Name: value\r\n" lines. Frees the request. */
void sch_http_respond(struct sch_http_request *req, int status, const char *content_type,
                      const char *extra_headers, const char *body, size_t len);
/* Answers with a JSON body; takes the reference to body. */
void sch_http_respond_json(struct sch_http_request *req, int status, json_t *body);

/* Answers {"error":{"code":CODE,"message":MSG[,"path":PATH]}}; path may be NULL. */
void sch_http_respond_error(struct sch_http_request *req, int status, const char *code,
                            const char *path, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Streaming answers (logs -f, events -f): a chunked response that the handler feeds and
 * ends. Returns false once the client has gone, so the producer can stop. */
void sch_http_stream_start(struct sch_http_request *req, int status, const char *content_type);
bool sch_http_stream_write(struct sch_http_request *req, const char *data, size_t len);
void sch_http_stream_end(struct sch_http_request *req);

/* Relays the request as received to another HTTP server (HOST:PORT), with the options'
 * forward_mark header added, and answers the client with that server's answer. A request
 * that carries the mark already, an unreachable server or no answer within timeout_ms gives
 * 503 {"error":{"code":FORWARD_FAIL_CODE,"message":WHY}} with Retry-After: 1. */
void sch_http_forward(struct sch_http_request *req, const char *host_port, uint64_t timeout_ms);

/* The answer to sch_http_get: the HTTP status and the body (NUL-terminated, valid during the
 * call only), or status 0 and why there is none (unreachable, no answer in time, not
 * HTTP). */
typedef void (*sch_http_get_cb)(void *data, int status, const char *body, size_t len,
                                const char *failure);
/* Sends GET path to host_port ("HOST:PORT") on loop and calls cb once, within timeout_ms
 * (possibly before returning, when the connection fails at once). A body over max_bytes
 * counts as a failure. Returns an error only for a bad address or path, and then never
 * calls cb. */
int sch_http_get(uv_loop_t *loop, const char *host_port, const char *path, uint64_t timeout_ms,
                 size_t max_bytes, sch_http_get_cb cb, void *data, struct gy_error *err);

/* The value of header name (lower case), or NULL. */
const char *sch_http_header(const struct sch_http_request *req, const char *name);
/* Copies the percent-decoded value of query parameter key into buf; returns false when the
 * key is absent. "?stale" alone gives "". */
bool sch_http_query(const struct sch_http_request *req, const char *key, char *buf, size_t len);

#endif
