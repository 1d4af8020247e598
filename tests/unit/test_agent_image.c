/* Unit tests of the image store: import from a directory and a tarball, re-import,
 * listing, removal, and bad input that leaves nothing behind. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/image.h"

struct fixture {
    char root[64];  /* scratch directory */
    char data[128]; /* the agent's data dir */
    char src[128];  /* a root filesystem to import */
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    snprintf(fx->root, sizeof(fx->root), "/tmp/gantry-image-test.XXXXXX");
    if (mkdtemp(fx->root) == NULL)
        return -1;
    snprintf(fx->data, sizeof(fx->data), "%s/data", fx->root);
    snprintf(fx->src, sizeof(fx->src), "%s/src", fx->root);
    char path[PATH_MAX];
    mkdir(fx->src, 0755);
    snprintf(path, sizeof(path), "%s/bin", fx->src);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/bin/hello", fx->src);
    write_file(path, "#!/bin/sh\necho hello\n");
    chmod(path, 0755);
    snprintf(path, sizeof(path), "%s/bin/hi", fx->src);
    if (symlink("hello", path) < 0)
        return -1;
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static void test_import_directory(void **state)
{
    struct fixture *fx = *state;
    struct agent_image img;
    struct gy_error err;
    if (agent_image_import(fx->data, "busybox", fx->src, &img, &err) != 0)
        fail_msg("import: %s", err.msg);
    assert_string_equal(img.name, "busybox");
    assert_true(img.size_bytes > 0);
    char path[PATH_MAX + 32];
    struct stat st;
    snprintf(path, sizeof(path), "%s/bin/hello", img.rootfs);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    snprintf(path, sizeof(path), "%s/bin/hi", img.rootfs);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISLNK(st.st_mode));

    struct agent_image got;
    assert_int_equal(agent_image_get(fx->data, "busybox", &got, &err), 0);
    assert_string_equal(got.rootfs, img.rootfs);
}

static void test_reimport_replaces_and_collects(void **state)
{
    struct fixture *fx = *state;
    struct agent_image first, second;
    struct gy_error err;
    assert_int_equal(agent_image_import(fx->data, "app", fx->src, &first, &err), 0);
    usleep(2000); /* layers are named by import time in ms */
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/bin/new", fx->src);
    write_file(path, "v2");
    assert_int_equal(agent_image_import(fx->data, "app", fx->src, &second, &err), 0);
    assert_string_not_equal(first.rootfs, second.rootfs);
    assert_int_equal(access(first.rootfs, F_OK), -1); /* unused old layer removed */
    char newfile[PATH_MAX + 16];
    snprintf(newfile, sizeof(newfile), "%s/bin/new", second.rootfs);
    assert_int_equal(access(newfile, F_OK), 0);
}

static void test_import_tarball(void **state)
{
    struct fixture *fx = *state;
    char tarball[PATH_MAX + 16], cmd[3 * PATH_MAX];
    snprintf(tarball, sizeof(tarball), "%s/rootfs.tar.gz", fx->root);
    snprintf(cmd, sizeof(cmd), "tar -czf '%s' -C '%s' .", tarball, fx->src);
    assert_int_equal(system(cmd), 0);
    struct agent_image img;
    struct gy_error err;
    if (agent_image_import(fx->data, "tarred:1.0", tarball, &img, &err) != 0)
        fail_msg("import: %s", err.msg);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/bin/hello", img.rootfs);
    assert_int_equal(access(path, X_OK), 0);
}

static void test_list_and_remove(void **state)
{
    struct fixture *fx = *state;
    struct gy_error err;
    assert_int_equal(agent_image_import(fx->data, "zeta", fx->src, NULL, &err), 0);
    assert_int_equal(agent_image_import(fx->data, "alpha", fx->src, NULL, &err), 0);
    struct agent_image *list;
    size_t n;
    assert_int_equal(agent_image_list(fx->data, &list, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].name, "alpha");
    assert_string_equal(list[1].name, "zeta");
    free(list);
    assert_int_equal(agent_image_remove(fx->data, "alpha", &err), 0);
    assert_int_equal(agent_image_get(fx->data, "alpha", &(struct agent_image){0}, &err),
                     -GY_ENOTFOUND);
    assert_non_null(strstr(err.msg, "\"alpha\" is not in the store"));
    assert_int_equal(agent_image_remove(fx->data, "alpha", &err), -GY_ENOTFOUND);
    char layers[PATH_MAX + 16];
    snprintf(layers, sizeof(layers), "%s/images/layers", fx->data);
    assert_int_equal(count_entries(layers), 1);
}

static void test_bad_input_leaves_nothing(void **state)
{
    struct fixture *fx = *state;
    struct gy_error err;
    const char *bad_names[] = {"", "..", ".hidden", "Upper", "a/b", "sp ace"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++)
        assert_int_equal(agent_image_import(fx->data, bad_names[i], fx->src, NULL, &err),
                         -GY_EINVAL);
    assert_int_equal(agent_image_import(fx->data, "x", "/nonexistent/rootfs", NULL, &err),
                     -GY_ESYS);
    assert_non_null(strstr(err.msg, "No such file or directory"));

    char junk[PATH_MAX + 16];
    snprintf(junk, sizeof(junk), "%s/junk.tar", fx->root);
    write_file(junk, "this is not a tarball");
    assert_true(agent_image_import(fx->data, "junk", junk, NULL, &err) < 0);
    assert_non_null(strstr(err.msg, "tar --numeric-owner -xpf"));
    assert_non_null(strstr(err.msg, ": exit 2"));
    assert_non_null(strstr(err.msg, "import image \"junk\""));
    char layers[PATH_MAX + 16];
    snprintf(layers, sizeof(layers), "%s/images/layers", fx->data);
    assert_int_equal(count_entries(layers), 0);
    assert_int_equal(agent_image_get(fx->data, "junk", &(struct agent_image){0}, &err),
                     -GY_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reimport_replaces_and_collects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_import_tarball, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input_leaves_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
