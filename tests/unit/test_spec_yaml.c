/* Unit tests of the YAML reader: scalar resolution, positions, multi-document files, and
 * every kind of problem reported as FILE:LINE:COLUMN: path: message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/spec.h"

/* Loads text as "web.yaml" and returns the formatted problems joined by newlines. */
static char *load_problems(const char *text, struct gy_spec_file *file, int *rc)
{
    struct gy_error err;
    *rc = gy_spec_file_load_string("web.yaml", text, strlen(text), file, &err);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    gy_spec_file_print_problems(file, out);
    fclose(out);
    return buf;
}

/* Asserts that loading text fails and that the problems include the exact line want. */
static void expect_line(const char *text, const char *want)
{
    struct gy_spec_file file;
    int rc;
    char *all = load_problems(text, &file, &rc);
    if (rc != -GY_EINVAL || strstr(all, want) == NULL)
        fail_msg("expected the problem\n  %s\ngot (rc %d):\n%s", want, rc, all);
    /* Every problem names the file, a line and a column. */
    for (size_t i = 0; i < file.problems.n; i++)
        assert_true(file.problems.items[i].line > 0 && file.problems.items[i].column > 0);
    free(all);
    gy_spec_file_free(&file);
}

static const char *const two_docs = "# two workloads\n"
                                    "---\n"
                                    "name: web\n"
                                    "image: busybox\n"
                                    "command: [\"httpd\", \"-f\", \"-p\", \"8080\"]\n"
                                    "env: {GREETING: hello, PORT: \"8080\"}\n"
                                    "replicas: 3\n"
                                    "resources: {cpu: 250m, memory: 64Mi, pids: 128}\n"
                                    "restart: always\n"
                                    "health: {exec: [\"true\"], interval: 2s, timeout: 1s}\n"
                                    "placement:\n"
                                    "  clouds: [private, public]   # fill private first\n"
                                    "  spread: node\n"
                                    "  constraints: [\"disk == ssd\"]\n"
                                    "autoscale:\n"
                                    "  min: 1\n"
                                    "  max: 10\n"
                                    "  cpu: 70%\n"
                                    "  scale_down_after: 30s\n"
                                    "update: {max_surge: 1, max_unavailable: 0}\n"
                                    "---\n"
                                    "---\n"
                                    "name: worker\n"
                                    "image: busybox\n"
                                    "resources:\n"
                                    "  cpu: 0.5\n"
                                    "autoscale: off\n"
                                    "...\n";

