/* Health checks of one replica on the agent's loop: exec in the container, HTTP GET, or TCP
 * connect, every interval with a timeout. A replica is healthy (ready) after a successful
 * probe and unhealthy after failure_threshold failures in a row, which the supervisor
 * answers with a restart. Failures during the start period do not count. */
#ifndef GANTRY_AGENT_HEALTH_H
#define GANTRY_AGENT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#include "common/spec.h"

/* Runs an exec probe (on a thread-pool thread, so it may block) and returns its exit
 * status (0 = healthy), filling detail with a short explanation on failure. */
typedef int (*agent_exec_probe)(void *data, const struct gy_strv *argv, int timeout_ms,
                                char *detail, size_t detail_len);

struct agent_health_callbacks {
    /* The replica became healthy or unhealthy; detail says why. */
    void (*on_change)(void *data, bool healthy, const char *detail);
};

struct agent_health;

/* Starts checking; spec is copied. address is the replica's IPv4 address (for HTTP and
 * TCP probes); exec runs exec probes. The first probe runs after the interval (or at once
 * when start_period is 0). Returns NULL when spec has no check. */
struct agent_health *agent_health_start(uv_loop_t *loop, const struct gy_health *spec,
                                        const char *address, agent_exec_probe exec, void *exec_data,
                                        const struct agent_health_callbacks *cb, void *data);

/* Stops checking and frees the checker once no probe is in flight; no callback runs
 * after this returns. */
void agent_health_stop(struct agent_health *h);

bool agent_health_healthy(const struct agent_health *h);
/* Consecutive failures so far (for status reasons). */
unsigned agent_health_failures(const struct agent_health *h);

#endif
