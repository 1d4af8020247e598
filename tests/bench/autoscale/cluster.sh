# The cluster for tests/bench/autoscale/run.sh: three hosts, each a server, an agent and an
# HTTP server of the flag directory on its bridge, torn down by the integration harness
# when the measurement ends.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/cluster.sh"
gt_require_root
N=3
gt_hosts_create $N || exit 1
gt_cluster_init $N ba
rootfs=$GT_TMP/rootfs
gt_cluster_load_image "$rootfs"
gt_cluster_flags $N
for ((i = 1; i <= N; i++)); do
    gt_image_import "$i" "$rootfs"
    gt_server_start "$i"
done
for ((i = 1; i <= N; i++)); do gt_agent_start "$i"; done
gt_wait_for "3 nodes" 30 gt_nodes_ready 1 3 || exit 1
echo "== autoscaler reaction, cpu 100m target 50% min 1 max 4, scale_down_after ${GT_BENCH_DOWN:-30s}, median of ${GT_BENCH_RUNS:-5}"
gt_host_exec 1 python3 "$GANTRY_SOURCE_DIR/tests/bench/autoscale/reaction.py" \
    http://198.18.0.1:7700 "$GT_TMP/flags/on" "${GT_BENCH_RUNS:-5}" "${GT_BENCH_DOWN:-30s}"
