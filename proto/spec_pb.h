/* Conversion between the workload spec model (common/spec.h) and its wire form,
 * gantry.WorkloadSpec, which the Raft log and the agent stream carry. */
#ifndef GANTRY_PROTO_SPEC_PB_H
#define GANTRY_PROTO_SPEC_PB_H

#include "common/error.h"
#include "common/spec.h"
#include "proto/gantry.pb-c.h"

/* Builds the wire message of spec, every sub-message present (autoscale.metric only when
 * the spec has one). spec should have passed gy_spec_validate: durations outside the
 * uint32 milliseconds of the wire are clamped. Every string and array of the result is
 * allocated with malloc; free it with gy_spec_proto_free, not
 * protobuf_c_message_free_unpacked. Returns NULL when memory runs out. */
Gantry__WorkloadSpec *gy_spec_to_proto(const struct gy_spec *spec);
void gy_spec_proto_free(Gantry__WorkloadSpec *msg);

/* Fills spec (no initialisation needed; free it with gy_spec_free in every case) from a
 * wire message, whether built by gy_spec_to_proto or unpacked from bytes. Absent
 * sub-messages keep the defaults of gy_spec_init. The result is validated like any other
 * spec, so a message that could not have come from a valid spec is refused: returns 0,
 * -GY_EINVAL with the first problem ("path: message") in err, or -GY_ENOMEM. */
int gy_spec_from_proto(const Gantry__WorkloadSpec *msg, struct gy_spec *spec, struct gy_error *err);

#endif
