/* Image references; see image_ref.h. The grammar and the normalisation follow
 * github.com/distribution/reference (reference.go, normalize.go), which Docker and
 * containerd share; every refusal names its column so that a typo in a spec is found. */
#include "common/image_ref.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Room for the quoted excerpt of a hostile reference in a message. */
#define QUOTE_MAX 80

/* Copies s[0..n) into buf as it may be shown to a user: printable ASCII stays, quotes and
 * backslashes are escaped, anything else becomes \xNN; a long s is cut and ends "...". */
static const char *quote(const char *s, size_t n, char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char piece[8];
        if (c == '"' || c == '\\')
            snprintf(piece, sizeof(piece), "\\%c", c);
        else if (c >= 0x20 && c < 0x7f)
            snprintf(piece, sizeof(piece), "%c", c);
        else
            snprintf(piece, sizeof(piece), "\\x%02x", c);
        size_t pl = strlen(piece);
        if (o + pl + 4 > len || i >= QUOTE_MAX) {
            memcpy(buf + o, "...", 4);
            return buf;
        }
        memcpy(buf + o, piece, pl);
        o += pl;
    }
    buf[o] = '\0';
    return buf;
}

/* Fills err with `WHAT "S" column COL: PROBLEM` and returns -GY_EINVAL. */
static int __attribute__((format(printf, 5, 6)))
ref_error(struct gy_error *err, const char *what, const char *s, size_t col, const char *fmt, ...)
{
    char problem[256], q[4 * QUOTE_MAX + 8];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    return gy_error_set(err, GY_EINVAL, "%s \"%s\" column %zu: %s", what,
                        quote(s, strnlen(s, GY_IMAGE_REF_MAX + 1), q, sizeof(q)), col, problem);
}

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

