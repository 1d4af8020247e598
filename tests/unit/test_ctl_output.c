/* Unit tests of the CLI's output forms: aligned tables, ages, YAML that reads back as the
 * same JSON through the project's own YAML reader, the cluster members table, the cluster
 * status with its divergence lines, a divergence check's verdict, the command lines
 * join-token prints, and the snapshot file a backup writes (its header read back, written
 * whole or not at all). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"
#include "common/xalloc.h"
#include "ctl/ctl.h"
#include "proto/gantry.pb-c.h"

/* Runs a printer into a string; the caller frees it. */
#define CAPTURE(text, call)                                                                        \
    do {                                                                                           \
        size_t len_;                                                                               \
        FILE *out = open_memstream(&(text), &len_);                                                \
        call;                                                                                      \
        fclose(out);                                                                               \
    } while (0)

static void test_table_aligns_columns(void **state)
{
    (void)state;
    static const char *const head[] = {"NAME", "DESIRED", "AGE"};
    struct ctl_table t;
    ctl_table_init(&t, 3, head);
    ctl_table_add(&t, (const char *const[]){"web", "3", "5m"});
    ctl_table_add(&t, (const char *const[]){"frontend-long", "12", NULL});
    char *text = NULL;
    CAPTURE(text, ctl_table_print(&t, out));
    assert_string_equal(text, "NAME            DESIRED   AGE\n"
                              "web             3         5m\n"
                              "frontend-long   12        <none>\n");
    free(text);
    CAPTURE(text, ctl_table_print_indent(&t, "  ", out));
    assert_string_equal(text, "  NAME            DESIRED   AGE\n"
                              "  web             3         5m\n"
                              "  frontend-long   12        <none>\n");
    free(text);
    ctl_table_free(&t);
}

static void test_table_counts_utf8_characters(void **state)
{
    (void)state;
    static const char *const head[] = {"A", "B"};
    struct ctl_table t;
    ctl_table_init(&t, 2, head);
    ctl_table_add(&t, (const char *const[]){"\xc3\xa9t\xc3\xa9", "x"}); /* "été" */
    char *text = NULL;
    CAPTURE(text, ctl_table_print(&t, out));
    assert_string_equal(text, "A     B\n\xc3\xa9t\xc3\xa9   x\n");
    free(text);
    ctl_table_free(&t);
}

static void test_table_header_only(void **state)
{
    (void)state;
    static const char *const head[] = {"ID", "STATE"};
    struct ctl_table t;
    ctl_table_init(&t, 2, head);
    char *text = NULL;
    CAPTURE(text, ctl_table_print(&t, out));
    assert_string_equal(text, "ID   STATE\n");
    free(text);
    ctl_table_free(&t);
}

static void test_age(void **state)
{
    (void)state;
    char buf[32];
    uint64_t now = 1800000000000ULL;
    assert_string_equal(ctl_age_format(now, now - 5000, buf), "5s");
    assert_string_equal(ctl_age_format(now, now - 119000, buf), "119s");
    assert_string_equal(ctl_age_format(now, now - 120000, buf), "2m");
    assert_string_equal(ctl_age_format(now, now - 3ULL * 3600 * 1000, buf), "3h");
    assert_string_equal(ctl_age_format(now, now - 47ULL * 3600 * 1000, buf), "47h");
    assert_string_equal(ctl_age_format(now, now - 5ULL * 86400 * 1000, buf), "5d");
    assert_string_equal(ctl_age_format(now, now - 800ULL * 86400 * 1000, buf), "2y");
    assert_string_equal(ctl_age_format(now, now + 5000, buf), "0s");
    assert_string_equal(ctl_age_format(now, 0, buf), "<unknown>");
}

static char *yaml_of(const char *json)
{
    json_t *doc = json_loads(json, 0, NULL);
    assert_non_null(doc);
    char *text = NULL;
    CAPTURE(text, ctl_yaml_print(doc, out));
    json_decref(doc);
    return text;
}

