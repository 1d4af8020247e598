/* The HTTP client of the control-plane API over libcurl's easy interface: one handle per
 * run so that a sequence of requests (apply --wait polling, events -f) reuses one
 * connection; leader redirects followed with method and body kept; 503 "no leader"
 * retried briefly; failed answers turned into one sentence for the user. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "common/xalloc.h"
#include "ctl/ctl.h"

/* A write to an HTTP server must not take longer than this to connect. */
#define CONNECT_TIMEOUT_MS 5000L
/* An ordinary request (not a long-poll or a log stream). */
#define REQUEST_TIMEOUT_MS 30000L
/* The API answers 503 during elections; a second between tries is what it asks for. */
#define NO_LEADER_RETRIES 5

int ctl_client_init(struct ctl_client *client, const char *base, struct gy_error *err)
{
    memset(client, 0, sizeof(*client));
    if (base == NULL || *base == '\0')
        base = getenv("GANTRY_ADDR");
    if (base == NULL || *base == '\0')
        base = CTL_DEFAULT_SERVER;
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        /* A bare HOST:PORT is what people type most; it means plain HTTP. */
        if (strstr(base, "://") != NULL)
            return gy_error_set(err, GY_EINVAL,
                                "server address \"%s\" must start with http:// or https://", base);
        client->base = gy_xasprintf("http://%s", base);
    } else {
        client->base = gy_xstrdup(base);
    }
    /* Trailing slashes go, so that paths join cleanly; the host part must remain. */
    char *host = strstr(client->base, "://") + 3;
    size_t len = strlen(client->base);
    while (len > (size_t)(host - client->base) && client->base[len - 1] == '/')
        client->base[--len] = '\0';
    if (*host == '\0' || *host == '/' || *host == ':') {
        free(client->base);
        client->base = NULL;
        return gy_error_set(err, GY_EINVAL, "server address \"%s\" has no host", base);
    }
    const char *user = getenv("USER");
    client->actor = gy_xasprintf("user:%s", user && *user ? user : "cli");
    client->timeout_ms = REQUEST_TIMEOUT_MS;
    client->retries = NO_LEADER_RETRIES;
    client->curl = curl_easy_init();
    if (client->curl == NULL) {
        ctl_client_free(client);
        return gy_error_set(err, GY_ENOMEM, "cannot start the HTTP client");
    }
    return 0;
}

void ctl_client_free(struct ctl_client *client)
{
    if (client->curl != NULL)
        curl_easy_cleanup(client->curl);
    free(client->base);
    free(client->actor);
    memset(client, 0, sizeof(*client));
}

void ctl_response_free(struct ctl_response *resp)
{
    free(resp->body);
    json_decref(resp->json);
    memset(resp, 0, sizeof(*resp));
}

char *ctl_url_escape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = gy_xmalloc(3 * n + 1), *p = out;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = hex[c >> 4];
            *p++ = hex[c & 15];
        }
    }
    *p = '\0';
    return out;
}

/* ---------------------------------------------------------------------------------------
 * Transfers */

struct transfer {
    struct ctl_client *client;
    struct ctl_response *resp;
    size_t cap;
    ctl_sink_fn sink; /* NULL: collect everything */
    void *sink_arg;
};

static size_t collect(struct transfer *t, const char *data, size_t len)
{
    struct ctl_response *r = t->resp;
    if (r->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < r->len + len + 1)
            cap *= 2;
        r->body = gy_xrealloc(r->body, cap);
        t->cap = cap;
    }
    memcpy(r->body + r->len, data, len);
    r->len += len;
    r->body[r->len] = '\0';
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * nmemb;
    if (t->sink != NULL) {
        long status = 0;
        curl_easy_getinfo(t->client->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300)
            return t->sink(data, len, t->sink_arg);
    }
    return collect(t, data, len);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct transfer *t = arg;
    size_t len = size * nmemb;
    if (len > 7 && strncasecmp(data, "server:", 7) == 0) {
        const char *v = data + 7;
        size_t n = len - 7;
        while (n > 0 && (*v == ' ' || *v == '\t'))
            v++, n--;
        while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
            n--;
        snprintf(t->client->server, sizeof(t->client->server), "%.*s", (int)n, v);
    }
    return len;
}

static int transfer_once(struct ctl_client *client, const char *method, const char *url,
                         const char *body, long timeout_ms, struct transfer *t,
                         struct gy_error *err)
{
    CURL *curl = client->curl;
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_reset(curl);
    struct curl_slist *headers = NULL;
    char *actor = gy_xasprintf("X-Gantry-Actor: %s", client->actor);
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, actor);
    if (body != NULL)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    if (body != NULL) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "gantry/" GANTRY_VERSION);
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    if (timeout_ms > 0)
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    /* A follower may answer with a redirect to the leader: follow it with the same method
     * and body (CUSTOMREQUEST keeps the method; POSTREDIR keeps a POST a POST). */
    curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(curl, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, t);
    client->server[0] = '\0';
    CURLcode rc = curl_easy_perform(curl);
    curl_slist_free_all(headers);
    free(actor);
    char *final = NULL;
    if (curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &final) == CURLE_OK && final != NULL)
        snprintf(client->final, sizeof(client->final), "%s", final);
    if (rc != CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_WRITE_ERROR && status >= 200 && status < 300) {
            /* The sink stopped the stream on purpose (its reader went away). */
            t->resp->status = status;
            return 0;
        }
        const char *why = *curl_err ? curl_err : curl_easy_strerror(rc);
        if (rc == CURLE_OPERATION_TIMEDOUT && status != 0)
            return gy_error_set(err, GY_ETIMEOUT,
                                "the control plane at %s did not finish "
                                "answering in time: %s",
                                client->base, why);
        return gy_error_set(err, GY_EUNAVAILABLE, "cannot reach the control plane at %s: %s",
                            client->base, why);
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t->resp->status);
    return 0;
}

