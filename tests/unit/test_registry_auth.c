/* Unit tests of registry authentication: the auth file reader, the WWW-Authenticate
 * parser and the token answer parser with hostile input, and the token cache on a clock
 * the test sets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/registry_auth.h"

/* base64("alice:s3cret-pw") */
#define ALICE "YWxpY2U6czNjcmV0LXB3"

static struct agent_registry_auth *auth_ok(const char *json)
{
    struct agent_registry_auth *auth = NULL;
    struct gy_error err = {0};
    if (agent_registry_auth_parse(json, strlen(json), "test.json", &auth, &err) < 0)
        fail_msg("%s: %s", json, err.msg);
    return auth;
}

/* json is refused; the message contains what and never the secret. */
static void auth_bad(const char *json, size_t len, const char *what)
{
    struct agent_registry_auth *auth = (void *)1;
    struct gy_error err = {0};
    int rc = agent_registry_auth_parse(json, len, "test.json", &auth, &err);
    if (rc >= 0)
        fail_msg("accepted: %.200s", json);
    assert_null(auth);
    if (strstr(err.msg, what) == NULL)
        fail_msg("message \"%s\" does not say \"%s\"", err.msg, what);
    assert_non_null(strstr(err.msg, "test.json"));
    static const char *const secrets[] = {"s3cret", ALICE, "hunter2", "aHVudGVy"};
    for (size_t i = 0; i < 4; i++)
        if (strstr(err.msg, secrets[i]) != NULL)
            fail_msg("message \"%s\" shows a secret", err.msg);
}

static void creds_are(const struct agent_registry_auth *auth, const char *host, const char *path,
                      const char *user, const char *pass)
{
    const struct agent_registry_creds *c = agent_registry_auth_find(auth, host, path);
    if (user == NULL) {
        if (c != NULL)
            fail_msg("%s %s: credentials of %s found", host, path ? path : "", c->username);
        return;
    }
    if (c == NULL)
        fail_msg("%s %s: no credentials", host, path ? path : "");
    assert_string_equal(c->username, user);
    assert_string_equal(c->password, pass);
}

static void test_auth_file_forms(void **state)
{
    (void)state;
    struct agent_registry_auth *auth =
        auth_ok("{\"auths\": {"
                "\"registry.example:5000\": {\"auth\": \"" ALICE "\"},"
                "\"Quay.IO/team\": {\"username\": \"bob\", \"password\": \"pw:with:colons\"},"
                "\"quay.io\": {\"auth\": \"Y2Fyb2w6Y3B3\"},"
                "\"https://index.docker.io/v1/\": {\"auth\": \"ZGF2ZTpkcHc=\"},"
                "\"docker.io\": {\"auth\": \"" ALICE "\"},"
                "\"http://plain.example:8080/v2/\": {\"username\": \"eve\", \"password\": \"\"},"
                "\"helper.example\": {},"
                "\"token.example\": {\"identitytoken\": \"xyz\"}"
                "}, \"credsStore\": \"desktop\", \"credHelpers\": {\"x\": \"y\"}}");
    assert_int_equal(agent_registry_auth_count(auth), 5);
    assert_string_equal(agent_registry_auth_origin(auth), "test.json");
    creds_are(auth, "registry.example:5000", "team/web", "alice", "s3cret-pw");
    creds_are(auth, "REGISTRY.example:5000", NULL, "alice", "s3cret-pw");
    creds_are(auth, "registry.example", "team/web", NULL, NULL);
    /* The most specific namespace wins; a prefix must end at a '/'. */
    creds_are(auth, "quay.io", "team/web", "bob", "pw:with:colons");
    creds_are(auth, "quay.io", "team", "bob", "pw:with:colons");
    creds_are(auth, "quay.io", "teamx/web", "carol", "cpw");
    creds_are(auth, "quay.io", NULL, "carol", "cpw");
    /* Docker Hub under its three names; the first key for it in the file wins. */
    creds_are(auth, "docker.io", "library/busybox", "dave", "dpw");
    creds_are(auth, "registry-1.docker.io", "library/busybox", "dave", "dpw");
    creds_are(auth, "index.docker.io", NULL, "dave", "dpw");
    creds_are(auth, "plain.example:8080", "x", "eve", "");
    creds_are(auth, "helper.example", "x", NULL, NULL);
    creds_are(auth, "token.example", "x", NULL, NULL);
    creds_are(NULL, "quay.io", "x", NULL, NULL);
    agent_registry_auth_free(auth);

    auth = auth_ok("{}");
    assert_int_equal(agent_registry_auth_count(auth), 0);
    agent_registry_auth_free(auth);
    auth = auth_ok("{\"auths\": null}");
    agent_registry_auth_free(auth);
    auth = auth_ok("{\"auths\": {\"r.example\": {\"auth\": \"\"}}}");
    assert_int_equal(agent_registry_auth_count(auth), 0);
    agent_registry_auth_free(auth);
}