static void test_yaml_layout(void **state)
{
    (void)state;
    char *text = yaml_of("{\"name\":\"web\",\"command\":[\"httpd\",\"-f\",\"-p\",\"8080\"],"
                         "\"env\":{},\"replicas\":3,\"health\":null,\"ok\":true,"
                         "\"resources\":{\"cpu\":\"250m\",\"memory\":\"64Mi\"},"
                         "\"items\":[{\"id\":\"a\",\"n\":1},{\"id\":\"b\",\"n\":2}],"
                         "\"empty\":[],\"ratio\":0.5}");
    assert_string_equal(text, "name: web\n"
                              "command: [httpd, \"-f\", \"-p\", \"8080\"]\n"
                              "env: {}\n"
                              "replicas: 3\n"
                              "health: null\n"
                              "ok: true\n"
                              "resources:\n"
                              "  cpu: 250m\n"
                              "  memory: 64Mi\n"
                              "items:\n"
                              "  - id: a\n"
                              "    n: 1\n"
                              "  - id: b\n"
                              "    n: 2\n"
                              "empty: []\n"
                              "ratio: 0.5\n");
    free(text);
}

static void test_yaml_quotes_what_would_change_type(void **state)
{
    (void)state;
    char *text = yaml_of("{\"a\":\"true\",\"b\":\"null\",\"c\":\"8080\",\"d\":\"0x1f\","
                         "\"e\":\"\",\"f\":\"a: b\",\"g\":\"#x\",\"h\":\"line\\nbreak\","
                         "\"i\":\"off\",\"j\":\"1.5\",\"k\":\"-.inf\",\"l\":\"disk == ssd\","
                         "\"m\":\"~\",\"n\":\"0o17\",\"o\":\"70%\"}");
    assert_string_equal(text, "a: \"true\"\nb: \"null\"\nc: \"8080\"\nd: \"0x1f\"\ne: \"\"\n"
                              "f: \"a: b\"\ng: \"#x\"\nh: \"line\\nbreak\"\ni: off\nj: \"1.5\"\n"
                              "k: \"-.inf\"\nl: disk == ssd\nm: \"~\"\nn: \"0o17\"\n"
                              "o: 70%\n");
    free(text);
}

/* Every YAML this printer writes must read back, through the reader that apply uses, as
 * the JSON it was made from. */
static void test_yaml_round_trip(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"name\":\"web\",\"image\":\"busybox\",\"command\":[\"sh\",\"-c\",\"echo a, b: "
        "[c] {d} #e\"],\"env\":{\"A\":\"1\",\"B\":\"true\",\"C\":\" x \",\"D\":\"\\u00e9\"},"
        "\"placement\":{\"clouds\":[\"private\",\"public\"],\"constraints\":[\"disk == "
        "ssd\",\"zone != b\"]},\"replicas\":0,\"autoscale\":\"off\",\"health\":null}",
        "{\"items\":[{\"x\":[[1,2],[\"a\",{\"b\":\"c\"}]]},{\"y\":{\"z\":[]}}],\"q\":\"'\","
        "\"t\":\"\\t\",\"u\":\"-\",\"v\":\"- a\",\"w\":\"?\",\"big\":9007199254740993}",
    };
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *doc = json_loads(docs[i], 0, NULL);
        assert_non_null(doc);
        char *text = NULL;
        CAPTURE(text, ctl_yaml_print(doc, out));
        struct gy_yaml_document *parsed = NULL;
        size_t n = 0;
        struct gy_spec_problems problems = {0};
        int rc = gy_yaml_parse(text, strlen(text), &parsed, &n, &problems);
        if (rc != 0)
            fail_msg("YAML did not parse: %s\n%s", problems.items[0].message, text);
        assert_int_equal(n, 1);
        if (!json_equal(parsed[0].doc, doc)) {
            char *back = json_dumps(parsed[0].doc, JSON_COMPACT);
            fail_msg("round trip changed the value:\n%s\nread back as %s", text, back);
        }
        gy_yaml_documents_free(parsed, n);
        gy_spec_problems_free(&problems);
        json_decref(doc);
        free(text);
    }
}

