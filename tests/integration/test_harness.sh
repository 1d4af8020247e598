# The harness stops what a test started, by PID, also when the test fails part way, and
# removes the network namespaces it made.
source "$(dirname "$0")/lib.sh"
gt_require_root

child=$GT_TMP/child.sh
cat >"$child" <<CHILD
source "$GT_SRC/tests/integration/lib.sh"
gt_spawn sleeper sleep 1000
echo \$GT_LAST_PID > "$GT_TMP/sleeper.pid"
gt_netns_add gantry-harness-\$\$
echo gantry-harness-\$\$ > "$GT_TMP/netns.name"
false || exit 3
CHILD
bash "$child" >"$GT_TMP/child.out" 2>&1
status=$?
pid=$(cat "$GT_TMP/sleeper.pid")
ns=$(cat "$GT_TMP/netns.name")

gt_check "a failing test exits non-zero" [ "$status" -eq 3 ]
gt_check "its process was stopped" bash -c "! kill -0 $pid 2>/dev/null"
gt_check "its network namespace was removed" bash -c "! ip netns list | grep -qw $ns"
gt_check "gt_wait_for is bounded" bash -c "source '$GT_SRC/tests/integration/lib.sh'; ! gt_wait_for never 1 false"
gt_finish
