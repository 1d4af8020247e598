/* The agent's registry configuration; see registry.h and docs/images.md ("Registries").
 *
 *   {"auth_file": "/etc/gantry/auth.json",
 *    "registries": {"127.0.0.1:5000": {"insecure": true},
 *                   "docker.io": {"mirrors": ["https://mirror.example", "http://10.0.0.9:5000"]}}}
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/registry-internal.h"
#include "agent/registry.h"
#include "common/cleanup.h"
#include "common/xalloc.h"

#define CONFIG_FILE_MAX    (1024 * 1024)
#define AUTH_FILE_PATH_MAX 4095

/* See registry-internal.h. */
const char *agent_reg_quote(const char *s, char *buf, size_t len)
{
    size_t o = 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (o + 8 > len) {
            memcpy(buf + o - (o >= 3 ? 3 : 0), "...", 4);
            return buf;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", c);
    }
    buf[o] = '\0';
    return buf;
}

void agent_registry_config_free(struct agent_registry_config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        struct agent_registry_host *h = &cfg->hosts[i];
        free(h->host);
        for (size_t j = 0; j < h->n_mirrors; j++)
            free(h->mirrors[j]);
        free(h->mirrors);
    }
    free(cfg->hosts);
    free(cfg->auth_file);
    memset(cfg, 0, sizeof(*cfg));
}

static char *lower_dup(const char *s)
{
    char *d = gy_xstrdup(s);
    for (char *c = d; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    return d;
}

/* "https://HOST[:PORT][/]", "http://..." or a bare "HOST[:PORT]" (HTTPS) to the form kept. */
static int mirror_parse(const char *origin, const char *host, size_t idx, const char *s, char **out,
                        struct gy_error *err)
{
    char q1[160], q2[160];
    const char *scheme = "https", *rest = s;
    if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        scheme = "http", rest = s + 7;
    else if (strstr(s, "://") != NULL)
        return gy_error_set(err, GY_EINVAL,
                            "registry config %s: registries.\"%s\".mirrors[%zu]: \"%s\" must be "
                            "http://HOST[:PORT] or https://HOST[:PORT]",
                            origin, agent_reg_quote(host, q1, sizeof(q1)), idx,
                            agent_reg_quote(s, q2, sizeof(q2)));
    char *h = gy_xstrdup(rest);
    size_t n = strlen(h);
    if (n > 0 && h[n - 1] == '/')
        h[--n] = '\0';
    struct gy_error derr;
    if (strchr(h, '/') != NULL || gy_image_domain_check(h, &derr) < 0) {
        free(h);
        return gy_error_set(err, GY_EINVAL,
                            "registry config %s: registries.\"%s\".mirrors[%zu]: \"%s\" is not "
                            "a registry address (http[s]://HOST[:PORT], no path)",
                            origin, agent_reg_quote(host, q1, sizeof(q1)), idx,
                            agent_reg_quote(s, q2, sizeof(q2)));
    }
    char *lh = lower_dup(h);
    free(h);
    *out = gy_xasprintf("%s://%s", scheme, lh);
    free(lh);
    return 0;
}

static int host_parse(const char *origin, const char *key, json_t *v, struct agent_registry_host *h,
                      struct gy_error *err)
{
    char q[160];
    const char *k = agent_reg_quote(key, q, sizeof(q));
    struct gy_error derr;
    if (gy_image_domain_check(key, &derr) < 0)
        return gy_error_set(err, GY_EINVAL, "registry config %s: registries.\"%s\": %s", origin, k,
                            derr.msg);
    h->host = lower_dup(key);
    if (!json_is_object(v))
        return gy_error_set(err, GY_EINVAL,
                            "registry config %s: registries.\"%s\": must be an object", origin, k);
    const char *field;
    json_t *fv;
    json_object_foreach(v, field, fv)
    {
        if (strcmp(field, "insecure") == 0) {
            if (!json_is_boolean(fv))
                return gy_error_set(err, GY_EINVAL,
                                    "registry config %s: registries.\"%s\".insecure: must be "
                                    "true or false",
                                    origin, k);
            h->insecure = json_is_true(fv);
        } else if (strcmp(field, "mirrors") == 0) {
            if (!json_is_array(fv))
                return gy_error_set(err, GY_EINVAL,
                                    "registry config %s: registries.\"%s\".mirrors: must be a "
                                    "list of addresses",
                                    origin, k);
            if (json_array_size(fv) > AGENT_REGISTRY_MIRRORS_MAX)
                return gy_error_set(err, GY_EINVAL,
                                    "registry config %s: registries.\"%s\".mirrors: more than %d "
                                    "mirrors",
                                    origin, k, AGENT_REGISTRY_MIRRORS_MAX);
            h->mirrors = gy_xcalloc(json_array_size(fv) + 1, sizeof(*h->mirrors));
            size_t i;
            json_t *m;
            json_array_foreach(fv, i, m)
            {
                if (!json_is_string(m))
                    return gy_error_set(err, GY_EINVAL,
                                        "registry config %s: registries.\"%s\".mirrors[%zu]: "
                                        "must be a string",
                                        origin, k, i);
                int rc = mirror_parse(origin, key, i, json_string_value(m), &h->mirrors[i], err);
                if (rc < 0)
                    return rc;
                h->n_mirrors = i + 1;
            }
        } else {
            char qf[160];
            return gy_error_set(err, GY_EINVAL,
                                "registry config %s: registries.\"%s\".%s: unknown field (known: "
                                "insecure, mirrors)",
                                origin, k, agent_reg_quote(field, qf, sizeof(qf)));
        }
    }
    return 0;
}

int agent_registry_config_parse(const char *text, size_t len, const char *origin,
                                struct agent_registry_config *out, struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    if (len > CONFIG_FILE_MAX)
        return gy_error_set(err, GY_ETOOBIG, "registry config %s: larger than %d bytes", origin,
                            CONFIG_FILE_MAX);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        char q[160];
        return gy_error_set(err, GY_EPARSE, "registry config %s: line %d, column %d: %s", origin,
                            jerr.line, jerr.column, agent_reg_quote(jerr.text, q, sizeof(q)));
    }
    int rc = 0;
    if (!json_is_object(root)) {
        rc = gy_error_set(err, GY_EINVAL, "registry config %s: must hold a JSON object", origin);
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        char q[160];
        if (strcmp(key, "auth_file") == 0) {
            const char *p = json_string_value(v);
            if (json_is_null(v))
                continue;
            if (p == NULL || p[0] != '/' || strlen(p) > AUTH_FILE_PATH_MAX) {
                rc =
                    gy_error_set(err, GY_EINVAL,
                                 "registry config %s: auth_file: must be an absolute path", origin);
                goto out;
            }
            out->auth_file = gy_xstrdup(p);
        } else if (strcmp(key, "registries") == 0) {
            if (!json_is_object(v)) {
                rc = gy_error_set(err, GY_EINVAL,
                                  "registry config %s: registries: must be an object of "
                                  "registry hosts",
                                  origin);
                goto out;
            }
            out->hosts = gy_xcalloc(json_object_size(v) + 1, sizeof(*out->hosts));
            const char *host;
            json_t *hv;
            json_object_foreach(v, host, hv)
            {
                if (agent_registry_config_find(out, host) != NULL) {
                    rc = gy_error_set(err, GY_EINVAL,
                                      "registry config %s: registries.\"%s\": given twice", origin,
                                      agent_reg_quote(host, q, sizeof(q)));
                    goto out;
                }
                struct agent_registry_host *h = &out->hosts[out->n_hosts++];
                if ((rc = host_parse(origin, host, hv, h, err)) < 0)
                    goto out;
            }
        } else {
            rc = gy_error_set(err, GY_EINVAL,
                              "registry config %s: %s: unknown field (known: auth_file, "
                              "registries)",
                              origin, agent_reg_quote(key, q, sizeof(q)));
            goto out;
        }
    }
out:
    json_decref(root);
    return rc;
}

