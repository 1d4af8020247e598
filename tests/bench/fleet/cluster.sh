# The cluster for tests/bench/fleet/run.sh: three hosts, each a server and an agent, torn
# down by the integration harness when the measurement ends.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/cluster.sh"
gt_require_root
N=3
gt_hosts_create $N || exit 1
gt_cluster_init $N bf
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sleep
for ((i = 1; i <= N; i++)); do
    gt_image_import "$i" "$rootfs"
    gt_server_start "$i"
done
for ((i = 1; i <= N; i++)); do gt_agent_start "$i"; done
gt_wait_for "3 nodes" 30 gt_nodes_ready 1 3 || exit 1
gt_wait_for "warm pools of replica networks" 60 gt_pools_warm 3 || exit 1
echo "== apply -> all running, ${GT_BENCH_REPLICAS:-10} replicas on 3 nodes, 3 servers"
gt_host_exec 1 python3 "$GANTRY_SOURCE_DIR/tests/bench/fleet/apply_latency.py" \
    http://198.18.0.1:7700 "${GT_BENCH_REPLICAS:-10}" "${GT_BENCH_RUNS:-5}"
echo "reference: Docker Swarm scheduling delay p50 230 ms; Kubernetes pod start-up SLO p99 < 5 s"
