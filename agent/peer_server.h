/* The agent's layer server: blobs of the node's store over plain HTTP/1.1 for the nodes of
 * its cloud (`GET /v1/blobs/sha256:HEX?repo=DOMAIN/PATH&size=N`), and a blob the store
 * lacks fetched from the registry once, for all of them, and served as it arrives
 * (docs/images.md, "Peers: layers within a cloud"). It runs a libuv loop on a thread of
 * its own, so neither the agent's loop nor libuv's thread pool (busy with starts that may
 * wait for other nodes' layer servers) ever holds it up. */
#ifndef GANTRY_AGENT_PEER_SERVER_H
#define GANTRY_AGENT_PEER_SERVER_H

#include <stdint.h>

#include "agent/pull.h"
#include "common/error.h"

/* The default port of --blob-listen. */
#define AGENT_PEER_SERVER_PORT 7703

struct agent_peer_server_options {
    const char *listen;    /* "HOST:PORT" (IPv4 or [IPv6]); port 0 takes a free one */
    int max_connections;   /* 0: 64; more are answered 503 and closed */
    int header_timeout_ms; /* 0: 10 s to send the request's head (at most 8 KiB) */
    /* 0: 30 s. A connection that moves no byte for this long is closed: a client that
     * takes nothing, or a blob fetched for it that brings nothing. */
    int idle_timeout_ms;
};

struct agent_peer_server;

/* Listens on opts->listen and serves p's store (p must outlive the server; its own pulls
 * may run meanwhile). Errors say what could not be bound ("listen for peers on
 * 10.0.0.5:7703: address already in use"). */
int agent_peer_server_start(struct agent_puller *p, const struct agent_peer_server_options *opts,
                            struct agent_peer_server **out, struct gy_error *err);

/* The address it listens on, with the port it got ("127.0.0.1:40123"). */
const char *agent_peer_server_address(const struct agent_peer_server *s);

/* Closes every connection, stops the downloads it started for peers, waits for its
 * threads and frees it. NULL is ignored. */
void agent_peer_server_stop(struct agent_peer_server *s);

#endif
