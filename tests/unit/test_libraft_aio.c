/* The program's syscall(3) (scheduler/raft/libraft_compat.c): io_destroy handed to a thread,
 * everything else passed through to the C library. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "skip.h"

static void test_other_calls_pass_through(void **state)
{
    (void)state;
    assert_int_equal(syscall(SYS_getpid), getpid());
    errno = 0;
    assert_int_equal(syscall(SYS_close, -1), -1);
    assert_int_equal(errno, EBADF);
}

static void test_io_destroy_returns_and_destroys(void **state)
{
    (void)state;
    aio_context_t ctx = 0;
    if (syscall(SYS_io_setup, 4, &ctx) != 0)
        GT_SKIP("no kernel AIO here (io_setup failed)");
    struct io_event ev;
    struct timespec none = {0, 0};
    assert_int_equal(syscall(SYS_io_getevents, ctx, 0, 1, &ev, &none), 0);
    assert_int_equal(syscall(SYS_io_destroy, ctx), 0);
    /* The context goes shortly after: asking it for events then fails. */
    long rc = 0;
    for (int i = 0; i < 500 && rc == 0; i++) {
        rc = syscall(SYS_io_getevents, ctx, 0, 1, &ev, &none);
        if (rc == 0)
            usleep(10000);
    }
    assert_int_equal(rc, -1);
    assert_int_equal(errno, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_other_calls_pass_through),
        cmocka_unit_test(test_io_destroy_returns_and_destroys),
    };
    return gt_exit_status(cmocka_run_group_tests(tests, NULL, NULL));
}
