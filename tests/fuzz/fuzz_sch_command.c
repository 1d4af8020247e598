/* Fuzz target: Raft entry decoding and state-machine execution. Any byte string that
 * reaches the log must be rejected cleanly or applied in one transaction; the same input is
 * also tried as a snapshot image, which must be refused without touching the state. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/log.h"
#include "scheduler/state/command.h"
#include "scheduler/state/fsm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        gy_log_set_level(GY_LOG_ERROR + 1);
        quiet = 1;
    }
    struct sch_fsm fsm;
    struct gy_error err;
    if (sch_fsm_init(&fsm, &err) < 0)
        abort();
    struct sch_result *result = NULL;
    if (sch_fsm_apply_entry(&fsm, data, size, &result) != 0)
        abort();
    sch_result_free(result);
    /* A second application of the same entry must also be handled (duplicates, conflicts). */
    if (sch_fsm_apply_entry(&fsm, data, size, &result) != 0)
        abort();
    sch_result_free(result);
    uint64_t before = sch_fsm_digest(&fsm);
    if (sch_fsm_restore_image(&fsm, data, size, &err) < 0 && sch_fsm_digest(&fsm) != before)
        abort();
    sch_fsm_close(&fsm);
    return 0;
}
