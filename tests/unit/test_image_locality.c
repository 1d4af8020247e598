/* Unit tests of ImageLocality: which node's images count as the workload's image (a pinned
 * digest against the digest or the resolved digest, else the normalised reference, or an
 * imported root filesystem's name), how many bytes of it a node holds (the whole image, or
 * the layers it shares with other images), and placement's use of it: among nodes that
 * spread and binpack score the same, the one holding more of the image wins, and it never
 * outweighs the spread. Last, reconcile hands placement what the leader's callback says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/fleet/inventory.h"
#include "scheduler/fleet/placement.h"
#include "scheduler/fleet/reconcile.h"
#include "state_fixture.h"

#define MI (INT64_C(1) << 20)

#define D_APP   "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define D_INDEX "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define D_OTHER "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define L_BASE  "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define L_LIBS  "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define L_APP   "sha256:3333333333333333333333333333333333333333333333333333333333333333"
#define L_ELSE  "sha256:4444444444444444444444444444444444444444444444444444444444444444"

/* A node's inventory of images made of the layers named (sizes: base 10 MiB, libs 50 MiB,
 * app 5 MiB, else 7 MiB). */
struct held {
    const char *name;
    const char *digest;
    const char *resolved;
    const char *layers[4];
};

static int64_t layer_size(const char *digest)
{
    return strcmp(digest, L_BASE) == 0   ? 10 * MI
           : strcmp(digest, L_LIBS) == 0 ? 50 * MI
           : strcmp(digest, L_APP) == 0  ? 5 * MI
                                         : 7 * MI;
}

static void inventory(struct sch_inventory *inv, const struct held *images, size_t n)
{
    Gantry__NodeImage *msgs = calloc(n ? n : 1, sizeof(*msgs));
    Gantry__NodeImage **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    int64_t(*sizes)[4] = calloc(n ? n : 1, sizeof(*sizes));
    for (size_t i = 0; i < n; i++) {
        gantry__node_image__init(&msgs[i]);
        msgs[i].name = (char *)images[i].name;
        msgs[i].digest = (char *)images[i].digest;
        msgs[i].resolved = (char *)(images[i].resolved ? images[i].resolved : "");
        size_t k = 0;
        for (; k < 4 && images[i].layers[k] != NULL; k++) {
            sizes[i][k] = layer_size(images[i].layers[k]);
            msgs[i].size += sizes[i][k];
        }
        if (*images[i].digest == '\0')
            msgs[i].size = 3 * MI; /* an imported root filesystem */
        msgs[i].layers = (char **)images[i].layers;
        msgs[i].n_layers = msgs[i].n_layer_sizes = k;
        msgs[i].layer_sizes = sizes[i];
        ptrs[i] = &msgs[i];
    }
    Gantry__ImageInventory msg = GANTRY__IMAGE_INVENTORY__INIT;
    msg.images = ptrs;
    msg.n_images = n;
    char problem[256];
    memset(inv, 0, sizeof(*inv));
    assert_int_equal(sch_inventory_take(inv, &msg, problem, sizeof(problem)), 0);
    free(sizes);
    free(ptrs);
    free(msgs);
}

static const struct held app = {
    "registry.example/team/app:1", D_APP, D_INDEX, {L_BASE, L_LIBS, L_APP, NULL}};

static struct sch_place_node node(const char *name)
{
    struct sch_place_node n;
    memset(&n, 0, sizeof(n));
    n.name = name;
    n.cloud = "private";
    n.zone = "z";
    n.capacity.cpu_millis = 4000;
    n.capacity.memory_bytes = 1024 * MI;
    n.schedulable = true;
    return n;
}

static void spec_of(struct gy_spec *spec, const char *image, const char *digest)
{
    memset(spec, 0, sizeof(*spec));
    spec->name = (char *)"web";
    spec->image = (char *)image;
    spec->image_digest = (char *)digest;
    spec->resources.cpu_millis = 100;
    spec->resources.memory_bytes = 64 * MI;
}

static uint32_t place(struct sch_place_node *nodes, size_t n, const struct gy_spec *spec,
                      uint32_t count, size_t *idx)
{
    struct sch_place_result res = {.node_index = idx};
    struct gy_error err;
    if (sch_place(nodes, n, spec, count, &res, &err) != 0)
        fail_msg("sch_place: %s", err.msg);
    return res.placed;
}

/* Fills each node's image_bytes from its inventory, as the leader does. */
static void weigh(struct sch_place_node *nodes, struct sch_inventory *invs, size_t n,
                  const struct gy_spec *spec)
{
    struct sch_image_wanted wanted;
    sch_image_wanted_init(&wanted, spec->image, spec->image_digest);
    for (size_t i = 0; i < n && wanted.known == NULL; i++)
        wanted.known = sch_inventory_find(&invs[i], &wanted);
    for (size_t i = 0; i < n; i++)
        nodes[i].image_bytes = sch_inventory_locality(&invs[i], &wanted);
}

