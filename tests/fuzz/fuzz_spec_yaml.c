/* Fuzz target: arbitrary bytes through the YAML spec reader. Beyond not crashing, every spec
 * that loads without problems must survive its canonical JSON form and its wire form
 * unchanged, so the fuzzer also checks both round trips. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/spec.h"
#include "proto/spec_pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_json_round_trip(const struct gy_spec *spec)
{
    json_t *doc = gy_spec_to_json(spec);
    if (doc == NULL)
        abort();
    char *text = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
    struct gy_spec back;
    struct gy_spec_problems problems = {0};
    if (gy_spec_from_json(doc, NULL, &back, &problems) != 0 || !gy_spec_equal(spec, &back))
        abort();
    json_t *again = gy_spec_to_json(&back);
    char *text2 = json_dumps(again, JSON_SORT_KEYS | JSON_COMPACT);
    if (text == NULL || text2 == NULL || strcmp(text, text2) != 0)
        abort();
    free(text);
    free(text2);
    json_decref(again);
    json_decref(doc);
    gy_spec_problems_free(&problems);
    gy_spec_free(&back);
}

static void check_proto_round_trip(const struct gy_spec *spec)
{
    Gantry__WorkloadSpec *msg = gy_spec_to_proto(spec);
    if (msg == NULL)
        abort();
    size_t len = gantry__workload_spec__get_packed_size(msg);
    uint8_t *buf = malloc(len + 1);
    if (buf == NULL)
        abort();
    gantry__workload_spec__pack(msg, buf);
    Gantry__WorkloadSpec *wire = gantry__workload_spec__unpack(NULL, len, buf);
    if (wire == NULL)
        abort();
    struct gy_spec back;
    struct gy_error err;
    if (gy_spec_from_proto(wire, &back, &err) != 0 || !gy_spec_equal(spec, &back))
        abort();
    gy_spec_free(&back);
    gantry__workload_spec__free_unpacked(wire, NULL);
    free(buf);
    gy_spec_proto_free(msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gy_spec_file file;
    struct gy_error err;
    int rc = gy_spec_file_load_string("fuzz.yaml", (const char *)data, size, &file, &err);
    for (size_t i = 0; i < file.problems.n; i++) {
        const struct gy_spec_problem *p = &file.problems.items[i];
        if (p->line < 1 || p->column < 1)
            abort(); /* every problem of a YAML file has a position */
        free(gy_spec_problem_format(file.name, p));
    }
    if (rc == 0) {
        for (size_t i = 0; i < file.n_specs; i++) {
            check_json_round_trip(&file.specs[i]);
            check_proto_round_trip(&file.specs[i]);
        }
    }
    gy_spec_file_free(&file);
    return 0;
}