static void test_multi_document(void **state)
{
    (void)state;
    struct gy_spec_file file;
    struct gy_error err;
    int rc = gy_spec_file_load_string("web.yaml", two_docs, strlen(two_docs), &file, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(file.n_specs, 2);
    const struct gy_spec *web = &file.specs[0], *worker = &file.specs[1];
    assert_string_equal(web->name, "web");
    assert_int_equal(web->command.n, 4);
    assert_int_equal(web->n_env, 2);
    assert_string_equal(web->env[1].name, "PORT");
    assert_string_equal(web->env[1].value, "8080");
    assert_int_equal(web->replicas, 3);
    assert_int_equal(web->resources.cpu_millis, 250);
    assert_int_equal(web->resources.memory_bytes, 64 << 20);
    assert_int_equal(web->health.interval_ms, 2000);
    assert_int_equal(web->placement.clouds.n, 2);
    assert_true(web->autoscale.enabled);
    assert_int_equal(web->autoscale.cpu_percent, 70);
    assert_int_equal(web->autoscale.scale_down_after_ms, 30000);
    assert_string_equal(worker->name, "worker");
    assert_int_equal(worker->resources.cpu_millis, 500);
    assert_false(worker->autoscale.enabled);
    assert_int_equal(file.problems.n, 0);
    gy_spec_file_free(&file);
}

/* JSON is YAML too, so a spec file may be written as JSON. */
static void test_json_file(void **state)
{
    (void)state;
    const char *text = "{\"name\": \"web\", \"image\": \"busybox\", \"replicas\": 3,\n"
                       " \"resources\": {\"cpu\": 0.25, \"memory\": \"32Mi\"}, \"bogus\": 1}\n";
    expect_line(text, "web.yaml:2:48: bogus: unknown key");
    const char *good = "{\"name\": \"web\", \"image\": \"busybox\", \"replicas\": 3,\n"
                       " \"resources\": {\"cpu\": 0.25, \"memory\": \"32Mi\"}}\n";
    struct gy_spec_file file;
    struct gy_error err;
    assert_int_equal(gy_spec_file_load_string("web.json", good, strlen(good), &file, &err), 0);
    assert_int_equal(file.specs[0].replicas, 3);
    assert_int_equal(file.specs[0].resources.cpu_millis, 250);
    assert_int_equal(file.specs[0].resources.memory_bytes, 32 << 20);
    gy_spec_file_free(&file);
}

/* Plain scalars follow the YAML 1.2 core schema; quoted ones stay strings. */
static void test_scalars(void **state)
{
    (void)state;
    const char *text = "a: 12\nb: \"12\"\nc: 0.5\nd: true\ne: yes\nf: ~\ng: 0x1F\nh: 0o17\n"
                       "i: 1e3\nj: -7\nk: on\nl: 64Mi\nm: 'true'\nn: !!str 5\no:\np: False\n"
                       "q: |\n  two\n  lines\n";
    struct gy_yaml_document *docs;
    size_t n;
    struct gy_spec_problems problems = {0};
    assert_int_equal(gy_yaml_parse(text, strlen(text), &docs, &n, &problems), 0);
    assert_int_equal(n, 1);
    json_t *d = docs[0].doc;
    assert_int_equal(json_integer_value(json_object_get(d, "a")), 12);
    assert_string_equal(json_string_value(json_object_get(d, "b")), "12");
    assert_true(json_real_value(json_object_get(d, "c")) == 0.5);
    assert_true(json_is_true(json_object_get(d, "d")));
    assert_string_equal(json_string_value(json_object_get(d, "e")), "yes");
    assert_true(json_is_null(json_object_get(d, "f")));
    assert_int_equal(json_integer_value(json_object_get(d, "g")), 31);
    assert_int_equal(json_integer_value(json_object_get(d, "h")), 15);
    assert_true(json_real_value(json_object_get(d, "i")) == 1000.0);
    assert_int_equal(json_integer_value(json_object_get(d, "j")), -7);
    assert_string_equal(json_string_value(json_object_get(d, "k")), "on");
    assert_string_equal(json_string_value(json_object_get(d, "l")), "64Mi");
    assert_string_equal(json_string_value(json_object_get(d, "m")), "true");
    assert_string_equal(json_string_value(json_object_get(d, "n")), "5");
    assert_true(json_is_null(json_object_get(d, "o")));
    assert_true(json_is_false(json_object_get(d, "p")));
    assert_string_equal(json_string_value(json_object_get(d, "q")), "two\nlines\n");
    gy_yaml_documents_free(docs, n);
}

static void test_positions_exact(void **state)
{
    (void)state;
    const char *text = "name: web\n"
                       "image: busybox\n"
                       "placement:\n"
                       "  clouds: [private, '']\n"
                       "  constraints:\n"
                       "    - disk == ssd\n"
                       "    - zone = a\n";
    struct gy_yaml_document *docs;
    size_t n;
    struct gy_spec_problems problems = {0};
    assert_int_equal(gy_yaml_parse(text, strlen(text), &docs, &n, &problems), 0);
    int line, col;
    assert_true(gy_spec_positions_lookup(docs[0].pos, "", &line, &col));
    assert_int_equal(line, 1);
    assert_int_equal(col, 1);
    assert_true(gy_spec_positions_lookup(docs[0].pos, "image", &line, &col));
    assert_int_equal(line, 2);
    assert_int_equal(col, 1);
    assert_true(gy_spec_positions_lookup(docs[0].pos, "placement.clouds", &line, &col));
    assert_int_equal(line, 4);
    assert_int_equal(col, 3);
    assert_true(gy_spec_positions_lookup(docs[0].pos, "placement.clouds[1]", &line, &col));
    assert_int_equal(line, 4);
    assert_int_equal(col, 21);
    assert_true(gy_spec_positions_lookup(docs[0].pos, "placement.constraints[1]", &line, &col));
    assert_int_equal(line, 7);
    assert_int_equal(col, 7);
    assert_false(gy_spec_positions_lookup(docs[0].pos, "replicas", &line, &col));
    gy_yaml_documents_free(docs, n);

    expect_line(text, "web.yaml:4:21: placement.clouds[1]: a cloud name must be 1 to 63");
    expect_line(text, "web.yaml:7:7: placement.constraints[1]: constraint \"zone = a\" has no "
                      "operator");
}

static void test_syntax_error(void **state)
{
    (void)state;
    expect_line("name: web\nimage: [busybox\nreplicas: 3\n",
                "web.yaml:3:9: did not find expected ',' or ']' (while parsing a flow sequence "
                "at line 2, column 8)");
    expect_line("name: web\n  image: busybox\n",
                "web.yaml:2:8: mapping values are not allowed in this context");
    expect_line("name: \"web\n", "web.yaml:2:1: found unexpected end of stream (while scanning "
                                 "a quoted scalar at line 1, column 7)");
    expect_line("name: web\x01\n", "web.yaml:1:10: control characters are not allowed: #1");
    /* The documents before a syntax error are still checked. */
    expect_line("name: Bad\nimage: x\n---\nname: [\n",
                "web.yaml:1:1: name: \"Bad\" is not a DNS label");
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_line("name: web\nimage: busybox\nreplica: 3\n",
                "web.yaml:3:1: replica: unknown key; did you mean 'replicas'?");
    expect_line("name: web\nimage: busybox\nresources:\n  memroy: 64Mi\n",
                "web.yaml:4:3: resources.memroy: unknown key; did you mean 'memory'?");
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_line("name: web\nimage: busybox\nreplicas: three\n",
                "web.yaml:3:1: replicas: must be a whole number, not a string");
    expect_line("name: web\nimage: busybox\ncommand: ls -l\n",
                "web.yaml:3:1: command: must be a list of strings, not a string");
    expect_line("name: web\nimage: busybox\nenv:\n  A: [1]\n",
                "web.yaml:4:3: env.A: must be a string, not a list");
}

static void test_bad_quantity(void **state)
{
    (void)state;
    expect_line("name: web\nimage: busybox\nresources:\n  memory: 64Q\n",
                "web.yaml:4:3: resources.memory: invalid memory quantity \"64Q\": unknown unit");
    expect_line("name: web\nimage: busybox\nstop_grace: 10\n",
                "web.yaml:3:1: stop_grace: a duration needs a unit: write \"10s\" or \"10ms\"");
    expect_line("name: web\nimage: busybox\nresources: {cpu: 0m}\n",
                "web.yaml:3:13: resources.cpu: must be greater than 0");
}

static void test_disconnect_grace(void **state)
{
    (void)state;
    const char *text = "name: web\nimage: busybox\ndisconnect_grace: 2m\n";
    struct gy_spec_file file;
    int rc;
    char *all = load_problems(text, &file, &rc);
    assert_int_equal(rc, 0);
    assert_int_equal(file.n_specs, 1);
    assert_int_equal(file.specs[0].disconnect_grace_ms, 120000);
    free(all);
    gy_spec_file_free(&file);
    expect_line("name: web\nimage: busybox\ndisconnect_grace: 120\n",
                "web.yaml:3:1: disconnect_grace: a duration needs a unit: write \"120s\" or "
                "\"120ms\"");
    expect_line("name: web\nimage: busybox\nreplicas: 2\ndisconnect_grace: 2 minutes\n",
                "web.yaml:4:1: disconnect_grace: invalid duration");
    expect_line("name: web\nimage: busybox\ndisconnect_grace: 800h\n",
                "web.yaml:3:1: disconnect_grace: must be at most 720h (got 800h)");
    expect_line("name: web\nimage: busybox\ndisconnect_grace: [1m]\n",
                "web.yaml:3:1: disconnect_grace: must be a duration like \"30s\", not a list");
    expect_line("name: web\nimage: busybox\ndisconnect-grace: 1m\n",
                "web.yaml:3:1: disconnect-grace: unknown key; did you mean 'disconnect_grace'?");
}

static void test_missing_required(void **state)
{
    (void)state;
    expect_line("# comment\nname: web\nreplicas: 2\n",
                "web.yaml:2:1: image: required field is missing");
    expect_line("name: web\nimage: busybox\nautoscale:\n  cpu: 50%\n",
                "web.yaml:3:1: autoscale.max: required field is missing");
}

static void test_duplicate_name(void **state)
{
    (void)state;
    expect_line("name: web\nimage: a\n---\nname: db\nimage: b\n---\n# again\nname: web\n"
                "image: c\n",
                "web.yaml:8:1: name: workload \"web\" is defined twice in this file (first at "
                "line 1)");
}

static void test_name_and_range(void **state)
{
    (void)state;
    expect_line("name: Web_1\nimage: busybox\n",
                "web.yaml:1:1: name: \"Web_1\" is not a DNS label");
    expect_line("name: web\nimage: busybox\nreplicas: 10001\n",
                "web.yaml:3:1: replicas: must be between 0 and 10000 (got 10001)");
    expect_line("name: web\nimage: busybox\nautoscale: {min: 5, max: 2, cpu: 70%}\n",
                "web.yaml:3:13: autoscale.min: must not be greater than max (5 > 2)");
}

static void test_duplicate_keys_and_aliases(void **state)
{
    (void)state;
    expect_line("name: web\nimage: busybox\nname: db\n",
                "web.yaml:3:1: name: duplicate key (first defined at line 1, column 1)");
    expect_line("name: web\nimage: &img busybox\n",
                "web.yaml:2:8: image: anchors (&img) are not supported");
    expect_line("name: web\nimage: busybox\ncommand: [a]\nhealth: {exec: *x}\n",
                "web.yaml:4:16: health.exec: aliases (*x) are not supported");
    expect_line("base: &b {cpu: 1}\nname: web\nimage: busybox\nresources: *b\n",
                "web.yaml:4:12: resources: aliases (*b) are not supported");
    expect_line("name: web\nimage: busybox\n? [a, b]\n: c\n",
                "web.yaml:3:3: a key must be a plain value, not a mapping or a list");
    expect_line("name: web\nimage: !!binary aGVsbG8=\n",
                "web.yaml:2:8: image: the tag tag:yaml.org,2002:binary is not supported");
    expect_line("name: web\nimage: busybox\nreplicas: .inf\n",
                "web.yaml:3:11: replicas: .inf is not supported: numbers must be finite");
    expect_line("name: web\nimage: busybox\nreplicas: 99999999999999999999\n",
                "web.yaml:3:11: replicas: the number 99999999999999999999 is out of range");
    expect_line("name: web\nimage: \"a\\0b\"\n",
                "web.yaml:2:8: image: strings must not contain NUL characters");
}

static void test_deep_nesting(void **state)
{
    (void)state;
    char text[512];
    size_t n = 0;
    n += (size_t)snprintf(text, sizeof(text), "name: web\nimage: busybox\ncommand: ");
    for (int i = 0; i < 100; i++)
        text[n++] = '[';
    for (int i = 0; i < 100; i++)
        text[n++] = ']';
    text[n++] = '\n';
    text[n] = '\0';
    expect_line(text, "nested deeper than 64 levels");
}

static void test_empty_and_all_problems(void **state)
{
    (void)state;
    expect_line("", "web.yaml:1:1: no workload spec found");
    expect_line("# nothing here\n---\n", "web.yaml:1:1: no workload spec found");
    expect_line("- a\n- b\n", "web.yaml:1:1: a workload spec must be an object, not a list");

    struct gy_spec_file file;
    int rc;
    char *all = load_problems("name: web\nimage: busybox\nreplicas: -1\nrestart: sometimes\n---\n"
                              "name: x_y\nimage: busybox\nresources: {memory: 1Mi}\n",
                              &file, &rc);
    assert_int_equal(rc, -GY_EINVAL);
    assert_string_equal(all, "web.yaml:3:1: replicas: must be between 0 and 10000 (got -1)\n"
                             "web.yaml:4:1: restart: \"sometimes\" is not one of always, "
                             "on-failure or never\n"
                             "web.yaml:6:1: name: \"x_y\" is not a DNS label: use 1 to 63 "
                             "lower-case letters, digits and '-', starting and ending with a "
                             "letter or digit\n"
                             "web.yaml:8:13: resources.memory: must be at least 4Mi (got 1Mi)\n");
    free(all);
    gy_spec_file_free(&file);
}

static void test_load_path_and_stream(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof(path), "/tmp/gantry-spec-test-%ld.yaml", (long)getpid());
    unlink(path);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    const char *text = "name: web\nimage: busybox\nreplicas: 0\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    struct gy_spec_file file;
    struct gy_error err;
    assert_int_equal(gy_spec_file_load_path(path, &file, &err), 0);
    assert_string_equal(file.name, path);
    assert_int_equal(file.n_specs, 1);
    assert_int_equal(file.specs[0].replicas, 0);
    gy_spec_file_free(&file);
    unlink(path);

    assert_int_equal(gy_spec_file_load_path(path, &file, &err), -GY_ESYS);
    assert_non_null(strstr(err.msg, "No such file or directory"));
    gy_spec_file_free(&file);

    const char *bad = "name: web\nimage: busybox\nreplica: 2\nrestart: no\n";
    FILE *stream = fmemopen((void *)bad, strlen(bad), "r");
    assert_int_equal(gy_spec_file_load_stream("<stdin>", stream, &file, &err), -GY_EINVAL);
    fclose(stream);
    assert_string_equal(err.msg, "<stdin>:3:1: replica: unknown key; did you mean 'replicas'? "
                                 "(and 1 more problem)");
    gy_spec_file_free(&file);
}