static void test_json_pretty(void **state)
{
    (void)state;
    json_t *doc = json_loads("{\"b\":1,\"a\":[true]}", 0, NULL);
    char *text = NULL;
    CAPTURE(text, ctl_json_print(doc, out));
    assert_string_equal(text, "{\n  \"b\": 1,\n  \"a\": [\n    true\n  ]\n}\n");
    free(text);
    json_decref(doc);
}

static void test_members_table(void **state)
{
    (void)state;
    json_t *doc = json_loads(
        "{\"cluster_id\":\"c9ba\",\"leader\":2,\"term\":7,\"commit_index\":812,"
        "\"applied_index\":812,\"servers\":["
        "{\"id\":1,\"address\":\"10.0.0.1:7701\",\"api_address\":\"10.0.0.1:7700\","
        "\"agent_address\":\"10.0.0.1:7702\",\"role\":\"voter\",\"state\":\"follower\","
        "\"leader\":false,\"reachable\":true,\"match_index\":812},"
        "{\"id\":2,\"address\":\"10.0.0.2:7701\",\"api_address\":\"10.0.0.2:7700\","
        "\"agent_address\":\"\",\"role\":\"voter\",\"state\":\"leader\","
        "\"leader\":true,\"reachable\":true,\"match_index\":812},"
        "{\"id\":3,\"address\":\"10.0.0.3:7701\",\"api_address\":\"\",\"agent_address\":\"\","
        "\"role\":\"voter\",\"state\":\"unreachable\",\"leader\":false,"
        "\"reachable\":false,\"match_index\":790}]}",
        0, NULL);
    assert_non_null(doc);
    long long applied[] = {811, 812, -1};
    char *text = NULL;
    CAPTURE(text, ctl_members_print(doc, applied, out));
    assert_string_equal(
        text, "Cluster:  c9ba\n"
              "Leader:   server 2 (term 7, commit 812)\n"
              "ID   ROLE    STATE         LEADER   RAFT            API             AGENT           "
              "MATCH   APPLIED\n"
              "1    voter   follower               10.0.0.1:7701   10.0.0.1:7700   10.0.0.1:7702   "
              "812     811\n"
              "2    voter   leader        *        10.0.0.2:7701   10.0.0.2:7700   <none>          "
              "812     812\n"
              "3    voter   unreachable            10.0.0.3:7701   <none>          <none>          "
              "790     -\n");
    free(text);
    /* Without the servers' own figures every APPLIED is unknown. */
    CAPTURE(text, ctl_members_print(doc, NULL, out));
    assert_non_null(strstr(text, "812     -\n2 "));
    free(text);
    json_decref(doc);
}

/* GET /v1/cluster of server self, led by server 1 (its API 10.0.0.1:7700), with the
 * diverged list and verify object given as JSON text. */
static json_t *cluster_view(int self, const char *diverged, const char *verify)
{
    char *text = gy_xasprintf(
        "{\"cluster_id\":\"c9ba\",\"state_digest\":\"f67f0cba25e9bc5e\","
        "\"leader_api_address\":\"10.0.0.1:7700\",\"id\":%d,\"leader\":1,\"state\":\"%s\","
        "\"term\":3,\"commit_index\":40,\"applied_index\":40,\"last_index\":41,"
        "\"servers\":[{\"id\":1,\"address\":\"10.0.0.1:7701\",\"api_address\":\"10.0.0.1:7700\","
        "\"agent_address\":\"10.0.0.1:7702\",\"role\":\"voter\",\"state\":\"leader\"},"
        "{\"id\":2,\"address\":\"10.0.0.2:7701\",\"api_address\":\"\",\"agent_address\":\"\","
        "\"role\":\"voter\",\"state\":\"follower\"}],"
        "\"diverged\":%s,\"verify\":%s}",
        self, self == 1 ? "leader" : "follower", diverged, verify);
    json_t *doc = json_loads(text, 0, NULL);
    free(text);
    assert_non_null(doc);
    return doc;
}

#define NO_CHECKS                                                                                  \
    "{\"checks\":0,\"last_index\":0,\"last_ms\":0,\"divergences_found\":0,"                        \
    "\"rebuilding\":false,\"rebuilds\":0}"
