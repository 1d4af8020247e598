/* Private pieces of the HTTP server shared by http.c (the libuv transport), http_conn.c (the
 * socket-free protocol engine) and http_forward.c (the request forwarder). */
#ifndef GANTRY_SCHEDULER_HTTP_HTTP_INTERNAL_H
#define GANTRY_SCHEDULER_HTTP_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <uv.h>

#include "scheduler/http/http.h"

/* At most this many requests of one connection wait for (or sit in) their answer; the
 * connection stops reading until the oldest is sent. */
#define HTTP_MAX_IN_FLIGHT 64

/* A forwarded answer larger than this is treated as a failed relay. */
#define HTTP_FORWARD_MAX_BODY (64u * 1024 * 1024)

/* A connection whose client leaves more than this many answer bytes unread is closed. */
#define HTTP_MAX_WRITE_QUEUE (16u * 1024 * 1024)

/* How long a connection that is being closed keeps draining the client's bytes, so that a
 * final error answer is not destroyed by a TCP reset before the client read it. */
#define HTTP_LINGER_MS 2000

/* A growable byte buffer that always keeps a NUL after its contents. */
struct http_buf {
    char *data;
    size_t len;
    size_t cap;
};

void http_buf_append(struct http_buf *b, const void *p, size_t n);
void http_buf_printf(struct http_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Returns the contents (never NULL, the caller frees) and empties the buffer. */
char *http_buf_steal(struct http_buf *b, size_t *len);
void http_buf_free(struct http_buf *b);

/* One request of a connection and, once answered, its answer until it is sent. */
struct http_entry {
    struct sch_http_request req; /* first member: a request pointer is an entry pointer */
    struct http_entry *next;
    struct http_buf out; /* answer bytes not yet handed to the transport */
    bool done;           /* the whole answer is in out (or already sent) */
    bool streaming;      /* a chunked answer is being produced */
    bool chunked;        /* the stream uses chunked framing (false for HTTP/1.0 clients) */
    bool close_after;    /* the connection closes once this answer is sent */
    bool http10;         /* the client speaks HTTP/1.0 (no chunked framing) */
    bool keep_alive_10;  /* an HTTP/1.0 client asked for keep-alive: confirm it */
    bool head;           /* a HEAD request: answers carry no body */
};

/* What the protocol engine needs from its transport. */
struct http_conn_ops {
    /* Sends len bytes; takes ownership of buf (released with free()). */
    void (*send)(struct sch_http_conn *conn, char *buf, size_t len);
    /* Everything sent so far is the last output: deliver it, then close the connection. */
    void (*finish)(struct sch_http_conn *conn);
    /* Stops (false) or restarts (true) reading from the client. */
    void (*set_reading)(struct sch_http_conn *conn, bool on);
    /* Room appeared in the request queue: call http_conn_resume soon, from the loop rather
     * than from inside the answer that made the room. */
    void (*wake)(struct sch_http_conn *conn);
    /* Parsing or answering progressed: timers may need re-arming. */
    void (*changed)(struct sch_http_conn *conn);
};

/* A client connection: the parser, the request being received, the queue of requests in
 * arrival order, and (when it runs on a server) its libuv handles. */
struct sch_http_conn {
    const struct http_conn_ops *ops;
    const struct sch_http_options *opts;
    sch_http_handler handler;
    void *handler_data;
    struct sch_http_server *server; /* NULL when the engine runs without sockets */

    http_parser parser;
    struct http_entry *cur; /* the request being received */
    struct http_buf raw;    /* its bytes so far */
    struct http_buf url;
    struct http_buf field;
    struct http_buf value;
    struct http_buf body;
    size_t n_headers_cap;
    bool in_value;
    bool headers_done;
    const char *exec_buf; /* start of the bytes now inside http_parser_execute */
    int reject_status;    /* set by a parser callback that refuses the request */
    const char *reject_code;
    char reject_msg[160];
    bool partial; /* a request has begun and is not complete */
    uint64_t partial_since_ns;

    struct http_entry *head; /* requests in arrival order, answered or not */
    struct http_entry *tail;
    size_t in_flight;
    char *stash; /* bytes read but not parsed while the queue was full */
    size_t stash_len;
    bool feeding;  /* inside http_conn_feed: a nested resume must wait */
    bool paused;   /* the queue is full */
    bool stopped;  /* no further request will be parsed */
    bool finished; /* the last answer has been handed to the transport */
    bool gone;     /* the transport is closed: answers are dropped */

    /* Transport state (http.c). */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_timer_t resume_timer;
    uv_shutdown_t shutdown_req;
    int open_handles;
    bool closing;
    bool lingering;
    bool reading;
    struct sch_http_conn *prev;
    struct sch_http_conn *next;
};

/* Prepares conn (zeroed by the caller) for a new client. */
void http_conn_init(struct sch_http_conn *conn, const struct http_conn_ops *ops,
                    const struct sch_http_options *opts, sch_http_handler handler, void *data);
/* Parses client bytes, hands each complete request to the handler and keeps what does not
 * fit in the queue for http_conn_resume. */
void http_conn_feed(struct sch_http_conn *conn, const char *data, size_t len);
/* Parses the bytes kept while the queue was full, if it has room now. */
void http_conn_resume(struct sch_http_conn *conn);
/* Sends the answers at the head of the queue that are ready, in request order. */
void http_conn_flush(struct sch_http_conn *conn);
/* Answers the request being received with an error and closes the connection after it
 * (408 when the client is too slow). */
void http_conn_reject(struct sch_http_conn *conn, int status, const char *code, const char *msg);
/* The transport is closing: queued answers are dropped, unanswered requests are marked
 * conn_gone and live on until their handler answers them. Safe from any callback. */
void http_conn_abort(struct sch_http_conn *conn);
/* Frees what the engine holds; call after http_conn_abort, once no callback can run. */
void http_conn_release(struct sch_http_conn *conn);

/* The options with every zero field replaced by its default. */
void http_options_fill(struct sch_http_options *out, const struct sch_http_options *in);
const char *http_status_text(int status);
/* Answers with the JSON error body and extra header lines (NULL or "Name: value\r\n"). */
void http_respond_error_extra(struct sch_http_request *req, int status, const char *code,
                              const char *extra_headers, const char *message);
/* Decodes %XX escapes (and '+' as a space when plus_is_space) of src[0..len) into a new
 * string; returns NULL on a malformed escape or a decoded NUL byte. */
char *http_percent_decode(const char *src, size_t len, bool plus_is_space);

/* Parses "HOST:PORT" where HOST is an IPv4 address, "[IPv6]" or localhost. */
int http_parse_addr(const char *addr, struct sockaddr_storage *ss, struct gy_error *err);

/* The loop a server runs on; forwarded requests use it. */
const struct sch_http_options *http_server_options(const struct sch_http_server *server);
uv_loop_t *http_server_loop(struct sch_http_server *server);
/* A request being relayed to another server (http_forward.c). */
struct http_forward {
    struct sch_http_request *req;
    struct sch_http_server *server;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    uv_write_t write_req;
    char *out; /* the relayed request */
    size_t out_len;
    bool head; /* the relayed request is a HEAD: its answer has no body */
    http_parser parser;
    struct http_buf field;
    struct http_buf value;
    bool in_value;
    struct http_buf content_type;
    struct http_buf retry_after;
    struct http_buf body;
    bool have_content_type;
    bool have_retry_after;
    bool interim; /* the answer being parsed is a 1xx interim answer */
    bool complete;
    bool finished;
    bool sent;   /* the request went out: the target may have acted on it */
    bool unsafe; /* not GET or HEAD: a relay that fails after sending leaves its effect unknown */
    int open_handles;
    char target[128];
    struct http_forward *server_prev;
    struct http_forward *server_next;
};

/* Lets the server wait for (and cancel) the forwards it started before it frees itself. */
void http_server_forward_add(struct sch_http_server *server, struct http_forward *fwd);
void http_server_forward_remove(struct sch_http_server *server, struct http_forward *fwd);
/* Fails a forward in progress (its answer goes nowhere: the server is closing). */
void http_forward_cancel(struct http_forward *fwd);

#endif
