# 50 detached containers created and removed leave no mount, cgroup, process or state
# file behind.
source "$(dirname "$0")/lib.sh"
gt_require_root
source "$(dirname "$0")/runtime/common.sh"
rt_rootfs
B=$GT_TMP/bundle
P=$RT_PREFIX
N=50

rt_config "$B" '["sleep", "60"]'
# Mounts that name this test's files or cgroups (other tests may mount things meanwhile).
our_mounts() { grep -c -e "$GT_TMP" -e "gantry/$P-" /proc/self/mountinfo; }
pids=()
monitors=()
for i in $(seq 1 $N); do
    rt run -d -b "$B" "$P-c$i" || break
    pids+=("$(rt_field $P-c$i pid)")
    monitors+=("$(rt_field $P-c$i monitorPid)")
done
gt_check "$N containers run" [ "$(rt list -q | wc -l)" -eq $N ]
gt_check "each has its cgroup" [ "$(rt_cgroups_of $P- | grep -c /memory/)" -eq $N ]
for i in $(seq 1 $N); do
    rt delete --force "$P-c$i"
done
gt_check "no state is left" [ -z "$(ls -A "$RT_ROOT")" ]
gt_check "no cgroup is left" [ -z "$(rt_cgroups_of $P-)" ]
gt_check "no mount is left" [ "$(our_mounts)" -eq 0 ]
# running PID: true when PID exists and is not a zombie (an exited monitor waits for
# whichever ancestor reaps orphans).
running() { [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^[ZX]'; }
alive=0
for pid in "${pids[@]}"; do
    running "$pid" && alive=$((alive + 1))
done
gt_check "no container process is left" [ "$alive" -eq 0 ]
# A monitor records the exit and then exits itself; on a loaded machine that can lag the
# delete by a moment.
monitors_alive() {
    local pid n=0
    for pid in "${monitors[@]}"; do running "$pid" && n=$((n + 1)); done
    [ "$n" -eq 0 ]
}
gt_check "no monitor is left" gt_wait_for "monitors exit" 10 monitors_alive
gt_finish
