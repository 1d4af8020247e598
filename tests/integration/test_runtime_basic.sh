# gantry-runtime on a busybox bundle: output, pid 1, hostname, isolation from host
# processes, exit codes and signals, the OCI life cycle, exec, a caller killed after
# create, overlay layers, and errors that name the field and leave nothing behind.
source "$(dirname "$0")/lib.sh"
gt_require_root
source "$(dirname "$0")/runtime/common.sh"
rt_rootfs
B=$GT_TMP/bundle
P=$RT_PREFIX

# --- output, pid 1, hostname, no host process visible
RT_HOSTNAME=web-1 rt_config "$B" '["sh", "-c", "echo pid=$$; hostname; ls /proc | grep -c \"^[0-9]\""]'
out=$(rt run -b "$B" "$P-out" 2>&1)
gt_check "run prints the container's output" grep -q '^pid=' <<<"$out"
gt_check "the first process is pid 1" grep -qx 'pid=1' <<<"$out"
gt_check "the hostname is set" grep -qx 'web-1' <<<"$out"
gt_check "no host process is visible (only sh, ls and grep)" [ "$(sed -n 3p <<<"$out")" -le 3 ]

# --- exit codes and signals propagate
rt_config "$B" '["sh", "-c", "exit 42"]'
rt run -b "$B" "$P-exit" >/dev/null 2>&1
gt_check "run exits with the container's status (42)" [ $? -eq 42 ]
rt_config "$B" '["sh", "-c", "trap \"exit 143\" TERM; echo trapped; sleep 30 & wait"]'
gt_spawn fg "$RT_BIN" --root "$RT_ROOT" run -b "$B" "$P-fwd"
fg_pid=$GT_LAST_PID
gt_wait_for "container $P-fwd has its trap" 10 grep -q trapped "$GT_TMP/fg.log"
kill -TERM "$fg_pid"
wait "$fg_pid"
gt_check "run forwards SIGTERM and exits with the container's 143" [ $? -eq 143 ]

# --- life cycle: create, state, start, kill, delete
rt_config "$B" '["sh", "-c", "echo to-log; echo err-log >&2; exec sleep 30"]'
rt create -b "$B" "$P-life"
gt_check "create leaves the container created" [ "$(rt_field $P-life status)" = created ]
pid=$(rt_field $P-life pid)
gt_check "the pid in state is a live host process" kill -0 "$pid"
rt start "$P-life"
gt_check "start makes it running" [ "$(rt_field $P-life status)" = running ]
gt_check "start twice is refused" bash -c "! '$RT_BIN' --root '$RT_ROOT' start $P-life 2>/dev/null"
gt_wait_for "log written" 5 grep -q err-log "$RT_ROOT/$P-life/container.log"
gt_check "stdout and stderr land in the log" bash -c "rt() { '$RT_BIN' --root '$RT_ROOT' \"\$@\"; }; rt logs $P-life | grep -q to-log && rt logs $P-life | grep -q err-log"
gt_check "list shows it" bash -c "'$RT_BIN' --root '$RT_ROOT' list | grep -q '$P-life .*running'"
gt_check "delete without --force refuses a running container" \
    bash -c "! '$RT_BIN' --root '$RT_ROOT' delete $P-life 2>/dev/null"
rt pause "$P-life"
gt_check "pause freezes it" [ "$(rt_field $P-life status)" = paused ]
gt_check "ps lists its init" bash -c "'$RT_BIN' --root '$RT_ROOT' ps $P-life | grep -qx $pid"
gt_check "a paused container is really frozen" \
    bash -c "grep -q FROZEN /sys/fs/cgroup/freezer/gantry/$P-life/freezer.state"
