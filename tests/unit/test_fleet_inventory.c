/* Unit tests of the node image inventories the leader keeps: what an agent reports is
 * checked at the boundary (names, digests, sizes, layer lists, labels, counts; what fails
 * is dropped and the first reason told), a report replaces the previous one, and the
 * cluster's view groups the images of every node by name and digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/fleet/inventory.h"

#define D_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define D_B "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define D_L "sha256:1111111111111111111111111111111111111111111111111111111111111111"

/* A registry image with one layer of 100 bytes and a size of 150. */
static Gantry__NodeImage image(const char *name, const char *digest)
{
    static char *layers[] = {(char *)D_L};
    static int64_t sizes[] = {100};
    Gantry__NodeImage img = GANTRY__NODE_IMAGE__INIT;
    img.name = (char *)name;
    img.digest = (char *)digest;
    img.size = 150;
    img.layers = layers;
    img.n_layers = 1;
    img.layer_sizes = sizes;
    img.n_layer_sizes = 1;
    return img;
}

static size_t take(struct sch_inventory *inv, Gantry__NodeImage *images, size_t n, char *problem)
{
    Gantry__NodeImage **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &images[i];
    Gantry__ImageInventory msg = GANTRY__IMAGE_INVENTORY__INIT;
    msg.images = ptrs;
    msg.n_images = n;
    size_t dropped = sch_inventory_take(inv, &msg, problem, 256);
    free(ptrs);
    return dropped;
}

static void test_valid_images_are_kept(void **state)
{
    (void)state;
    struct sch_inventory inv = {0};
    Gantry__NodeImage imgs[2] = {image("docker.io/library/busybox:1.36", D_A),
                                 image("busybox", "")};
    /* An imported root filesystem has no digest and no layers. */
    imgs[1].n_layers = imgs[1].n_layer_sizes = 0;
    imgs[0].resolved = (char *)D_B;
    imgs[0].pulled_ms = 1234;
    char problem[256];
    assert_int_equal(take(&inv, imgs, 2, problem), 0);
    assert_string_equal(problem, "");
    assert_int_equal(inv.n, 2);
    assert_string_equal(inv.images[0].name, "docker.io/library/busybox:1.36");
    assert_string_equal(inv.images[0].digest, D_A);
    assert_string_equal(inv.images[0].resolved, D_B);
    assert_int_equal(inv.images[0].size, 150);
    assert_int_equal(inv.images[0].n_layers, 1);
    assert_string_equal(inv.images[0].layers[0], D_L);
    assert_int_equal(inv.images[0].layer_sizes[0], 100);
    assert_int_equal(inv.images[0].pulled_ms, 1234);
    assert_string_equal(inv.images[1].digest, "");
    sch_inventory_clear(&inv);
    assert_int_equal(inv.n, 0);
}

static void test_invalid_images_are_dropped(void **state)
{
    (void)state;
    static char *bad_layers[] = {(char *)"sha256:zz"};
    static int64_t sizes[] = {100};
    static int64_t negative[] = {-1};
    struct {
        Gantry__NodeImage img;
        const char *reason;
    } cases[9];
    size_t n = 0;
    cases[n].img = image("Docker.io/UPPER:1", D_A);
    cases[n++].reason = "not an image reference";
    cases[n].img = image("docker.io/x:1", "sha256:1234");
    cases[n++].reason = "is not a sha256 digest";
    cases[n].img = image("docker.io/x:1", D_A);
    cases[n].img.resolved = (char *)"md5:abc";
    cases[n++].reason = "resolved \"md5:abc\" is not a sha256 digest";
    cases[n].img = image("docker.io/x:1", D_A);
    cases[n].img.size = -5;
    cases[n++].reason = "size -5 is negative";
    cases[n].img = image("docker.io/x:1", D_A);
    cases[n].img.layers = bad_layers;
    cases[n].img.layer_sizes = sizes;
    cases[n++].reason = "layers[0]: \"sha256:zz\" is not a sha256 digest";
    cases[n].img = image("docker.io/x:1", D_A);
    cases[n].img.layer_sizes = negative;
    cases[n++].reason = "layer_sizes[0] is negative";
    cases[n].img = image("docker.io/x:1", D_A);
    cases[n].img.n_layer_sizes = 0;
    cases[n++].reason = "1 layers but 0 layer sizes";
    cases[n].img = image("../../etc", "");
    cases[n].img.n_layers = cases[n].img.n_layer_sizes = 0;
    cases[n++].reason = "not a valid imported image name";
    cases[n].img = image("local", "");
    cases[n++].reason = "layers or a resolved digest without a digest";
    for (size_t i = 0; i < n; i++) {
        struct sch_inventory inv = {0};
        Gantry__NodeImage two[2] = {image("docker.io/ok:1", D_B), cases[i].img};
        char problem[256];
        assert_int_equal(take(&inv, two, 2, problem), 1);
        assert_int_equal(inv.n, 1);
        assert_string_equal(inv.images[0].name, "docker.io/ok:1");
        if (strstr(problem, cases[i].reason) == NULL)
            fail_msg("case %zu: problem \"%s\" does not say \"%s\"", i, problem, cases[i].reason);
        sch_inventory_clear(&inv);
    }
}

