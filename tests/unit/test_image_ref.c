/* Unit tests of image references: normalisation as Docker does it, every refusal with its
 * column, hostile input, and printing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/image_ref.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void normalises_to(const char *in, const char *want)
{
    struct gy_image_ref ref;
    struct gy_error err = {0};
    if (gy_image_ref_parse(in, &ref, &err) < 0)
        fail_msg("\"%s\": %s", in, err.msg);
    char buf[GY_IMAGE_REF_MAX + 32];
    assert_true(gy_image_ref_format(&ref, buf, sizeof(buf)) > 0);
    if (strcmp(buf, want) != 0)
        fail_msg("\"%s\" normalised to \"%s\", want \"%s\"", in, buf, want);
    /* The normal form reads back as itself. */
    struct gy_image_ref again;
    if (gy_image_ref_parse(buf, &again, &err) < 0)
        fail_msg("normal form \"%s\": %s", buf, err.msg);
    assert_memory_equal(&ref, &again, sizeof(ref));
}

/* in is refused; the message names column col and contains what. */
static void refused(const char *in, size_t col, const char *what)
{
    struct gy_image_ref ref;
    memset(&ref, 0x5a, sizeof(ref));
    struct gy_error err = {0};
    int rc = gy_image_ref_parse(in, &ref, &err);
    if (rc != -GY_EINVAL)
        fail_msg("\"%s\" was accepted (rc %d)", in, rc);
    if (col > 0) {
        char c[32];
        snprintf(c, sizeof(c), "column %zu:", col);
        if (strstr(err.msg, c) == NULL)
            fail_msg("\"%s\": message \"%s\" does not name %s", in, err.msg, c);
    }
    if (strstr(err.msg, what) == NULL)
        fail_msg("\"%s\": message \"%s\" does not say \"%s\"", in, err.msg, what);
    /* Nothing but printable ASCII reaches a message. */
    for (const char *p = err.msg; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
            fail_msg("\"%s\": message has byte 0x%02x", in, (unsigned char)*p);
    /* out is untouched on failure. */
    assert_int_equal((unsigned char)ref.domain[0], 0x5a);
}

static void test_docker_hub_names(void **state)
{
    (void)state;
    normalises_to("busybox", "docker.io/library/busybox:latest");
    normalises_to("busybox:1.36", "docker.io/library/busybox:1.36");
    normalises_to("library/busybox", "docker.io/library/busybox:latest");
    normalises_to("docker.io/busybox", "docker.io/library/busybox:latest");
    normalises_to("index.docker.io/busybox:1", "docker.io/library/busybox:1");
    normalises_to("docker.io/library/busybox:latest", "docker.io/library/busybox:latest");
    normalises_to("team/web:1.4", "docker.io/team/web:1.4");
    normalises_to("team/sub/web", "docker.io/team/sub/web:latest");
    /* A host without a dot or port is a namespace on Docker Hub... */
    normalises_to("registry/web", "docker.io/registry/web:latest");
    /* ...and "localhost:5000" alone is a repository with a tag, as Docker reads it. */
    normalises_to("localhost:5000", "docker.io/library/localhost:5000");
}

static void test_registries(void **state)
{
    (void)state;
    normalises_to("registry.example:5000/team/web:1.4", "registry.example:5000/team/web:1.4");
    normalises_to("registry.example/team/web", "registry.example/team/web:latest");
    normalises_to("localhost:5000/x", "localhost:5000/x:latest");
    normalises_to("localhost/x", "localhost/x:latest");
    normalises_to("127.0.0.1:5000/test/busybox:v1", "127.0.0.1:5000/test/busybox:v1");
    normalises_to("[::1]:5000/x:y", "[::1]:5000/x:y");
    normalises_to("[fe80::1]/x", "[fe80::1]/x:latest");
    /* Upper case makes a first component a host (paths may not have it); it stays. */
    normalises_to("Registry.Example:5000/a", "Registry.Example:5000/a:latest");
    normalises_to("UPPER/x", "UPPER/x:latest");
    normalises_to("a-b.c-d.example/x", "a-b.c-d.example/x:latest");
    normalises_to("r.example:1/x", "r.example:1/x:latest");
    normalises_to("r.example:65535/x", "r.example:65535/x:latest");
}

static void test_path_grammar(void **state)
{
    (void)state;
    normalises_to("r.example/a.b/c_d/e__f/g-h/i---j/0x",
                  "r.example/a.b/c_d/e__f/g-h/i---j/0x:latest");
    normalises_to("r.example/a/b/c/d/e/f/g", "r.example/a/b/c/d/e/f/g:latest");
    normalises_to("x:T_1.-x", "docker.io/library/x:T_1.-x");
    normalises_to("x:_", "docker.io/library/x:_");
    char tag[200];
    memset(tag, 'a', sizeof(tag));
    memcpy(tag, "x:", 2);
    tag[2 + GY_IMAGE_TAG_MAX] = '\0';
    char want[256];
    snprintf(want, sizeof(want), "docker.io/library/%s", tag);
    normalises_to(tag, want);
}

static void test_digests(void **state)
{
    (void)state;
    normalises_to("busybox@sha256:" HEX64, "docker.io/library/busybox@sha256:" HEX64);
    normalises_to("team/web:1.4@sha256:" HEX64, "docker.io/team/web:1.4@sha256:" HEX64);
    normalises_to("localhost:5000/x@sha256:" HEX64, "localhost:5000/x@sha256:" HEX64);
    normalises_to("localhost:5000/x:t@sha256:" HEX64, "localhost:5000/x:t@sha256:" HEX64);
    struct gy_image_ref ref;
    struct gy_error err;
    assert_int_equal(gy_image_ref_parse("busybox@sha256:" HEX64, &ref, &err), 0);
    assert_string_equal(ref.tag, "");
    assert_string_equal(ref.digest, "sha256:" HEX64);
    assert_string_equal(ref.path, "library/busybox");
    assert_string_equal(ref.domain, "docker.io");

    assert_true(gy_image_digest_valid("sha256:" HEX64));
    assert_false(gy_image_digest_valid("sha256:" HEX64 "0"));
    assert_false(gy_image_digest_valid("sha256:0123"));
    assert_false(gy_image_digest_valid("sha512:" HEX64));
    assert_false(gy_image_digest_valid("SHA256:" HEX64));
    assert_false(gy_image_digest_valid(
        "sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(gy_image_digest_valid(""));
    assert_false(gy_image_digest_valid(NULL));
}

static void test_refused_names(void **state)
{
    (void)state;
    refused("", 0, "empty");
    refused(NULL, 0, "empty");
    refused("Busybox", 1, "lower-case ('B')");
    refused("team/Web", 6, "lower-case ('W')");
    refused("r.example/team/weB:1", 18, "lower-case");
    refused("a//b", 3, "empty path component");
    refused("/a", 1, "empty path component");
    refused("a/", 2, "empty path component");
    refused("localhost:5000/", 15, "empty path component");
    refused("r.example/a/../b", 13, "\"..\" is not allowed");
    refused("r.example/a/./b", 13, "\".\" is not allowed");
    refused("a/../b", 3, "\"..\" is not allowed");
    refused("a..b", 2, "is not a separator");
    refused("a._b", 2, "is not a separator");
    refused("a___b", 2, "is not a separator");
    refused("a-", 2, "must end with");
    refused("a.", 2, "must end with");
    refused("_a", 1, "must start with");
    refused("-a", 1, "must start with");
    refused("a+b", 2, "'+' is not allowed");
    refused("a/b%2f", 4, "'%' is not allowed");
    refused("a\\b", 2, "'\\' is not allowed");
    refused(HEX64, 1, "image ID");
    refused(":tag", 1, "repository name is missing");
    refused("@sha256:" HEX64, 1, "repository name is missing");
}

static void test_refused_hosts(void **state)
{
    (void)state;
    refused("../etc/passwd", 1, "empty label");
    refused(".r.example/x", 1, "empty label");
    refused("r..example/x", 3, "empty label");
    refused("r.example./x", 10, "empty label");
    refused("-r.example/x", 1, "start or end with '-'");
    refused("r-.example/x", 2, "start or end with '-'");
    refused("r_x.example/x", 2, "'_' is not allowed in a registry host");
    refused("host:0/x", 6, "port");
    refused("host:65536/x", 6, "port");
    refused("host:123456/x", 11, "port");
    refused("host:/x", 5, "port");
    refused("host:5x/x", 7, "port");
    refused("a:x/y", 3, "port");
    refused("[::1/x", 1, "must end with ']'");
    refused("[zz::1]/x", 2, "not allowed in an IPv6 address");
    refused("[]/x", 1, "IPv6 address");
    refused("[::1]x/y", 6, "only \":PORT\"");
    char label[100];
    memset(label, 'a', 64);
    memcpy(label + 64, ".example/x", 11);
    refused(label, 1, "longer than 63");
}

static void test_refused_tags_and_digests(void **state)
{
    (void)state;
    refused("busybox:", 8, "tag after ':' is empty");
    refused("a/b:", 4, "tag after ':' is empty");
    refused("a:-x", 3, "must start with a letter");
    refused("a:.x", 3, "must start with a letter");
    refused("a:1:2", 4, "':' is not allowed in a tag");
    refused("a:t!", 4, "'!' is not allowed in a tag");
    char tag[200];
    memset(tag, 't', sizeof(tag));
    memcpy(tag, "a:", 2);
    tag[2 + GY_IMAGE_TAG_MAX + 1] = '\0';
    refused(tag, 131, "longer than 128");

    refused("busybox@", 8, "digest after '@' is empty");
    refused("busybox@md5", 9, "\"sha256:\" followed by 64 hex");
    refused("busybox@sha512:" HEX64, 9, "\"sha512\" is not supported");
    refused("busybox@sha256:abc", 16, "3 hex digits, not 64");
    refused("busybox@sha256:" HEX64 "0", 16, "65 hex digits");
    refused("busybox@sha256:ABCDEF" HEX64, 16, "lower-case hex ('A')");
    refused("busybox@sha256:g" HEX64, 16, "'g' is not a hex digit");
    refused("busybox@sha256:" HEX64 "@sha256:" HEX64, 80, "at most one '@'");
    refused("a@b@c", 4, "at most one '@'");
    refused("a@sha256:" HEX64 ":tag", 74, "':' is not a hex digit");
}

static void test_hostile_bytes(void **state)
{
    (void)state;
    refused("a b", 2, "blanks");
    refused(" a", 1, "blanks");
    refused("a\n", 2, "control character 0x0a");
    refused("a\tb", 2, "control character 0x09");
    refused("a\rb", 2, "control character 0x0d");
    refused("a\x1b[31mb", 2, "control character 0x1b");
    refused("a\x7f", 2, "control character 0x7f");
    refused("caf\xc3\xa9", 4, "non-ASCII byte 0xc3");
    refused("\xff", 1, "non-ASCII");
    /* The quoted input in the message shows escapes, not the raw byte. */
    struct gy_image_ref ref;
    struct gy_error err;
    assert_int_equal(gy_image_ref_parse("x\x1b]0;pwned\x07", &ref, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "x\\x1b]0;pwned\\x07"));
    assert_int_equal(gy_image_ref_parse("a\"b", &ref, &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "\"a\\\"b\""));
}

static void test_overlong(void **state)
{
    (void)state;
    size_t n = 100000;
    char *s = malloc(n + 1);
    memset(s, 'a', n);
    s[n] = '\0';
    refused(s, GY_IMAGE_REF_MAX + 1, "longer than");
    /* The message stays short however long the input. */
    struct gy_image_ref ref;
    struct gy_error err;
    assert_int_equal(gy_image_ref_parse(s, &ref, &err), -GY_EINVAL);
    assert_true(strlen(err.msg) < 400);

    /* A name over 255 characters once docker.io/ is added. */
    memset(s, 'a', 250);
    memcpy(s + 250, "/bbbbbbbbbb", 12);
    refused(s, 1, "more than 255");
    /* Exactly 255 with its domain is fine. */
    memcpy(s, "r.example/", 10);
    memset(s + 10, 'a', 245);
    s[255] = '\0';
    assert_int_equal(gy_image_ref_parse(s, &ref, &err), 0);
    s[255] = 'a';
    s[256] = '\0';
    refused(s, 1, "more than 255");
    free(s);
}

static void test_format_and_domain_check(void **state)
{
    (void)state;
    struct gy_image_ref ref;
    struct gy_error err;
    assert_int_equal(gy_image_ref_parse("team/web:1.4@sha256:" HEX64, &ref, &err), 0);
    char buf[16];
    assert_int_equal(gy_image_ref_format(&ref, buf, sizeof(buf)), -1);
    assert_string_equal(buf, "");
    char name[64];
    assert_int_equal(gy_image_ref_name(&ref, name, sizeof(name)),
                     (int)strlen("docker.io/team/web"));
    assert_string_equal(name, "docker.io/team/web");

    assert_int_equal(gy_image_domain_check("registry.example:5000", &err), 0);
    assert_int_equal(gy_image_domain_check("[::1]:5000", &err), 0);
    assert_int_equal(gy_image_domain_check("localhost", &err), 0);
    assert_int_equal(gy_image_domain_check("", &err), -GY_EINVAL);
    assert_int_equal(gy_image_domain_check(NULL, &err), -GY_EINVAL);
    assert_int_equal(gy_image_domain_check("a/b", &err), -GY_EINVAL);
    assert_non_null(strstr(err.msg, "registry host \"a/b\" column 2"));
    assert_int_equal(gy_image_domain_check("host:99999", &err), -GY_EINVAL);
    assert_int_equal(gy_image_domain_check("http://host", &err), -GY_EINVAL);
}

/* Random bytes and random mixes of the grammar's characters: never a crash (the
 * sanitizers watch), and whatever is accepted prints to a form that reads back equal. */
static void test_random_input(void **state)
{
    (void)state;
    static const char alphabet[] = "abcAB09.:/@-_[]sha256:" HEX64;
    uint32_t seed = 12345;
    for (int round = 0; round < 200000; round++) {
        char s[96];
        size_t n = (size_t)(round % 90);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            uint32_t v = seed >> 16;
            s[i] = round % 4 == 0 ? (char)(1 + v % 255) : alphabet[v % (sizeof(alphabet) - 1)];
        }
        s[n] = '\0';
        struct gy_image_ref ref, again;
        struct gy_error err;
        if (gy_image_ref_parse(s, &ref, &err) < 0)
            continue;
        char buf[GY_IMAGE_REF_MAX + 32];
        assert_true(gy_image_ref_format(&ref, buf, sizeof(buf)) > 0);
        if (gy_image_ref_parse(buf, &again, &err) < 0)
            fail_msg("\"%s\" printed as \"%s\", which is refused: %s", s, buf, err.msg);
        assert_memory_equal(&ref, &again, sizeof(ref));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_hub_names),
        cmocka_unit_test(test_registries),
        cmocka_unit_test(test_path_grammar),
        cmocka_unit_test(test_digests),
        cmocka_unit_test(test_refused_names),
        cmocka_unit_test(test_refused_hosts),
        cmocka_unit_test(test_refused_tags_and_digests),
        cmocka_unit_test(test_hostile_bytes),
        cmocka_unit_test(test_overlong),
        cmocka_unit_test(test_format_and_domain_check),
        cmocka_unit_test(test_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