#define TWELVE_CHECKS                                                                              \
    "{\"checks\":12,\"last_index\":34,\"last_ms\":508,\"divergences_found\":1,"                    \
    "\"rebuilding\":false,\"rebuilds\":0}"

static void test_cluster_status(void **state)
{
    (void)state;
    json_t *leader = cluster_view(1, "[]", TWELVE_CHECKS);
    char *text = NULL;
    CAPTURE(text, ctl_cluster_status_print(leader, NULL, out));
    assert_string_equal(text,
                        "Cluster:   c9ba\n"
                        "Answered:  server 1 (leader)\n"
                        "Leader:    server 1 (API 10.0.0.1:7700)\n"
                        "Term:      3\n"
                        "Commit:    40 (applied 40, last 41)\n"
                        "Diverged:  none\n"
                        "Verified:  index 34, 6 entries ago, by server 1 in 508 ms (12 checks, 1 "
                        "divergence found)\n"
                        "Servers:\n"
                        "  ID   STATE      ROLE    RAFT            API             AGENT\n"
                        "  1    leader     voter   10.0.0.1:7701   10.0.0.1:7700   10.0.0.1:7702\n"
                        "  2    follower   voter   10.0.0.2:7701   <none>          <none>\n");
    free(text);

    /* A follower that is rebuilding: its own checks are none, the leader's are shown. */
    json_t *follower = cluster_view(2, "[2,3]",
                                    "{\"checks\":0,\"last_index\":0,\"last_ms\":0,"
                                    "\"divergences_found\":0,\"rebuilding\":true,\"rebuilds\":0}");
    CAPTURE(text, ctl_cluster_status_print(follower, leader, out));
    assert_non_null(strstr(text, "\nDiverged:  2, 3 (stop serving reads until rebuilt from the "
                                 "leader)\n"
                                 "Rebuild:   server 2 is rebuilding its state from the leader's "
                                 "image; it refuses reads meanwhile\n"
                                 "Verified:  index 34, 6 entries ago, by server 1 in 508 ms"));
    free(text);
    /* The leader did not answer. */
    CAPTURE(text, ctl_cluster_status_print(follower, NULL, out));
    assert_non_null(strstr(text, "\nVerified:  unknown (the leader, server 1, did not answer)\n"));
    free(text);
    json_decref(follower);
    json_decref(leader);

    leader = cluster_view(1, "[2]", NO_CHECKS);
    CAPTURE(text, ctl_cluster_status_print(leader, NULL, out));
    assert_non_null(strstr(text, "\nDiverged:  2 (stops serving reads until rebuilt from the "
                                 "leader)\nVerified:  no check yet by server 1\n"));
    free(text);
    json_decref(leader);

    /* A server from before divergence checks: no list, no verify object. */
    json_t *old =
        json_loads("{\"id\":1,\"leader\":1,\"state\":\"leader\",\"servers\":[]}", 0, NULL);
    CAPTURE(text, ctl_cluster_status_print(old, NULL, out));
    assert_non_null(strstr(text, "\nDiverged:  none\n"
                                 "Verified:  unknown (server 1 does not report its checks)\n"));
    free(text);
    json_decref(old);
}

/* Prints a verify answer; *exit_code gets what it returns. The caller frees the text. */
static char *verify_text(const char *answer, int *exit_code)
{
    json_t *doc = json_loads(answer, 0, NULL);
    assert_non_null(doc);
    char *text = NULL;
    CAPTURE(text, *exit_code = ctl_verify_print(doc, out));
    assert_int_equal(ctl_verify_exit(doc), *exit_code);
    json_decref(doc);
    return text;
}