rt resume "$P-life"
gt_check "resume thaws it" [ "$(rt_field $P-life status)" = running ]
ns_host=$(for n in pid net mnt uts ipc cgroup; do readlink /proc/$pid/ns/$n; done | tr '\n' ' ')
ns_exec=$(rt exec "$P-life" sh -c 'for n in pid net mnt uts ipc cgroup; do readlink /proc/self/ns/$n; done' | tr '\n' ' ')
gt_check "exec runs in the container's namespaces" [ "$ns_host" = "$ns_exec" ]
gt_check "exec sees the container's init as pid 1" bash -c "'$RT_BIN' --root '$RT_ROOT' exec $P-life cat /proc/1/cmdline | grep -q sleep"
gt_check "exec joins the cgroup" bash -c "'$RT_BIN' --root '$RT_ROOT' exec $P-life sh -c 'cat /proc/self/cgroup' | grep -q 'memory:/$'"
gt_check "exec adds variables to the container's environment" \
    [ "$(rt exec -e EXTRA=1 "$P-life" sh -c 'echo $EXTRA:$HOME')" = "1:/root" ]
gt_check "exec --user runs as that user without capabilities" \
    [ "$(rt exec -u 1000:1000 "$P-life" sh -c 'echo $(id -u):$(id -g); grep CapEff /proc/self/status' | tr -s ' \t' ' ')" = "$(printf '1000:1000\nCapEff: 0000000000000000')" ]
gt_check "exec --cwd sets the directory" [ "$(rt exec --cwd /tmp "$P-life" pwd)" = /tmp ]
rt exec "$P-life" sh -c 'exit 9'
gt_check "exec returns the process's exit status" [ $? -eq 9 ]
rt exec "$P-life" /bin/nope 2>/dev/null
gt_check "exec of a missing program exits 127" [ $? -eq 127 ]
rt kill "$P-life" KILL
gt_wait_for "stopped after SIGKILL" 5 bash -c "'$RT_BIN' --root '$RT_ROOT' state $P-life | grep -q stopped"
gt_check "the signal is recorded (exitSignal 9, exitCode 137)" \
    bash -c "[ \"\$('$RT_BIN' --root '$RT_ROOT' state $P-life | grep -c -e '\"exitSignal\": 9' -e '\"exitCode\": 137')\" -eq 2 ]"
rt delete "$P-life"
gt_check "delete removes the state" [ ! -e "$RT_ROOT/$P-life" ]
gt_check "delete removes the cgroups" [ -z "$(rt_cgroups_of $P-life)" ]

# --- create --inherit-stdio hands the caller's output to the container, as runc does
rt_config "$B" '["sh", "-c", "echo inherited"]'
rt create --inherit-stdio -b "$B" "$P-inherit" >"$GT_TMP/inherit.out"
rt start "$P-inherit"
rt wait "$P-inherit" >/dev/null
gt_check "create --inherit-stdio: the output reaches the creator's stdout" \
    grep -qx inherited "$GT_TMP/inherit.out"
rt delete "$P-inherit"

# --- a relative program path runs from process.cwd
rt_config "$B" '["./echo", "relative"]'
sed -i 's|"cwd": "/"|"cwd": "/bin"|' "$B/config.json"
gt_check "./echo with cwd /bin runs /bin/echo" [ "$(rt run -b "$B" "$P-relprog" 2>&1)" = relative ]

# --- the config's annotations appear in the OCI state
rt_config "$B" '["sleep", "30"]'
sed -i 's|^  "hostname"|  "annotations": {"org.example.team": "web"},\n  "hostname"|' "$B/config.json"
rt run -d -b "$B" "$P-ann"
gt_check "state carries the config's annotations" \
    bash -c "'$RT_BIN' --root '$RT_ROOT' state $P-ann | grep -q '\"org.example.team\": \"web\"'"
rt delete --force "$P-ann"

# --- --pid-file, as runc and crun write it
rt_config "$B" '["sleep", "30"]'
rt run -d --pid-file "$GT_TMP/pid" -b "$B" "$P-pidfile"
gt_check "--pid-file holds the container's pid" [ "$(cat "$GT_TMP/pid")" = "$(rt_field $P-pidfile pid)" ]
rt delete --force "$P-pidfile"

