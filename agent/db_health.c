/* The agent database's write health; see db_health.h. */
#include "agent/db_health.h"

#include <stdio.h>
#include <string.h>

bool agent_db_health_failed(struct agent_db_health *h, const char *msg, uint64_t now_ms)
{
    h->failed_writes++;
    if (h->failing)
        return false;
    h->failing = true;
    snprintf(h->reason, sizeof(h->reason), "%s", msg);
    h->since_ms = now_ms;
    h->backoff_ms = AGENT_DB_PROBE_FIRST_MS;
    h->next_probe_ms = now_ms + h->backoff_ms;
    return true;
}

void agent_db_health_wire_reason(const struct agent_db_health *h,
                                 char out[AGENT_DB_REASON_WIRE_MAX + 1])
{
    size_t n = 0;
    if (h->failing) {
        for (const unsigned char *c = (const unsigned char *)h->reason;
             *c != '\0' && n < AGENT_DB_REASON_WIRE_MAX; c++)
            out[n++] = *c >= 0x20 && *c <= 0x7e ? (char)*c : '?';
        /* A fault always has a reason, even one whose message was empty. */
        if (n == 0)
            n = (size_t)snprintf(out, AGENT_DB_REASON_WIRE_MAX + 1, "agent database: write failed");
    }
    out[n] = '\0';
}

void agent_db_health_write_ok(struct agent_db_health *h)
{
    if (h->failing)
        h->next_probe_ms = 0;
}

bool agent_db_health_probe_due(const struct agent_db_health *h, uint64_t now_ms)
{
    return h->failing && now_ms >= h->next_probe_ms;
}

void agent_db_health_probe_done(struct agent_db_health *h, bool ok, uint64_t now_ms)
{
    if (ok) {
        memset(h, 0, sizeof(*h));
        return;
    }
    h->failed_writes++;
    h->backoff_ms =
        h->backoff_ms * 2 > AGENT_DB_PROBE_MAX_MS ? AGENT_DB_PROBE_MAX_MS : h->backoff_ms * 2;
    if (h->backoff_ms == 0)
        h->backoff_ms = AGENT_DB_PROBE_FIRST_MS;
    h->next_probe_ms = now_ms + h->backoff_ms;
}
