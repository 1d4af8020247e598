# The cluster for tests/bench/move/run.sh: hosts 1-3 run a server, all four an agent;
# nodes 1-2 are private, 3-4 public. Torn down by the integration harness.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/cluster.sh"
gt_require_root
gt_hosts_create 4 || exit 1
gt_cluster_init 3 bm
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" httpd
mkdir -p "$rootfs/www" && echo ok >"$rootfs/www/index.html"
for i in 1 2 3 4; do
    gt_image_import "$i" "$rootfs"
    [ "$i" -le 3 ] && gt_server_start "$i"
    cloud=private
    [ "$i" -gt 2 ] && cloud=public
    gt_agent_start "$i" --cloud "$cloud"
done
gt_wait_for "4 nodes" 30 gt_nodes_ready 1 4 || exit 1
echo "== move of ${GT_BENCH_REPLICAS:-10} replicas between clouds (max_surge 2, no health check), ${GT_BENCH_MOVES:-6} moves"
gt_host_exec 1 python3 "$GANTRY_SOURCE_DIR/tests/bench/move/moves.py" \
    http://198.18.0.1:7700 "${GT_BENCH_REPLICAS:-10}" "${GT_BENCH_MOVES:-6}"
