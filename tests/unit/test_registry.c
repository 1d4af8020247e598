/* Unit tests of the registry client's offline parts: platforms, manifest parsing and
 * checks, picking an index entry, and the registry configuration. The network side is
 * tested against a real registry in tests/integration/test_registry.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/registry.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define D4 "sha256:4444444444444444444444444444444444444444444444444444444444444444"

static void machine_is(const char *machine, const char *arch, const char *variant)
{
    struct agent_platform p;
    agent_platform_from_machine(machine, &p);
    assert_string_equal(p.os, "linux");
    assert_string_equal(p.arch, arch);
    assert_string_equal(p.variant, variant);
}

static void test_platforms(void **state)
{
    (void)state;
    machine_is("x86_64", "amd64", "");
    machine_is("aarch64", "arm64", "v8");
    machine_is("armv7l", "arm", "v7");
    machine_is("armv6l", "arm", "v6");
    machine_is("armv5tel", "arm", "v5");
    machine_is("i686", "386", "");
    machine_is("ppc64le", "ppc64le", "");
    machine_is("s390x", "s390x", "");
    machine_is("riscv64", "riscv64", "");
    machine_is("weird9000", "weird9000", "");

    struct agent_platform p;
    struct gy_error err;
    assert_int_equal(agent_platform_detect(&p, &err), 0);
    assert_string_equal(p.os, "linux");
    assert_true(p.arch[0] != '\0');

    assert_int_equal(agent_platform_parse("linux/arm64/v8", &p, &err), 0);
    assert_string_equal(p.arch, "arm64");
    assert_string_equal(p.variant, "v8");
    char buf[96];
    agent_platform_format(&p, buf, sizeof(buf));
    assert_string_equal(buf, "linux/arm64/v8");
    assert_int_equal(agent_platform_parse("linux/amd64", &p, &err), 0);
    agent_platform_format(&p, buf, sizeof(buf));
    assert_string_equal(buf, "linux/amd64");
    const char *bad[] = {"",
                         "linux",
                         "linux/",
                         "/amd64",
                         "linux/amd64/",
                         "a/b/c/d",
                         "Linux/amd64",
                         "linux/amd 64",
                         "linux/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (agent_platform_parse(bad[i], &p, &err) != -GY_EINVAL)
            fail_msg("platform \"%s\" accepted", bad[i]);
}

static int parse(const char *json, const char *ct, struct agent_manifest *m, struct gy_error *err)
{
    return agent_manifest_parse(json, strlen(json), ct, m, err);
}

static const char oci_manifest[] =
    "{\"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.manifest.v1+json\","
    " \"config\": {\"mediaType\": \"application/vnd.oci.image.config.v1+json\", \"digest\": \"" D1
    "\", \"size\": 500},"
    " \"layers\": [{\"mediaType\": \"application/vnd.oci.image.layer.v1.tar+gzip\", \"digest\": "
    "\"" D2 "\", \"size\": 1000},"
    "  {\"mediaType\": \"application/vnd.oci.image.layer.v1.tar+gzip\", \"digest\": \"" D3
    "\", \"size\": 0}]}";

static const char docker_list[] =
    "{\"schemaVersion\": 2, \"mediaType\": "
    "\"application/vnd.docker.distribution.manifest.list.v2+json\", \"manifests\": ["
    " {\"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\", \"digest\": \"" D1
    "\", \"size\": 10, \"platform\": {\"os\": \"linux\", \"architecture\": \"arm\", "
    "\"variant\": \"v6\"}},"
    " {\"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\", \"digest\": \"" D2
    "\", \"size\": 11, \"platform\": {\"os\": \"linux\", \"architecture\": \"arm64\", "
    "\"variant\": \"v8\"}},"
    " {\"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\", \"digest\": \"" D3
    "\", \"size\": 12, \"platform\": {\"os\": \"linux\", \"architecture\": \"amd64\"}},"
    " {\"mediaType\": \"application/vnd.docker.distribution.manifest.v2+json\", \"digest\": \"" D4
    "\", \"size\": 13, \"platform\": {\"os\": \"windows\", \"architecture\": \"amd64\"}}]}";

static void test_manifest_kinds(void **state)
{
    (void)state;
    struct agent_manifest m;
    struct gy_error err;
    assert_int_equal(parse(oci_manifest, AGENT_MEDIA_OCI_MANIFEST, &m, &err), 0);
    assert_int_equal(m.kind, AGENT_MANIFEST_OCI);
    assert_false(agent_manifest_is_index(m.kind));
    assert_string_equal(m.config.digest, D1);
    assert_int_equal(m.config.size, 500);
    assert_int_equal(m.n_layers, 2);
    assert_string_equal(m.layers[1].digest, D3);
    assert_int_equal(m.len, strlen(oci_manifest));
    assert_memory_equal(m.bytes, oci_manifest, m.len);
    assert_true(gy_image_digest_valid(m.digest));
    agent_manifest_free(&m);

    /* The Content-Type may carry parameters, or be generic (then the content tells). */
    assert_int_equal(
        parse(oci_manifest, "Application/VND.oci.image.manifest.v1+json; charset=x", &m, &err), 0);
    agent_manifest_free(&m);
    assert_int_equal(parse(oci_manifest, "application/json", &m, &err), 0);
    assert_int_equal(m.kind, AGENT_MANIFEST_OCI);
    agent_manifest_free(&m);
    assert_int_equal(parse(oci_manifest, NULL, &m, &err), 0);
    agent_manifest_free(&m);

    assert_int_equal(parse(docker_list, AGENT_MEDIA_DOCKER_LIST, &m, &err), 0);
    assert_int_equal(m.kind, AGENT_MANIFEST_DOCKER_LIST);
    assert_true(agent_manifest_is_index(m.kind));
    assert_int_equal(m.n_manifests, 4);
    assert_true(m.manifests[0].has_platform);
    assert_string_equal(m.manifests[0].platform.variant, "v6");
    agent_manifest_free(&m);

    /* An OCI index without mediaType is known by its fields. */
    const char *index =
        "{\"schemaVersion\": 2, \"manifests\": [{\"mediaType\": "
        "\"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D1 "\", \"size\": 5}]}";
    assert_int_equal(parse(index, NULL, &m, &err), 0);
    assert_int_equal(m.kind, AGENT_MANIFEST_OCI_INDEX);
    assert_false(m.manifests[0].has_platform);
    agent_manifest_free(&m);
    assert_int_equal(parse(index, AGENT_MEDIA_OCI_INDEX, &m, &err), 0);
    agent_manifest_free(&m);

    const char *docker = "{\"schemaVersion\": 2, \"mediaType\": "
                         "\"application/vnd.docker.distribution.manifest.v2+json\", \"config\": "
                         "{\"mediaType\": \"application/vnd.docker.container.image.v1+json\", "
                         "\"digest\": \"" D1 "\", \"size\": 7}, \"layers\": []}";
    assert_int_equal(parse(docker, AGENT_MEDIA_DOCKER_MANIFEST, &m, &err), 0);
    assert_int_equal(m.kind, AGENT_MANIFEST_DOCKER_V2);
    assert_int_equal(m.n_layers, 0);
    agent_manifest_free(&m);
}