static void test_verify_verdicts(void **state)
{
    (void)state;
    int code;
    char *text = verify_text("{\"index\":34,\"took_ms\":508,\"majority\":true,\"servers\":["
                             "{\"id\":1,\"digest\":\"719e04945440734e\",\"state\":\"same\"},"
                             "{\"id\":2,\"digest\":\"719e04945440734e\",\"state\":\"same\"},"
                             "{\"id\":3,\"digest\":\"719e04945440734e\",\"state\":\"same\"}]}",
                             &code);
    assert_int_equal(code, CTL_EXIT_OK);
    assert_string_equal(text, "SERVER   DIGEST             STATE\n"
                              "1        719e04945440734e   same\n"
                              "2        719e04945440734e   same\n"
                              "3        719e04945440734e   same\n"
                              "3 servers agree at index 34 (the check took 508 ms)\n");
    free(text);

    text = verify_text("{\"index\":34,\"took_ms\":508,\"majority\":true,\"servers\":["
                       "{\"id\":1,\"digest\":\"719e04945440734e\",\"state\":\"same\"},"
                       "{\"id\":2,\"digest\":\"b0dbc9004e4e08a1\",\"state\":\"diverged\"},"
                       "{\"id\":3,\"digest\":\"719e04945440734e\",\"state\":\"same\"}]}",
                       &code);
    assert_int_equal(code, CTL_EXIT_FAILED);
    assert_non_null(strstr(text, "\n2        b0dbc9004e4e08a1   diverged\n"));
    assert_non_null(strstr(text, "\nserver 2 diverged at index 34: it stops serving reads and "
                                 "rebuilds its state from the leader\n"));
    assert_null(strstr(text, "agree"));
    free(text);

    /* Two of five diverged, one did not answer. */
    text = verify_text("{\"index\":9,\"took_ms\":10500,\"majority\":true,\"servers\":["
                       "{\"id\":1,\"digest\":\"aa\",\"state\":\"same\"},"
                       "{\"id\":2,\"digest\":\"bb\",\"state\":\"diverged\"},"
                       "{\"id\":3,\"digest\":\"aa\",\"state\":\"same\"},"
                       "{\"id\":4,\"digest\":\"\",\"state\":\"no_answer\"},"
                       "{\"id\":5,\"digest\":\"cc\",\"state\":\"diverged\"}]}",
                       &code);
    assert_int_equal(code, CTL_EXIT_FAILED);
    assert_non_null(strstr(text, "\n4        -        no answer\n"));
    assert_non_null(strstr(text, "\nservers 2 and 5 diverged at index 9: they stop serving reads "
                                 "and rebuild their state from the leader\n"
                                 "server 4 did not answer for index 9 (down, or too far behind); "
                                 "the next check asks again\n"));
    free(text);

    /* A server down, the others agree: not a divergence, but not all agree either. */
    text = verify_text("{\"index\":9,\"took_ms\":10500,\"majority\":true,\"servers\":["
                       "{\"id\":1,\"digest\":\"aa\",\"state\":\"same\"},"
                       "{\"id\":2,\"digest\":\"\",\"state\":\"no_answer\"},"
                       "{\"id\":3,\"digest\":\"aa\",\"state\":\"same\"}]}",
                       &code);
    assert_int_equal(code, CTL_EXIT_FAILED);
    assert_non_null(strstr(text, "\nserver 2 did not answer for index 9"));
    assert_null(strstr(text, "diverged at"));
    free(text);

    text = verify_text("{\"index\":9,\"took_ms\":10500,\"majority\":false,\"servers\":["
                       "{\"id\":1,\"digest\":\"aa\",\"state\":\"no_majority\"},"
                       "{\"id\":2,\"digest\":\"\",\"state\":\"no_answer\"},"
                       "{\"id\":3,\"digest\":\"\",\"state\":\"no_answer\"}]}",
                       &code);
    assert_int_equal(code, CTL_EXIT_FAILED);
    assert_non_null(strstr(text, "\n1        aa       no majority\n"));
    assert_non_null(strstr(text, "\nno state digest is shared by a majority of the 3 servers at "
                                 "index 9 (too few answered, or they differ): nothing is "
                                 "rebuilt\n"));
    free(text);

    /* One server alone agrees with itself. */
    text = verify_text("{\"index\":5,\"took_ms\":1,\"majority\":true,\"servers\":["
                       "{\"id\":1,\"digest\":\"aa\",\"state\":\"same\"}]}",
                       &code);
    assert_int_equal(code, CTL_EXIT_OK);
    assert_non_null(strstr(text, "\n1 server agrees at index 5 (the check took 1 ms)\n"));
    free(text);
}

