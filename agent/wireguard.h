/* WireGuard tunnels between nodes of different clouds, through wireguard-go (the user-space
 * implementation: the node's kernel may lack the module). The agent starts one wireguard-go
 * per node as a child that outlives it, like replica namespaces outlive agent restarts, and
 * configures it over its UAPI socket, /var/run/wireguard/INTERFACE.sock, with the text
 * protocol of https://www.wireguard.com/xplatform/.
 *
 * Calls wait for wireguard-go (at most a few seconds each): call them on a worker thread,
 * not on the event loop. One handle is not safe to use from several threads at once. */
#ifndef GANTRY_AGENT_WIREGUARD_H
#define GANTRY_AGENT_WIREGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define AGENT_WG_KEY_B64 45 /* base64 of a 32-byte key, with the NUL */
#define AGENT_WG_PORT    51820

struct agent_wg;

struct agent_wg_config {
    const char *interface; /* e.g. "gantry-wg"; at most 15 characters */
    const char *data_dir;  /* keeps DATA/wireguard.key (0600) and DATA/wireguard.pid */
    uint16_t listen_port;  /* 0: AGENT_WG_PORT */
    const char *program;   /* NULL: "wireguard-go" found in PATH */
};

/* Loads the node's private key from DATA/wireguard.key (base64, as `wg genkey` writes it) or
 * makes one, and makes sure a wireguard-go serves the interface with that key and port and
 * that the link is up. A wireguard-go already running for it is kept (DATA/wireguard.pid
 * names it and its UAPI socket answers); otherwise one is started in the network namespace
 * of the calling thread, in its own process group, with its output in DATA/wireguard.log,
 * and its pid recorded in DATA/wireguard.pid; program must be wireguard-go or exec it, as
 * the process that listens on the socket is checked to be the one recorded. Interface
 * names are global to the machine: the UAPI socket directory is shared by all network
 * namespaces. A device started here has no peers, addresses or routes yet: after every
 * open, set the peers (agent_wg_peers_set sends nothing when they are there already) and
 * the routes through agent_wg_ifindex. */
int agent_wg_open(struct agent_wg **out, const struct agent_wg_config *cfg, struct gy_error *err);

/* Frees the handle; wireguard-go keeps running. */
void agent_wg_close(struct agent_wg *wg);

/* Stops the wireguard-go named by DATA/wireguard.pid (SIGTERM, then SIGKILL after 5 s) and
 * removes the pid file: for a node that leaves the overlay. None running is fine. */
int agent_wg_stop(const struct agent_wg_config *cfg, struct gy_error *err);

/* The node's public key: base64, standard alphabet with '=' padding, as `wg` prints it. */
const char *agent_wg_public_key(const struct agent_wg *wg);

int agent_wg_ifindex(const struct agent_wg *wg);

/* Makes a new key pair, saves it (atomically, 0600) and sets it on the device. Peers keep
 * working once they learn the new public key. */
int agent_wg_rotate(struct agent_wg *wg, struct gy_error *err);

/* The node's public key, from DATA/wireguard.key, which is made first when there is none,
 * without starting wireguard-go: a node announces its key before it needs a tunnel. */
int agent_wg_key_public(const char *data_dir, char out[AGENT_WG_KEY_B64], struct gy_error *err);

/* A new key pair in DATA/wireguard.key (atomically, 0600) while no handle is open, and its
 * public key in out; the next agent_wg_open sets it on the device. */
int agent_wg_key_rotate(const char *data_dir, char out[AGENT_WG_KEY_B64], struct gy_error *err);

struct agent_wg_peer {
    char public_key[AGENT_WG_KEY_B64]; /* base64 */
    char endpoint[64];                 /* "A.B.C.D:PORT" */
    uint32_t allowed;                  /* a network, host byte order */
    int allowed_len;
};

/* Makes the device's peers exactly peers[0..n): one UAPI `set` with replace_peers=true, each
 * peer with its endpoint, its one allowed IP and a persistent keepalive of 25 s. Every peer
 * is checked before anything is sent (the list comes from the network): a bad public key,
 * endpoint or network, or a key given twice, is an error naming it, and nothing changes.
 * When the device already has exactly these peers nothing is sent, so that calling this
 * again with the same list does not restart the peers' sessions. */
int agent_wg_peers_set(struct agent_wg *wg, const struct agent_wg_peer *peers, size_t n,
                       struct gy_error *err);

/* Whether text is a WireGuard public key: the base64 of exactly 32 bytes, 44 characters
 * ending in '=', as `wg` accepts it. */
bool agent_wg_key_valid(const char *text);

/* Bytes received and sent over all peers since wireguard-go started (UAPI rx_bytes and
 * tx_bytes), for tests and metrics. */
int agent_wg_transfer(struct agent_wg *wg, uint64_t *rx, uint64_t *tx, struct gy_error *err);

#endif
