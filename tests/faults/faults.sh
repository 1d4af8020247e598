# Fault injection on the multi-host harness (sourced after lib.sh and netns.sh). Every
# fault has its undo; what a fault creates (processes, nftables tables, iptables rules,
# loop devices, mounts) is tracked and removed at teardown, pass or fail: processes go
# through gt_spawn, the rest through gt_on_exit (hooks run after the processes stopped,
# before the scratch directory is removed).
#
#   partitions     ft_isolate H... / ft_reconnect H...          a host's link down (switch side)
#                  ft_drop_oneway FROM TO                      FROM's packets to TO dropped
#                  ft_drop_between A B                         both directions (nftables)
#                  ft_partition "A B" "C D"                    every pair across the groups
#                  ft_heal H...                                removes the drops of hosts
#   link quality   ft_delay H MS / ft_delay_undo H             delay of H's outgoing packets
#                  ft_loss H PCT / ft_loss_undo H              random loss both ways
#   crash          ft_freeze H PID... / ft_thaw H PID...       link cut + SIGSTOP, SIGCONT + link
#   disk           ft_disk_mount DIR MB / ft_disk_fill DIR [LEAVE] / ft_disk_free DIR
#   corruption     ft_corrupt FILE FRACTION / ft_corrupt_undo FILE   one byte of a stopped server
#   clock          ft_clock_env H / ft_clock_step H SECONDS / ft_clock_reset H
#
# Delay: this machine's kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is off), so when
# `tc qdisc add ... netem` fails, the host's outgoing packets go through an NFQUEUE queue
# (iptables; nftables has no queue statement without CONFIG_NFT_QUEUE) to delayq.py, which
# holds each for the delay. Loss uses nftables' random number generator.
#
# Clocks: processes started with the environment of ft_clock_env H run under libfaketime
# with a relative offset read from a file (FAKETIME_TIMESTAMP_FILE, re-read every second);
# the monotonic clock is left alone, as an NTP step would.

FT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FT_TABLE=gtfault
FT_FAKETIME_LIB=""
for _ft_lib in /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 \
    /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1; do
    [ -f "$_ft_lib" ] && { FT_FAKETIME_LIB=$_ft_lib; break; }
done
declare -A FT_DELAYQ_PID=() FT_DELAY_MODE=() FT_LOOP=() FT_CORRUPT=()
FT_NETEM=""
FT_QUEUE_NUM=100

ft_ns() { echo "/run/netns/${GT_HOST_NS[$1]}"; }
ft_addr() { echo "${GT_HOST_ADDR[$1]}"; }
ft_now_ms() { date +%s%3N; }

# ft_missing_tools: prints what a full fault set needs and this machine lacks.
ft_missing_tools() {
    local t
    for t in nft iptables losetup mkfs.ext4 fallocate; do
        command -v "$t" >/dev/null || echo "$t"
    done
    [ -n "$FT_FAKETIME_LIB" ] || echo libfaketime
}

# ---------------------------------------------------------------------------- partitions

ft_isolate() { local h; for h in "$@"; do gt_host_isolate "$h"; done; }
ft_reconnect() { local h; for h in "$@"; do gt_host_reconnect "$h"; done; }

# ft_table HOST: the host's fault table (chains on input and output), created once.
ft_table() {
    local h=$1
    nsenter --net="$(ft_ns "$h")" nft list table inet "$FT_TABLE" >/dev/null 2>&1 && return 0
    nsenter --net="$(ft_ns "$h")" nft -f - <<EOF
table inet $FT_TABLE {
    chain in { type filter hook input priority -10; policy accept; }
    chain out { type filter hook output priority -10; policy accept; }
}
EOF
}

# ft_drop_oneway FROM TO: FROM's packets to TO are dropped as they leave FROM (TO still
# reaches FROM).
ft_drop_oneway() {
    ft_table "$1" || return 1
    nsenter --net="$(ft_ns "$1")" nft add rule inet "$FT_TABLE" out ip daddr "$(ft_addr "$2")" drop
}

ft_drop_between() { ft_drop_oneway "$1" "$2" && ft_drop_oneway "$2" "$1"; }

# ft_partition "A B" "C D": no packet between a host of one group and a host of the other.
ft_partition() {
    local a b
    for a in $1; do for b in $2; do ft_drop_between "$a" "$b" || return 1; done; done
}

# ft_heal HOST...: removes every drop (and loss) rule of the hosts.
ft_heal() {
    local h
    for h in "$@"; do
        nsenter --net="$(ft_ns "$h")" nft delete table inet "$FT_TABLE" 2>/dev/null || true
    done
}

