/* A fast path for parsing request bodies into jansson values. jansson reads its input one
 * byte at a time through a callback and builds every string byte by byte; on the ~1 KiB
 * workload specs of the write path that cost about 20 us per request, the largest single
 * cost of an apply on the leader. This parser scans strings a run at a time and hands
 * jansson finished values. It accepts exactly what json_loadb accepts with
 * JSON_REJECT_DUPLICATES (an object or array at the top, valid UTF-8, no NUL in strings or
 * keys, no duplicate keys, integers that fit json_int_t, finite reals) and, whenever it
 * finds anything wrong, leaves the input to json_loadb, so errors carry jansson's own
 * messages and positions. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/api/json_body.h"

#define DEPTH_MAX 2048 /* jansson's JSON_PARSER_MAX_DEPTH */

struct parser {
    const unsigned char *p;
    const unsigned char *end;
    unsigned depth;
    char *scratch; /* decoded strings with escapes */
    size_t scratch_cap;
};

static void skip_ws(struct parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0. Rejects overlong
 * forms, surrogates and code points above U+10FFFF, as jansson does. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0];
    size_t n;
    uint32_t v;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10ffff ||
        (v >= 0xd800 && v <= 0xdfff))
        return 0;
    return n;
}

static bool scratch_reserve(struct parser *ps, size_t need)
{
    if (need <= ps->scratch_cap)
        return true;
    size_t cap = ps->scratch_cap ? ps->scratch_cap : 256;
    while (cap < need)
        cap *= 2;
    char *grown = realloc(ps->scratch, cap);
    if (grown == NULL)
        return false;
    ps->scratch = grown;
    ps->scratch_cap = cap;
    return true;
}

static int hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(char *out, uint32_t v)
{
    if (v < 0x80) {
        out[0] = (char)v;
        return 1;
    }
    if (v < 0x800) {
        out[0] = (char)(0xc0 | (v >> 6));
        out[1] = (char)(0x80 | (v & 0x3f));
        return 2;
    }
    if (v < 0x10000) {
        out[0] = (char)(0xe0 | (v >> 12));
        out[1] = (char)(0x80 | ((v >> 6) & 0x3f));
        out[2] = (char)(0x80 | (v & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (v >> 18));
    out[1] = (char)(0x80 | ((v >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((v >> 6) & 0x3f));
    out[3] = (char)(0x80 | (v & 0x3f));
    return 4;
}

/* Parses the string at ps->p (after its opening quote). On success *s and *len describe
 * its text: a span of the input when it has no escapes, else the scratch buffer (valid
 * until the next string). */
static int parse_string(struct parser *ps, const char **s, size_t *len)
{
    const unsigned char *start = ps->p;
    const unsigned char *p = start;
    while (p < ps->end) {
        unsigned c = *p;
        if (c == '"') {
            *s = (const char *)start;
            *len = (size_t)(p - start);
            ps->p = p + 1;
            return 0;
        }
        if (c == '\\')
            break;
        if (c < 0x20)
            return -1;
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t n = utf8_len(p, ps->end);
        if (n == 0)
            return -1;
        p += n;
    }
    if (p >= ps->end)
        return -1;
    /* Escapes: decode into the scratch buffer (never longer than the input). */
    size_t plain = (size_t)(p - start);
    if (!scratch_reserve(ps, plain + (size_t)(ps->end - p) + 1))
        return -1;
    memcpy(ps->scratch, start, plain);
    size_t o = plain;
    while (p < ps->end) {
        unsigned c = *p;
        if (c == '"') {
            *s = ps->scratch;
            *len = o;
            ps->p = p + 1;
            return 0;
        }
        if (c < 0x20)
            return -1;
        if (c >= 0x80) {
            size_t n = utf8_len(p, ps->end);
            if (n == 0)
                return -1;
            memcpy(ps->scratch + o, p, n);
            o += n;
            p += n;
            continue;
        }
        if (c != '\\') {
            ps->scratch[o++] = (char)c;
            p++;
            continue;
        }
        if (ps->end - p < 2)
            return -1;
        c = p[1];
        p += 2;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            ps->scratch[o++] = (char)c;
            break;
        case 'b':
            ps->scratch[o++] = '\b';
            break;
        case 'f':
            ps->scratch[o++] = '\f';
            break;
        case 'n':
            ps->scratch[o++] = '\n';
            break;
        case 'r':
            ps->scratch[o++] = '\r';
            break;
        case 't':
            ps->scratch[o++] = '\t';
            break;
        case 'u': {
            uint32_t v;
            if (ps->end - p < 4 || hex4(p, &v) < 0)
                return -1;
            p += 4;
            if (v >= 0xdc00 && v <= 0xdfff)
                return -1;
            if (v >= 0xd800 && v <= 0xdbff) {
                uint32_t lo;
                if (ps->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                p += 6;
                v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (v == 0)
                return -1; /* NUL is refused without JSON_ALLOW_NUL */
            o += utf8_put(ps->scratch + o, v);
            break;
        }
        default:
            return -1;
        }
    }
    return -1;
}

static json_t *parse_value(struct parser *ps);

static json_t *parse_number(struct parser *ps)
{
    const unsigned char *start = ps->p, *p = start;
    bool real = false;
    if (p < ps->end && *p == '-')
        p++;
    if (p >= ps->end)
        return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    } else {
        return NULL;
    }
    if (p < ps->end && *p == '.') {
        real = true;
        p++;
        if (p >= ps->end || *p < '0' || *p > '9')
            return NULL;
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < ps->end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < ps->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= ps->end || *p < '0' || *p > '9')
            return NULL;
        while (p < ps->end && *p >= '0' && *p <= '9')
            p++;
    }
    char text[64];
    size_t n = (size_t)(p - start);
    if (n >= sizeof(text))
        return NULL; /* unusual: left to jansson */
    memcpy(text, start, n);
    text[n] = '\0';
    ps->p = p;
    errno = 0;
    char *end;
    if (!real) {
        long long v = strtoll(text, &end, 10);
        if (errno != 0 || *end != '\0')
            return NULL;
        return json_integer((json_int_t)v);
    }
    double d = strtod(text, &end);
    if (errno != 0 || *end != '\0')
        return NULL;
    return json_real(d);
}

static bool literal(struct parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, word, n) != 0)
        return false;
    ps->p += n;
    return true;
}

static json_t *parse_object(struct parser *ps)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        return obj;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"')
            break;
        ps->p++;
        const char *key;
        size_t key_len;
        if (parse_string(ps, &key, &key_len) < 0)
            break;
        /* The key may live in the scratch buffer, which the value can reuse. */
        char small[128], *copy = key_len < sizeof(small) ? small : malloc(key_len + 1);
        if (copy == NULL)
            break;
        memcpy(copy, key, key_len);
        copy[key_len] = '\0';
        bool ok =
            memchr(copy, '\0', key_len) == NULL && json_object_getn(obj, copy, key_len) == NULL;
        json_t *value = NULL;
        if (ok) {
            skip_ws(ps);
            ok = ps->p < ps->end && *ps->p == ':';
            if (ok) {
                ps->p++;
                value = parse_value(ps);
                ok = value != NULL && json_object_setn_new_nocheck(obj, copy, key_len, value) == 0;
            }
        }
        if (copy != small)
            free(copy);
        if (!ok)
            break;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            return obj;
        }
        break;
    }
    json_decref(obj);
    return NULL;
}

