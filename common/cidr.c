/* IPv4 CIDR networks; see cidr.h. */
#include "common/cidr.h"

#include <arpa/inet.h>
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