# ---------------------------------------------------------------------------- link quality

ft_have_netem() {
    if [ -z "$FT_NETEM" ]; then
        FT_NETEM=no
        # Probe on a throwaway veth pair inside the switch namespace.
        local sw="$GT_HOST_PREFIX-sw"
        if ip -n "$sw" link add ftprobe0 type veth peer name ftprobe1 2>/dev/null; then
            nsenter --net="/run/netns/$sw" tc qdisc add dev ftprobe0 root netem delay 1ms 2>/dev/null && FT_NETEM=yes
            ip -n "$sw" link del ftprobe0 2>/dev/null
        fi
    fi
    [ "$FT_NETEM" = yes ]
}

# ft_delay HOST MS [LOSS-PCT]: every packet HOST sends is held MS milliseconds (and
# LOSS-PCT of them dropped), with netem when the kernel has it, else through delayq.py.
ft_delay() {
    local h=$1 ms=$2 loss=${3:-0}
    if ft_have_netem; then
        local extra=""
        [ "$loss" != 0 ] && extra="loss $loss%"
        # shellcheck disable=SC2086
        nsenter --net="$(ft_ns "$h")" tc qdisc add dev eth0 root netem delay "${ms}ms" $extra || return 1
        FT_DELAY_MODE[$h]=netem
        return 0
    fi
    command -v iptables >/dev/null || return 1
    local q=$((FT_QUEUE_NUM + h)) name i
    name="delayq$h-$(ft_now_ms)"
    gt_host_spawn "$name" "$h" python3 "$FT_DIR/delayq.py" "$q" "$ms" "$loss"
    FT_DELAYQ_PID[$h]=$GT_LAST_PID
    # The queue is bound before packets go to it (--queue-bypass would let them through
    # undelayed while nothing listens).
    for ((i = 0; i < 50; i++)); do
        grep -qs '^delayq:' "$GT_TMP/$name.log" && break
        sleep 0.1
    done
    nsenter --net="$(ft_ns "$h")" iptables -w -A OUTPUT -o eth0 -j NFQUEUE --queue-num "$q" --queue-bypass ||
        return 1
    FT_DELAY_MODE[$h]=nfqueue
}

ft_delay_undo() {
    local h=$1
    case "${FT_DELAY_MODE[$h]:-}" in
    netem) nsenter --net="$(ft_ns "$h")" tc qdisc del dev eth0 root 2>/dev/null ;;
    nfqueue)
        nsenter --net="$(ft_ns "$h")" iptables -w -D OUTPUT -o eth0 -j NFQUEUE \
            --queue-num $((FT_QUEUE_NUM + h)) --queue-bypass 2>/dev/null
        # delayq lets what it still holds go before it exits.
        [ -n "${FT_DELAYQ_PID[$h]:-}" ] && gt_stop "${FT_DELAYQ_PID[$h]}"
        ;;
    esac
    unset "FT_DELAY_MODE[$h]" "FT_DELAYQ_PID[$h]"
    return 0
}

# ft_loss HOST PCT: PCT% of the packets HOST sends and receives are dropped.
ft_loss() {
    local h=$1 pct=$2
    ft_table "$h" || return 1
    nsenter --net="$(ft_ns "$h")" nft add rule inet "$FT_TABLE" out oifname eth0 numgen random mod 100 \< "$pct" drop &&
        nsenter --net="$(ft_ns "$h")" nft add rule inet "$FT_TABLE" in iifname eth0 numgen random mod 100 \< "$pct" drop
}
ft_loss_undo() { ft_heal "$1"; }

# ---------------------------------------------------------------------------- crash

# ft_freeze HOST PID...: the host's link goes down and its processes stop (SIGSTOP), as a
# machine that hangs; ft_thaw HOST PID... resumes them and brings the link back.
ft_freeze() {
    local h=$1 pid
    shift
    gt_host_isolate "$h"
    for pid in "$@"; do kill -STOP "$pid" 2>/dev/null; done
    return 0
}
ft_thaw() {
    local h=$1 pid
    shift
    for pid in "$@"; do kill -CONT "$pid" 2>/dev/null; done
    gt_host_reconnect "$h"
}

# ---------------------------------------------------------------------------- disk

