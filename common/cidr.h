/* IPv4 networks written as CIDR ("10.73.1.0/24"), as the nodes' replica subnets are. */
#ifndef GANTRY_COMMON_CIDR_H
#define GANTRY_COMMON_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses "A.B.C.D/N" with host bits zero and N from min_len to max_len into *addr (host
 * byte order) and *prefix_len. */
bool gy_cidr_parse(const char *text, int min_len, int max_len, uint32_t *addr, int *prefix_len);

/* True when a/alen and b/blen share an address. */
bool gy_cidr_overlap(uint32_t a, int alen, uint32_t b, int blen);

/* Looks in the IPv4 routes of the caller's network namespace (/proc/net/route: the main
 * table) for one other than a default route that overlaps addr/len, leaving out those
 * through the interface skip_dev (NULL: none) and, unless with_gateway, those through a
 * gateway. On a match writes "DST/LEN dev IFACE" into found and returns true. */
bool gy_cidr_route_overlap(uint32_t addr, int len, const char *skip_dev, bool with_gateway,
                           char *found, size_t found_len);

/* Whether addr (host byte order) is on a network the caller's network namespace reaches
 * directly, with no gateway (/proc/net/route, main table), through an interface other than
 * skip_a and skip_b (NULL: none). */
bool gy_cidr_onlink(uint32_t addr, const char *skip_a, const char *skip_b);

/* Whether text is a WireGuard public key as the tunnels between clouds carry it: the
 * standard base64 of 32 bytes (43 characters and one '='), whose last character before the
 * padding leaves no stray bits. */
bool gy_tunnel_key_valid(const char *text);

#endif
