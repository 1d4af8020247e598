# deploy/quickstart end to end on a host of its own (a network namespace), with the test
# build; everything it started is stopped afterwards through gantry dev.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
RUNTIME=$GT_BUILD/runtime/gantry-runtime
[ -x "$GT_BUILD/ctl/gantry" ] || gt_skip "gantry is not built"
gt_hosts_create 1 || exit 1
DATA=$GT_TMP/qs
gt_on_exit "[ -f $DATA/dev.pid ] && kill -INT \$(cat $DATA/dev.pid) 2>/dev/null; for i in \$(seq 1 300); do [ -f $DATA/dev.pid ] && kill -0 \$(cat $DATA/dev.pid) 2>/dev/null || break; sleep 0.1; done; [ -f $DATA/dev.pid ] && kill -KILL \$(cat $DATA/dev.pid) 2>/dev/null; for f in $DATA/agent.pid $DATA/scheduler.pid; do [ -f \$f ] && kill -KILL \$(cat \$f) 2>/dev/null; done; for id in \$($RUNTIME --root $DATA/runtime list -q 2>/dev/null); do $RUNTIME --root $DATA/runtime delete -f \$id >/dev/null 2>&1; done; for id in \$(sqlite3 $DATA/agent/agent.db 'SELECT id FROM replicas' 2>/dev/null); do ip netns del gantry-\$id 2>/dev/null; done; gt_pool_namespaces_del $DATA/agent gantry-"
gt_check "deploy/quickstart runs to the end" gt_host_exec 1 env GANTRY_BUILD_DIR="$GT_BUILD" GANTRY_DATA_DIR="$DATA" "$GT_SRC/deploy/quickstart" >"$GT_TMP/quickstart.log" 2>&1
tail -n 30 "$GT_TMP/quickstart.log"
gt_check "it fetched the page from a replica" grep -q "Hello from a Gantry replica" "$GT_TMP/quickstart.log"
gt_check "five replicas run" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} $GT_BUILD/ctl/gantry get workloads | grep -E '^hello +5 +5 +5'"
gt_check "gantry dev records its children's pids" bash -c "kill -0 \$(cat $DATA/agent.pid) && kill -0 \$(cat $DATA/scheduler.pid)"
DEV=$(cat "$DATA/dev.pid")
kill -INT "$DEV"
gt_check "gantry dev stops on Ctrl-C" gt_wait_for "dev exits" 60 bash -c "! kill -0 $DEV 2>/dev/null"
gt_check "no container is left" bash -c "[ -z \"\$($RUNTIME --root $DATA/runtime list -q 2>/dev/null)\" ]"
gt_check "its children's pid files are gone with them" bash -c "[ ! -e $DATA/agent.pid ] && [ ! -e $DATA/scheduler.pid ]"
gt_finish
