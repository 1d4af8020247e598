/* Platforms and manifests of the registry client, the parts that need no network; see
 * registry.h. Manifests follow the OCI image specification (image-index.md, manifest.md)
 * and Docker's Image Manifest V2, Schema 2 (manifest lists and v2 manifests). */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "agent/registry-internal.h"
#include "agent/registry.h"
#include "common/xalloc.h"

/* ---------------------------------------------------------------------------------------
 * Shared helpers */

void agent_reg_text_clean(const char *s, size_t n, char *buf, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n && s[i] != '\0' && o + 1 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[o] = '\0';
}

void agent_reg_digest_format(const unsigned char md[32], char out[GY_IMAGE_DIGEST_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "sha256:", 7);
    for (size_t i = 0; i < 32; i++) {
        out[7 + 2 * i] = hex[md[i] >> 4];
        out[8 + 2 * i] = hex[md[i] & 15];
    }
    out[GY_IMAGE_DIGEST_LEN] = '\0';
}

void agent_reg_sha256(const void *data, size_t len, char out[GY_IMAGE_DIGEST_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    agent_reg_digest_format(md, out);
}

/* ---------------------------------------------------------------------------------------
 * Platforms */

void agent_platform_from_machine(const char *machine, struct agent_platform *out)
{
    static const struct {
        const char *machine, *arch, *variant;
    } map[] = {
        {"x86_64", "amd64", ""},  {"amd64", "amd64", ""},     {"aarch64", "arm64", "v8"},
        {"arm64", "arm64", "v8"}, {"i386", "386", ""},        {"i486", "386", ""},
        {"i586", "386", ""},      {"i686", "386", ""},        {"ppc64le", "ppc64le", ""},
        {"s390x", "s390x", ""},   {"riscv64", "riscv64", ""}, {"loongarch64", "loong64", ""},
        {"mips64", "mips64", ""}, {"armhf", "arm", "v7"},     {"armel", "arm", "v6"},
    };
    memset(out, 0, sizeof(*out));
    snprintf(out->os, sizeof(out->os), "linux");
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcmp(machine, map[i].machine) == 0) {
            snprintf(out->arch, sizeof(out->arch), "%s", map[i].arch);
            snprintf(out->variant, sizeof(out->variant), "%s", map[i].variant);
            return;
        }
    }
    /* armv5tel, armv6l, armv7l, armv8l (32-bit on a 64-bit core): arm and the version. */
    if (strncmp(machine, "armv", 4) == 0 && machine[4] >= '5' && machine[4] <= '8') {
        snprintf(out->arch, sizeof(out->arch), "arm");
        snprintf(out->variant, sizeof(out->variant), "v%c", machine[4]);
        return;
    }
    snprintf(out->arch, sizeof(out->arch), "%s", machine);
}

int agent_platform_detect(struct agent_platform *out, struct gy_error *err)
{
    struct utsname u;
    if (uname(&u) < 0)
        return gy_error_sys(err, errno, "uname");
    agent_platform_from_machine(u.machine, out);
    return 0;
}

