/* Skipping in cmocka programs: a test that cannot run on this machine calls
 * GT_SKIP("reason"), and the program exits with 77, which CTest reports as skipped
 * (SKIP_RETURN_CODE), when nothing else failed. A failure still wins over a skip. */
#ifndef GANTRY_TESTS_UNIT_SKIP_H
#define GANTRY_TESTS_UNIT_SKIP_H

#include <stdbool.h>
#include <stdio.h>

static bool gt_skipped;

#define GT_SKIP(reason)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "SKIP: %s\n", (reason));                                                   \
        gt_skipped = true;                                                                         \
        skip();                                                                                    \
    } while (0)

/* The exit status for cmocka_run_group_tests' result. */
static inline int gt_exit_status(int failed)
{
    return failed != 0 ? failed : gt_skipped ? 77 : 0;
}

#endif
