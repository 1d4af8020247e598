/* The agent's session with the control plane: one TCP connection to a server's agent
 * stream carrying length-prefixed AgentFrame messages (docs/agent-protocol.md). Follows
 * redirects to the leader, reconnects with jittered exponential backoff, says hello again
 * (with the agent's full set of replicas) after every reconnect, and leaves a server it has
 * not heard from within the silence limit the leader's Welcome gave, for the others. */
#ifndef GANTRY_AGENT_SESSION_H
#define GANTRY_AGENT_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/error.h"
#include "proto/gantry.pb-c.h"

struct agent_session;

struct agent_session_callbacks {
    /* Packs the Hello frame to send on a new connection (gy_frame_pack of an AgentFrame
     * with the node and every local replica) into *frame, which the session frees. */
    int (*make_hello)(void *data, uint8_t **frame, size_t *len);
    /* The server accepted the session. */
    void (*on_welcome)(void *data, const Gantry__Welcome *welcome);
    /* The leader assigned or withdrew replicas. */
    void (*on_assignment)(void *data, const Gantry__Assignment *assignment);
    /* The server asks for a replica's log. */
    void (*on_log_request)(void *data, const Gantry__LogRequest *request);
    /* The leader asks for a replica's load metric (autoscaling). */
    void (*on_metric_probe)(void *data, const Gantry__MetricProbe *probe);
    /* The leader asks to pull or remove an image (`gantry image pull|rm`); may be NULL. */
    void (*on_image_request)(void *data, const Gantry__ImageRequest *request);
    /* The leader's set of nodes to route to directly; may be NULL. */
    void (*on_network_peers)(void *data, const Gantry__NetworkPeers *peers);
    /* The leader asks for a new tunnel key pair (gantry rotate-key); may be NULL. */
    void (*on_rotate_tunnel_key)(void *data);
    /* The connection went away (after a welcome); the session reconnects by itself. */
    void (*on_disconnect)(void *data);
};

/* The limits before any Welcome: those a leader with the default node-down timeout (5 s)
 * sends (see sch_liveness_session_timeouts), so that an agent that has not been welcomed
 * yet leaves a silent server in time too. */
#define AGENT_SESSION_SILENCE_MS 2500
#define AGENT_SESSION_CONNECT_MS 500
/* The limits after a Welcome without them, from a server that predates them. */
#define AGENT_SESSION_LEGACY_SILENCE_MS 10000
#define AGENT_SESSION_LEGACY_CONNECT_MS 2000

struct agent_session_options {
    uint64_t backoff_min_ms;     /* first retry delay; default 100 ms */
    uint64_t backoff_max_ms;     /* cap; default 5 s */
    uint64_t connect_timeout_ms; /* a TCP connect; default AGENT_SESSION_CONNECT_MS */
    /* No frame from the server for this long means the connection is dead: the agent
     * leaves it for another server; default AGENT_SESSION_SILENCE_MS. A Welcome replaces
     * both with the leader's limits. */
    uint64_t read_timeout_ms;
};

/* servers is a comma-separated list of HOST:PORT, tried in turn. Connection attempts start
 * at once on loop. */
int agent_session_start(uv_loop_t *loop, const char *servers,
                        const struct agent_session_options *opts,
                        const struct agent_session_callbacks *cb, void *data,
                        struct agent_session **out, struct gy_error *err);

/* Sends one frame if the session is welcomed; returns -GY_EUNAVAILABLE otherwise (the
 * next hello carries the full state anyway). */
int agent_session_send(struct agent_session *s, const Gantry__AgentFrame *frame);

/* True between a welcome and the next disconnect. */
bool agent_session_ready(const struct agent_session *s);

/* The server this session is connected to (HOST:PORT), or NULL. */
const char *agent_session_server(const struct agent_session *s);

/* The limits in force: the options' until a Welcome, then the Welcome's (or, when it has
 * none, AGENT_SESSION_LEGACY_*). */
void agent_session_timeouts(const struct agent_session *s, uint64_t *connect_ms,
                            uint64_t *silence_ms);

/* Closes the connection and frees the session once libuv has released its handles; cb
 * (may be NULL) runs then. */
void agent_session_close(struct agent_session *s, void (*cb)(void *arg), void *arg);

#endif