static bool platform_word(const char *s, size_t n, size_t max)
{
    if (n == 0 || n >= max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

int agent_platform_parse(const char *s, struct agent_platform *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    const char *a = strchr(s, '/');
    const char *v = a != NULL ? strchr(a + 1, '/') : NULL;
    const char *end = s + strlen(s);
    if (a == NULL || (v != NULL && strchr(v + 1, '/') != NULL) ||
        !platform_word(s, (size_t)(a - s), sizeof(out->os)) ||
        !platform_word(a + 1, (size_t)((v ? v : end) - a - 1), sizeof(out->arch)) ||
        (v != NULL && !platform_word(v + 1, (size_t)(end - v - 1), sizeof(out->variant))))
        return gy_error_set(err, GY_EINVAL,
                            "platform \"%.64s\" must be OS/ARCH or OS/ARCH/VARIANT in lower case "
                            "(linux/amd64, linux/arm64/v8)",
                            s);
    memcpy(out->os, s, (size_t)(a - s));
    memcpy(out->arch, a + 1, (size_t)((v ? v : end) - a - 1));
    if (v != NULL)
        memcpy(out->variant, v + 1, (size_t)(end - v - 1));
    return 0;
}

void agent_platform_format(const struct agent_platform *p, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s%s%s", p->os, p->arch, p->variant[0] ? "/" : "", p->variant);
}

/* The variant an image index means when it names none, as containerd normalises them. */
static void platform_normalise(struct agent_platform *p)
{
    if (strcmp(p->arch, "arm64") == 0 && p->variant[0] == '\0')
        snprintf(p->variant, sizeof(p->variant), "v8");
    else if (strcmp(p->arch, "arm") == 0 && p->variant[0] == '\0')
        snprintf(p->variant, sizeof(p->variant), "v7");
    else if (strcmp(p->arch, "amd64") == 0 && strcmp(p->variant, "v1") == 0)
        p->variant[0] = '\0';
}

/* How well an image for `have` runs on `want`: 3 exact, 2 an image for any variant, 1 an
 * older arm variant, -1 not at all. */
static int platform_score(const struct agent_platform *want, const struct agent_platform *have,
                          bool have_variant)
{
    struct agent_platform w = *want, h = *have;
    if (strcmp(w.os, h.os) != 0 || strcmp(w.arch, h.arch) != 0)
        return -1;
    platform_normalise(&w);
    if (!have_variant && strcmp(h.arch, "arm") != 0)
        return 2;
    platform_normalise(&h);
    if (strcmp(w.variant, h.variant) == 0)
        return 3;
    if (strcmp(w.arch, "arm") == 0 && w.variant[0] == 'v' && h.variant[0] == 'v' &&
        h.variant[1] != '\0' && h.variant[2] == '\0' && w.variant[1] != '\0' &&
        w.variant[2] == '\0' && h.variant[1] < w.variant[1])
        return 1;
    return -1;
}

/* ---------------------------------------------------------------------------------------
 * Manifests */

bool agent_manifest_is_index(enum agent_manifest_kind kind)
{
    return kind == AGENT_MANIFEST_OCI_INDEX || kind == AGENT_MANIFEST_DOCKER_LIST;
}

static enum agent_manifest_kind kind_of(const char *media_type)
{
    if (strcmp(media_type, AGENT_MEDIA_OCI_INDEX) == 0)
        return AGENT_MANIFEST_OCI_INDEX;
    if (strcmp(media_type, AGENT_MEDIA_OCI_MANIFEST) == 0)
        return AGENT_MANIFEST_OCI;
    if (strcmp(media_type, AGENT_MEDIA_DOCKER_LIST) == 0)
        return AGENT_MANIFEST_DOCKER_LIST;
    if (strcmp(media_type, AGENT_MEDIA_DOCKER_MANIFEST) == 0)
        return AGENT_MANIFEST_DOCKER_V2;
    return AGENT_MANIFEST_NONE;
}

static const char *media_of(enum agent_manifest_kind kind)
{
    switch (kind) {
    case AGENT_MANIFEST_OCI_INDEX:
        return AGENT_MEDIA_OCI_INDEX;
    case AGENT_MANIFEST_OCI:
        return AGENT_MEDIA_OCI_MANIFEST;
    case AGENT_MANIFEST_DOCKER_LIST:
        return AGENT_MEDIA_DOCKER_LIST;
    case AGENT_MANIFEST_DOCKER_V2:
        return AGENT_MEDIA_DOCKER_MANIFEST;
    case AGENT_MANIFEST_NONE:
        break;
    }
    return "";
}

static bool is_schema1(const char *media_type)
{
    return strcmp(media_type, "application/vnd.docker.distribution.manifest.v1+json") == 0 ||
           strcmp(media_type, "application/vnd.docker.distribution.manifest.v1+prettyjws") == 0;
}

static int schema1_error(const char *digest, struct gy_error *err)
{
    return gy_error_set(err, GY_EPROTO,
                        "manifest %s is a Docker schema 1 manifest, which is not supported (it "
                        "was replaced in 2016); push the image again with a current client",
                        digest);
}

void agent_manifest_free(struct agent_manifest *m)
{
    if (m == NULL)
        return;
    free(m->bytes);
    free(m->layers);
    free(m->manifests);
    memset(m, 0, sizeof(*m));
}

/* Copies a platform word from an index, with characters outside [A-Za-z0-9._-] as '?' so
 * that it can be shown in a message. */
static void platform_copy(char *dst, size_t len, const char *src)
{
    size_t o = 0;
    for (; src != NULL && *src != '\0' && o + 1 < len; src++) {
        char c = *src;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        dst[o++] = ok ? c : '?';
    }
    dst[o] = '\0';
}

static int descriptor_parse(json_t *v, const char *where, const char *manifest_digest,
                            bool with_platform, struct agent_descriptor *d, struct gy_error *err)
{
    memset(d, 0, sizeof(*d));
    if (!json_is_object(v))
        return gy_error_set(err, GY_EPROTO, "manifest %s: %s is not an object", manifest_digest,
                            where);
    const char *mt = json_string_value(json_object_get(v, "mediaType"));
    if (mt == NULL || *mt == '\0' || strlen(mt) >= sizeof(d->media_type))
        return gy_error_set(err, GY_EPROTO, "manifest %s: %s.mediaType is missing or too long",
                            manifest_digest, where);
    agent_reg_text_clean(mt, strlen(mt), d->media_type, sizeof(d->media_type));
    const char *dg = json_string_value(json_object_get(v, "digest"));
    if (dg == NULL || !gy_image_digest_valid(dg)) {
        char shown[80];
        agent_reg_text_clean(dg != NULL ? dg : "", dg != NULL ? strlen(dg) : 0, shown,
                             sizeof(shown));
        return gy_error_set(err, GY_EPROTO,
                            "manifest %s: %s.digest \"%s\" is not a sha256 digest (the only "
                            "algorithm supported)",
                            manifest_digest, where, shown);
    }
    memcpy(d->digest, dg, GY_IMAGE_DIGEST_LEN + 1);
    json_t *size = json_object_get(v, "size");
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return gy_error_set(err, GY_EPROTO,
                            "manifest %s: %s.size must be a number of bytes, 0 or more",
                            manifest_digest, where);
    d->size = json_integer_value(size);
    json_t *p = json_object_get(v, "platform");
    if (with_platform && p != NULL && !json_is_null(p)) {
        const char *os = json_string_value(json_object_get(p, "os"));
        const char *arch = json_string_value(json_object_get(p, "architecture"));
        json_t *var = json_object_get(p, "variant");
        if (!json_is_object(p) || os == NULL || arch == NULL ||
            (var != NULL && !json_is_string(var)))
            return gy_error_set(err, GY_EPROTO,
                                "manifest %s: %s.platform needs \"os\" and \"architecture\" "
                                "strings",
                                manifest_digest, where);
        d->has_platform = true;
        platform_copy(d->platform.os, sizeof(d->platform.os), os);
        platform_copy(d->platform.arch, sizeof(d->platform.arch), arch);
        platform_copy(d->platform.variant, sizeof(d->platform.variant), json_string_value(var));
    }
    return 0;
}

/* The media type of a Content-Type header without parameters, or "" for the generic
 * types that say nothing about a manifest. */
static void content_type_base(const char *ct, char *buf, size_t len)
{
    buf[0] = '\0';
    if (ct == NULL)
        return;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n >= len)
        n = len - 1;
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)((ct[i] >= 'A' && ct[i] <= 'Z') ? ct[i] - 'A' + 'a' : ct[i]);
    buf[n] = '\0';
    if (strcmp(buf, "application/json") == 0 || strcmp(buf, "application/octet-stream") == 0 ||
        strcmp(buf, "text/plain") == 0)
        buf[0] = '\0';
}

