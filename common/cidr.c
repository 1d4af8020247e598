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

bool gy_cidr_route_overlap(uint32_t addr, int len, const char *skip_dev, bool with_gateway,
                           char *found, size_t found_len)
{
    FILE *f = fopen("/proc/net/route", "re");
    if (f == NULL)
        return false;
    char line[512];
    bool hit = false;
    /* Iface Destination Gateway Flags RefCnt Use Metric Mask ...: addresses in hex, in the
     * byte order of the kernel's memory (network order read as a host word). */
    while (!hit && fgets(line, sizeof(line), f) != NULL) {
        char dev[64];
        unsigned dst, gw, flags, mask;
        if (sscanf(line, "%63s %x %x %x %*d %*d %*d %x", dev, &dst, &gw, &flags, &mask) != 5)
            continue;
        uint32_t d = ntohl(dst), m = ntohl(mask);
        int rlen = __builtin_popcount(m);
        if (rlen == 0 || (skip_dev != NULL && strcmp(dev, skip_dev) == 0) ||
            (!with_gateway && (flags & 0x2) != 0))
            continue;
        if (gy_cidr_overlap(addr, len, d, rlen)) {
            snprintf(found, found_len, "%u.%u.%u.%u/%d dev %s", d >> 24, (d >> 16) & 0xff,
                     (d >> 8) & 0xff, d & 0xff, rlen, dev);
            hit = true;
        }
    }
    fclose(f);
    return hit;
}

bool gy_cidr_onlink(uint32_t addr, const char *skip_a, const char *skip_b)
{
    FILE *f = fopen("/proc/net/route", "re");
    if (f == NULL)
        return false;
    char line[512];
    bool hit = false;
    while (!hit && fgets(line, sizeof(line), f) != NULL) {
        char dev[64];
        unsigned dst, gw, flags, mask;
        if (sscanf(line, "%63s %x %x %x %*d %*d %*d %x", dev, &dst, &gw, &flags, &mask) != 5)
            continue;
        uint32_t d = ntohl(dst), m = ntohl(mask);
        if (m == 0 || (flags & 0x2) != 0 || (skip_a != NULL && strcmp(dev, skip_a) == 0) ||
            (skip_b != NULL && strcmp(dev, skip_b) == 0))
            continue;
        hit = (addr & m) == (d & m);
    }
    fclose(f);
    return hit;
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