static void test_auth_file_hostile(void **state)
{
    (void)state;
#define BAD(json, what) auth_bad(json, strlen(json), what)
    BAD("", "not valid JSON");
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"" ALICE "\"}", "not valid JSON (line 1");
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"s3cret\" \"hunter2\"}}}", "not valid JSON");
    BAD("[1, 2]", "must hold a JSON object");
    BAD("{\"auths\": []}", "\"auths\" must be an object");
    BAD("{\"auths\": {\"r.example\": \"" ALICE "\"}}", "must be an object");
    BAD("{\"auths\": {\"r.example\": {\"auth\": 12}}}", ".auth must be a string");
    BAD("{\"auths\": {\"r.example\": {\"username\": [\"hunter2\"]}}}",
        ".username must be a string");
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"aHVudGVy!!\"}}}", "not valid base64");
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"aHVudGVy\"}}}", "must encode \"user:password\"");
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"Omh1bnRlcjI=\"}}}",
        "must encode \"user:password\""); /* ":hunter2" */
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"YQBiOmh1bnRlcjI=\"}}}", "NUL byte");
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"a\"}}}", "not valid base64");
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"YWJj====\"}}}", "not valid base64");
    BAD("{\"auths\": {\"r.example\": {\"username\": \"bob\"}}}", "no password");
    BAD("{\"auths\": {\"r.example\": {\"auth\": \"" ALICE "\"}, \"r.example\": {}}}",
        "not valid JSON");
    BAD("{\"auths\": {\"bad host!\": {\"auth\": \"" ALICE "\"}}}", "does not name a registry");
    BAD("{\"auths\": {\"\": {\"auth\": \"" ALICE "\"}}}", "does not name a registry");
    BAD("{\"auths\": {\"r.example/Team\": {\"auth\": \"" ALICE "\"}}}",
        "invalid repository namespace");
    BAD("{\"auths\": {\"r.example//x\": {\"auth\": \"" ALICE "\"}}}",
        "invalid repository namespace");
    BAD("{\"auths\": {\"r.example\\u001b[2J\": {\"auth\": \"" ALICE "\"}}}", "\\x1b[2J");
    /* A NUL inside the text, and a file over the limit. */
    auth_bad("{\"auths\": {}}\0{}", 16, "not valid JSON");
    size_t big = AGENT_AUTH_FILE_MAX + 1;
    char *s = malloc(big);
    memset(s, ' ', big);
    s[0] = '{';
    s[big - 1] = '}';
    auth_bad(s, big, "larger than");
    free(s);
    /* Deep nesting is refused by the JSON reader, not by the stack. */
    size_t depth = 100000;
    s = malloc(2 * depth + 1);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    auth_bad(s, 2 * depth, "not valid JSON");
    free(s);
#undef BAD
}

static void test_auth_file_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_registry_auth.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    struct agent_registry_auth *auth = NULL;
    struct gy_error err;

    snprintf(path, sizeof(path), "%s/missing.json", dir);
    assert_int_equal(agent_registry_auth_load(path, &auth, &err), 0);
    assert_int_equal(agent_registry_auth_count(auth), 0);
    agent_registry_auth_free(auth);

    snprintf(path, sizeof(path), "%s/auth.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"auths\": {\"r.example\": {\"auth\": \"" ALICE "\"}}}\n", f);
    fclose(f);
    assert_int_equal(agent_registry_auth_load(path, &auth, &err), 0);
    creds_are(auth, "r.example", "x", "alice", "s3cret-pw");
    assert_string_equal(agent_registry_auth_origin(auth), path);
    agent_registry_auth_free(auth);

    assert_true(agent_registry_auth_load(dir, &auth, &err) < 0);
    assert_null(auth);
    assert_non_null(strstr(err.msg, "not a regular file"));
    /* A FIFO is refused at once rather than waited on. */
    char fifo[256];
    snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_true(agent_registry_auth_load(fifo, &auth, &err) < 0);
    assert_non_null(strstr(err.msg, "not a regular file"));
    unlink(fifo);
    unlink(path);
    rmdir(dir);
}

