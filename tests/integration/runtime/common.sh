# Helpers for the runtime's integration tests (sourced after lib.sh): a busybox root file
# system built from Debian's busybox-static, config.json writer, the CLI with a per-test
# state root, and teardown that force-deletes every container the test made.

RT_BIN=$GT_BUILD/runtime/gantry-runtime
RT_ROOT=$GT_TMP/state
RT_ROOTFS=$GT_TMP/rootfs
# Container ids carry the test's pid so parallel tests never share a cgroup.
RT_PREFIX="t$$"

[ -x "$RT_BIN" ] || gt_skip "gantry-runtime is not built ($RT_BIN)"
[ -x /bin/busybox ] || gt_skip "busybox-static is not installed"
[ -d /sys/fs/cgroup ] || gt_skip "no cgroup file system"

# rt ARGS...: the CLI with this test's state root, bounded in time.
rt() { timeout 30 "$RT_BIN" --root "$RT_ROOT" "$@"; }

# rt_rootfs: a minimal root: busybox and its applet links, empty mount points. The
# directory is world-searchable so a user-namespaced init can reach it.
rt_rootfs() {
    mkdir -p "$RT_ROOTFS"/{bin,proc,sys,dev,tmp,etc,root}
    cp /bin/busybox "$RT_ROOTFS/bin/busybox"
    local applet
    for applet in $("$RT_ROOTFS/bin/busybox" --list); do
        [ -e "$RT_ROOTFS/bin/$applet" ] || ln -s busybox "$RT_ROOTFS/bin/$applet"
    done
    echo "root:x:0:0:root:/root:/bin/sh" >"$RT_ROOTFS/etc/passwd"
    chmod 755 "$GT_TMP"
}

# rt_config DIR ARGS_JSON: writes DIR/config.json. Optional settings through variables:
#   RT_RESOURCES (linux.resources JSON), RT_USERNS=1, RT_HOSTNAME, RT_RLIMITS (JSON array),
#   RT_ROOT_PATH (root.path), RT_EXTRA_MOUNT (one more mounts entry, JSON),
#   RT_PROCESS_EXTRA (more "key": value members of process), RT_NETNS_PATH (join this
#   network namespace), RT_READONLY=true (root.readonly), RT_SYSCTL (linux.sysctl JSON),
#   RT_HOOKS (the hooks object), RT_EXTRA_LINUX (more "key": value members of linux).
rt_config() {
    local dir=$1 args=$2
    local net='{"type":"network"}'
    [ -n "${RT_NETNS_PATH:-}" ] && net="{\"type\":\"network\",\"path\":\"$RT_NETNS_PATH\"}"
    local ns='{"type":"pid"},'"$net"',{"type":"ipc"},{"type":"uts"},{"type":"mount"},{"type":"cgroup"}'
    local maps=''
    if [ -n "${RT_USERNS:-}" ]; then
        ns="$ns,{\"type\":\"user\"}"
        maps=',"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":100000,"size":65536}]'
    fi
    local extra=''
    [ -n "${RT_EXTRA_MOUNT:-}" ] && extra=",$RT_EXTRA_MOUNT"
    mkdir -p "$dir"
    cat >"$dir/config.json" <<JSON
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": $args,
    "env": ["PATH=/bin", "HOME=/root"],
    "cwd": "/",
    "rlimits": ${RT_RLIMITS:-[]}${RT_PROCESS_EXTRA:+,$RT_PROCESS_EXTRA}
  },
  "root": {"path": "${RT_ROOT_PATH:-$RT_ROOTFS}", "readonly": ${RT_READONLY:-false}},
  "hostname": "${RT_HOSTNAME:-box}",
  "hooks": ${RT_HOOKS:-{\}},
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}$extra
  ],
  "linux": {
    "namespaces": [$ns]$maps,
    "resources": ${RT_RESOURCES:-{\}},
    "sysctl": ${RT_SYSCTL:-{\}},
    "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]${RT_EXTRA_LINUX:+,$RT_EXTRA_LINUX}
  }
}
JSON
}

# rt_field ID KEY: one field of `state ID` (numbers and strings; no jq needed).
rt_field() {
    rt state "$1" 2>/dev/null | sed -n "s/^ *\"$2\": *\"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p"
}

# rt_cgroups_of PREFIX: cgroup directories left for ids starting with PREFIX.
rt_cgroups_of() {
    find /sys/fs/cgroup -maxdepth 3 -path "*/gantry/$1*" -type d 2>/dev/null
}

rt_teardown() {
    local id dir
    [ -d "$RT_ROOT" ] || return 0
    # delete --force stops each container's processes by pidfd (checked against their
    # recorded start time) and waits for its monitor.
    for id in $(ls "$RT_ROOT" 2>/dev/null); do
        timeout 15 "$RT_BIN" --root "$RT_ROOT" delete --force "$id" >/dev/null 2>&1 || true
    done
    for dir in $(rt_cgroups_of "$RT_PREFIX"); do rmdir "$dir" 2>/dev/null || true; done
}
gt_on_exit rt_teardown