static void test_matching(void **state)
{
    (void)state;
    struct sch_inventory inv;
    const struct held images[] = {
        app,
        {"docker.io/library/busybox:latest", D_OTHER, NULL, {L_ELSE, NULL}},
        {"rootfs", "", NULL, {NULL}},
    };
    inventory(&inv, images, 3);
    struct sch_image_wanted w;
    /* A pinned digest matches the resolved digest (an index) or the manifest's. */
    sch_image_wanted_init(&w, "registry.example/team/app:1", D_INDEX);
    assert_ptr_equal(sch_inventory_find(&inv, &w), &inv.images[0]);
    sch_image_wanted_init(&w, "registry.example/team/app:other-tag", D_APP);
    assert_ptr_equal(sch_inventory_find(&inv, &w), &inv.images[0]);
    sch_image_wanted_init(&w, "registry.example/team/app:1", D_OTHER);
    assert_ptr_equal(sch_inventory_find(&inv, &w), &inv.images[1]);
    /* Without one, the normalised reference. */
    sch_image_wanted_init(&w, "busybox", NULL);
    assert_ptr_equal(sch_inventory_find(&inv, &w), &inv.images[1]);
    sch_image_wanted_init(&w, "busybox:1.36", "");
    assert_null(sch_inventory_find(&inv, &w));
    /* An imported root filesystem by its name, whatever digest was pinned. */
    sch_image_wanted_init(&w, "rootfs", D_APP);
    assert_ptr_equal(sch_inventory_find(&inv, &w), &inv.images[2]);
    assert_int_equal(sch_inventory_locality(&inv, &w), 3 * MI);
    assert_int_equal(sch_inventory_locality(NULL, &w), 0);
    sch_inventory_clear(&inv);
}

/* (a) Among nodes equal by spread and binpack, the one holding the image wins. */
static void test_equal_nodes_holder_wins(void **state)
{
    (void)state;
    struct sch_place_node nodes[3] = {node("a"), node("b"), node("c")};
    struct sch_inventory invs[3];
    inventory(&invs[0], NULL, 0);
    inventory(&invs[1], NULL, 0);
    inventory(&invs[2], &app, 1);
    struct gy_spec spec;
    spec_of(&spec, "registry.example/team/app:1", NULL);
    weigh(nodes, invs, 3, &spec);
    assert_int_equal(nodes[2].image_bytes, 65 * MI);
    size_t idx[4];
    assert_int_equal(place(nodes, 3, &spec, 1, idx), 1);
    assert_int_equal(idx[0], 2);
    /* Binpack too: equal free shares, the holder first. */
    struct sch_place_node packed[3] = {node("a"), node("b"), node("c")};
    weigh(packed, invs, 3, &spec);
    spec.placement.strategy = GY_STRATEGY_BINPACK;
    assert_int_equal(place(packed, 3, &spec, 1, idx), 1);
    assert_int_equal(idx[0], 2);
    /* Without the image anywhere, the lowest index, as before. */
    struct sch_place_node plain[3] = {node("a"), node("b"), node("c")};
    spec.placement.strategy = GY_STRATEGY_SPREAD;
    assert_int_equal(place(plain, 3, &spec, 1, idx), 1);
    assert_int_equal(idx[0], 0);
    for (int i = 0; i < 3; i++)
        sch_inventory_clear(&invs[i]);
}

/* (b) Spread wins over locality: two replicas go to two nodes though one holds the image,
 * and a node with fewer replicas of the workload wins over the holder; so does a node with
 * more room. */
static void test_spread_wins(void **state)
{
    (void)state;
    struct sch_place_node nodes[2] = {node("a"), node("b")};
    struct sch_inventory invs[2];
    inventory(&invs[0], NULL, 0);
    inventory(&invs[1], &app, 1);
    struct gy_spec spec;
    spec_of(&spec, "registry.example/team/app:1", D_INDEX);
    weigh(nodes, invs, 2, &spec);
    size_t idx[4];
    assert_int_equal(place(nodes, 2, &spec, 2, idx), 2);
    assert_int_equal(nodes[0].workload_replicas, 1);
    assert_int_equal(nodes[1].workload_replicas, 1);
    assert_int_equal(idx[0], 1); /* the holder first, then the spread */

    struct sch_place_node again[2] = {node("a"), node("b")};
    weigh(again, invs, 2, &spec);
    again[1].workload_replicas = 1;
    assert_int_equal(place(again, 2, &spec, 1, idx), 1);
    assert_int_equal(idx[0], 0);

    struct sch_place_node fuller[2] = {node("a"), node("b")};
    weigh(fuller, invs, 2, &spec);
    fuller[1].allocated.memory_bytes = 1 * MI;
    assert_int_equal(place(fuller, 2, &spec, 1, idx), 1);
    assert_int_equal(idx[0], 0);
    for (int i = 0; i < 2; i++)
        sch_inventory_clear(&invs[i]);
}

