# The cluster for tests/bench/autoscale/run.sh: three hosts, each a server, an agent and an
# HTTP server of the flag directory on the bridge gateway, torn down by the integration
# harness when the measurement ends.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
gt_require_root
SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
N=3
gt_hosts_create $N || exit 1
PREFIX="ba$$-"
gt_on_exit "for i in 1 2 3; do for id in \$($RUNTIME --root $GT_TMP/rt\$i list -q 2>/dev/null); do $RUNTIME --root $GT_TMP/rt\$i delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns 2>/dev/null; done"
rootfs=$GT_TMP/rootfs
mkdir -p "$rootfs/bin" "$GT_TMP/flags"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for t in sh sleep wget route awk timeout; do ln -s busybox "$rootfs/bin/$t"; done
cat >"$rootfs/bin/load" <<'SCRIPT'
#!/bin/sh
gw=$(route -n | awk '$1 == "0.0.0.0" { print $2; exit }')
while :; do
    case $(timeout 2 wget -S -O /dev/null "http://$gw:9090/on" 2>&1) in
    *" 200 "*) now=on ;;
    *" 404 "*) now=off ;;
    *) now=${now:-off} ;;
    esac
    if [ "$now" = on ]; then
        i=0
        while [ $i -lt 20000 ]; do i=$((i + 1)); done
    else
        sleep 0.3
    fi
done
SCRIPT
chmod +x "$rootfs/bin/load"
bootstrap="" servers=""
for ((i = 1; i <= N; i++)); do
    bootstrap+="${bootstrap:+,}$i=198.18.0.$i:7701"
    servers+="${servers:+,}198.18.0.$i:7702"
done
for ((i = 1; i <= N; i++)); do
    "$AGENT" --data-dir "$GT_TMP/a$i" image import busybox "$rootfs" >/dev/null
    gt_host_spawn "s$i" "$i" "$SCHED" --id "$i" --data-dir "$GT_TMP/s$i" \
        --raft-addr "198.18.0.$i:7701" --api-addr "198.18.0.$i:7700" \
        --agent-addr "198.18.0.$i:7702" --bootstrap "$bootstrap"
    gt_host_spawn "flags$i" "$i" busybox httpd -f -p 9090 -h "$GT_TMP/flags"
done
for ((i = 1; i <= N; i++)); do
    gt_host_spawn "a$i" "$i" "$AGENT" --servers "$servers" --name "node$i" \
        --data-dir "$GT_TMP/a$i" --runtime-root "$GT_TMP/rt$i" --netns-prefix "$PREFIX$i-" \
        --subnet "198.19.$i.0/24" --bridge gybr0
done
nodes_ready() {
    [ "$(gt_host_exec 1 curl -s --max-time 2 http://198.18.0.1:7700/v1/nodes |
        python3 -c 'import json,sys; print(sum(n["state"]=="ready" for n in json.load(sys.stdin)["items"]))' 2>/dev/null)" = 3 ]
}
gt_wait_for "3 nodes" 30 nodes_ready || exit 1
echo "== autoscaler reaction, cpu 100m target 50% min 1 max 4, scale_down_after ${GT_BENCH_DOWN:-30s}, median of ${GT_BENCH_RUNS:-5}"
gt_host_exec 1 python3 "$GANTRY_SOURCE_DIR/tests/bench/autoscale/reaction.py" \
    http://198.18.0.1:7700 "$GT_TMP/flags/on" "${GT_BENCH_RUNS:-5}" "${GT_BENCH_DOWN:-30s}"