static void test_too_many_layers(void **state)
{
    (void)state;
    size_t n = SCH_INVENTORY_LAYERS_MAX + 1;
    char **layers = calloc(n, sizeof(*layers));
    int64_t *sizes = calloc(n, sizeof(*sizes));
    for (size_t i = 0; i < n; i++)
        layers[i] = (char *)D_L;
    Gantry__NodeImage img = image("docker.io/x:1", D_A);
    img.layers = layers;
    img.layer_sizes = sizes;
    img.n_layers = img.n_layer_sizes = n;
    struct sch_inventory inv = {0};
    char problem[256];
    assert_int_equal(take(&inv, &img, 1, problem), 1);
    assert_int_equal(inv.n, 0);
    assert_non_null(strstr(problem, "129 layers, more than 128"));
    sch_inventory_clear(&inv);
    free(layers);
    free(sizes);
}

static void test_images_past_the_bound_are_dropped(void **state)
{
    (void)state;
    size_t n = SCH_INVENTORY_IMAGES_MAX + 5;
    Gantry__NodeImage *imgs = calloc(n, sizeof(*imgs));
    char(*names)[32] = calloc(n, 32);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], 32, "docker.io/x:%zu", i);
        imgs[i] = image(names[i], D_A);
    }
    struct sch_inventory inv = {0};
    char problem[256];
    assert_int_equal(take(&inv, imgs, n, problem), 5);
    assert_int_equal(inv.n, SCH_INVENTORY_IMAGES_MAX);
    assert_non_null(strstr(problem, "1029 images, more than 1024"));
    sch_inventory_clear(&inv);
    free(names);
    free(imgs);
}

static void test_labels_are_bounded(void **state)
{
    (void)state;
    size_t n = SCH_INVENTORY_LABELS_MAX + 3;
    Gantry__Label *labels = calloc(n, sizeof(*labels));
    Gantry__Label **ptrs = calloc(n, sizeof(*ptrs));
    char(*keys)[32] = calloc(n, 32);
    char long_value[SCH_INVENTORY_LABEL_VALUE_MAX + 2];
    memset(long_value, 'v', sizeof(long_value) - 1);
    long_value[sizeof(long_value) - 1] = '\0';
    for (size_t i = 0; i < n; i++) {
        gantry__label__init(&labels[i]);
        snprintf(keys[i], 32, "k%zu", i);
        labels[i].key = keys[i];
        labels[i].value = (char *)"value";
        ptrs[i] = &labels[i];
    }
    labels[1].value = (char *)"tab\there";
    labels[2].value = long_value;
    labels[3].key = (char *)"";
    Gantry__NodeImage img = image("docker.io/x:1", D_A);
    img.labels = ptrs;
    img.n_labels = n;
    struct sch_inventory inv = {0};
    char problem[256];
    /* 3 past the bound, 3 that are not printable or too long. */
    assert_int_equal(take(&inv, &img, 1, problem), 6);
    assert_int_equal(inv.n, 1);
    assert_int_equal(inv.images[0].n_labels, SCH_INVENTORY_LABELS_MAX - 3);
    assert_string_equal(inv.images[0].labels[0].key, "k0");
    assert_string_equal(inv.images[0].labels[1].key, "k4");
    assert_non_null(strstr(problem, "35 labels, more than 32"));
    sch_inventory_clear(&inv);
    free(keys);
    free(ptrs);
    free(labels);
}

