/* Divergence checks (docs/operations.md, "Divergence"): the leader has every server note
 * the digest of its state at one log entry (CheckDigest), asks each voter for its note,
 * and reports a server whose digest differs from the majority's (ReportDivergence), or
 * one that matches again. */
#ifndef GANTRY_SCHEDULER_RAFT_VERIFY_H
#define GANTRY_SCHEDULER_RAFT_VERIFY_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

struct sch_node;

#define SCH_VERIFY_MAX_SERVERS 9
#define SCH_VERIFY_WAITERS     8

/* The longest a check asks the voters for their digests (20 rounds, 500 ms apart, each
 * answer within 2 s), past the commit of its entry. */
#define SCH_VERIFY_MAX_MS 12000

/* The outcome of one check, for whoever asked for it (sch_verify_now): the entry compared
 * and each voter's digest there (have false: no answer), diverged true when it differs from
 * the majority's. majority false when no digest had one. */
struct sch_verify_result {
    uint64_t index;
    uint64_t took_ms;
    bool majority;
    unsigned n;
    struct {
        uint64_t id;
        bool have;
        uint64_t digest;
        bool diverged;
    } servers[SCH_VERIFY_MAX_SERVERS];
};
/* status 0 with the result, or a negative gy_code (GY_EUNAVAILABLE: not leading, or the
 * check was not committed) with a message. */
typedef void (*sch_verify_cb)(void *data, int status, const struct sch_verify_result *result,
                              const char *message);

struct sch_verify {
    struct sch_node *node;
    uv_timer_t timer;     /* the next check (every interval), and retries while asking */
    uint64_t interval_ms; /* 0: only on demand */
    bool running;         /* a check between its proposal and its last answer */
    bool wanted;          /* asked for while one was running: another follows */
    bool closing;
    uint64_t next_ms; /* uv_now of the next scheduled check (0: not leading yet) */
    uint64_t round;
    uint64_t index;      /* the CheckDigest entry being compared */
    uint64_t started_ms; /* uv_now when the check was proposed */
    unsigned attempts;   /* rounds of asking the voters */
    unsigned asking;     /* answers still expected in this round */
    struct {
        uint64_t id;
        char api[256];
        bool have; /* its digest at index is known */
        uint64_t digest;
    } servers[SCH_VERIFY_MAX_SERVERS];
    unsigned n_servers;
    struct {
        sch_verify_cb cb;
        void *data;
    } waiters[SCH_VERIFY_WAITERS]; /* callers of sch_verify_now waiting for the next verdict */
    unsigned n_waiters;
    /* This server's own rebuild, when the leader reported its state diverged: applies are
     * held (sch_fsm_hold) and reads refused until an image from the leader is installed. */
    bool rebuilding;
    uint64_t seen_epoch;  /* fsm->divergence_epoch when last looked at */
    uint64_t rebuild_for; /* the checked index of the report being acted on */
    uint64_t rebuilt_for; /* ... and of the last one acted on to the end */
    unsigned rebuild_tries;
    bool transferring; /* leading when found diverged: leadership is handed over first */
    uv_timer_t retry;  /* the next try to fetch an image */
    uint64_t rebuilds; /* rebuilds completed */
    /* For /metrics. */
    uint64_t checks;      /* checks completed */
    uint64_t divergences; /* servers reported as diverged */
    uint64_t no_majority; /* checks in which no digest had a majority */
    uint64_t last_index;  /* the entry of the last completed check */
    uint64_t last_ms;     /* how long it took, from proposal to verdict */
};

/* Prepares v for node (its timer on loop); checks start every interval_ms once this server
 * leads (0: only on demand). */
void sch_verify_init(struct sch_verify *v, struct sch_node *node, uv_loop_t *loop,
                     uint64_t interval_ms);
/* Starts a check now if this server leads (or right after the one under way); cb (may be
 * NULL) runs once with the verdict of the check that starts after this call. Returns
 * -GY_EUNAVAILABLE when this server does not lead, -GY_ECONFLICT when too many wait. */
int sch_verify_now(struct sch_verify *v, sch_verify_cb cb, void *data);
/* Called from the node's duty timer: starts checks on schedule while leading. */
void sch_verify_tick(struct sch_verify *v);
/* Called after every applied command: starts this server's rebuild when the state now
 * records it as diverged. */
void sch_verify_applied(struct sch_verify *v);
/* False while this server rebuilds its state: its own reads would be wrong. */
bool sch_verify_reads_ok(const struct sch_verify *v);
/* Closes the timers; answers still on their way are ignored. */
void sch_verify_close(struct sch_verify *v, uv_close_cb cb);

#endif