/* (c) A node that holds some of the image's layers (through other images) scores the bytes
 * of those layers: the most bytes win, whatever the number of layers. */
static void test_partial_overlap_scores_by_bytes(void **state)
{
    (void)state;
    /* d holds the image (and is cordoned): its record gives the layers. a shares base and
     * app (15 MiB), b shares libs (50 MiB), c nothing. */
    const struct held on_a[] = {{"registry.example/base:1", D_OTHER, NULL, {L_BASE, L_APP, NULL}}};
    const struct held on_b[] = {{"registry.example/libs:1", D_OTHER, NULL, {L_ELSE, L_LIBS, NULL}}};
    struct sch_inventory invs[4];
    inventory(&invs[0], on_a, 1);
    inventory(&invs[1], on_b, 1);
    inventory(&invs[2], NULL, 0);
    inventory(&invs[3], &app, 1);
    struct sch_place_node nodes[4] = {node("a"), node("b"), node("c"), node("d")};
    nodes[3].schedulable = false;
    struct gy_spec spec;
    spec_of(&spec, "registry.example/team/app:1", NULL);
    weigh(nodes, invs, 4, &spec);
    assert_int_equal(nodes[0].image_bytes, 15 * MI);
    assert_int_equal(nodes[1].image_bytes, 50 * MI);
    assert_int_equal(nodes[2].image_bytes, 0);
    assert_int_equal(nodes[3].image_bytes, 65 * MI);
    size_t idx[4];
    assert_int_equal(place(nodes, 4, &spec, 3, idx), 3);
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 0);
    assert_int_equal(idx[2], 2);
    /* When no node holds the whole image, its layers are not known: nothing scores. */
    struct sch_place_node unknown[3] = {node("a"), node("b"), node("c")};
    weigh(unknown, invs, 3, &spec);
    assert_int_equal(unknown[0].image_bytes + unknown[1].image_bytes, 0);
    for (int i = 0; i < 4; i++)
        sch_inventory_clear(&invs[i]);
}

/* ---- Reconcile hands placement the leader's figures --------------------------------- */

static uint32_t counter_random(void *data)
{
    uint32_t *n = data;
    return ++*n;
}

/* The callback: node "n2" holds the whole image. */
static void n2_holds(void *data, const struct gy_spec *spec, const char *const *nodes, size_t n,
                     int64_t *bytes)
{
    int *calls = data;
    (*calls)++;
    assert_string_equal(spec->image, "registry.example/team/app:1");
    for (size_t i = 0; i < n; i++)
        bytes[i] = strcmp(nodes[i], "n2") == 0 ? 65 * MI : 0;
}

static void test_reconcile_uses_image_bytes(void **state)
{
    struct sch_fsm *fsm = *state;
    for (int i = 1; i <= 3; i++) {
        char name[8];
        snprintf(name, sizeof(name), "n%d", i);
        gt_register_node(fsm, name, "private", 2000, 1024 * MI);
    }
    struct gy_spec spec;
    gy_spec_init(&spec);
    spec.name = strdup("web");
    spec.image = strdup("registry.example/team/app:1");
    spec.replicas = 1;
    spec.resources.cpu_millis = 100;
    spec.resources.memory_bytes = 16 * MI;
    gt_apply_spec(fsm, &spec);
    int calls = 0;
    struct sch_reconcile_time time = {
        .wall_ms = 1000, .image_bytes = n2_holds, .image_data = &calls};
    struct sch_reconcile_plan plan;
    struct gy_error err;
    uint32_t rnd = 0;
    assert_int_equal(sch_reconcile_plan_at(fsm, NULL, 0, &time, counter_random, &rnd, &plan, &err),
                     0);
    assert_int_equal(plan.placed, 1);
    assert_int_equal(calls, 1);
    const Gantry__CommandBatch *batch = plan.command->batch;
    const Gantry__PlaceReplicas *place = NULL;
    for (size_t i = 0; batch != NULL && i < batch->n_commands; i++)
        if (batch->commands[i]->cmd_case == GANTRY__COMMAND__CMD_PLACE_REPLICAS)
            place = batch->commands[i]->place_replicas;
    if (place == NULL && plan.command->cmd_case == GANTRY__COMMAND__CMD_PLACE_REPLICAS)
        place = plan.command->place_replicas;
    assert_non_null(place);
    assert_int_equal(place->n_replicas, 1);
    assert_string_equal(place->replicas[0]->node, "n2");
    sch_reconcile_plan_free(&plan);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matching),
        cmocka_unit_test(test_equal_nodes_holder_wins),
        cmocka_unit_test(test_spread_wins),
        cmocka_unit_test(test_partial_overlap_scores_by_bytes),
        cmocka_unit_test_setup_teardown(test_reconcile_uses_image_bytes, gt_fsm_setup,
                                        gt_fsm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