static void test_a_report_replaces_the_last(void **state)
{
    (void)state;
    struct sch_inventory inv = {0};
    Gantry__NodeImage one = image("docker.io/x:1", D_A);
    char problem[256];
    take(&inv, &one, 1, problem);
    assert_int_equal(inv.n, 1);
    /* An empty report empties it; so does none at all (an agent that predates images). */
    take(&inv, NULL, 0, problem);
    assert_int_equal(inv.n, 0);
    take(&inv, &one, 1, problem);
    assert_int_equal(sch_inventory_take(&inv, NULL, problem, sizeof(problem)), 0);
    assert_int_equal(inv.n, 0);
    sch_inventory_clear(&inv);
}

static void test_cluster_view_groups_by_name_and_digest(void **state)
{
    (void)state;
    struct sch_inventory a = {0}, b = {0};
    char problem[256];
    Gantry__NodeImage on_a[2] = {image("docker.io/x:1", D_A), image("docker.io/y:1", D_A)};
    Gantry__NodeImage on_b[2] = {image("docker.io/x:1", D_A), image("docker.io/x:1", D_B)};
    static Gantry__Label src = {PROTOBUF_C_MESSAGE_INIT(&gantry__label__descriptor),
                                (char *)"org.opencontainers.image.source",
                                (char *)"https://example.com/x"};
    static Gantry__Label *srcs[] = {&src};
    on_a[0].labels = srcs;
    on_a[0].n_labels = 1;
    on_b[0].pulled_ms = 99;
    take(&a, on_a, 2, problem);
    take(&b, on_b, 2, problem);
    struct sch_inventory_of of[2] = {{"a1", &a}, {"a2", &b}};
    json_t *view = sch_inventory_json(of, 2);
    char *text = json_dumps(view, JSON_COMPACT | JSON_SORT_KEYS);
    const char *want =
        "{\"items\": ["
        "{\"digest\": \"" D_A "\", \"labels\": {\"org.opencontainers.image.source\": "
        "\"https://example.com/x\"}, \"layers\": 1, \"name\": \"docker.io/x:1\", \"nodes\": "
        "[\"a1\", \"a2\"], \"pulled_ms\": 99, \"resolved\": \"\", \"size\": 150}, "
        "{\"digest\": \"" D_B "\", \"labels\": {}, \"layers\": 1, \"name\": \"docker.io/x:1\", "
        "\"nodes\": [\"a2\"], \"pulled_ms\": 0, \"resolved\": \"\", \"size\": 150}, "
        "{\"digest\": \"" D_A "\", \"labels\": {}, \"layers\": 1, \"name\": \"docker.io/y:1\", "
        "\"nodes\": [\"a1\"], \"pulled_ms\": 0, \"resolved\": \"\", \"size\": 150}]}";
    json_t *expected = json_loads(want, 0, NULL);
    assert_non_null(expected);
    char *compact = json_dumps(expected, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(expected);
    assert_string_equal(text, compact);
    free(compact);
    free(text);
    json_decref(view);
    /* One node alone. */
    view = sch_inventory_json(of + 1, 1);
    assert_int_equal(json_array_size(json_object_get(view, "items")), 2);
    json_decref(view);
    sch_inventory_clear(&a);
    sch_inventory_clear(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_images_are_kept),
        cmocka_unit_test(test_invalid_images_are_dropped),
        cmocka_unit_test(test_too_many_layers),
        cmocka_unit_test(test_images_past_the_bound_are_dropped),
        cmocka_unit_test(test_labels_are_bounded),
        cmocka_unit_test(test_a_report_replaces_the_last),
        cmocka_unit_test(test_cluster_view_groups_by_name_and_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
