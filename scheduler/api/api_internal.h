/* What the files of scheduler/api/ share: the handlers the route table names, the answer
 * of a parked long-poll, and the metrics. */
#ifndef GANTRY_SCHEDULER_API_API_INTERNAL_H
#define GANTRY_SCHEDULER_API_API_INTERNAL_H

#include <stdint.h>

#include <jansson.h>

#include "scheduler/api/api.h"
#include "scheduler/fleet/fleet.h"
#include "scheduler/raft/node.h"

/* Each handler serves the route of the same name (routes.c), answers and frees the call,
 * now or when the work it started settles. The read handlers run on the leader after a
 * barrier or on any server (routes.h, enum sch_access); the write handlers on the leader. */

/* Reads of the replicated state (read.c). */
void sch_api_workloads_list(struct sch_call *call);
void sch_api_workload_get(struct sch_call *call);
void sch_api_replicas_list(struct sch_call *call);
void sch_api_nodes_list(struct sch_call *call);

/* GET /v1/events, which may park the call until new events or its ?wait ends (events.c). */
void sch_api_events_list(struct sch_call *call);

/* This server's own views (cluster.c). */
void sch_api_healthz(struct sch_call *call);
void sch_api_cluster_get(struct sch_call *call);
/* GET /v1/cluster/digest?index=N: the digest this server noted at a CheckDigest entry. */
void sch_api_digest_get(struct sch_call *call);
/* POST /v1/cluster/verify, on the leader: a divergence check now, answered with its verdict. */
void sch_api_verify(struct sch_call *call);
void sch_api_snapshot_get(struct sch_call *call);
/* GET /v1/cluster/members, on the leader: the configuration as it sees it (cluster.c). */
void sch_api_members_list(struct sch_call *call);

/* Writes (write.c): each validates the request, proposes one command (or a configuration
 * change) and answers once it is applied. */
void sch_api_apply(struct sch_call *call);
void sch_api_workload_delete(struct sch_call *call);
void sch_api_workload_scale(struct sch_call *call);
void sch_api_workload_move(struct sch_call *call);
void sch_api_node_drain(struct sch_call *call);
void sch_api_node_cordon(struct sch_call *call);
void sch_api_node_remove(struct sch_call *call);
void sch_api_node_uncordon(struct sch_call *call);
void sch_api_member_add(struct sch_call *call);
void sch_api_member_remove(struct sch_call *call);
/* POST /v1/cluster/leader: answers once the transfer finished or failed. */
void sch_api_leader_transfer(struct sch_call *call);

/* The leader's relay of a replica's log and its usage figures, from the fleet (api.c). */
void sch_api_replica_logs(struct sch_call *call);
void sch_api_node_rotate_key(struct sch_call *call);
void sch_api_top(struct sch_call *call);

/* The images on the nodes, on the leader (images.c): GET /v1/images, POST
 * /v1/images/pull and /v1/images/rm, answered once every node chosen has. */
void sch_api_images_list(struct sch_call *call);
void sch_api_image_pull(struct sch_call *call);
void sch_api_image_rm(struct sch_call *call);
/* How long the leader waits for a node's pull or removal; a follower relaying one waits
 * that much longer than its other relays. */
#define SCH_API_IMAGE_PULL_MS (10u * 60u * 1000u)
#define SCH_API_IMAGE_RM_MS   (60u * 1000u)

/* GET /metrics (metrics.c). */
void sch_api_metrics(struct sch_call *call);

/* Answers like sch_call_json but leaves the call allocated: a parked long-poll is freed
 * only once its timer handle has closed. */
void sch_call_json_keep(struct sch_call *call, int status, json_t *body);
/* Frees a call and its body. */
void sch_call_free(struct sch_call *call);

/* Counts an answer of status to route, and the time since the request was complete
 * (received_ns, uv_hrtime; 0 counts as no time), in the server's metrics. */
void sch_metrics_observe(struct sch_api *api, enum sch_route route, int status,
                         uint64_t received_ns);
/* The Prometheus text exposition (format 0.0.4) of the server's metrics; the caller frees
 * it. */
char *sch_metrics_render(struct sch_api *api);

#endif
