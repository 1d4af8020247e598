# Disk space faults on loopback servers whose data directories are small file systems of
# their own (tmpfs with a size): below --min-free-space the NOSPACE alarm stands, client
# writes get 507 naming the directory, reads go on, and writes resume once space is freed;
# a follower whose disk fills to the last byte does not hold the others up, and catches up
# once it has space again. No acknowledged write is lost.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require
command -v fallocate >/dev/null || gt_skip "fallocate is missing (util-linux)"

# small_fs DIR MIB: a tmpfs of MIB MiB mounted on DIR, unmounted at the end.
small_fs() {
    mkdir -p "$1"
    mount -t tmpfs -o "size=${2}m" gantry-test "$1" || return 1
    gt_on_exit "umount -l '$1'"
}
free_bytes() { df -B1 --output=avail "$1" | tail -1 | tr -d ' '; }
# fill DIR LEAVE_MIB: a file that leaves LEAVE_MIB MiB free in DIR's file system.
fill() {
    local want=$(($(free_bytes "$1") - $2 * 1048576))
    [ "$want" -gt 0 ] || return 0
    fallocate -l "$want" "$1/fill" 2>/dev/null || dd if=/dev/zero of="$1/fill" bs=1M count=$((want / 1048576)) status=none
}
field() { cp_get "$1" /v1/cluster | python3 -c "import json,sys; print(json.load(sys.stdin)$2)" 2>/dev/null; }
alarm_is() { [ "$(field "$1" '["alarms"]')" = "$2" ]; }

# 1. One server, 16 MiB reserve on a 48 MiB file system.
small_fs "$GT_TMP/s1" 48 || gt_skip "cannot mount a tmpfs here"
CP_FLAGS+=(--min-free-space 16Mi)
cp_start 1 --bootstrap "1=$(cp_raft 1)"
gt_check "a one-server cluster elects itself" gt_wait_for "a leader" 30 cp_has_leader 1
ok=$(cp_bulk_apply 1 20 before 4)
gt_check "20 applies succeed ($ok)" [ "$ok" -eq 20 ]
gt_check "no alarm while there is space" alarm_is 1 "[]"
fill "$GT_TMP/s1" 8
gt_log "free after the fill: $(free_bytes "$GT_TMP/s1") bytes"
gt_check "the NOSPACE alarm is raised" gt_wait_for "alarm" 20 alarm_is 1 "['nospace']"
gt_check "the metric says so" [ "$(cp_metric 1 gantry_storage_nospace)" = 1 ]
body=$(curl -s --max-time 10 -w '\n%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"name":"during","image":"busybox"}' "http://$(cp_api 1)/v1/apply")
gt_log "apply during the alarm: $body"
gt_check "a write is refused with 507" [ "$(tail -1 <<<"$body")" = 507 ]
gt_check "naming the alarm and the directory" grep -q "\"nospace\".*$GT_TMP/s1.*--min-free-space" <<<"$body"
gt_check "a linearizable read is served" [ "$(cp_client_status 1 /v1/workloads)" = 200 ]
gt_check "and holds the 20 workloads" [ "$(cp_count 1)" = 20 ]
gt_check "the refused write changed nothing" [ "$(cp_client_status 1 /v1/workloads/during)" = 404 ]
rm -f "$GT_TMP/s1/fill"
gt_check "the alarm clears when space is freed" gt_wait_for "alarm cleared" 20 alarm_is 1 "[]"
gt_check "and writes go on" [ "$(cp_apply 1 after)" = 200 ]
gt_check "every acknowledged write is there (21)" [ "$(cp_count 1)" = 21 ]
cp_stop 1

# 2. Three servers; a follower's disk fills to the last byte while writes go on.
for i in 2 3 4; do small_fs "$GT_TMP/s$i" 64 || exit 1; done
CP_FLAGS=(--min-free-space 8Mi)
list="2=$(cp_raft 2),3=$(cp_raft 3),4=$(cp_raft 4)"
for i in 2 3 4; do cp_start "$i" --bootstrap "$list"; done
gt_check "three servers elect a leader" gt_wait_for "a leader" 30 cp_has_leader 2 3 4
leader=$(cp_leader 2 3 4)
victim=2
[ "$leader" = 2 ] && victim=3
ok=$(cp_bulk_apply "$leader" 30 three 4)
gt_check "30 applies succeed ($ok)" [ "$ok" -eq 30 ]
fill "$GT_TMP/s$victim" 0
dd if=/dev/zero of="$GT_TMP/s$victim/fill2" bs=4k status=none 2>/dev/null
gt_log "server $victim's file system: $(free_bytes "$GT_TMP/s$victim") bytes free"
ok=$(cp_bulk_apply "$leader" 40 full 4)
gt_check "the others take 40 writes meanwhile ($ok)" [ "$ok" -eq 40 ]
alive() { kill -0 "${CP_PID[$victim]}" 2>/dev/null; }
gt_log "server $victim after the writes: $(alive && echo running || echo exited); $(grep -v 'level=info' "$GT_TMP/s$victim.log" | tail -2 | cut -c1-300)"
rm -f "$GT_TMP/s$victim/fill" "$GT_TMP/s$victim/fill2"
# A server that stopped on the full disk is started again, as its supervisor would.
alive || { cp_stop "$victim"; cp_start "$victim"; }
gt_check "with space again, the follower catches up" gt_wait_for "same state" 60 cp_same_state 2 3 4
gt_check "and holds every acknowledged write (70)" [ "$(cp_count "$victim")" = 70 ]
gt_finish
