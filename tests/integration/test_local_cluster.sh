# deploy/local-cluster on a host of its own: 3 servers and 2 nodes come up, a workload
# spreads over both nodes, and stop removes the workload and every process.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
GANTRY=$GT_BUILD/ctl/gantry
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
[ -x "$GANTRY" ] && [ -x "$AGENT" ] || gt_skip "binaries not built"
gt_hosts_create 1 || exit 1
export GANTRY_CLUSTER_DIR=$GT_TMP/lc GANTRY_BUILD_DIR=$GT_BUILD
gt_on_exit "gt_host_exec 1 $GT_SRC/deploy/local-cluster stop >/dev/null 2>&1; if [ -f $GT_TMP/lc/pids ]; then kill -9 \$(awk '{print \$1}' $GT_TMP/lc/pids) 2>/dev/null; fi; for i in 1 2; do for id in \$($RUNTIME --root $GT_TMP/lc/rt\$i list -q 2>/dev/null); do $RUNTIME --root $GT_TMP/lc/rt\$i delete -f \$id >/dev/null 2>&1; done; gt_pool_namespaces_del $GT_TMP/lc/a\$i gantry-n\$i-; done"
gt_check "start 3 servers and 2 nodes" gt_host_exec 1 "$GT_SRC/deploy/local-cluster" start 3 2
rootfs=$GT_TMP/rootfs
mkdir -p "$rootfs/bin"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
ln -s busybox "$rootfs/bin/sleep"
for i in 1 2; do "$AGENT" --data-dir "$GT_TMP/lc/a$i" image import busybox "$rootfs" >/dev/null; done
g() { gt_host_exec 1 "$GANTRY" "$@"; }
servers_ok() { [ "$(g cluster status -o json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["servers"]))' 2>/dev/null)" = 3 ] || [ "$(g cluster status 2>/dev/null | grep -c voter)" = 3 ]; }
gt_check "the cluster has 3 servers" gt_wait_for servers 30 servers_ok
nodes_ok() { [ "$(g get nodes | grep -c ' ready')" = 2 ]; }
gt_check "both nodes are ready" gt_wait_for nodes 30 nodes_ok
echo '{"name":"sleeper","image":"busybox","command":["sleep","3600"],"replicas":4,"resources":{"cpu":"10m","memory":"8Mi"},"stop_grace":"1s"}' >"$GT_TMP/sleeper.json"
gt_check "apply a workload of 4 with --wait" g apply -f "$GT_TMP/sleeper.json" --wait --timeout 60s
gt_check "it spreads over both nodes" bash -c "[ \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} $GANTRY get replicas -o json | python3 -c 'import json,sys; print(len({r[\"node\"] for r in json.load(sys.stdin)[\"items\"]}))')\" = 2 ]"
gt_check "stop" gt_host_exec 1 "$GT_SRC/deploy/local-cluster" stop
gt_check "no container is left" bash -c "[ -z \"\$( (for i in 1 2; do $RUNTIME --root $GT_TMP/lc/rt\$i list -q; done) 2>/dev/null)\" ]"
gt_check "no process of it is left" bash -c "! pgrep -f 'gantry-(scheduler|agent) .*$GT_TMP/lc/' >/dev/null"
gt_finish