# ft_disk_mount DIR MB: DIR becomes an ext4 file system of MB megabytes on a loop device
# (no reserved blocks: a fill takes every block). Unmounted and detached at exit.
ft_disk_mount() {
    local dir=$1 mb=$2 img="$1.img" dev
    mkdir -p "$dir" || return 1
    truncate -s "${mb}M" "$img" && mkfs.ext4 -q -F -m 0 "$img" || return 1
    dev=$(losetup -f --show "$img") || return 1
    gt_on_exit "losetup -d $dev 2>/dev/null; rm -f $img"
    mount -t ext4 "$dev" "$dir" || return 1
    gt_on_exit "umount $dir 2>/dev/null || umount -l $dir 2>/dev/null"
    FT_LOOP[$dir]=$dev
    gt_log "disk: $dir is $mb MB of ext4 on $dev"
}

# ft_disk_fill DIR [LEAVE]: a file takes every free block of DIR's file system but LEAVE bytes
# (0: every block).
ft_disk_fill() {
    local dir=$1 leave=${2:-0} avail
    avail=$(df -B1 --output=avail "$dir" | tail -1 | tr -d ' ')
    [ "$avail" -gt "$leave" ] && fallocate -l $((avail - leave)) "$dir/.fault-fill" 2>/dev/null
    # Whatever fallocate left (metadata rounding) goes to a plain write.
    [ "$leave" -eq 0 ] && dd if=/dev/zero of="$dir/.fault-fill2" bs=64k status=none 2>/dev/null
    sync -f "$dir" 2>/dev/null || true
    gt_log "disk: $dir full ($(df -B1 --output=avail "$dir" | tail -1 | tr -d ' ') bytes free)"
}
ft_disk_free() { rm -f "$1/.fault-fill" "$1/.fault-fill2"; }

# ---------------------------------------------------------------------------- corruption

# ft_corrupt FILE FRACTION: flips every bit of one byte of FILE (of a stopped server), at
# FRACTION (0..1) of the part that holds data (up to its last non-zero byte: raft segments
# are preallocated with zeros). Sets FT_FLIP to "OFFSET OLD NEW"; ft_corrupt_undo FILE puts
# the byte back.
ft_corrupt() {
    FT_FLIP=$(python3 - "$1" "$2" <<'EOF2'
import os, sys
path, frac = sys.argv[1], float(sys.argv[2])
with open(path, "r+b") as f:
    data = f.read()
    end = len(data.rstrip(b"\0"))
    if end == 0:
        sys.exit(1)
    off = min(end - 1, int(frac * end))
    old = data[off]
    f.seek(off)
    f.write(bytes([old ^ 0xFF]))
    f.flush()
    os.fsync(f.fileno())
print(off, old, old ^ 0xFF)
EOF2
    ) || return 1
    FT_CORRUPT[$1]=$FT_FLIP
}
ft_corrupt_undo() {
    local file=$1 off old
    [ -n "${FT_CORRUPT[$file]:-}" ] || return 0
    read -r off old _ <<<"${FT_CORRUPT[$file]}"
    python3 -c 'import os,sys; f=open(sys.argv[1],"r+b"); f.seek(int(sys.argv[2])); f.write(bytes([int(sys.argv[3])])); f.flush(); os.fsync(f.fileno())' \
        "$file" "$off" "$old" || return 1
    unset "FT_CORRUPT[$file]"
}

# ---------------------------------------------------------------------------- clock

ft_clock_file() { echo "$GT_TMP/clock$1"; }

# ft_clock_env HOST: the environment (NAME=VALUE words) under which a process of HOST
# follows HOST's fault clock. Empty when libfaketime is missing. LeakSanitizer's check at
# exit aborts under libfaketime ("The futex facility returned an unexpected error code")
# when it has leaks to look at, such as the ones libraft leaves when it refuses a damaged
# log: it is off for these processes (the rest of the suite checks leaks).
ft_clock_env() {
    [ -n "$FT_FAKETIME_LIB" ] || return 0
    local f
    f=$(ft_clock_file "$1")
    [ -f "$f" ] || echo "+0" >"$f"
    echo "LD_PRELOAD=$FT_FAKETIME_LIB FAKETIME_TIMESTAMP_FILE=$f FAKETIME_DONT_FAKE_MONOTONIC=1" \
        "FAKETIME_CACHE_DURATION=1 ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0:detect_leaks=0"
}

# ft_clock_step HOST SECONDS: HOST's wall clock jumps by SECONDS (negative: back) from the
# real time; takes effect within about a second.
ft_clock_step() {
    local s=$2
    case "$s" in -*) ;; *) s="+$s" ;; esac
    echo "$s" >"$(ft_clock_file "$1").new" && mv "$(ft_clock_file "$1").new" "$(ft_clock_file "$1")"
}
ft_clock_reset() { ft_clock_step "$1" 0; }
