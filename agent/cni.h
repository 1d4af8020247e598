/* Replica networks through CNI plugins (the Container Network Interface, spec 1.0 and
 * 1.1): the agent is the runtime side of the spec. It reads one network configuration
 * list (a conflist), runs its plugins in order for ADD and in reverse order for DEL, CHECK
 * and GC where the list's version has them, and keeps each attachment's configuration,
 * capability arguments and result in a cache file, so that DEL after a restart of the
 * agent is given what ADD was (libcni's cache, in a directory of the agent's).
 *
 * Calls run plugins as processes and wait for them: call them on a worker thread, not on
 * the event loop. They are safe to call from several threads at once for different
 * attachments. */
#ifndef GANTRY_AGENT_CNI_H
#define GANTRY_AGENT_CNI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define AGENT_CNI_ID_MAX 128 /* container ids: letters, digits, '-', '_', '.' */

struct agent_cni;

/* A published port (the portMappings capability). */
struct agent_cni_port {
    uint16_t host_port;
    uint16_t container_port;
    bool udp;
};

/* What one attachment is given beyond the list itself: the capability arguments. */
struct agent_cni_args {
    const struct agent_cni_port *ports;
    size_t n_ports;
};

/* What a successful ADD gave: the attachment's IPv4 address (host byte order) on the
 * container's interface, and its prefix length. */
struct agent_cni_result {
    uint32_t address;
    int prefix_len;
};

/* Reads and checks the conflist at path (cniVersion, name, plugins with a type each; a
 * problem names the file and the field). bin_dirs is a ':'-separated list of plugin
 * directories (CNI_PATH); cache_dir keeps the attachments' cache files and is created. */
int agent_cni_open(struct agent_cni **out, const char *path, const char *bin_dirs,
                   const char *cache_dir, struct gy_error *err);
void agent_cni_close(struct agent_cni *cni);

/* The list's name and version. */
const char *agent_cni_name(const struct agent_cni *cni);
const char *agent_cni_version(const struct agent_cni *cni);

/* Writes the default conflist for a node to path (atomically): Debian's reference
 * plugins, bridge (on bridge, with host-local addresses of subnet, gateway the subnet's
 * first address, leases under ipam_dir), portmap, firewall and bandwidth. */
int agent_cni_write_default(const char *path, const char *bridge, const char *subnet,
                            const char *ipam_dir, struct gy_error *err);

/* ADD: attaches the namespace at netns to the network as container_id with interface
 * ifname. On success the cache holds the attachment and *res its address. On failure the
 * plugins that ran are undone with DEL, as the spec asks of a runtime. */
int agent_cni_add(struct agent_cni *cni, const char *container_id, const char *netns,
                  const char *ifname, const struct agent_cni_args *args,
                  struct agent_cni_result *res, struct gy_error *err);

/* DEL: detaches container_id, with the configuration, arguments and result the cache
 * kept from its ADD (the current list when there is no cache file), and removes the
 * cache file. netns may be "" when the namespace is gone. A container never added is not
 * an error (plugins treat DEL of what is missing as success). */
int agent_cni_del(struct agent_cni *cni, const char *container_id, const char *netns,
                  const char *ifname, struct gy_error *err);

/* CHECK (lists of version 0.4.0 and later that do not set disableCheck; 0 without running
 * anything otherwise): whether the attachment is still what ADD made. */
int agent_cni_check(struct agent_cni *cni, const char *container_id, const char *netns,
                    const char *ifname, struct gy_error *err);

/* The address ADD gave container_id, from its cache file. */
int agent_cni_cached(struct agent_cni *cni, const char *container_id, const char *ifname,
                     struct agent_cni_result *res, struct gy_error *err);

/* Whether container_id's attachment can serve another container: its cache file holds the
 * list in use now (not one of an older list, another subnet) and no capability argument
 * (no published port). */
bool agent_cni_cached_reusable(struct agent_cni *cni, const char *container_id, const char *ifname);

/* The container ids with a cache file of this network, for garbage collection; the caller
 * frees each and the array. */
int agent_cni_cached_list(struct agent_cni *cni, char ***ids, size_t *n, struct gy_error *err);

/* GC (lists of version 1.1.0 and later; 0 without running anything for older ones): tells
 * the plugins that only the attachments valid[0..n) (all with interface ifname) are in
 * use, so they release what belongs to any other. */
int agent_cni_gc(struct agent_cni *cni, const char *const *valid, size_t n, const char *ifname,
                 struct gy_error *err);

/* Whether id can be a CNI container id here (and a file name in the cache). */
bool agent_cni_id_valid(const char *id);

#endif