static struct agent_auth_challenge challenge_ok(const char *header)
{
    struct agent_auth_challenge ch;
    struct gy_error err = {0};
    if (agent_auth_challenge_parse(header, &ch, &err) < 0)
        fail_msg("%s: %s", header, err.msg);
    return ch;
}

static void challenge_bad(const char *header, const char *what)
{
    struct agent_auth_challenge ch;
    struct gy_error err = {0};
    if (agent_auth_challenge_parse(header, &ch, &err) >= 0)
        fail_msg("accepted: %.200s", header ? header : "(null)");
    assert_int_equal(err.code, GY_EPROTO);
    if (strstr(err.msg, what) == NULL)
        fail_msg("%.100s: message \"%s\" does not say \"%s\"", header ? header : "(null)", err.msg,
                 what);
}

static void test_challenges(void **state)
{
    (void)state;
    struct agent_auth_challenge ch = challenge_ok("Basic realm=\"Registry Realm\"");
    assert_int_equal(ch.scheme, AGENT_AUTH_BASIC);
    assert_string_equal(ch.realm, "Registry Realm");

    ch =
        challenge_ok("Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
                     "scope=\"repository:library/busybox:pull\"");
    assert_int_equal(ch.scheme, AGENT_AUTH_BEARER);
    assert_string_equal(ch.realm, "https://auth.docker.io/token");
    assert_string_equal(ch.service, "registry.docker.io");
    assert_string_equal(ch.scope, "repository:library/busybox:pull");

    /* Commas and '=' inside quotes, escapes, blanks around '=', any case. */
    ch = challenge_ok("bEaReR  Realm = \"https://a/t?x=1,y=2\" ,  service=\"s \\\"q\\\\\", "
                      "scope=\"repository:a:pull,push repository:b:pull\"");
    assert_string_equal(ch.realm, "https://a/t?x=1,y=2");
    assert_string_equal(ch.service, "s \"q\\");
    assert_string_equal(ch.scope, "repository:a:pull,push repository:b:pull");

    /* Unquoted values, including a bare URL some servers send. */
    ch = challenge_ok("Bearer realm=https://auth.example/token,service=reg");
    assert_string_equal(ch.realm, "https://auth.example/token");
    assert_string_equal(ch.service, "reg");

    /* Several challenges (or headers joined by ", "): Bearer wins, others are skipped. */
    ch = challenge_ok("Basic realm=\"b\", Bearer realm=\"https://t\", Negotiate");
    assert_int_equal(ch.scheme, AGENT_AUTH_BEARER);
    assert_string_equal(ch.realm, "https://t");
    ch = challenge_ok("Negotiate abc==, Basic realm=\"x\"");
    assert_int_equal(ch.scheme, AGENT_AUTH_BASIC);
    ch = challenge_ok("Newauth realm=\"apps\", type=1, title=\"Login, to \\\"apps\\\"\", Basic "
                      "realm=\"simple\"");
    assert_int_equal(ch.scheme, AGENT_AUTH_BASIC);
    assert_string_equal(ch.realm, "simple");
    ch = challenge_ok("Basic");
    assert_int_equal(ch.scheme, AGENT_AUTH_BASIC);
    ch = challenge_ok("Bearer realm=\"https://t\",,service=\"s\", ");
    assert_string_equal(ch.service, "s");
    ch = challenge_ok("Bearer realm=\"https://t\", unknown=\"x\", error=\"invalid_token\"");
    assert_string_equal(ch.realm, "https://t");
}

