# The runtime library as the agent uses it (in-memory config, layers, exec with capture
# and timeout, stats, wait), through tests/integration/runtime/rt_api_check.c.
source "$(dirname "$0")/lib.sh"
gt_require_root
source "$(dirname "$0")/runtime/common.sh"
rt_rootfs
check=$GT_BUILD/tests/integration/rt_api_check
[ -x "$check" ] || gt_skip "rt_api_check is not built"
mkdir -p "$GT_TMP/scratch"
timeout 60 "$check" "$RT_ROOT" "$RT_ROOTFS" "$GT_TMP/scratch" "$RT_PREFIX-api" >"$GT_TMP/api.log" 2>&1
status=$?
while read -r line; do gt_log "$line"; done <"$GT_TMP/api.log"
gt_check "every library check passed" [ "$status" -eq 0 ]
gt_check "the checks ran" [ "$(grep -c '^ok: ' "$GT_TMP/api.log")" -ge 14 ]
gt_check "no cgroup is left" [ -z "$(rt_cgroups_of $RT_PREFIX-api)" ]
# The same through a spawner, as the agent drives it, then from many threads at once.
mkdir -p "$GT_TMP/scratch2"
timeout 120 "$check" "$RT_ROOT" "$RT_ROOTFS" "$GT_TMP/scratch2" "$RT_PREFIX-sp" spawner >"$GT_TMP/sp.log" 2>&1
status=$?
while read -r line; do gt_log "$line"; done <"$GT_TMP/sp.log"
gt_check "every check passed through the spawner" [ "$status" -eq 0 ]
gt_check "those checks ran" [ "$(grep -c '^ok: ' "$GT_TMP/sp.log")" -ge 16 ]
gt_check "no cgroup is left by them" [ -z "$(rt_cgroups_of $RT_PREFIX-sp)" ]
gt_finish