static void manifest_bad(const char *json, const char *ct, enum gy_code code, const char *what)
{
    struct agent_manifest m;
    struct gy_error err = {0};
    int rc = parse(json, ct, &m, &err);
    if (rc != -(int)code)
        fail_msg("%.120s: rc %d (%s), want %d", json, rc, err.msg, -(int)code);
    if (strstr(err.msg, what) == NULL)
        fail_msg("%.120s: message \"%s\" does not say \"%s\"", json, err.msg, what);
    for (const char *p = err.msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            fail_msg("message has byte 0x%02x", (unsigned char)*p);
    agent_manifest_free(&m);
}

static void test_manifest_refused(void **state)
{
    (void)state;
    const char *s1 = "{\"schemaVersion\": 1, \"name\": \"x\", \"fsLayers\": []}";
    manifest_bad(s1, NULL, GY_EPROTO, "schema 1 manifest, which is not supported");
    manifest_bad(s1, "application/vnd.docker.distribution.manifest.v1+prettyjws", GY_EPROTO,
                 "schema 1");
    manifest_bad(oci_manifest, "application/vnd.docker.distribution.manifest.v1+json", GY_EPROTO,
                 "schema 1");
    manifest_bad("{\"schemaVersion\": 3, \"config\": {}}", NULL, GY_EPROTO,
                 "schemaVersion must be 2");
    manifest_bad("{\"config\": {}}", NULL, GY_EPROTO, "schemaVersion must be 2");
    manifest_bad("not json", NULL, GY_EPROTO, "not valid JSON");
    manifest_bad("[2]", NULL, GY_EPROTO, "not a JSON object");
    manifest_bad("{\"schemaVersion\": 2, \"schemaVersion\": 2}", NULL, GY_EPROTO, "not valid JSON");
    manifest_bad(oci_manifest, AGENT_MEDIA_DOCKER_MANIFEST, GY_EPROTO,
                 "was sent as application/vnd.docker.distribution.manifest.v2+json but says it "
                 "is application/vnd.oci.image.manifest.v1+json");
    manifest_bad(oci_manifest, "text/html", GY_EPROTO, "was sent as \"text/html\"");
    manifest_bad("{\"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.artifact.manifest."
                 "v1+json\"}",
                 NULL, GY_EPROTO, "not an image manifest or index");
    manifest_bad("{\"schemaVersion\": 2, \"mediaType\": \"evil\\u001b[2J\"}", NULL, GY_EPROTO,
                 "evil?[2J");
    manifest_bad("{\"schemaVersion\": 2, \"mediaType\": 5}", NULL, GY_EPROTO,
                 "mediaType must be a string");
    manifest_bad("{\"schemaVersion\": 2}", NULL, GY_EPROTO, "neither an image manifest");
    manifest_bad("{\"schemaVersion\": 2, \"config\": {\"mediaType\": \"application/vnd.oci.image."
                 "config.v1+json\", \"digest\": \"" D1 "\", \"size\": 5}}",
                 NULL, GY_EPROTO, "\"layers\" must be a list");
    manifest_bad("{\"schemaVersion\": 2, \"config\": {\"mediaType\": \"application/vnd.cncf.helm."
                 "config.v1+json\", \"digest\": \"" D1 "\", \"size\": 5}, \"layers\": []}",
                 NULL, GY_EPROTO, "not a container image");
    manifest_bad("{\"schemaVersion\": 2, \"config\": {\"mediaType\": \"application/vnd.oci.image."
                 "config.v1+json\", \"digest\": \"" D1 "\", \"size\": 99999999}, \"layers\": []}",
                 NULL, GY_ETOOBIG, "the image config is 99999999 bytes");
    manifest_bad("{\"schemaVersion\": 2, \"config\": {\"mediaType\": \"application/vnd.oci.image."
                 "config.v1+json\", \"digest\": \"" D1 "\", \"size\": 5}, \"layers\": "
                 "[{\"mediaType\": \"m\", \"digest\": \"sha512:abcd\", \"size\": 1}]}",
                 NULL, GY_EPROTO, "layers[0].digest \"sha512:abcd\" is not a sha256 digest");
    manifest_bad("{\"schemaVersion\": 2, \"config\": {\"mediaType\": \"application/vnd.oci.image."
                 "config.v1+json\", \"digest\": \"" D1 "\", \"size\": 5}, \"layers\": "
                 "[{\"mediaType\": \"m\", \"digest\": \"" D2 "\", \"size\": -1}]}",
                 NULL, GY_EPROTO, "layers[0].size must be");
    manifest_bad("{\"schemaVersion\": 2, \"config\": {\"mediaType\": \"application/vnd.oci.image."
                 "config.v1+json\", \"digest\": \"" D1 "\", \"size\": 5}, \"layers\": "
                 "[{\"digest\": \"" D2 "\", \"size\": 1}]}",
                 NULL, GY_EPROTO, "layers[0].mediaType is missing");
    manifest_bad("{\"schemaVersion\": 2, \"config\": 7, \"layers\": []}", NULL, GY_EPROTO,
                 "config is not an object");
    manifest_bad("{\"schemaVersion\": 2, \"manifests\": [{\"mediaType\": \"m\", \"digest\": \"" D1
                 "\", \"size\": 1, \"platform\": {\"os\": \"linux\"}}]}",
                 NULL, GY_EPROTO, "manifests[0].platform needs");

    /* Too large, and too many entries. */
    size_t n = AGENT_REGISTRY_MANIFEST_MAX + 1;
    char *big = malloc(n);
    memset(big, ' ', n);
    struct agent_manifest m;
    struct gy_error err;
    assert_int_equal(agent_manifest_parse(big, n, NULL, &m, &err), -GY_ETOOBIG);
    agent_manifest_free(&m);
    free(big);
    size_t cap = 200 * (AGENT_REGISTRY_ENTRIES_MAX + 2);
    big = malloc(cap);
    size_t o = (size_t)snprintf(big, cap, "{\"schemaVersion\": 2, \"manifests\": [");
    for (int i = 0; i <= AGENT_REGISTRY_ENTRIES_MAX; i++)
        o += (size_t)snprintf(big + o, cap - o,
                              "%s{\"mediaType\": \"m\", \"digest\": \"" D1 "\", \"size\": 1}",
                              i ? "," : "");
    snprintf(big + o, cap - o, "]}");
    manifest_bad(big, NULL, GY_EPROTO, "more than 1024 manifests");
    free(big);
}

static void picks(const char *json, const char *platform, const char *want_digest)
{
    struct agent_manifest m;
    struct gy_error err;
    assert_int_equal(parse(json, NULL, &m, &err), 0);
    struct agent_platform p;
    assert_int_equal(agent_platform_parse(platform, &p, &err), 0);
    size_t which = 99;
    int rc = agent_manifest_pick(&m, &p, &which, &err);
    if (want_digest == NULL) {
        assert_int_equal(rc, -GY_ENOTFOUND);
    } else {
        if (rc < 0)
            fail_msg("%s: %s", platform, err.msg);
        assert_string_equal(m.manifests[which].digest, want_digest);
    }
    agent_manifest_free(&m);
}

static void test_pick(void **state)
{
    (void)state;
    picks(docker_list, "linux/amd64", D3);
    picks(docker_list, "linux/arm64/v8", D2);
    picks(docker_list, "linux/arm64", D2);
    picks(docker_list, "windows/amd64", D4);
    /* An arm v7 node runs the v6 image when there is nothing better. */
    picks(docker_list, "linux/arm/v7", D1);
    picks(docker_list, "linux/arm/v6", D1);
    picks(docker_list, "linux/arm/v5", NULL);
    picks(docker_list, "linux/s390x", NULL);

    struct agent_manifest m;
    struct gy_error err;
    assert_int_equal(parse(docker_list, NULL, &m, &err), 0);
    struct agent_platform p;
    agent_platform_parse("linux/riscv64", &p, &err);
    size_t which;
    assert_int_equal(agent_manifest_pick(&m, &p, &which, &err), -GY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no image for linux/riscv64"));
    assert_non_null(
        strstr(err.msg, "it has: linux/arm/v6, linux/arm64/v8, linux/amd64, windows/amd64"));
    agent_manifest_free(&m);

    /* Exact variants first; entries that are not image manifests (attestations, nested
     * indexes) and entries without a platform never count. */
    const char *idx =
        "{\"schemaVersion\": 2, \"mediaType\": \"application/vnd.oci.image.index.v1+json\", "
        "\"manifests\": ["
        " {\"mediaType\": \"application/vnd.oci.image.index.v1+json\", \"digest\": \"" D1
        "\", \"size\": 1, \"platform\": {\"os\": \"linux\", \"architecture\": \"amd64\"}},"
        " {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D2
        "\", \"size\": 1},"
        " {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D3
        "\", \"size\": 1, \"platform\": {\"os\": \"linux\", \"architecture\": \"arm\"}},"
        " {\"mediaType\": \"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D4
        "\", \"size\": 1, \"platform\": {\"os\": \"unknown\", \"architecture\": \"unknown\"}}]}";
    picks(idx, "linux/amd64", NULL);
    picks(idx, "linux/arm/v7", D3); /* arm without a variant is v7 */
    picks(idx, "linux/arm/v6", NULL);
    assert_int_equal(parse(idx, NULL, &m, &err), 0);
    agent_platform_parse("linux/amd64", &p, &err);
    assert_int_equal(agent_manifest_pick(&m, &p, &which, &err), -GY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "(no platform)"));
    assert_non_null(strstr(err.msg, "unknown/unknown"));
    agent_manifest_free(&m);

    /* Hostile platform words are shown tamed. */
    const char *evil = "{\"schemaVersion\": 2, \"manifests\": [{\"mediaType\": "
                       "\"application/vnd.oci.image.manifest.v1+json\", \"digest\": \"" D1
                       "\", \"size\": 1, \"platform\": {\"os\": \"li\\nnux\", \"architecture\": "
                       "\"\\u001b[31m\"}}]}";
    assert_int_equal(parse(evil, NULL, &m, &err), 0);
    agent_platform_parse("linux/amd64", &p, &err);
    assert_int_equal(agent_manifest_pick(&m, &p, &which, &err), -GY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "li?nux/??31m"));
    agent_manifest_free(&m);
}