static bool is_hex_lower(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* ---------------------------------------------------------------------------------------
 * The pieces of a reference, each checked on s[b..e) with columns counted from s */

static int domain_check(const char *what, const char *s, size_t b, size_t e, struct gy_error *err)
{
    size_t i = b;
    if (i < e && s[i] == '[') {
        const char *close = memchr(s + i, ']', e - i);
        if (close == NULL)
            return ref_error(err, what, s, i + 1, "an IPv6 address must end with ']'");
        size_t c = (size_t)(close - s);
        bool colon = false;
        for (size_t j = i + 1; j < c; j++) {
            char ch = s[j];
            bool hex =
                (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
            if (!hex && ch != ':' && ch != '.')
                return ref_error(err, what, s, j + 1, "'%c' is not allowed in an IPv6 address", ch);
            colon |= ch == ':';
        }
        if (!colon || c - i < 3)
            return ref_error(err, what, s, i + 1, "\"[...]\" must hold an IPv6 address");
        i = c + 1;
        if (i < e && s[i] != ':')
            return ref_error(err, what, s, i + 1, "only \":PORT\" may follow an IPv6 address");
    } else {
        for (;;) {
            size_t label = i;
            while (i < e && s[i] != '.' && s[i] != ':') {
                if (!is_alnum(s[i]) && s[i] != '-')
                    return ref_error(err, what, s, i + 1,
                                     "'%c' is not allowed in a registry host (letters, digits, "
                                     "'-' and '.')",
                                     s[i]);
                i++;
            }
            if (i == label)
                return ref_error(err, what, s, label + 1, "the registry host has an empty label");
            if (s[label] == '-' || s[i - 1] == '-')
                return ref_error(err, what, s, s[label] == '-' ? label + 1 : i,
                                 "a host label must not start or end with '-'");
            if (i - label > 63)
                return ref_error(err, what, s, label + 1,
                                 "a host label is longer than 63 characters");
            if (i < e && s[i] == '.') {
                i++;
                if (i == e || s[i] == ':')
                    return ref_error(err, what, s, i, "the registry host has an empty label");
                continue;
            }
            break;
        }
    }
    if (i < e) {
        /* s[i] is ':' here: the host loop stops only at the end, '.' or ':'. */
        size_t p = ++i;
        uint32_t port = 0;
        for (; i < e; i++) {
            if (s[i] < '0' || s[i] > '9' || i - p >= 5)
                return ref_error(err, what, s, i + 1, "the port must be a number from 1 to 65535");
            port = port * 10 + (uint32_t)(s[i] - '0');
        }
        if (i == p || port == 0 || port > 65535)
            return ref_error(err, what, s, p + (i == p ? 0 : 1),
                             "the port must be a number from 1 to 65535");
    }
    return 0;
}

static int component_check(const char *s, size_t b, size_t e, struct gy_error *err)
{
    const char *what = "image reference";
    if ((e - b == 1 && s[b] == '.') || (e - b == 2 && s[b] == '.' && s[b + 1] == '.'))
        return ref_error(err, what, s, b + 1, "path component \"%.*s\" is not allowed",
                         (int)(e - b), s + b);
    for (size_t i = b; i < e; i++) {
        char c = s[i];
        if (is_lower_alnum(c))
            continue;
        if (c >= 'A' && c <= 'Z')
            return ref_error(err, what, s, i + 1, "repository names must be lower-case ('%c')", c);
        if (c == '.' || c == '_' || c == '-') {
            if (i == b)
                return ref_error(err, what, s, i + 1,
                                 "a path component must start with a lower-case letter or digit");
            size_t j = i;
            bool dashes = true;
            while (j < e && (s[j] == '.' || s[j] == '_' || s[j] == '-'))
                dashes &= s[j++] == '-';
            if (j == e)
                return ref_error(err, what, s, i + 1,
                                 "a path component must end with a lower-case letter or digit");
            bool ok = j - i == 1 || dashes || (j - i == 2 && s[i] == '_' && s[i + 1] == '_');
            if (!ok)
                return ref_error(err, what, s, i + 1,
                                 "\"%.*s\" is not a separator (one '.', one or two '_', or "
                                 "dashes)",
                                 (int)(j - i), s + i);
            i = j - 1;
            continue;
        }
        return ref_error(err, what, s, i + 1,
                         "'%c' is not allowed in a repository name (a-z, 0-9, '.', '_', '-', "
                         "'/')",
                         c);
    }
    return 0;
}

static int path_check(const char *s, size_t b, size_t e, struct gy_error *err)
{
    size_t start = b;
    for (;;) {
        const char *slash = memchr(s + start, '/', e - start);
        size_t end = slash != NULL ? (size_t)(slash - s) : e;
        if (end == start)
            return ref_error(err, "image reference", s, start == e && start > 0 ? start : start + 1,
                             "empty path component (\"//\" or '/' at the start or end)");
        int rc = component_check(s, start, end, err);
        if (rc < 0)
            return rc;
        if (end == e)
            return 0;
        start = end + 1;
    }
}

static int tag_check(const char *s, size_t b, size_t e, struct gy_error *err)
{
    const char *what = "image reference";
    if (b == e)
        return ref_error(err, what, s, b, "the tag after ':' is empty");
    if (e - b > GY_IMAGE_TAG_MAX)
        return ref_error(err, what, s, b + GY_IMAGE_TAG_MAX + 1,
                         "the tag is longer than %d characters", GY_IMAGE_TAG_MAX);
    for (size_t i = b; i < e; i++) {
        char c = s[i];
        bool ok = is_alnum(c) || c == '_' || (i > b && (c == '.' || c == '-'));
        if (!ok)
            return ref_error(err, what, s, i + 1,
                             i == b ? "a tag must start with a letter, digit or '_'"
                                    : "'%c' is not allowed in a tag (letters, digits, '_', '.', "
                                      "'-')",
                             c);
    }
    return 0;
}

static int digest_check(const char *s, size_t b, size_t e, struct gy_error *err)
{
    const char *what = "image reference";
    if (b == e)
        return ref_error(err, what, s, b, "the digest after '@' is empty");
    const char *colon = memchr(s + b, ':', e - b);
    if (colon == NULL)
        return ref_error(err, what, s, b + 1, "a digest is \"sha256:\" followed by 64 hex digits");
    size_t c = (size_t)(colon - s);
    if (c - b != 6 || memcmp(s + b, "sha256", 6) != 0)
        return ref_error(err, what, s, b + 1,
                         "digest algorithm \"%.*s\" is not supported (only sha256)",
                         (int)(c - b > 32 ? 32 : c - b), s + b);
    for (size_t i = c + 1; i < e; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'F')
            return ref_error(err, what, s, i + 1, "digests are written in lower-case hex ('%c')",
                             ch);
        if (!is_hex_lower(ch))
            return ref_error(err, what, s, i + 1, "'%c' is not a hex digit", ch);
    }
    if (e - c - 1 != 64)
        return ref_error(err, what, s, c + 2, "the digest has %zu hex digits, not 64", e - c - 1);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * Parsing */

int gy_image_ref_parse(const char *s, struct gy_image_ref *out, struct gy_error *err)
{
    const char *what = "image reference";
    if (s == NULL || *s == '\0')
        return gy_error_set(err, GY_EINVAL, "image reference is empty");
    size_t len = strnlen(s, GY_IMAGE_REF_MAX + 1);
    if (len > GY_IMAGE_REF_MAX)
        return ref_error(err, what, s, GY_IMAGE_REF_MAX + 1,
                         "the reference is longer than %d characters", GY_IMAGE_REF_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return ref_error(err, what, s, i + 1, "control character 0x%02x is not allowed", c);
        if (c == ' ')
            return ref_error(err, what, s, i + 1, "blanks are not allowed");
        if (c >= 0x80)
            return ref_error(err, what, s, i + 1, "non-ASCII byte 0x%02x is not allowed", c);
    }

    struct gy_image_ref ref;
    memset(&ref, 0, sizeof(ref));
    int rc;
    const char *at = memchr(s, '@', len);
    size_t name_end = at != NULL ? (size_t)(at - s) : len;
    if (at != NULL) {
        const char *second = memchr(at + 1, '@', len - name_end - 1);
        if (second != NULL)
            return ref_error(err, what, s, (size_t)(second - s) + 1,
                             "a reference has at most one '@'");
        if ((rc = digest_check(s, name_end + 1, len, err)) < 0)
            return rc;
        memcpy(ref.digest, at + 1, len - name_end - 1);
    }

    /* A tag is what follows a ':' after the last '/': the ':' of "host:5000/x" is a port. */
    size_t start = 0;
    for (size_t i = 0; i < name_end; i++)
        if (s[i] == '/')
            start = i + 1;
    const char *colon = memchr(s + start, ':', name_end - start);
    if (colon != NULL) {
        size_t c = (size_t)(colon - s);
        if ((rc = tag_check(s, c + 1, name_end, err)) < 0)
            return rc;
        memcpy(ref.tag, colon + 1, name_end - c - 1);
        name_end = c;
    }
    if (name_end == 0)
        return ref_error(err, what, s, 1, "the repository name is missing");

    const char *slash = memchr(s, '/', name_end);
    bool has_domain = false;
    if (slash != NULL) {
        size_t n = (size_t)(slash - s);
        has_domain = memchr(s, '.', n) != NULL || memchr(s, ':', n) != NULL ||
                     (n == 9 && memcmp(s, "localhost", 9) == 0) || s[0] == '[';
        for (size_t i = 0; i < n && !has_domain; i++)
            has_domain = s[i] >= 'A' && s[i] <= 'Z';
    }
    size_t path_start = 0;
    if (has_domain) {
        if ((rc = domain_check(what, s, 0, (size_t)(slash - s), err)) < 0)
            return rc;
        path_start = (size_t)(slash - s) + 1;
    }
    if ((rc = path_check(s, path_start, name_end, err)) < 0)
        return rc;
    if (!has_domain && colon == NULL && at == NULL && name_end == 64) {
        bool hex = true;
        for (size_t i = 0; i < 64 && hex; i++)
            hex = is_hex_lower(s[i]);
        if (hex)
            return ref_error(err, what, s, 1,
                             "64 hex digits are an image ID, not a repository name");
    }

    /* Normalise: docker.io, library/ and latest, as Docker does. */
    size_t dlen = has_domain ? path_start - 1 : strlen(GY_IMAGE_DEFAULT_DOMAIN);
    const char *dom = has_domain ? s : GY_IMAGE_DEFAULT_DOMAIN;
    if (dlen == 15 && memcmp(dom, "index.docker.io", 15) == 0) {
        dom = GY_IMAGE_DEFAULT_DOMAIN;
        dlen = strlen(dom);
    }
    size_t plen = name_end - path_start;
    bool official = dlen == strlen(GY_IMAGE_DEFAULT_DOMAIN) &&
                    memcmp(dom, GY_IMAGE_DEFAULT_DOMAIN, dlen) == 0 &&
                    memchr(s + path_start, '/', plen) == NULL;
    size_t prefix = official ? strlen("library/") : 0;
    if (dlen + 1 + prefix + plen > GY_IMAGE_NAME_MAX)
        return ref_error(err, what, s, 1,
                         "the repository name is %zu characters long with its domain, more "
                         "than %d",
                         dlen + 1 + prefix + plen, GY_IMAGE_NAME_MAX);
    memcpy(ref.domain, dom, dlen);
    memcpy(ref.path, "library/", prefix);
    memcpy(ref.path + prefix, s + path_start, plen);
    if (ref.tag[0] == '\0' && ref.digest[0] == '\0')
        memcpy(ref.tag, GY_IMAGE_DEFAULT_TAG, sizeof(GY_IMAGE_DEFAULT_TAG));
    *out = ref;
    return 0;
}

int gy_image_domain_check(const char *s, struct gy_error *err)
{
    const char *what = "registry host";
    if (s == NULL || *s == '\0')
        return gy_error_set(err, GY_EINVAL, "registry host is empty");
    size_t len = strnlen(s, GY_IMAGE_NAME_MAX + 1);
    if (len > GY_IMAGE_NAME_MAX)
        return ref_error(err, what, s, GY_IMAGE_NAME_MAX + 1, "longer than %d characters",
                         GY_IMAGE_NAME_MAX);
    return domain_check(what, s, 0, len, err);
}

/* ---------------------------------------------------------------------------------------
 * Printing */

static int fit(int n, char *buf, size_t len)
{
    if (n < 0 || (size_t)n >= len) {
        if (len > 0)
            buf[0] = '\0';
        return -1;
    }
    return n;
}

int gy_image_ref_format(const struct gy_image_ref *ref, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s%s%s%s%s", ref->domain, ref->path, ref->tag[0] ? ":" : "",
                     ref->tag, ref->digest[0] ? "@" : "", ref->digest);
    return fit(n, buf, len);
}

int gy_image_ref_name(const struct gy_image_ref *ref, char *buf, size_t len)
{
    return fit(snprintf(buf, len, "%s/%s", ref->domain, ref->path), buf, len);
}

bool gy_image_digest_valid(const char *s)
{
    if (s == NULL || strncmp(s, "sha256:", 7) != 0 || strnlen(s, 72) != GY_IMAGE_DIGEST_LEN)
        return false;
    for (size_t i = 7; i < GY_IMAGE_DIGEST_LEN; i++)
        if (!is_hex_lower(s[i]))
            return false;
    return true;
}

int gy_image_local_name_check(const char *name, struct gy_error *err)
{
    size_t len = name != NULL ? strlen(name) : 0;
    if (len == 0 || len > GY_IMAGE_LOCAL_NAME_MAX)
        return gy_error_set(err, GY_EINVAL, "image name \"%s\": must be 1 to %d characters",
                            name != NULL ? name : "", GY_IMAGE_LOCAL_NAME_MAX);
    bool lead_ok = (name[0] >= 'a' && name[0] <= 'z') || (name[0] >= '0' && name[0] <= '9');
    if (!lead_ok)
        return gy_error_set(err, GY_EINVAL,
                            "image name \"%s\": must start with a lower-case letter or digit",
                            name);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                  c == ':' || c == '-';
        if (!ok)
            return gy_error_set(err, GY_EINVAL,
                                "image name \"%s\": character '%c' is not allowed (use a-z, 0-9, "
                                "'.', '_', ':' and '-')",
                                name, c);
    }
    return 0;
}