static void test_challenges_hostile(void **state)
{
    (void)state;
    challenge_bad(NULL, "missing");
    challenge_bad("", "neither Basic nor Bearer");
    challenge_bad("Negotiate", "neither Basic nor Bearer");
    challenge_bad("Bearer service=\"s\"", "has no realm");
    challenge_bad("Bearer realm=\"https://t", "unterminated quoted string");
    challenge_bad("Bearer realm=\"https://t\\", "unterminated quoted string");
    challenge_bad("Bearer realm=\"a\", realm=\"b\"", "given twice");
    challenge_bad("Bearer realm=\"a\", REALM=\"b\"", "given twice");
    challenge_bad("Bearer realm=\"a\nb\"", "control character");
    challenge_bad("Bearer realm=a\001b", "unexpected character");
    challenge_bad("Bearer realm=\"a\" service=\"b\"", "expected ','");
    challenge_bad("\"Bearer\" realm=x", "expected an authentication scheme");
    challenge_bad("Bearer/1 realm=x", "unexpected character after the scheme");
    char *big = malloc(3 * AGENT_AUTH_REALM_MAX);
    snprintf(big, 3 * AGENT_AUTH_REALM_MAX, "Bearer realm=\"");
    size_t n = strlen(big);
    memset(big + n, 'r', 2 * AGENT_AUTH_REALM_MAX);
    memcpy(big + n + 2 * AGENT_AUTH_REALM_MAX, "\"", 2);
    challenge_bad(big, "too long");
    free(big);
}

static void test_token_answers(void **state)
{
    (void)state;
    char *token = NULL;
    int64_t exp = 0;
    struct gy_error err;
#define TOK(json) agent_auth_token_parse(json, strlen(json), 1000000, &token, &exp, &err)
    assert_int_equal(TOK("{\"token\": \"abc.def-ghi\", \"expires_in\": 300}"), 0);
    assert_string_equal(token, "abc.def-ghi");
    assert_int_equal(exp, 1000000 + 300000 - 30000);
    free(token);
    /* Absent or short lifetimes mean 60 s; the margin is a tenth. */
    assert_int_equal(TOK("{\"access_token\": \"t2\"}"), 0);
    assert_string_equal(token, "t2");
    assert_int_equal(exp, 1000000 + 60000 - 6000);
    free(token);
    assert_int_equal(TOK("{\"token\": \"\", \"access_token\": \"t3\", \"expires_in\": 5}"), 0);
    assert_string_equal(token, "t3");
    assert_int_equal(exp, 1000000 + 54000);
    free(token);
    assert_int_equal(TOK("{\"token\": \"t\", \"expires_in\": -100}"), 0);
    assert_int_equal(exp, 1000000 + 54000);
    free(token);
    assert_int_equal(TOK("{\"token\": \"t\", \"expires_in\": 99999999999}"), 0);
    assert_int_equal(exp, 1000000 + 86400000 - 30000);
    free(token);
    assert_int_equal(TOK("{\"token\": \"t\", \"expires_in\": 120.5, \"issued_at\": \"x\"}"), 0);
    assert_int_equal(exp, 1000000 + 120000 - 12000);
    free(token);

    assert_int_equal(TOK("not json"), -GY_EPROTO);
    assert_null(token);
    assert_int_equal(TOK("[\"token\"]"), -GY_EPROTO);
    assert_int_equal(TOK("{\"token\": 5}"), -GY_EPROTO);
    assert_int_equal(TOK("{\"token\": \"\"}"), -GY_EPROTO);
    assert_int_equal(TOK("{\"token\": \"a b\"}"), -GY_EPROTO);
    assert_int_equal(TOK("{\"token\": \"a\\r\\nX-Evil: 1\"}"), -GY_EPROTO);
    assert_non_null(strstr(err.msg, "cannot be sent in a header"));
    assert_int_equal(TOK("{\"token\": \"caf\\u00e9\"}"), -GY_EPROTO);
    assert_int_equal(TOK("{\"token\": \"t\", \"expires_in\": \"300\"}"), -GY_EPROTO);
    assert_int_equal(TOK("{\"token\": \"t\", \"token\": \"u\"}"), -GY_EPROTO);
    assert_null(token);
    size_t n = AGENT_AUTH_TOKEN_MAX + 64;
    char *big = malloc(n);
    snprintf(big, n, "{\"token\": \"");
    size_t o = strlen(big);
    memset(big + o, 'x', AGENT_AUTH_TOKEN_MAX + 1);
    memcpy(big + o + AGENT_AUTH_TOKEN_MAX + 1, "\"}", 3);
    assert_int_equal(TOK(big), -GY_EPROTO);
    assert_non_null(strstr(err.msg, "longer than"));
    free(big);
#undef TOK
}