static int descriptors_parse(json_t *arr, const char *field, const char *digest, bool with_platform,
                             struct agent_descriptor **out, size_t *n, struct gy_error *err)
{
    if (!json_is_array(arr))
        return gy_error_set(err, GY_EPROTO, "manifest %s: \"%s\" must be a list", digest, field);
    size_t count = json_array_size(arr);
    if (count > AGENT_REGISTRY_ENTRIES_MAX)
        return gy_error_set(err, GY_EPROTO, "manifest %s: more than %d %s", digest,
                            AGENT_REGISTRY_ENTRIES_MAX, field);
    *out = gy_xcalloc(count + 1, sizeof(**out));
    for (size_t i = 0; i < count; i++) {
        char where[48];
        snprintf(where, sizeof(where), "%s[%zu]", field, i);
        int rc =
            descriptor_parse(json_array_get(arr, i), where, digest, with_platform, &(*out)[i], err);
        if (rc < 0)
            return rc;
        *n = i + 1;
    }
    return 0;
}

int agent_manifest_parse(const void *bytes, size_t len, const char *content_type,
                         struct agent_manifest *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    if (len > AGENT_REGISTRY_MANIFEST_MAX)
        return gy_error_set(err, GY_ETOOBIG, "manifest is %zu bytes, more than %d", len,
                            AGENT_REGISTRY_MANIFEST_MAX);
    out->bytes = gy_xmalloc(len + 1);
    memcpy(out->bytes, bytes, len);
    out->bytes[len] = '\0';
    out->len = len;
    agent_reg_sha256(bytes, len, out->digest);
    const char *dg = out->digest;

    char ct[128];
    content_type_base(content_type, ct, sizeof(ct));
    if (is_schema1(ct))
        return schema1_error(dg, err);
    json_error_t jerr;
    json_t *root = json_loadb(bytes, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return gy_error_set(err, GY_EPROTO, "manifest %s is not valid JSON (line %d, column %d)",
                            dg, jerr.line, jerr.column);
    int rc = 0;
    enum agent_manifest_kind kind = AGENT_MANIFEST_NONE, body_kind = AGENT_MANIFEST_NONE;
    json_t *sv = json_object_get(root, "schemaVersion");
    json_t *mtv = json_object_get(root, "mediaType");
    const char *mt = json_string_value(mtv);
    char shown[128];
    if (!json_is_object(root)) {
        rc = gy_error_set(err, GY_EPROTO, "manifest %s is not a JSON object", dg);
        goto out;
    }
    if ((json_is_integer(sv) && json_integer_value(sv) == 1) || (mt != NULL && is_schema1(mt))) {
        rc = schema1_error(dg, err);
        goto out;
    }
    if (!json_is_integer(sv) || json_integer_value(sv) != 2) {
        rc = gy_error_set(err, GY_EPROTO, "manifest %s: schemaVersion must be 2", dg);
        goto out;
    }
    if (mtv != NULL && mt == NULL) {
        rc = gy_error_set(err, GY_EPROTO, "manifest %s: mediaType must be a string", dg);
        goto out;
    }
    if (mt != NULL && (body_kind = kind_of(mt)) == AGENT_MANIFEST_NONE) {
        agent_reg_text_clean(mt, strlen(mt), shown, sizeof(shown));
        rc = gy_error_set(err, GY_EPROTO,
                          "manifest %s has media type \"%s\", which is not an image manifest or "
                          "index",
                          dg, shown);
        goto out;
    }
    if (ct[0] != '\0') {
        kind = kind_of(ct);
        if (kind == AGENT_MANIFEST_NONE) {
            agent_reg_text_clean(ct, strlen(ct), shown, sizeof(shown));
            rc = gy_error_set(err, GY_EPROTO,
                              "manifest %s was sent as \"%s\", which is not an image manifest or "
                              "index",
                              dg, shown);
            goto out;
        }
        if (body_kind != AGENT_MANIFEST_NONE && body_kind != kind) {
            rc = gy_error_set(err, GY_EPROTO, "manifest %s was sent as %s but says it is %s", dg,
                              media_of(kind), media_of(body_kind));
            goto out;
        }
    }
    if (kind == AGENT_MANIFEST_NONE)
        kind = body_kind;
    if (kind == AGENT_MANIFEST_NONE) {
        /* An OCI document may leave mediaType out: its fields tell. */
        if (json_object_get(root, "manifests") != NULL)
            kind = AGENT_MANIFEST_OCI_INDEX;
        else if (json_object_get(root, "config") != NULL)
            kind = AGENT_MANIFEST_OCI;
        else {
            rc = gy_error_set(err, GY_EPROTO,
                              "manifest %s is neither an image manifest nor an index", dg);
            goto out;
        }
    }
    out->kind = kind;
    snprintf(out->media_type, sizeof(out->media_type), "%s", media_of(kind));
    if (agent_manifest_is_index(kind)) {
        rc = descriptors_parse(json_object_get(root, "manifests"), "manifests", dg, true,
                               &out->manifests, &out->n_manifests, err);
        goto out;
    }
    if ((rc = descriptor_parse(json_object_get(root, "config"), "config", dg, false, &out->config,
                               err)) < 0)
        goto out;
    if (strcmp(out->config.media_type, "application/vnd.oci.image.config.v1+json") != 0 &&
        strcmp(out->config.media_type, "application/vnd.docker.container.image.v1+json") != 0) {
        rc = gy_error_set(err, GY_EPROTO,
                          "manifest %s is not a container image (its config is \"%s\")", dg,
                          out->config.media_type);
        goto out;
    }
    if (out->config.size > AGENT_REGISTRY_CONFIG_MAX) {
        rc = gy_error_set(err, GY_ETOOBIG,
                          "manifest %s: the image config is %" PRId64 " bytes, more than %d", dg,
                          out->config.size, AGENT_REGISTRY_CONFIG_MAX);
        goto out;
    }
    rc = descriptors_parse(json_object_get(root, "layers"), "layers", dg, false, &out->layers,
                           &out->n_layers, err);
out:
    json_decref(root);
    return rc;
}

int agent_manifest_pick(const struct agent_manifest *index, const struct agent_platform *p,
                        size_t *which, struct gy_error *err)
{
    int best = -1;
    for (size_t i = 0; i < index->n_manifests; i++) {
        const struct agent_descriptor *d = &index->manifests[i];
        enum agent_manifest_kind k = kind_of(d->media_type);
        if (!d->has_platform || (k != AGENT_MANIFEST_OCI && k != AGENT_MANIFEST_DOCKER_V2))
            continue;
        int score = platform_score(p, &d->platform, d->platform.variant[0] != '\0');
        if (score > best) {
            best = score;
            *which = i;
        }
    }
    if (best > 0)
        return 0;
    char want[96], list[512] = "";
    agent_platform_format(p, want, sizeof(want));
    size_t o = 0, shown = 0;
    for (size_t i = 0; i < index->n_manifests && o + 1 < sizeof(list); i++) {
        const struct agent_descriptor *d = &index->manifests[i];
        char one[96];
        if (d->has_platform)
            agent_platform_format(&d->platform, one, sizeof(one));
        else
            snprintf(one, sizeof(one), "(no platform)");
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            char other[96];
            const struct agent_descriptor *e = &index->manifests[j];
            if (e->has_platform)
                agent_platform_format(&e->platform, other, sizeof(other));
            else
                snprintf(other, sizeof(other), "(no platform)");
            seen = strcmp(one, other) == 0;
        }
        if (seen)
            continue;
        int n = snprintf(list + o, sizeof(list) - o, "%s%s", shown++ ? ", " : "", one);
        if (n < 0 || (size_t)n >= sizeof(list) - o)
            break;
        o += (size_t)n;
    }
    return gy_error_set(err, GY_ENOTFOUND, "index %s has no image for %s; it has: %s",
                        index->digest, want, index->n_manifests ? list : "nothing");
}
