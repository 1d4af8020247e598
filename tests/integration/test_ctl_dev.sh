# gantry dev on a host of its own (a network namespace): it brings up a server and an
# agent, examples/hello.yaml runs with --wait and serves its page, the CLI's tables match
# (golden, AGE left out), and Ctrl-C (SIGINT)
# removes the workload, stops the containers, the agent and the server, and exits 0.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
GANTRY=$GT_BUILD/ctl/gantry
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
for b in "$GANTRY" "$AGENT" "$RUNTIME" "$GT_BUILD/scheduler/gantry-scheduler"; do
    [ -x "$b" ] || gt_skip "$b is not built"
done
gt_hosts_create 1 || exit 1
DIR=$GT_TMP/dev
gt_on_exit "for f in $DIR/agent.pid $DIR/scheduler.pid; do [ -f \$f ] && kill -KILL \$(cat \$f) 2>/dev/null; done; for id in \$($RUNTIME --root $DIR/runtime list -q 2>/dev/null); do $RUNTIME --root $DIR/runtime delete -f \$id >/dev/null 2>&1; done; for id in \$(sqlite3 $DIR/agent/agent.db 'SELECT id FROM replicas' 2>/dev/null); do ip netns del gantry-\$id 2>/dev/null; done; gt_pool_namespaces_del $DIR/agent gantry-"

gt_host_spawn dev 1 "$GANTRY" dev --data-dir "$DIR"
DEV=$GT_LAST_PID
h() { gt_host_exec 1 "$@"; }
gt_check "the control plane answers" gt_wait_for healthz 30 h curl -sf http://127.0.0.1:7700/healthz
rootfs=$GT_TMP/rootfs
mkdir -p "$rootfs/bin" "$rootfs/www"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for t in sh httpd wget; do ln -s busybox "$rootfs/bin/$t"; done
echo "hello from gantry dev" > "$rootfs/www/index.html"
gt_check "image import into the dev agent" "$AGENT" --data-dir "$DIR/agent" image import busybox "$rootfs"
node_ready() { h "$GANTRY" get nodes | grep -q ' ready'; }
gt_check "the local node is ready" gt_wait_for node 30 node_ready
gt_check "apply examples/hello.yaml --wait" h "$GANTRY" apply -f "$GT_SRC/examples/hello.yaml" --wait --timeout 60s
addr=$(h "$GANTRY" get replicas -o json | python3 -c 'import json,sys; print([r["address"] for r in json.load(sys.stdin)["items"] if r["state"]=="running"][0])' 2>/dev/null)
gt_check "a replica serves the page at $addr" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} busybox wget -qO- http://$addr:8080/ | grep -q 'hello from gantry dev'"

# The tables against the live dev cluster, spaces collapsed and AGE left out.
h "$GANTRY" get workloads
gt_check "get workloads table" bash -c "[ \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} $GANTRY get workloads | tr -s ' ' | sed 's/ *$//' | cut -d' ' -f1-5)\" = \"\$(printf 'NAME DESIRED RUNNING READY GENERATION\nhello 3 3 3 1')\" ]"
gt_check "get nodes table" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} $GANTRY get nodes | tr -s ' ' | head -n1 | grep -qx 'NAME CLOUD STATE CPU MEMORY REPLICAS'"
gt_check "get replicas -o json parses" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} $GANTRY get replicas -o json | python3 -c 'import json,sys; assert len(json.load(sys.stdin)[\"items\"]) == 3'"
gt_check "get of an unknown workload exits 1" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} $GANTRY get workloads nope >/dev/null 2>&1; [ \$? = 1 ]"
gt_check "apply again says unchanged" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} $GANTRY apply -f $GT_SRC/examples/hello.yaml | grep -q unchanged"

kill -INT "$DEV"
exited() { ! kill -0 "$DEV" 2>/dev/null; }
gt_check "Ctrl-C stops gantry dev" gt_wait_for "dev exits" 60 exited
wait "$DEV" 2>/dev/null
status=$?
gt_check "gantry dev exits 0 (got $status)" [ "$status" = 0 ]
gt_check "no container is left" bash -c "[ -z \"\$($RUNTIME --root $DIR/runtime list -q 2>/dev/null)\" ]"
gt_check "no server or agent of it is left" bash -c "! pgrep -f 'gantry-(scheduler|agent) .*$DIR/' >/dev/null"
gt_check "its log shows the workload removed" grep -q "deleted workload hello" "$GT_TMP/dev.log"
gt_finish
