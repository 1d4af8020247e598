/* Whether the agent can write its own database (agent.db), why not, and when to try a
 * probe write again. While writes fail the agent starts no replica it could not record,
 * keeps supervising and reporting those it has, and probes with a bounded backoff until a
 * write succeeds. Time is the caller's (milliseconds of any monotonic clock), so the
 * schedule is tested without one. */
#ifndef GANTRY_AGENT_DB_HEALTH_H
#define GANTRY_AGENT_DB_HEALTH_H

#include <stdbool.h>
#include <stdint.h>

#define AGENT_DB_PROBE_FIRST_MS 500
#define AGENT_DB_PROBE_MAX_MS   8000
/* The longest reason the agent sends the leader (NodeHealth.storage_refused), in bytes. */
#define AGENT_DB_REASON_WIRE_MAX 512

struct agent_db_health {
    bool failing;
    char reason[512];       /* the first failed write's message ("agent database: ...") */
    uint64_t since_ms;      /* when writes began to fail */
    uint64_t next_probe_ms; /* when the next probe write is due */
    uint64_t backoff_ms;    /* the delay before the probe after next */
    uint64_t failed_writes; /* writes refused since the fault began (probes included) */
};

/* A write failed with message msg. True when this begins a fault (the caller logs it
 * once); the first probe is then due AGENT_DB_PROBE_FIRST_MS later. */
bool agent_db_health_failed(struct agent_db_health *h, const char *msg, uint64_t now_ms);

/* The reason for the leader (NodeHealth.storage_refused): "" while writes succeed, else the
 * fault's reason with every byte outside printable ASCII (0x20 to 0x7e) replaced by '?' and
 * cut to AGENT_DB_REASON_WIRE_MAX bytes, which the leader takes as it is. out has room for
 * AGENT_DB_REASON_WIRE_MAX + 1 bytes. */
void agent_db_health_wire_reason(const struct agent_db_health *h,
                                 char out[AGENT_DB_REASON_WIRE_MAX + 1]);

/* A write other than a probe succeeded during a fault: the probe that ends it is due now. */
void agent_db_health_write_ok(struct agent_db_health *h);

/* True when writes fail and a probe is due at now_ms. */
bool agent_db_health_probe_due(const struct agent_db_health *h, uint64_t now_ms);

/* The outcome of a probe write. A failed one doubles the delay to the next, up to
 * AGENT_DB_PROBE_MAX_MS; a successful one ends the fault. */
void agent_db_health_probe_done(struct agent_db_health *h, bool ok, uint64_t now_ms);

#endif