static void config_bad(const char *json, const char *what)
{
    struct agent_registry_config cfg;
    struct gy_error err = {0};
    int rc = agent_registry_config_parse(json, strlen(json), "reg.json", &cfg, &err);
    agent_registry_config_free(&cfg);
    if (rc >= 0)
        fail_msg("accepted: %s", json);
    if (strstr(err.msg, what) == NULL)
        fail_msg("%s: message \"%s\" does not say \"%s\"", json, err.msg, what);
    assert_non_null(strstr(err.msg, "registry config reg.json: "));
}

static void test_config(void **state)
{
    (void)state;
    const char *json =
        "{\"auth_file\": \"/etc/gantry/auth.json\", \"registries\": {"
        " \"127.0.0.1:5000\": {\"insecure\": true},"
        " \"docker.io\": {\"mirrors\": [\"https://Mirror.Example\", \"http://10.0.0.9:5000/\","
        " \"m2.example:8443\"]},"
        " \"Quay.io\": {\"insecure\": false, \"mirrors\": []}}}";
    struct agent_registry_config cfg;
    struct gy_error err;
    assert_int_equal(agent_registry_config_parse(json, strlen(json), "reg.json", &cfg, &err), 0);
    assert_string_equal(cfg.auth_file, "/etc/gantry/auth.json");
    assert_int_equal(cfg.n_hosts, 3);
    const struct agent_registry_host *h = agent_registry_config_find(&cfg, "127.0.0.1:5000");
    assert_non_null(h);
    assert_true(h->insecure);
    assert_int_equal(h->n_mirrors, 0);
    h = agent_registry_config_find(&cfg, "docker.io");
    assert_false(h->insecure);
    assert_int_equal(h->n_mirrors, 3);
    assert_string_equal(h->mirrors[0], "https://mirror.example");
    assert_string_equal(h->mirrors[1], "http://10.0.0.9:5000");
    assert_string_equal(h->mirrors[2], "https://m2.example:8443");
    h = agent_registry_config_find(&cfg, "QUAY.IO");
    assert_non_null(h);
    assert_string_equal(h->host, "quay.io");
    assert_null(agent_registry_config_find(&cfg, "127.0.0.1:5001"));
    assert_null(agent_registry_config_find(NULL, "quay.io"));
    agent_registry_config_free(&cfg);

    assert_int_equal(agent_registry_config_parse("{}", 2, "reg.json", &cfg, &err), 0);
    assert_null(cfg.auth_file);
    agent_registry_config_free(&cfg);

    config_bad("", "line 1");
    config_bad("[]", "must hold a JSON object");
    config_bad("{\"auth_file\": \"relative/auth.json\"}", "auth_file: must be an absolute path");
    config_bad("{\"auth_file\": 5}", "auth_file: must be an absolute path");
    config_bad("{\"registry\": {}}", "registry: unknown field (known: auth_file, registries)");
    config_bad("{\"registries\": []}", "registries: must be an object");
    config_bad("{\"registries\": {\"r.example\": true}}", "registries.\"r.example\": must be");
    config_bad("{\"registries\": {\"r.example\": {\"insecure\": \"yes\"}}}",
               "registries.\"r.example\".insecure: must be true or false");
    config_bad("{\"registries\": {\"r.example\": {\"insecure\": 1}}}", ".insecure: must be");
    config_bad("{\"registries\": {\"r.example\": {\"mirror\": []}}}",
               "registries.\"r.example\".mirror: unknown field (known: insecure, mirrors)");
    config_bad("{\"registries\": {\"r.example\": {\"mirrors\": \"https://m\"}}}",
               ".mirrors: must be a list");
    config_bad("{\"registries\": {\"r.example\": {\"mirrors\": [\"https://m\", 5]}}}",
               ".mirrors[1]: must be a string");
    config_bad("{\"registries\": {\"r.example\": {\"mirrors\": [\"ftp://m\"]}}}",
               ".mirrors[0]: \"ftp://m\" must be http://HOST[:PORT]");
    config_bad("{\"registries\": {\"r.example\": {\"mirrors\": [\"https://m/path\"]}}}",
               ".mirrors[0]: \"https://m/path\" is not a registry address");
    config_bad("{\"registries\": {\"r.example\": {\"mirrors\": [\"https://\"]}}}",
               "is not a registry address");
    config_bad("{\"registries\": {\"r.example\": {\"mirrors\": [\"https://m:0\"]}}}",
               "is not a registry address");
    config_bad("{\"registries\": {\"bad host\": {}}}", "registries.\"bad host\": registry host");
    config_bad("{\"registries\": {\"r.example/x\": {}}}", "registry host");
    config_bad("{\"registries\": {\"r.example\": {}, \"R.Example\": {}}}",
               "registries.\"R.Example\": given twice");
    config_bad("{\"registries\": {\"r.example\": {}, \"r.example\": {}}}", "duplicate");
    config_bad("{\"registries\": {\"r\\u001b.example\": {}}}", "r\\x1b.example");
    char big[4096] = "{\"registries\": {\"r.example\": {\"mirrors\": [";
    for (int i = 0; i < AGENT_REGISTRY_MIRRORS_MAX + 1; i++)
        strcat(big, i ? ", \"https://m\"" : "\"https://m\"");
    strcat(big, "]}}}");
    config_bad(big, "more than 16 mirrors");

    assert_true(agent_registry_config_load("/nonexistent/reg.json", &cfg, &err) < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/reg.json"));
    agent_registry_config_free(&cfg);
    assert_true(agent_registry_config_load("/tmp", &cfg, &err) < 0);
    assert_non_null(strstr(err.msg, "not a regular file"));
    agent_registry_config_free(&cfg);
    char path[] = "/tmp/test_registry_config.XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, json, strlen(json)), (int)strlen(json));
    close(fd);
    assert_int_equal(agent_registry_config_load(path, &cfg, &err), 0);
    assert_int_equal(cfg.n_hosts, 3);
    agent_registry_config_free(&cfg);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_platforms),        cmocka_unit_test(test_manifest_kinds),
        cmocka_unit_test(test_manifest_refused), cmocka_unit_test(test_pick),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