static json_t *parse_array(struct parser *ps)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        return arr;
    }
    for (;;) {
        json_t *value = parse_value(ps);
        if (value == NULL || json_array_append_new(arr, value) < 0)
            break;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            return arr;
        }
        break;
    }
    json_decref(arr);
    return NULL;
}

static json_t *parse_value(struct parser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return NULL;
    json_t *v = NULL;
    switch (*ps->p) {
    case '{':
    case '[':
        if (++ps->depth > DEPTH_MAX)
            return NULL;
        ps->p++;
        v = *(ps->p - 1) == '{' ? parse_object(ps) : parse_array(ps);
        ps->depth--;
        return v;
    case '"': {
        ps->p++;
        const char *s;
        size_t len;
        if (parse_string(ps, &s, &len) < 0 || memchr(s, '\0', len) != NULL)
            return NULL;
        return json_stringn_nocheck(s, len);
    }
    case 't':
        return literal(ps, "true", 4) ? json_true() : NULL;
    case 'f':
        return literal(ps, "false", 5) ? json_false() : NULL;
    case 'n':
        return literal(ps, "null", 4) ? json_null() : NULL;
    default:
        return parse_number(ps);
    }
}

json_t *sch_json_loadb(const char *buf, size_t len, json_error_t *err)
{
    struct parser ps = {.p = (const unsigned char *)buf, .end = (const unsigned char *)buf + len};
    json_t *doc = NULL;
    skip_ws(&ps);
    if (ps.p < ps.end && (*ps.p == '{' || *ps.p == '[')) {
        doc = parse_value(&ps);
        skip_ws(&ps);
        if (doc != NULL && ps.p != ps.end) {
            json_decref(doc);
            doc = NULL;
        }
    }
    free(ps.scratch);
    if (doc != NULL)
        return doc;
    return json_loadb(buf, len, JSON_REJECT_DUPLICATES, err);
}