static int perform(struct ctl_client *client, const char *method, const char *path,
                   const json_t *body, long timeout_ms, ctl_sink_fn sink, void *sink_arg,
                   struct ctl_response *resp, struct gy_error *err)
{
    memset(resp, 0, sizeof(*resp));
    char *url = gy_xasprintf("%s%s", client->base, path);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (timeout_ms == 0)
        timeout_ms = client->timeout_ms;
    int rc = 0;
    for (unsigned attempt = 0;; attempt++) {
        struct transfer t = {.client = client, .resp = resp, .sink = sink, .sink_arg = sink_arg};
        rc = transfer_once(client, method, url, text, timeout_ms, &t, err);
        /* No leader at the moment: once an election had time to finish, the request goes
         * again. Apply, scale and reads are idempotent; a delete is not sent twice, since
         * a 503 can also mean that the leader lost its post after appending it, and a
         * repeated delete would then report "not found" for a workload it removed. */
        if (rc < 0 || resp->status != 503 || attempt >= client->retries ||
            strcmp(method, "DELETE") == 0)
            break;
        ctl_response_free(resp);
        sleep(1);
    }
    free(url);
    free(text);
    if (rc < 0) {
        ctl_response_free(resp);
        return rc;
    }
    if (resp->body != NULL)
        resp->json = json_loadb(resp->body, resp->len, 0, NULL);
    return 0;
}

int ctl_client_request(struct ctl_client *client, const char *method, const char *path,
                       const json_t *body, long timeout_ms, struct ctl_response *resp,
                       struct gy_error *err)
{
    return perform(client, method, path, body, timeout_ms, NULL, NULL, resp, err);
}

int ctl_client_stream(struct ctl_client *client, const char *path, ctl_sink_fn sink, void *arg,
                      struct ctl_response *resp, struct gy_error *err)
{
    /* A log stream has no end in time; only the connection attempt is limited. */
    return perform(client, "GET", path, NULL, -1, sink, arg, resp, err);
}

/* ---------------------------------------------------------------------------------------
 * Errors */

static const char *status_text(long status)
{
    switch (status) {
    case 400:
        return "the request was rejected as invalid";
    case 401:
    case 403:
        return "the request is not allowed";
    case 404:
        return "not found";
    case 405:
        return "the server does not allow this method here";
    case 409:
        return "the request conflicts with the current state";
    case 413:
        return "the request is too large";
    case 500:
        return "the server failed";
    case 502:
    case 504:
        return "a server in between failed";
    case 503:
        return "the control plane has no leader at the moment; retry shortly";
    default:
        return "the request failed";
    }
}

char *ctl_error_sentence(long status, const char *body)
{
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    json_t *error = json_object_get(doc, "error");
    const char *message = json_string_value(json_object_get(error, "message"));
    char *out;
    if (message == NULL || *message == '\0') {
        out = gy_xasprintf("%s (HTTP %ld)", status_text(status), status);
        json_decref(doc);
        return out;
    }
    json_t *problems = json_object_get(error, "problems");
    if (json_array_size(problems) > 1) {
        /* Every problem on its own line, as the local check prints them; the summary
         * message would only repeat the first. */
        size_t i;
        json_t *p;
        out = gy_xasprintf("the server rejected the request:");
        json_array_foreach(problems, i, p)
        {
            const char *path = json_string_value(json_object_get(p, "path"));
            const char *msg = json_string_value(json_object_get(p, "message"));
            char *next = gy_xasprintf("%s\n  %s%s%s", out, path && *path ? path : "",
                                      path && *path ? ": " : "", msg ? msg : "");
            free(out);
            out = next;
        }
    } else {
        out = gy_xstrdup(message);
    }
    json_decref(doc);
    return out;
}

int ctl_response_error(const struct ctl_response *resp, struct gy_error *err)
{
    char *sentence = ctl_error_sentence(resp->status, resp->body);
    enum gy_code code = GY_EINTERNAL;
    if (resp->status == 404)
        code = GY_ENOTFOUND;
    else if (resp->status == 409)
        code = GY_ECONFLICT;
    else if (resp->status >= 400 && resp->status < 500)
        code = GY_EINVAL;
    else if (resp->status == 503)
        code = GY_EUNAVAILABLE;
    gy_error_set(err, code, "%s", sentence);
    free(sentence);
    return -(int)code;
}

int ctl_get_json(struct ctl_client *client, const char *path, json_t **out, struct gy_error *err)
{
    struct ctl_response resp;
    *out = NULL;
    int rc = ctl_client_request(client, "GET", path, NULL, 0, &resp, err);
    if (rc < 0)
        return rc;
    if (resp.status < 200 || resp.status >= 300) {
        rc = ctl_response_error(&resp, err);
        ctl_response_free(&resp);
        return rc;
    }
    if (resp.json == NULL) {
        ctl_response_free(&resp);
        return gy_error_set(err, GY_EPROTO, "the server's answer to GET %s is not JSON", path);
    }
    *out = resp.json;
    resp.json = NULL;
    ctl_response_free(&resp);
    return 0;
}

char *ctl_path(const char *base, const char *joiner, const char *value)
{
    if (value == NULL)
        return gy_xstrdup(base);
    char *esc = ctl_url_escape(value);
    char *path = gy_xasprintf("%s%s%s", base, joiner, esc);
    free(esc);
    return path;
}