static void test_token_cache(void **state)
{
    (void)state;
    struct agent_token_cache *c = agent_token_cache_new();
    assert_null(agent_token_cache_get(c, "https://t", "s", "repository:a:pull", "", 0));
    agent_token_cache_put(c, "https://t", "s", "repository:a:pull", "", "tok-a", 1000);
    agent_token_cache_put(c, "https://t", "s", "repository:a:pull", "bob", "tok-bob", 1000);
    char *t = agent_token_cache_get(c, "https://t", "s", "repository:a:pull", "", 999);
    assert_string_equal(t, "tok-a");
    free(t);
    t = agent_token_cache_get(c, "https://t", "s", "repository:a:pull", "bob", 0);
    assert_string_equal(t, "tok-bob");
    free(t);
    /* Another scope, service or realm is another token. */
    assert_null(agent_token_cache_get(c, "https://t", "s", "repository:b:pull", "", 0));
    assert_null(agent_token_cache_get(c, "https://t", "s2", "repository:a:pull", "", 0));
    assert_null(agent_token_cache_get(c, "https://u", "s", "repository:a:pull", "", 0));
    /* Expired at its time. */
    assert_null(agent_token_cache_get(c, "https://t", "s", "repository:a:pull", "", 1000));
    assert_null(agent_token_cache_get(c, "https://t", "s", "repository:a:pull", "", 0));
    /* Replaced, and dropped. */
    agent_token_cache_put(c, "https://t", "s", "repository:a:pull", "bob", "tok-bob2", 5000);
    t = agent_token_cache_get(c, "https://t", "s", "repository:a:pull", "bob", 10);
    assert_string_equal(t, "tok-bob2");
    free(t);
    agent_token_cache_drop(c, "https://t", "s", "repository:a:pull", "bob");
    assert_null(agent_token_cache_get(c, "https://t", "s", "repository:a:pull", "bob", 10));
    /* Full: the one that expires soonest goes. */
    for (int i = 0; i < 100; i++) {
        char scope[32];
        snprintf(scope, sizeof(scope), "repository:r%d:pull", i);
        agent_token_cache_put(c, "https://t", "s", scope, "", "x", 10000 + i);
    }
    assert_null(agent_token_cache_get(c, "https://t", "s", "repository:r0:pull", "", 0));
    assert_null(agent_token_cache_get(c, "https://t", "s", "repository:r35:pull", "", 0));
    t = agent_token_cache_get(c, "https://t", "s", "repository:r36:pull", "", 0);
    assert_non_null(t);
    free(t);
    t = agent_token_cache_get(c, "https://t", "s", "repository:r99:pull", "", 0);
    assert_non_null(t);
    free(t);
    agent_token_cache_free(c);
    agent_token_cache_free(NULL);
}

static void *cache_worker(void *arg)
{
    struct agent_token_cache *c = arg;
    for (int i = 0; i < 2000; i++) {
        char scope[32];
        snprintf(scope, sizeof(scope), "s%d", i % 80);
        agent_token_cache_put(c, "r", "s", scope, "", "tok", 100 + i);
        free(agent_token_cache_get(c, "r", "s", scope, "", i));
        if (i % 7 == 0)
            agent_token_cache_drop(c, "r", "s", scope, "");
    }
    return NULL;
}

static void test_token_cache_threads(void **state)
{
    (void)state;
    struct agent_token_cache *c = agent_token_cache_new();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, cache_worker, c), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    agent_token_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_file_forms),    cmocka_unit_test(test_auth_file_hostile),
        cmocka_unit_test(test_auth_file_load),     cmocka_unit_test(test_challenges),
        cmocka_unit_test(test_challenges_hostile), cmocka_unit_test(test_token_answers),
        cmocka_unit_test(test_token_cache),        cmocka_unit_test(test_token_cache_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
