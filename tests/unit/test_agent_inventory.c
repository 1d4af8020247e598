/* Unit tests of what a node reports of its images and of the image operations the leader
 * asks for: the inventory of an OCI store image (digests, the resolved digest a pull
 * learned or its name carries, blob sizes, annotations and config labels with the OCI keys
 * first, values cut and made printable) and of an imported root filesystem; the
 * fingerprint that sees another process change the stores; and finding an image by what a
 * user names, the in-use rule, and its removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/image.h"
#include "agent/image_ops.h"
#include "agent/inventory.h"

#define D_INDEX "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define APP     "registry.example/team/app:1"

struct fixture {
    char data[64];
    struct agent_puller puller;
    char manifest[OCI_DIGEST_BUF];
    char config[OCI_DIGEST_BUF];
    char layer[OCI_DIGEST_BUF];
    size_t config_len;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->data, sizeof(fx->data), "/tmp/gantry-inventory.XXXXXX");
    if (mkdtemp(fx->data) == NULL)
        return -1;
    char root[128];
    snprintf(root, sizeof(root), "%s/oci", fx->data);
    struct gy_error err;
    if (oci_store_open(root, NULL, &fx->puller.store, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    /* An image of one layer; its config has labels, one with a long, unprintable value. */
    const char *layer = "not a real tarball, never unpacked here";
    assert_int_equal(
        oci_store_blob_write(fx->puller.store, layer, strlen(layer), NULL, fx->layer, &err), 0);
    char value[400];
    memset(value, 'x', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    char config[1024];
    snprintf(config, sizeof(config),
             "{\"os\":\"linux\",\"architecture\":\"amd64\",\"config\":{\"Labels\":{"
             "\"maintainer\":\"team\\u0007\",\"org.opencontainers.image.source\":"
             "\"https://example.com/app\",\"org.opencontainers.image.revision\":\"from-config\","
             "\"long\":\"%s\"}},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
             value, fx->layer);
    fx->config_len = strlen(config);
    assert_int_equal(
        oci_store_blob_write(fx->puller.store, config, fx->config_len, NULL, fx->config, &err), 0);
    const char *manifest = "{\"schemaVersion\":2}";
    assert_int_equal(oci_store_blob_write(fx->puller.store, manifest, strlen(manifest), NULL,
                                          fx->manifest, &err),
                     0);
    const char *layers[] = {fx->layer};
    struct oci_annotation ann[] = {{(char *)"org.opencontainers.image.revision", (char *)"abc123"},
                                   {(char *)"zz.custom", (char *)"yes"}};
    assert_int_equal(
        oci_image_put(fx->puller.store, APP, fx->manifest, fx->config, layers, 1, ann, 2, &err), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    oci_store_close(fx->puller.store);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->data);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static const char *label(const Gantry__NodeImage *img, const char *key)
{
    for (size_t i = 0; i < img->n_labels; i++)
        if (strcmp(img->labels[i]->key, key) == 0)
            return img->labels[i]->value;
    return NULL;
}

static void import_rootfs(struct fixture *fx, const char *name)
{
    char src[128];
    snprintf(src, sizeof(src), "%s/src", fx->data);
    mkdir(src, 0755);
    char file[160];
    snprintf(file, sizeof(file), "%s/hello", src);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fputs("hello\n", f);
    fclose(f);
    struct agent_image img;
    struct gy_error err;
    if (agent_image_import(fx->data, name, src, &img, &err) != 0)
        fail_msg("import: %s", err.msg);
}

static void test_inventory_of_the_stores(void **state)
{
    struct fixture *fx = *state;
    import_rootfs(fx, "rootfs");
    struct agent_inventory_resolved resolved = {APP, "", D_INDEX};
    snprintf(resolved.manifest, sizeof(resolved.manifest), "%s", fx->manifest);
    Gantry__ImageInventory *inv;
    struct gy_error err;
    assert_int_equal(agent_inventory_build(fx->puller.store, fx->data, &resolved, 1, &inv, &err),
                     0);
    assert_int_equal(inv->n_images, 2);
    const Gantry__NodeImage *app = inv->images[0], *flat = inv->images[1];
    assert_string_equal(app->name, APP);
    assert_string_equal(app->digest, fx->manifest);
    assert_string_equal(app->resolved, D_INDEX);
    assert_int_equal(app->n_layers, 1);
    assert_string_equal(app->layers[0], fx->layer);
    int64_t layer_len = (int64_t)strlen("not a real tarball, never unpacked here");
    assert_int_equal(app->layer_sizes[0], layer_len);
    assert_int_equal(app->size, layer_len + (int64_t)fx->config_len);
    assert_true(app->pulled_ms > 0);
    /* The OCI keys first: the record's annotation wins over the config's label. */
    assert_string_equal(app->labels[0]->key, "org.opencontainers.image.revision");
    assert_string_equal(app->labels[0]->value, "abc123");
    assert_string_equal(app->labels[1]->key, "org.opencontainers.image.source");
    assert_string_equal(label(app, "zz.custom"), "yes");
    assert_string_equal(label(app, "maintainer"), "team?");
    assert_int_equal(strlen(label(app, "long")), AGENT_INVENTORY_LABEL_VALUE_MAX);
    assert_int_equal(app->n_labels, 5);
    assert_string_equal(flat->name, "rootfs");
    assert_string_equal(flat->digest, "");
    assert_int_equal(flat->n_layers, 0);
    assert_true(flat->size > 0);
    agent_inventory_free(inv);

    /* A pull's record for another manifest does not apply. */
    resolved.manifest[8] = resolved.manifest[8] == 'a' ? 'b' : 'a';
    assert_int_equal(agent_inventory_build(fx->puller.store, fx->data, &resolved, 1, &inv, &err),
                     0);
    assert_string_equal(inv->images[0]->resolved, "");
    agent_inventory_free(inv);

    /* One image alone, for a pull's answer; a name with a digest carries its resolved one. */
    Gantry__NodeImage *one = agent_inventory_image(fx->puller.store, APP, D_INDEX, &err);
    assert_non_null(one);
    assert_string_equal(one->resolved, D_INDEX);
    agent_node_image_free(one);
    assert_null(agent_inventory_image(fx->puller.store, "registry.example/none:1", NULL, &err));
    assert_int_equal(err.code, GY_ENOTFOUND);
}

static void test_fingerprint_sees_changes(void **state)
{
    struct fixture *fx = *state;
    uint64_t before = agent_inventory_fingerprint(fx->data);
    assert_true(before != 0);
    /* Directory times move with the kernel's clock tick: wait for a new one. */
    usleep(20000);
    struct gy_error err;
    assert_int_equal(oci_image_remove(fx->puller.store, APP, &err), 0);
    assert_true(agent_inventory_fingerprint(fx->data) != before);
    before = agent_inventory_fingerprint(fx->data);
    usleep(20000);
    import_rootfs(fx, "other");
    assert_true(agent_inventory_fingerprint(fx->data) != before);
}

static void test_find_use_and_remove(void **state)
{
    struct fixture *fx = *state;
    import_rootfs(fx, "rootfs");
    struct agent_image_target t;
    struct gy_error err;
    /* A reference, normalised. */
    assert_int_equal(agent_image_target_find(&fx->puller, fx->data, "registry.example/team/app:1",
                                             "n1", &t, &err),
                     0);
    assert_false(t.imported);
    assert_string_equal(t.name, APP);
    assert_true(agent_image_target_used_by(&t, "registry.example/team/app:1", NULL));
    assert_false(agent_image_target_used_by(&t, "registry.example/team/app:2", NULL));
    assert_false(agent_image_target_used_by(&t, "rootfs", NULL));
    /* A pinned replica uses the image stored under its reference with the digest. */
    char pinned[160];
    snprintf(pinned, sizeof(pinned), "registry.example/team/app:1@%s", D_INDEX);
    struct agent_image_target by_digest = {.imported = false};
    snprintf(by_digest.name, sizeof(by_digest.name), "%s", pinned);
    assert_true(agent_image_target_used_by(&by_digest, "registry.example/team/app:1", D_INDEX));
    assert_false(agent_image_target_used_by(&by_digest, "registry.example/team/app:1", NULL));
    /* An imported root filesystem by its name. */
    assert_int_equal(agent_image_target_find(&fx->puller, fx->data, "rootfs", "n1", &t, &err), 0);
    assert_true(t.imported);
    assert_true(agent_image_target_used_by(&t, "rootfs", D_INDEX));
    assert_false(agent_image_target_used_by(&t, NULL, NULL));
    assert_int_equal(agent_image_target_remove(&fx->puller, fx->data, &t, &err), 0);
    assert_int_equal(agent_image_target_find(&fx->puller, fx->data, "rootfs", "n1", &t, &err),
                     -GY_ENOTFOUND);
    assert_string_equal(err.msg, "image rootfs not found on node n1");
    assert_int_equal(agent_image_target_find(&fx->puller, fx->data, APP, "n1", &t, &err), 0);
    assert_int_equal(agent_image_target_remove(&fx->puller, fx->data, &t, &err), 0);
    assert_int_equal(agent_image_target_find(&fx->puller, fx->data, APP, "n1", &t, &err),
                     -GY_ENOTFOUND);
    assert_int_equal(agent_image_target_find(&fx->puller, fx->data, "Bad Name", "n1", &t, &err),
                     -GY_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_inventory_of_the_stores, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fingerprint_sees_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_use_and_remove, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