int agent_registry_config_load(const char *path, struct agent_registry_config *out,
                               struct gy_error *err)
{
    memset(out, 0, sizeof(*out));
    /* O_NONBLOCK: a FIFO at the path must not hang the caller (it is refused below). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return gy_error_sys(err, errno, "open registry config %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return gy_error_set(err, GY_EINVAL, "registry config %s: not a regular file", path);
    }
    cleanup_fclose FILE *f = fdopen(fd, "r");
    if (f == NULL) {
        int e = errno;
        close(fd);
        return gy_error_sys(err, e, "open registry config %s", path);
    }
    cleanup_free char *text = gy_xmalloc(CONFIG_FILE_MAX + 1);
    size_t len = fread(text, 1, CONFIG_FILE_MAX + 1, f);
    if (ferror(f))
        return gy_error_sys(err, errno, "read registry config %s", path);
    if (len > CONFIG_FILE_MAX)
        return gy_error_set(err, GY_ETOOBIG, "registry config %s: larger than %d bytes", path,
                            CONFIG_FILE_MAX);
    return agent_registry_config_parse(text, len, path, out, err);
}

const struct agent_registry_host *
agent_registry_config_find(const struct agent_registry_config *cfg, const char *host)
{
    if (cfg == NULL || host == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n_hosts; i++)
        if (cfg->hosts[i].host != NULL && strcasecmp(cfg->hosts[i].host, host) == 0)
            return &cfg->hosts[i];
    return NULL;
}