# --- the log keeps to its size cap
rt_config "$B" '["sh", "-c", "i=0; while [ $i -lt 300 ]; do echo line-$i-0123456789012345678901234567890123456789; i=$((i+1)); done"]'
rt run -d --log-max 2000 -b "$B" "$P-logcap"
rt wait "$P-logcap" >/dev/null
log=$RT_ROOT/$P-logcap/container.log
gt_check "the log stays within its cap" [ "$(stat -c %s "$log")" -le 2000 ]
gt_check "the previous part is kept beside it, within the cap" \
    bash -c "[ -s '$log.1' ] && [ \"\$(stat -c %s '$log.1')\" -le 2000 ]"
gt_check "the newest output is in the log" grep -q 'line-299-' "$log"
rt delete "$P-logcap"

# --- the monitor survives SIGKILL of its caller and records the exit later
# The container runs until the test signals it, so the check does not race its end.
rt_config "$B" '["sh", "-c", "trap \"exit 7\" TERM; sleep 600 & wait"]'
gt_spawn caller "$RT_BIN" --root "$RT_ROOT" run -b "$B" "$P-orphan"
caller=$GT_LAST_PID
gt_wait_for "container $P-orphan running" 30 bash -c "'$RT_BIN' --root '$RT_ROOT' state $P-orphan | grep -q running"
kill -KILL "$caller"
wait "$caller" 2>/dev/null
gt_check "the container outlives its caller" [ "$(rt_field $P-orphan status)" = running ]
rt kill "$P-orphan" TERM
gt_wait_for "exit recorded" 30 bash -c "'$RT_BIN' --root '$RT_ROOT' state $P-orphan | grep -q stopped"
gt_check "the monitor recorded exit code 7" [ "$(rt_field $P-orphan exitCode)" = 7 ]
rt delete "$P-orphan"

# --- overlay: read-only layers, a writable upper directory
L1=$GT_TMP/layer1 U=$GT_TMP/upper W=$GT_TMP/work
mkdir -p "$L1/etc" "$U" "$W"
echo layered >"$L1/etc/greeting"
rt_config "$B" '["sh", "-c", "cat /etc/greeting; echo new > /created; rm /bin/true; ls /bin/busybox"]'
out=$(rt run -b "$B" --layer "$RT_ROOTFS" --layer "$L1" --upper-dir "$U" --work-dir "$W" "$P-ovl" 2>&1)
gt_check "overlay shows the upper layer's file" grep -qx layered <<<"$out"
gt_check "writes land in the upper directory" [ -f "$U/created" ]
gt_check "the read-only layers are untouched" [ -e "$RT_ROOTFS/bin/true" ] 
gt_check "no overlay mount is left on the host" bash -c "! grep -q '$U' /proc/self/mountinfo"

# --- joining a network namespace, read-only root, sysctls
ns=gantry-rt-$$
gt_netns_add "$ns"
RT_NETNS_PATH=/run/netns/$ns RT_READONLY=true RT_SYSCTL='{"net.ipv4.ip_forward": "1"}' \
    rt_config "$B" '["sh", "-c", "stat -L -c %i /proc/self/ns/net; touch /x 2>&1; cat /proc/sys/net/ipv4/ip_forward"]'
out=$(rt run -b "$B" "$P-netns" 2>&1)
gt_check "the container joins the given network namespace" \
    [ "$(sed -n 1p <<<"$out")" = "$(stat -L -c %i /run/netns/$ns)" ]
gt_check "root.readonly makes / read-only" grep -q 'Read-only file system' <<<"$out"
gt_check "linux.sysctl is applied in the container's namespace" [ "$(sed -n 3p <<<"$out")" = 1 ]
gt_check "and lands in the joined namespace" [ "$(ip netns exec $ns cat /proc/sys/net/ipv4/ip_forward)" = 1 ]

