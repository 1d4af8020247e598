# The cluster for tests/bench/move/run.sh: hosts 1-3 run a server, all four an agent;
# nodes 1-2 are private, 3-4 public. Torn down by the integration harness.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
gt_require_root
SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
N=4
gt_hosts_create $N || exit 1
PREFIX="bm$$-"
gt_on_exit "for i in 1 2 3 4; do for id in \$($RUNTIME --root $GT_TMP/rt\$i list -q 2>/dev/null); do $RUNTIME --root $GT_TMP/rt\$i delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns 2>/dev/null; done"
rootfs=$GT_TMP/rootfs
mkdir -p "$rootfs/bin" "$rootfs/www"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/httpd"
echo ok >"$rootfs/www/index.html"
bootstrap="" servers=""
for i in 1 2 3; do
    bootstrap+="${bootstrap:+,}$i=198.18.0.$i:7701"
    servers+="${servers:+,}198.18.0.$i:7702"
done
for i in 1 2 3 4; do
    "$AGENT" --data-dir "$GT_TMP/a$i" image import busybox "$rootfs" >/dev/null
    if [ "$i" -le 3 ]; then
        gt_host_spawn "s$i" "$i" "$SCHED" --id "$i" --data-dir "$GT_TMP/s$i" \
            --raft-addr "198.18.0.$i:7701" --api-addr "198.18.0.$i:7700" \
            --agent-addr "198.18.0.$i:7702" --bootstrap "$bootstrap"
    fi
    cloud=private; [ "$i" -gt 2 ] && cloud=public
    gt_host_spawn "a$i" "$i" "$AGENT" --servers "$servers" --name "node$i" --cloud "$cloud" \
        --data-dir "$GT_TMP/a$i" --runtime-root "$GT_TMP/rt$i" --netns-prefix "$PREFIX$i-" \
        --subnet "198.19.$i.0/24" --bridge gybr0
done
nodes_ready() {
    [ "$(gt_host_exec 1 curl -s --max-time 2 http://198.18.0.1:7700/v1/nodes |
        python3 -c 'import json,sys; print(sum(n["state"]=="ready" for n in json.load(sys.stdin)["items"]))' 2>/dev/null)" = 4 ]
}
gt_wait_for "4 nodes" 30 nodes_ready || exit 1
echo "== move of ${GT_BENCH_REPLICAS:-10} replicas between clouds (max_surge 2, no health check), ${GT_BENCH_MOVES:-6} moves"
gt_host_exec 1 python3 "$GANTRY_SOURCE_DIR/tests/bench/move/moves.py" \
    http://198.18.0.1:7700 "${GT_BENCH_REPLICAS:-10}" "${GT_BENCH_MOVES:-6}"
