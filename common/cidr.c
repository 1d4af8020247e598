/* IPv4 CIDR networks; see cidr.h. */
#include "common/cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool gy_cidr_parse(const char *text, int min_len, int max_len, uint32_t *addr, int *prefix_len)
{
    char host[INET_ADDRSTRLEN];
    const char *slash = text != NULL ? strchr(text, '/') : NULL;
    if (slash == NULL || (size_t)(slash - text) >= sizeof(host) || slash[1] < '0' || slash[1] > '9')
        return false;
    memcpy(host, text, (size_t)(slash - text));
    host[slash - text] = '\0';
    char *end;
    long len = strtol(slash + 1, &end, 10);
    struct in_addr in;
    if (*end != '\0' || len < min_len || len > max_len || len < 0 || len > 32 ||
        inet_pton(AF_INET, host, &in) != 1)
        return false;
    uint32_t a = ntohl(in.s_addr);
    uint32_t mask = len == 0 ? 0 : UINT32_MAX << (32 - len);
    if ((a & ~mask) != 0)
        return false;
    *addr = a;
    *prefix_len = (int)len;
    return true;
}

bool gy_cidr_overlap(uint32_t a, int alen, uint32_t b, int blen)
{
    int len = alen < blen ? alen : blen;
    uint32_t mask = len <= 0 ? 0 : UINT32_MAX << (32 - len);
    return (a & mask) == (b & mask);
}

/* One IPv4 route of the main table as /proc/net/route lists it. */
struct route_row {
    char dev[64];
    uint32_t dst;
    int len;
    bool gateway; /* through a gateway (RTF_GATEWAY) */
};

/* Calls match for each route other than a default route until it returns true; then
 * copies that route into *hit and returns true. */
static bool routes_find(bool (*match)(const struct route_row *r, const void *arg), const void *arg,
                        struct route_row *hit)
{
    FILE *f = fopen("/proc/net/route", "re");
    if (f == NULL)
        return false;
    char line[512];
    bool found = false;
    /* Iface Destination Gateway Flags RefCnt Use Metric Mask ...: addresses in hex, in the
     * byte order of the kernel's memory (network order read as a host word). */
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        struct route_row r;
        unsigned dst, gw, flags, mask;
        if (sscanf(line, "%63s %x %x %x %*d %*d %*d %x", r.dev, &dst, &gw, &flags, &mask) != 5)
            continue;
        r.dst = ntohl(dst);
        r.len = __builtin_popcount(ntohl(mask));
        r.gateway = (flags & 0x2) != 0;
        if (r.len > 0 && match(&r, arg)) {
            *hit = r;
            found = true;
        }
    }
    fclose(f);
    return found;
}

struct overlap_query {
    uint32_t addr;
    int len;
    const char *skip[2];
    bool with_gateway;
};

static bool overlap_match(const struct route_row *r, const void *arg)
{
    const struct overlap_query *q = arg;
    for (int i = 0; i < 2; i++)
        if (q->skip[i] != NULL && strcmp(r->dev, q->skip[i]) == 0)
            return false;
    return (q->with_gateway || !r->gateway) && gy_cidr_overlap(q->addr, q->len, r->dst, r->len);
}

bool gy_cidr_route_overlap(uint32_t addr, int len, const char *skip_dev, bool with_gateway,
                           char *found, size_t found_len)
{
    struct overlap_query q = {addr, len, {skip_dev, NULL}, with_gateway};
    struct route_row r;
    if (!routes_find(overlap_match, &q, &r))
        return false;
    snprintf(found, found_len, "%u.%u.%u.%u/%d dev %s", r.dst >> 24, (r.dst >> 16) & 0xff,
             (r.dst >> 8) & 0xff, r.dst & 0xff, r.len, r.dev);
    return true;
}

bool gy_cidr_onlink(uint32_t addr, const char *skip_a, const char *skip_b)
{
    /* A route of the link that covers the address: one without a gateway. */
    struct overlap_query q = {addr, 32, {skip_a, skip_b}, false};
    struct route_row r;
    return routes_find(overlap_match, &q, &r);
}

bool gy_tunnel_key_valid(const char *text)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (text == NULL || strlen(text) != 44 || text[43] != '=')
        return false;
    for (size_t i = 0; i < 43; i++)
        if (text[i] == '\0' || strchr(alphabet, text[i]) == NULL)
            return false;
    /* 32 bytes are 256 bits; 43 characters carry 258, so the last one's low 2 bits are 0. */
    return ((strchr(alphabet, text[42]) - alphabet) & 3) == 0;
}
