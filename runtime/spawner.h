/* The spawner: a small helper process that a multi-threaded caller (the agent) forks
 * first thing, while it still has one thread, and that then forks on the caller's behalf.
 *
 * Creating a container forks a monitor that goes on running the runtime's own code
 * (allocating, writing JSON) without an exec. A fork from a process with other threads
 * copies whatever locks those threads held at that instant, so the child can wait for ever
 * on an allocator lock that no thread of its own will release (seen with AddressSanitizer's
 * allocator; glibc protects only its own malloc and stdio). With the spawner running,
 * rt_container_create and rt_container_exec send the request to it over a Unix socket;
 * it forks a worker (a copy of a single-threaded process) that does the work as before and
 * answers, so creates and execs still run side by side. */
#ifndef GANTRY_RUNTIME_SPAWNER_H
#define GANTRY_RUNTIME_SPAWNER_H

#include <stdbool.h>

#include "common/error.h"

/* Forks the spawner. Call before the process starts any thread. It ends by itself once
 * the caller has gone (its end of the socket closes). */
int rt_spawner_start(struct gy_error *err);

/* True when this process hands creates and execs to a spawner. */
bool rt_spawner_active(void);

#endif