static void test_join_command(void **state)
{
    (void)state;
    json_t *members =
        json_loads("{\"cluster_id\":\"c9ba\",\"leader\":2,\"servers\":["
                   "{\"id\":1,\"address\":\"10.0.0.1:7701\",\"api_address\":\"10.0.0.1:7700\","
                   "\"agent_address\":\"10.0.0.1:7702\",\"role\":\"voter\"},"
                   "{\"id\":5,\"address\":\"10.0.0.5:7701\",\"api_address\":\"10.0.0.5:7700\","
                   "\"agent_address\":\"\",\"role\":\"voter\"},"
                   "{\"id\":2,\"address\":\"10.0.0.2:7701\",\"api_address\":\"10.0.0.2:7700\","
                   "\"agent_address\":\"10.0.0.2:7702\",\"role\":\"voter\"}]}",
                   0, NULL);
    assert_non_null(members);
    struct gy_error err;
    /* The next id is one above the highest; --join names the leader. */
    char *line = ctl_join_command(members, CTL_JOIN_SERVER, "http://127.0.0.1:7700", NULL, &err);
    assert_non_null(line);
    assert_string_equal(line, "gantry-scheduler --id 6 --data-dir /var/lib/gantry/s6 "
                              "--raft-addr NEW_HOST:7701 --api-addr NEW_HOST:7700 "
                              "--agent-addr NEW_HOST:7702 --join http://10.0.0.2:7700");
    free(line);
    /* --host fills in the new server's own address. */
    line = ctl_join_command(members, CTL_JOIN_SERVER, NULL, "10.0.0.9", &err);
    assert_non_null(line);
    assert_non_null(strstr(line, "--raft-addr 10.0.0.9:7701 --api-addr 10.0.0.9:7700 "
                                 "--agent-addr 10.0.0.9:7702 --join"));
    assert_null(strstr(line, "NEW_HOST"));
    free(line);
    /* A node gets every recorded agent stream. */
    line = ctl_join_command(members, CTL_JOIN_NODE, NULL, NULL, &err);
    assert_string_equal(line, "gantry-agent --servers 10.0.0.1:7702,10.0.0.2:7702 --data-dir "
                              "/var/lib/gantry/agent");
    free(line);
    /* Without the leader's API address, another member's. */
    json_object_set_new(json_array_get(json_object_get(members, "servers"), 2), "api_address",
                        json_string(""));
    line = ctl_join_command(members, CTL_JOIN_SERVER, NULL, NULL, &err);
    assert_non_null(strstr(line, " --join http://10.0.0.1:7700"));
    free(line);
    json_decref(members);

    /* Nothing recorded yet: the URL gantry itself uses, else an error; no node line. */
    members = json_loads("{\"leader\":1,\"servers\":[{\"id\":1,\"address\":\"127.0.0.1:7701\","
                         "\"api_address\":\"\",\"agent_address\":\"\"}]}",
                         0, NULL);
    line = ctl_join_command(members, CTL_JOIN_SERVER, "http://127.0.0.1:7700", NULL, &err);
    assert_non_null(strstr(line, "--id 2 --data-dir /var/lib/gantry/s2 "));
    assert_non_null(strstr(line, " --join http://127.0.0.1:7700"));
    free(line);
    assert_null(ctl_join_command(members, CTL_JOIN_SERVER, "https://example:7700", NULL, &err));
    assert_int_equal(err.code, GY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no server has recorded its API address yet"));
    assert_null(ctl_join_command(members, CTL_JOIN_NODE, NULL, NULL, &err));
    assert_int_equal(err.code, GY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no server has recorded its agent-stream address yet"));
    json_decref(members);
}

static void test_size_format(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(ctl_size_format(0, buf), "0 B");
    assert_string_equal(ctl_size_format(1023, buf), "1023 B");
    assert_string_equal(ctl_size_format(1024, buf), "1.0 KiB");
    assert_string_equal(ctl_size_format(65600, buf), "64.1 KiB");
    assert_string_equal(ctl_size_format(26u << 20, buf), "26.0 MiB");
    assert_string_equal(ctl_size_format(3ull << 30, buf), "3.0 GiB");
}

/* A snapshot image as the server makes it: magic, header length, SnapshotHeader, padding
 * to 8, then db_len bytes that start as an SQLite database; *len gets its size. */
static uint8_t *snapshot_image(uint32_t format, uint64_t header_db_len, size_t db_len, size_t *len)
{
    Gantry__SnapshotHeader header = GANTRY__SNAPSHOT_HEADER__INIT;
    header.format = format;
    header.schema_version = 1;
    header.cluster_id = "c9ba9dc6";
    header.database_bytes = header_db_len;
    header.applied_index = 812;
    header.lineage = 77;
    size_t packed = gantry__snapshot_header__get_packed_size(&header);
    size_t header_len = (8 + packed + 7) & ~(size_t)7;
    uint8_t *buf = calloc(1, header_len + db_len);
    assert_non_null(buf);
    buf[0] = 'G', buf[1] = 'Y', buf[2] = 'S', buf[3] = '1';
    buf[4] = (uint8_t)packed;
    gantry__snapshot_header__pack(&header, buf + 8);
    if (db_len >= 16)
        memcpy(buf + header_len, "SQLite format 3", 16);
    *len = header_len + db_len;
    return buf;
}

static void test_snapshot_info(void **state)
{
    (void)state;
    struct ctl_snapshot_info info;
    struct gy_error err;
    size_t len;
    uint8_t *image = snapshot_image(1, 4096, 4096, &len);
    assert_int_equal(ctl_snapshot_info(image, len, &info, &err), 0);
    assert_int_equal(info.index, 812);
    assert_int_equal(info.database_bytes, 4096);
    assert_string_equal(info.cluster_id, "c9ba9dc6");
    /* Cut short anywhere: refused. */
    assert_int_equal(ctl_snapshot_info(image, len - 1, &info, &err), -GY_EPROTO);
    assert_non_null(strstr(err.msg, "database bytes where its header says 4096"));
    assert_int_equal(ctl_snapshot_info(image, 12, &info, &err), -GY_EPROTO);
    assert_int_equal(ctl_snapshot_info(image, 4, &info, &err), -GY_EPROTO);
    assert_string_equal(err.msg, "it has no Gantry snapshot header");
    image[0] = 'X';
    assert_int_equal(ctl_snapshot_info(image, len, &info, &err), -GY_EPROTO);
    assert_string_equal(err.msg, "it has no Gantry snapshot header");
    free(image);
    /* A marker names a database file and holds none. */
    image = snapshot_image(2, 0, 0, &len);
    assert_int_equal(ctl_snapshot_info(image, len, &info, &err), -GY_EPROTO);
    assert_string_equal(err.msg, "it is not a snapshot image (format 2)");
    free(image);
    /* The bytes behind the header must be a database. */
    image = snapshot_image(1, 8, 8, &len);
    assert_int_equal(ctl_snapshot_info(image, len, &info, &err), -GY_EPROTO);
    assert_string_equal(err.msg, "the bytes after its header are not a database");
    free(image);
}

static void test_file_write_atomic(void **state)
{
    (void)state;
    char dir[] = "/tmp/gantry-ctl-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], text[64] = "";
    snprintf(path, sizeof(path), "%s/backup.snapshot", dir);
    struct gy_error err;
    assert_int_equal(ctl_file_write_atomic(path, "first", 5, &err), 0);
    assert_int_equal(ctl_file_write_atomic(path, "second", 6, &err), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fread(text, 1, sizeof(text) - 1, f), 6);
    fclose(f);
    assert_string_equal(text, "second");
    /* Nothing else is left in the directory. */
    char listing[300];
    snprintf(listing, sizeof(listing), "ls -A %s | wc -l | grep -qx 1", dir);
    assert_int_equal(system(listing), 0);
    /* A directory that does not exist: an error naming the file, nothing written. */
    snprintf(path, sizeof(path), "%s/missing/backup", dir);
    assert_true(ctl_file_write_atomic(path, "x", 1, &err) < 0);
    assert_non_null(strstr(err.msg, "/missing/backup.tmp-"));
    snprintf(listing, sizeof(listing), "rm -rf %s", dir);
    assert_int_equal(system(listing), 0);
}

/* A workload's ports in the wide table and in describe, and the image's ExposedPorts. */
static void test_workload_ports(void **state)
{
    (void)state;
    json_t *ports = json_loads("[{\"container_port\":80,\"protocol\":\"tcp\"},"
                               "{\"container_port\":8080,\"protocol\":\"tcp\",\"host_port\":80,"
                               "\"name\":\"http\"},"
                               "{\"container_port\":53,\"protocol\":\"udp\",\"host_port\":53}]",
                               0, NULL);
    assert_non_null(ports);
    char *text = ctl_ports_text(ports, false);
    assert_string_equal(text, "80/tcp, 80:8080/tcp, 53:53/udp");
    free(text);
    text = ctl_ports_text(ports, true);
    assert_string_equal(text, "80/tcp, 80:8080/tcp (http), 53:53/udp");
    free(text);
    text = ctl_ports_text(NULL, true);
    assert_string_equal(text, "");
    free(text);

    text = ctl_exposed_ports_text("80/tcp,53/udp,8080");
    assert_string_equal(text, "80/tcp, 53/udp, 8080/tcp");
    free(text);
    text = ctl_exposed_ports_text("");
    assert_string_equal(text, "");
    free(text);

    json_t *items = json_pack(
        "[{s:s,s:I,s:I,s:{s:s,s:{s:s,s:s},s:s,s:{s:[]},s:O},s:{s:I,s:I,s:I}},"
        "{s:s,s:I,s:I,s:{s:s,s:{s:s,s:s},s:s,s:{s:[s]}},s:{s:I,s:I,s:I}}]",
        "name", "web", "generation", (json_int_t)2, "created_ms", (json_int_t)1000, "spec", "image",
        "nginx", "resources", "cpu", "100m", "memory", "64Mi", "restart", "always", "placement",
        "clouds", "ports", ports, "status", "desired", (json_int_t)3, "running", (json_int_t)3,
        "ready", (json_int_t)3, "name", "api", "generation", (json_int_t)1, "created_ms",
        (json_int_t)1000, "spec", "image", "busybox", "resources", "cpu", "250m", "memory", "32Mi",
        "restart", "never", "placement", "clouds", "private", "status", "desired", (json_int_t)1,
        "running", (json_int_t)1, "ready", (json_int_t)0);
    assert_non_null(items);
    size_t len;
    FILE *out = open_memstream(&text, &len);
    ctl_workloads_print(items, true, 61000, out);
    fclose(out);
    assert_string_equal(
        text,
        "NAME   DESIRED   RUNNING   READY   GENERATION   AGE   IMAGE     CPU    MEMORY   RESTART"
        "   CLOUDS    PORTS\n"
        "web    3         3         3       2            60s   nginx     100m   64Mi     always "
        "   any       80/tcp, 80:8080/tcp, 53:53/udp\n"
        "api    1         1         0       1            60s   busybox   250m   32Mi     never  "
        "   private   <none>\n");
    free(text);
    out = open_memstream(&text, &len);
    ctl_workloads_print(items, false, 61000, out);
    fclose(out);
    assert_string_equal(text, "NAME   DESIRED   RUNNING   READY   GENERATION   AGE\n"
                              "web    3         3         3       2            60s\n"
                              "api    1         1         0       1            60s\n");
    free(text);
    json_decref(items);
    json_decref(ports);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_aligns_columns),
        cmocka_unit_test(test_table_counts_utf8_characters),
        cmocka_unit_test(test_table_header_only),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_yaml_layout),
        cmocka_unit_test(test_yaml_quotes_what_would_change_type),
        cmocka_unit_test(test_yaml_round_trip),
        cmocka_unit_test(test_json_pretty),
        cmocka_unit_test(test_members_table),
        cmocka_unit_test(test_cluster_status),
        cmocka_unit_test(test_verify_verdicts),
        cmocka_unit_test(test_join_command),
        cmocka_unit_test(test_size_format),
        cmocka_unit_test(test_snapshot_info),
        cmocka_unit_test(test_file_write_atomic),
        cmocka_unit_test(test_workload_ports),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
