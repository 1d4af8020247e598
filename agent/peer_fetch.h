/* Layers from the nodes of this node's cloud: which node a blob is asked of first
 * (rendezvous hashing over the blob's digest and the node names), and the HTTP client of
 * their layer servers (agent/peer_server.h), streaming a blob into a file while it checks
 * the blob's SHA-256 (docs/images.md, "Peers: layers within a cloud"). */
#ifndef GANTRY_AGENT_PEER_FETCH_H
#define GANTRY_AGENT_PEER_FETCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/registry.h"
#include "common/error.h"

/* The most peers a pull is given (the leader sends at most this many). */
#define AGENT_IMAGE_PEERS_MAX 16
/* A node name is a DNS label. */
#define AGENT_PEER_NODE_MAX 63
/* "HOST:PORT" of a layer server. */
#define AGENT_PEER_ADDRESS_MAX 255

/* A node of the same cloud and its layer server. */
struct agent_image_peer {
    char node[AGENT_PEER_NODE_MAX + 1];
    char address[AGENT_PEER_ADDRESS_MAX + 1]; /* HOST:PORT */
};

/* True when s is HOST:PORT of at most AGENT_PEER_ADDRESS_MAX characters: HOST an IPv4
 * address, a DNS name or a bracketed IPv6 address, PORT 1 to 65535. */
bool agent_peer_address_valid(const char *s);

/* The rendezvous score of node for the blob digest: the first 8 bytes, big-endian, of
 * SHA-256(digest "\n" node). Every node computes the same scores, so every node asks the
 * same node first for a blob, and that node alone fetches it from the registry. */
uint64_t agent_peer_score(const char *digest, const char *node);

/* Orders nodes[0..n) for digest, highest score first (equal scores by name): order[k] is
 * the index in nodes of the k-th to ask. The same set of names gives the same order,
 * whatever order it is given in. */
void agent_peer_rank(const char *digest, const char *const *nodes, size_t n, size_t *order);

/* ---------------------------------------------------------------------------------------
 * The client */

/* Called on the fetching thread as a blob arrives: bytes in the file so far out of total,
 * at most every 256 KiB, and once at the end. */
typedef void (*agent_peer_progress_fn)(void *arg, const char *digest, int64_t done, int64_t total);

struct agent_peer_options {
    long connect_timeout_ms;         /* 0: 3 s (peers are in the same cloud) */
    long low_speed_time_s;           /* 0: 30 s below 1 KiB/s aborts */
    const atomic_bool *cancel;       /* NULL, or set to true to stop */
    agent_peer_progress_fn progress; /* NULL: none */
    void *progress_arg;
};

/* One libcurl handle, for one thread at a time (connections to a peer are not kept: its
 * server answers one request per connection). */
struct agent_peer_client;

int agent_peer_client_new(const struct agent_peer_options *opts, struct agent_peer_client **out,
                          struct gy_error *err);
void agent_peer_client_free(struct agent_peer_client *c);

/* GETs blob (digest and size from a manifest; a size below 0 for a manifest known by its
 * digest alone, then at most AGENT_REGISTRY_MANIFEST_MAX bytes) of repo (a normalised repository
 * name, "registry.example:5000/team/web", which a peer that lacks the blob fetches it from) from
 * peer's layer server into path, replacing whatever the file held, and checks its size and SHA-256
 * as it streams. A blob that is not what blob names is removed, and the error (GY_EPROTO) names the
 * blob, the peer and the digest it had; other failures (GY_EUNAVAILABLE for a peer that cannot be
 * reached or stops answering, GY_ETIMEOUT, GY_ENOTFOUND, GY_EPROTO) leave nothing in path either.
 */
int agent_peer_blob_fetch(struct agent_peer_client *c, const struct agent_image_peer *peer,
                          const char *repo, const struct agent_descriptor *blob, const char *path,
                          struct gy_error *err);

#endif
