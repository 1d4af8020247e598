# Confinement: the memory limit ends in a reported OOM kill, the pids limit stops a fork
# bomb, the default seccomp profile refuses mount and unshare with EPERM, capabilities
# beyond Docker's default set are absent, /proc/sys is read-only, and a user namespace
# maps root inside to an unprivileged uid outside.
source "$(dirname "$0")/lib.sh"
gt_require_root
source "$(dirname "$0")/runtime/common.sh"
rt_rootfs
B=$GT_TMP/bundle
P=$RT_PREFIX

# --- memory limit -> OOM kill, reported
RT_RESOURCES='{"memory": {"limit": 33554432}}' \
    rt_config "$B" '["sh", "-c", "x=a; while true; do x=$x$x$x$x; done"]'
rt run -d -b "$B" "$P-oom"
gt_check "the memory limit is written to the cgroup" \
    [ "$(cat /sys/fs/cgroup/memory/gantry/$P-oom/memory.limit_in_bytes)" = 33554432 ]
timeout 30 "$RT_BIN" --root "$RT_ROOT" wait "$P-oom" >/dev/null
gt_check "the OOM kill is reported" [ "$(rt_field $P-oom oomKilled)" = true ]
gt_check "with SIGKILL as the signal" [ "$(rt_field $P-oom exitSignal)" = 9 ]
rt delete "$P-oom"

# --- pids limit stops a fork bomb
RT_RESOURCES='{"pids": {"limit": 32}}' \
    rt_config "$B" '["sh", "-c", "b() { b | b & }; b 2>/dev/null; sleep 30"]'
rt run -d -b "$B" "$P-bomb"
gt_wait_for "the bomb hits the limit" 10 bash -c \
    "[ \"\$(sed -n 's/^max //p' /sys/fs/cgroup/pids/gantry/$P-bomb/pids.events)\" -gt 0 ]"
gt_check "the container never exceeds 32 tasks" \
    [ "$(cat /sys/fs/cgroup/pids/gantry/$P-bomb/pids.current)" -le 32 ]
rt delete --force "$P-bomb"
gt_check "delete --force removes the bomb's processes and cgroup" [ -z "$(rt_cgroups_of $P-bomb)" ]

# --- cpuset, block I/O throttling, and update of a running container
dev=$(cat /sys/block/*/dev 2>/dev/null | head -1)
throttle=''
[ -n "$dev" ] && throttle=", \"blockIO\": {\"throttleReadBpsDevice\": [{\"major\": ${dev%:*}, \"minor\": ${dev#*:}, \"rate\": 1048576}]}"
RT_RESOURCES="{\"cpu\": {\"cpus\": \"0\", \"mems\": \"0\"}, \"pids\": {\"limit\": 50}$throttle}" \
    rt_config "$B" '["sh", "-c", "grep Cpus_allowed_list /proc/self/status; exec sleep 30"]'
rt run -d -b "$B" "$P-res"
gt_wait_for "log written" 5 grep -q Cpus "$RT_ROOT/$P-res/container.log"
gt_check "linux.resources.cpu.cpus pins the container" \
    grep -q 'Cpus_allowed_list:[[:space:]]*0$' "$RT_ROOT/$P-res/container.log"
gt_check "the cpuset cgroup holds it" [ "$(cat /sys/fs/cgroup/cpuset/gantry/$P-res/cpuset.cpus)" = 0 ]
if [ -n "$dev" ]; then
    gt_check "blockIO throttling is written for device $dev" \
        grep -q "^$dev 1048576" /sys/fs/cgroup/blkio/gantry/$P-res/blkio.throttle.read_bps_device
fi
rt update --memory 50000000 --pids-limit 77 --cpu-quota 20000 "$P-res"
gt_check "update changes the memory limit" \
    [ "$(cat /sys/fs/cgroup/memory/gantry/$P-res/memory.limit_in_bytes)" = 49999872 ]
gt_check "update changes the pids limit" [ "$(cat /sys/fs/cgroup/pids/gantry/$P-res/pids.max)" = 77 ]
gt_check "update changes the cpu quota" \
    [ "$(cat /sys/fs/cgroup/cpu/gantry/$P-res/cpu.cfs_quota_us)" = 20000 ]
out=$(rt update --cpu-shares 1 "$P-res" 2>&1)
rc=$?
gt_check "an invalid update exits 2" [ "$rc" -eq 2 ]
gt_check "and names the field" grep -q 'linux.resources.cpu.shares' <<<"$out"
echo '{"memory": {"limit": 60000000}}' >"$GT_TMP/res.json"
rt update -r "$GT_TMP/res.json" "$P-res"
gt_check "update -r FILE takes a linux.resources object" \
    [ "$(cat /sys/fs/cgroup/memory/gantry/$P-res/memory.limit_in_bytes)" = 59998208 ]
rt delete --force "$P-res"
gt_check "delete removes the cpuset and blkio cgroups too" [ -z "$(rt_cgroups_of $P-res)" ]

# --- devices: the config's nodes are created and usable, any other is refused
RT_EXTRA_LINUX='"devices": [{"path": "/dev/net/tun", "type": "c", "major": 10, "minor": 200, "fileMode": 432}]' \
    rt_config "$B" '["sh", "-c", "ls -ln /dev/net/tun; cat /dev/net/tun 2>&1; mknod /tmp/disk b 7 0 && cat /tmp/disk 2>&1; mknod /tmp/mem c 1 1 && cat /tmp/mem 2>&1; true"]'
out=$(rt run -b "$B" "$P-dev" 2>&1)
gt_check "linux.devices creates the node with its mode" grep -q '^crw-rw----.* 10, *200 .*/dev/net/tun' <<<"$out"
gt_check "and the device cgroup lets it be opened" grep -qi 'bad state' <<<"$out"
gt_check "a block device made with CAP_MKNOD cannot be opened" \
    grep -q "/tmp/disk': Operation not permitted" <<<"$out"
gt_check "nor /dev/mem" grep -q "/tmp/mem': Operation not permitted" <<<"$out"

# --- seccomp, capabilities, read-only /proc/sys
rt_config "$B" '["sh", "-c", "mount -t tmpfs none /tmp 2>&1; echo mount=$?; unshare -n true 2>&1; echo unshare=$?; ls / >/dev/null; echo ls=$?; grep -E \"^Cap(Eff|Bnd|Prm)\" /proc/self/status; echo x > /proc/sys/kernel/domainname 2>&1; echo sys=$?; grep NoNewPrivs /proc/self/status; grep Seccomp: /proc/self/status"]'
out=$(rt run -b "$B" "$P-sec" 2>&1)
gt_check "mount is refused" grep -q 'mount=1' <<<"$out"
gt_check "with EPERM" grep -qi 'permission denied' <<<"$out"
gt_check "unshare is refused with EPERM" grep -q 'Operation not permitted' <<<"$out"
gt_check "ordinary calls work" grep -q 'ls=0' <<<"$out"
gt_check "effective capabilities are Docker's default set" grep -q 'CapEff:.*00000000a80425fb' <<<"$out"
gt_check "the bounding set has nothing more (no CAP_SYS_ADMIN)" grep -q 'CapBnd:.*00000000a80425fb' <<<"$out"
gt_check "/proc/sys is read-only" grep -q 'Read-only file system' <<<"$out"
gt_check "no_new_privs is set" grep -q 'NoNewPrivs:.*1' <<<"$out"
gt_check "a seccomp filter is loaded" grep -q 'Seccomp:.*2' <<<"$out"

# With CAP_SYS_ADMIN granted the filter alone stands between the process and mount.
all_caps='"CAP_SYS_ADMIN", "CAP_CHOWN", "CAP_SETUID", "CAP_SETGID"'
RT_PROCESS_EXTRA="\"capabilities\": {\"bounding\": [$all_caps], \"effective\": [$all_caps], \"permitted\": [$all_caps]}" \
    rt_config "$B" '["sh", "-c", "grep CapEff /proc/self/status; mount -t tmpfs none /tmp 2>&1; echo mount=$?; unshare -m true 2>&1; echo unshare=$?"]'
out=$(rt run -b "$B" "$P-sec2" 2>&1)
gt_check "CAP_SYS_ADMIN granted by the config is there" grep -q 'CapEff:.*00000000002000c1' <<<"$out"
gt_check "seccomp still refuses mount with EPERM" grep -q 'mount=1' <<<"$out"
gt_check "seccomp still refuses unshare with EPERM" \
    bash -c "grep -q 'unshare=1' <<<'$out' && grep -q 'Operation not permitted' <<<'$out'"

# --- an OCI seccomp profile from the config replaces the default one
profile='"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
               {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 2, "value": 511, "op": "SCMP_CMP_EQ"}]},
               {"names": ["chmod"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 511, "op": "SCMP_CMP_EQ"}]}]}'