/* ports in the YAML form of docs/spec.md, and its problems at the line and column of the
 * key (or list item) concerned. */
static void test_ports(void **state)
{
    (void)state;
    static const char *const good = "name: web\n"
                                    "image: busybox\n"
                                    "ports:\n"
                                    "  - container_port: 80\n"
                                    "    protocol: tcp\n"
                                    "    host_port: 8080\n"
                                    "    name: http\n"
                                    "  - {container_port: 53, protocol: udp}\n";
    struct gy_spec_file file;
    struct gy_error err;
    assert_int_equal(gy_spec_file_load_string("web.yaml", good, strlen(good), &file, &err), 0);
    assert_int_equal(file.n_specs, 1);
    const struct gy_spec *s = &file.specs[0];
    assert_int_equal(s->n_ports, 2);
    assert_string_equal(s->ports[0].name, "http");
    assert_int_equal(s->ports[0].container_port, 80);
    assert_int_equal(s->ports[0].protocol, GY_PROTOCOL_TCP);
    assert_int_equal(s->ports[0].host_port, 8080);
    assert_null(s->ports[1].name);
    assert_int_equal(s->ports[1].container_port, 53);
    assert_int_equal(s->ports[1].protocol, GY_PROTOCOL_UDP);
    assert_int_equal(s->ports[1].host_port, 0);
    gy_spec_file_free(&file);

    static const char *const bad = "name: web\n"
                                   "image: busybox\n"
                                   "ports:\n"
                                   "  - container_port: 80\n"
                                   "    host_port: 8080\n"
                                   "  - container_port: 81\n"
                                   "    host_port: 8080\n"
                                   "    protocol: tcp\n"
                                   "  - protocol: udp\n"
                                   "    name: Web\n";
    expect_line(bad, "web.yaml:7:5: ports[1].host_port: host port 8080/tcp is already published "
                     "by ports[0]");
    expect_line(bad, "web.yaml:9:5: ports[2].container_port: required field is missing");
    expect_line(bad, "web.yaml:10:5: ports[2].name: \"Web\" is not a port name");
    expect_line("name: web\nimage: busybox\nports:\n  - 80\n",
                "web.yaml:4:5: ports[0]: must be an object, not an integer");
    expect_line("name: web\nimage: busybox\nports: 80\n",
                "web.yaml:3:1: ports: must be a list of ports, not an integer");
    expect_line("name: web\nimage: busybox\nports:\n  - container_port: 80\n    hostport: 1\n",
                "web.yaml:5:5: ports[0].hostport: unknown key; did you mean 'host_port'?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_multi_document),
        cmocka_unit_test(test_scalars),
        cmocka_unit_test(test_json_file),
        cmocka_unit_test(test_positions_exact),
        cmocka_unit_test(test_syntax_error),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_bad_quantity),
        cmocka_unit_test(test_disconnect_grace),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_duplicate_name),
        cmocka_unit_test(test_name_and_range),
        cmocka_unit_test(test_duplicate_keys_and_aliases),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_empty_and_all_problems),
        cmocka_unit_test(test_load_path_and_stream),
        cmocka_unit_test(test_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