# --- a relative state root works from any directory
rt_config "$B" '["true"]'
(cd "$GT_TMP" && timeout 30 "$RT_BIN" --root ./relative run -b "$B" "$P-rel")
gt_check "a relative --root works" [ $? -eq 0 ]
gt_check "and is cleaned up" [ -z "$(ls -A "$GT_TMP/relative")" ]

# --- a create that never finished (its monitor died) is removed with --force
mkdir -p "$RT_ROOT/$P-half" /sys/fs/cgroup/memory/gantry/$P-half
cp "$B/config.json" "$RT_ROOT/$P-half/config.json"
gt_check "a half-made container shows as creating" [ "$(rt_field $P-half status)" = creating ]
gt_check "delete without --force refuses it" \
    bash -c "! '$RT_BIN' --root '$RT_ROOT' delete $P-half 2>/dev/null"
rt delete --force "$P-half"
gt_check "delete --force removes its state and cgroup" \
    bash -c "[ ! -e '$RT_ROOT/$P-half' ] && [ ! -e /sys/fs/cgroup/memory/gantry/$P-half ]"

# --- failures name the problem and leave nothing behind
rt_config "$B" '["/bin/nope"]'
out=$(rt run -b "$B" "$P-nope" 2>&1)
rc=$?
gt_check "a missing program exits 127" [ $rc -eq 127 ]
gt_check "and says exec /bin/nope: no such file or directory" \
    grep -q 'exec /bin/nope: no such file or directory' <<<"$out"
gt_check "and leaves no state" [ ! -e "$RT_ROOT/$P-nope" ]
gt_check "and leaves no cgroup" [ -z "$(rt_cgroups_of $P-nope)" ]
RT_EXTRA_MOUNT='{"destination": "/mnt", "type": "nosuchfs", "source": "x"}' \
    rt_config "$B" '["true"]'
out=$(rt create -b "$B" "$P-badmount" 2>&1)
gt_check "a bad mount fails create naming the mount" grep -q 'mounts\[7\] (/mnt)' <<<"$out"
gt_check "and leaves no state or cgroup" \
    bash -c "[ ! -e '$RT_ROOT/$P-badmount' ] && [ -z \"\$(find /sys/fs/cgroup -maxdepth 3 -path '*/gantry/$P-badmount')\" ]"
RT_RESOURCES='{"cpu": {"quota": 20000000000000}}' rt_config "$B" '["true"]'
out=$(rt create -b "$B" "$P-badcg" 2>&1)
gt_check "a cgroup value the kernel refuses fails create naming the field" \
    grep -q 'linux.resources.cpu.quota: write "20000000000000" to .*cpu.cfs_quota_us' <<<"$out"
gt_check "and leaves no state or cgroup" \
    bash -c "[ ! -e '$RT_ROOT/$P-badcg' ] && [ -z \"\$(find /sys/fs/cgroup -maxdepth 3 -path '*/gantry/$P-badcg')\" ]"
RT_RESOURCES='{"memory": {"limit": "lots"}}' rt_config "$B" '["true"]'
out=$(rt create -b "$B" "$P-badcfg" 2>&1)
rc=$?
gt_check "an invalid config exits 2" [ $rc -eq 2 ]
gt_check "and names the field" grep -q 'linux.resources.memory.limit: must be an integer' <<<"$out"
gt_check "and creates nothing" [ ! -e "$RT_ROOT/$P-badcfg" ]
echo '{"ociVersion": "1.0.2", "process": {' >"$B/config.json"
out=$(rt create -b "$B" "$P-badjson" 2>&1)
gt_check "broken JSON gives line and column" grep -q 'config.json line [0-9]* column [0-9]*' <<<"$out"
RT_RLIMITS='[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 99999999}]' rt_config "$B" '["true"]'
out=$(rt create -b "$B" "$P-rlimit" 2>&1)
gt_check "an rlimit above what the kernel allows names process.rlimits" \
    grep -q 'process.rlimits\[0\]' <<<"$out"
gt_check "and leaves no state" [ ! -e "$RT_ROOT/$P-rlimit" ]
gt_finish
