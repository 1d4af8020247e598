/* What the puller (pull.c) shares with the layer server (peer_server.c): the node's
 * download slots, the blobs this process is downloading, and the registry download of one
 * blob into the store. Not for the rest of the agent. */
#ifndef GANTRY_AGENT_PULL_INTERNAL_H
#define GANTRY_AGENT_PULL_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "agent/pull.h"

/* Two counts of slots, each of the puller's max_downloads. The node's own pulls (from the
 * registry or from peers) take PULLS, before they wait for a download of the same blob in
 * flight; the layer server's downloads for peers take PEERS, after they became the blob's
 * one download. One count for both could deadlock two nodes: each one's pulls holding
 * every slot while they wait for the other's layer server, whose download waits for a
 * slot. With two, a PEERS slot is only ever held by a download from the registry, and a
 * PULLS slot by a download from the registry or from a peer's layer server. */
enum agent_slot_kind {
    AGENT_SLOTS_PULLS,
    AGENT_SLOTS_PEERS,
};

/* Takes a download slot of kind, blocking while all are taken. False (nothing taken) when
 * *cancel was set meanwhile (cancel may be NULL). A puller without shared state (one put
 * together by hand) has no bound: always true. */
bool agent_pull_slot_take(struct agent_puller *p, enum agent_slot_kind kind,
                          const atomic_bool *cancel);
void agent_pull_slot_give(struct agent_puller *p, enum agent_slot_kind kind);

/* Makes the caller this process's one download of digest: 1 when it is (it must call
 * agent_pull_flight_end), 0 when the store holds the blob, after waiting for a download
 * of it in flight if there was one (a failed one makes the caller the next), -1 when
 * *cancel was set while it waited. */
int agent_pull_flight_begin(struct agent_puller *p, const char *digest, const atomic_bool *cancel);
void agent_pull_flight_end(struct agent_puller *p, const char *digest);
/* True while a download of digest is in flight in this process. */
bool agent_pull_flight_active(struct agent_puller *p, const char *digest);

/* Fetches blob of ref's repository from the registry (or its mirrors) into the store with
 * handle reg: holds the store's ingest lock of the blob (another process may download it),
 * resumes the partial file and commits it. The caller owns the blob's flight. fetched
 * grows by the bytes that came over the network. */
int agent_pull_blob_registry(struct agent_puller *p, struct agent_registry *reg,
                             const struct gy_image_ref *ref, const struct agent_descriptor *blob,
                             int64_t *fetched, struct gy_error *err);

#endif