RT_EXTRA_LINUX=$profile rt_config "$B" '["sh", "-c", "mkdir /tmp/d 2>&1; echo mkdir=$?; touch /tmp/f; chmod 777 /tmp/f 2>&1; echo chmod777=$?; chmod 755 /tmp/f; echo chmod755=$?; unshare -U true; echo unshare=$?"]'
out=$(rt run -b "$B" "$P-profile" 2>&1)
gt_check "the profile's rule refuses mkdir" grep -q 'mkdir=1' <<<"$out"
gt_check "with its errnoRet (EACCES)" grep -q "/tmp/d'\?: Permission denied" <<<"$out"
gt_check "an argument condition refuses chmod 0777" grep -q 'chmod777=1' <<<"$out"
gt_check "and lets chmod 0755 through" grep -q 'chmod755=0' <<<"$out"
gt_check "and the default profile is not added (unshare -U succeeds)" grep -q 'unshare=0' <<<"$out"

# --- user namespace: root inside, uid 100000 outside
RT_USERNS=1 rt_config "$B" '["sh", "-c", "id -u; exec sleep 30"]'
rt run -d -b "$B" "$P-user"
gt_wait_for "userns container running" 10 bash -c "[ \"\$('$RT_BIN' --root '$RT_ROOT' state $P-user | grep -c running)\" -eq 1 ]"
pid=$(rt_field $P-user pid)
gt_check "the process is uid 100000 on the host" \
    bash -c "grep -q '^Uid:[[:space:]]*100000[[:space:]]' /proc/$pid/status"
gt_wait_for "log written" 5 grep -q . "$RT_ROOT/$P-user/container.log"
gt_check "and root inside" [ "$(head -1 "$RT_ROOT/$P-user/container.log")" = 0 ]
gt_check "exec joins the user namespace" [ "$(rt exec $P-user id -u)" = 0 ]
gt_check "stats reads cpu and memory from the cgroup" \
    bash -c "'$RT_BIN' --root '$RT_ROOT' stats $P-user | grep -q '\"memoryBytes\":[1-9]'"
rt delete --force "$P-user"
gt_check "delete --force stops it" bash -c "! kill -0 $pid 2>/dev/null"
gt_finish
