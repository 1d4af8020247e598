/* libraft 0.15 closes each finished Raft log segment on the loop thread with io_destroy(2),
 * and the kernel makes that call wait for RCU grace periods: 30-75 ms measured here, during
 * which the server neither applies, nor answers, nor sends heartbeats. It happens at every
 * segment rollover and at every snapshot. libraft makes the call through syscall(3), which
 * this program defines: an io_destroy goes to a thread of its own and returns at once, and
 * every other call goes to the C library's syscall unchanged.
 *
 * libraft destroys a context only once the writes submitted on it have completed (a
 * segment's writer is closed from its last write's completion), so the kernel has nothing
 * left to wait for but those grace periods; the context just lives a little longer. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*syscall_fn)(long number, ...);

static syscall_fn libc_syscall;
static pthread_once_t libc_once = PTHREAD_ONCE_INIT;

static void find_libc_syscall(void)
{
    libc_syscall = (syscall_fn)(uintptr_t)dlsym(RTLD_NEXT, "syscall");
}

static void *destroy_context(void *ctx)
{
    libc_syscall(SYS_io_destroy, (long)(uintptr_t)ctx);
    return NULL;
}

__attribute__((visibility("default"))) long syscall(long number, ...)
{
    /* Six arguments are taken whatever the call, as the C library's own syscall does: on
     * x86-64 and arm64 the unused ones are just whatever the registers held. */
    va_list ap;
    va_start(ap, number);
    long a[6];
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    pthread_once(&libc_once, find_libc_syscall);
    if (number == SYS_io_destroy) {
        pthread_attr_t attr;
        pthread_t thread;
        if (pthread_attr_init(&attr) == 0) {
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            int rc = pthread_create(&thread, &attr, destroy_context, (void *)(uintptr_t)a[0]);
            pthread_attr_destroy(&attr);
            if (rc == 0)
                return 0;
        }
    }
    return libc_syscall(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
