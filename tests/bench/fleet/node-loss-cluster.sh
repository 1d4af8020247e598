# The cluster and the runs of tests/bench/fleet/node-loss.sh: three hosts, each a server
# and an agent, torn down by the integration harness when the measurement ends.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/cluster.sh"
gt_require_root
N=3
gt_hosts_create $N || exit 1
gt_cluster_init $N bn
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sleep
for ((i = 1; i <= N; i++)); do
    gt_image_import "$i" "$rootfs"
    gt_server_start "$i"
done
for ((i = 1; i <= N; i++)); do gt_agent_start "$i" --cpu 2 --memory 2Gi; done
gt_wait_for "3 nodes" 60 gt_nodes_ready 1 3 || exit 1
gt_api 1 /v1/apply -X POST -d '{"name":"web","image":"busybox","command":["sleep","3600"],"replicas":6,"resources":{"cpu":"10m","memory":"8Mi"},"stop_grace":"1s"}' >/dev/null

# per_node: "COUNT NODE" lines of web's running replicas, most first.
per_node() {
    gt_api 1 "/v1/replicas?workload=web" | python3 -c '
import collections, json, sys
c = collections.Counter(r["node"] for r in json.load(sys.stdin)["items"] if r["state"] == "running")
for node, n in c.most_common(): print(n, node)'
}
# running_without NODE: true when 6 replicas run on nodes other than NODE.
running_without() {
    [ "$(per_node | awk -v n="$1" '$2 != n { s += $1 } END { print s + 0 }')" = 6 ]
}
gt_wait_for "6 running" 60 running_without none || exit 1
times=()
for ((run = 1; run <= ${GT_BENCH_RUNS:-5}; run++)); do
    victim=$(per_node | awk 'NR == 1 {print $2}')
    i=${victim#node}
    t0=$(date +%s%N)
    gt_stop "${APID[$i]}" KILL
    for id in $("$RUNTIME" --root "$GT_TMP/rt$i" list -q); do
        "$RUNTIME" --root "$GT_TMP/rt$i" delete -f "$id" >/dev/null 2>&1
    done
    gt_wait_for "replaced" 120 running_without "$victim" || exit 1
    ms=$((($(date +%s%N) - t0) / 1000000))
    times+=("$ms")
    echo "run $run: $victim lost -> 6 running on the others in ${ms} ms"
    gt_agent_start "$i" --cpu 2 --memory 2Gi
    gt_wait_for "3 nodes" 60 gt_nodes_ready 1 3 || exit 1
done
median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
echo "== node loss -> replicas replaced, median of ${GT_BENCH_RUNS:-5}: ${median} ms (default node-down timeout 5 s)"
echo "reference defaults: Kubernetes 40 s grace + 300 s not-ready toleration = 340 s; Nomad heartbeat TTL + 10 s grace"
