# Disk space faults on loopback servers whose data directories are small file systems of
# their own (tmpfs with a size): below --min-free-space the NOSPACE alarm stands, client
# writes get 507 naming the directory, reads go on, and writes resume once space is freed;
# a server whose disk fills to the last byte leaves the cluster but stays up for ?stale
# reads and relays, and starts afresh by itself once it has space again; a leader that
# fills its disk hands over. No acknowledged write is lost.
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
# fill DIR LEAVE_MIB [NAME]: a file (DIR/fill, or DIR/NAME) that leaves LEAVE_MIB MiB free
# in DIR's file system.
fill() {
    local want=$(($(free_bytes "$1") - $2 * 1048576)) file=$1/${3:-fill}
    [ "$want" -gt 0 ] || return 0
    fallocate -l "$want" "$file" 2>/dev/null || dd if=/dev/zero of="$file" bs=1M count=$((want / 1048576)) status=none
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
alive() { kill -0 "${CP_PID[$1]}" 2>/dev/null; }
down_is() { [ "$(cp_metric "$1" gantry_storage_failed)" = "$2" ]; }
failed() { grep -q 'msg="storage failed"' "$GT_TMP/s$1.log"; }
gt_check "the follower's disk fault takes it out of the cluster" gt_wait_for "storage failed" 30 failed "$victim"
# Leaving, libraft gives back the log segments it had allocated ahead: filled again at once
# (the first probe comes 2 s after the fault), the disk stays full until the test frees it.
fill "$GT_TMP/s$victim" 0 refill
gt_check "it is out (gantry_storage_failed)" down_is "$victim" 1
gt_log "server $victim: $(grep -v 'level=info' "$GT_TMP/s$victim.log" | tail -2 | cut -c1-300)"
gt_check "it stays up" alive "$victim"
gt_check "says why in its log" grep -q 'storage failed.*leaves the cluster' "$GT_TMP/s$victim.log"
gt_check "and in its alarms" grep -q storage_failed <<<"$(field "$victim" '["alarms"]')"
gt_check "it serves ?stale reads" [ "$(cp_client_status "$victim" '/v1/workloads?stale=1')" = 200 ]
gt_check "a read sent to it is relayed to the leader" [ "$(cp_client_status "$victim" /v1/workloads)" = 200 ]
gt_check "a write sent to it is relayed to the leader" [ "$(cp_apply "$victim" relayed)" = 200 ]
rm -f "$GT_TMP/s$victim/fill" "$GT_TMP/s$victim/fill2" "$GT_TMP/s$victim/refill"
gt_check "with space again, it starts afresh by itself" gt_wait_for "storage back" 30 down_is "$victim" 0
gt_check "as the same process" alive "$victim"
gt_check "and logs it" grep -q 'storage is back' "$GT_TMP/s$victim.log"
gt_check "the follower catches up" gt_wait_for "same state" 60 cp_same_state 2 3 4
gt_check "and holds every acknowledged write (71)" [ "$(cp_count "$victim")" = 71 ]
for i in 2 3 4; do cp_stop "$i"; done

# 3. Three servers without the reserve; the leader's disk fills to the last byte. Its next
# write fails, it leaves, another server leads, and no acknowledged write is lost.
for i in 5 6 7; do small_fs "$GT_TMP/s$i" 64 || exit 1; done
CP_FLAGS=(--min-free-space 0)
list="5=$(cp_raft 5),6=$(cp_raft 6),7=$(cp_raft 7)"
for i in 5 6 7; do cp_start "$i" --bootstrap "$list"; done
gt_check "three more servers elect a leader" gt_wait_for "a leader" 30 cp_has_leader 5 6 7
old=$(cp_leader 5 6 7)
ok=$(cp_bulk_apply "$old" 20 lead 4)
gt_check "20 applies succeed ($ok)" [ "$ok" -eq 20 ]
fill "$GT_TMP/s$old" 0
dd if=/dev/zero of="$GT_TMP/s$old/fill2" bs=4k status=none 2>/dev/null
others=()
for i in 5 6 7; do [ "$i" = "$old" ] || others+=("$i"); done
# The next writes reach the full disk (the log's segments are allocated ahead, the state
# database is not): the leader leaves and another takes over.
ok=$(cp_bulk_apply "${others[0]}" 10 fill 4)
gt_log "answers: $(sort "$GT_TMP/bulk-fill.codes" | uniq -c | tr '\n' ' ')"
gt_check "writes after the leader's disk filled succeed ($ok)" [ "$ok" -eq 10 ]
gt_check "the old leader left with a storage fault" gt_wait_for "storage failed" 30 failed "$old"
fill "$GT_TMP/s$old" 0 refill
gt_check "it is out (gantry_storage_failed)" down_is "$old" 1
new_leader() { local l; l=$(cp_leader "${others[@]}") && [ "$l" != "$old" ]; }
gt_check "another server leads" gt_wait_for "a new leader" 30 new_leader
ok=$(cp_bulk_apply "${others[1]}" 30 after 4)
gt_check "and takes 30 writes ($ok)" [ "$ok" -eq 30 ]
gt_check "the old leader stays up" alive "$old"
rm -f "$GT_TMP/s$old/fill" "$GT_TMP/s$old/fill2" "$GT_TMP/s$old/refill"
gt_check "with space again, it starts afresh" gt_wait_for "storage back" 30 down_is "$old" 0
gt_check "and catches up" gt_wait_for "same state" 60 cp_same_state 5 6 7
gt_check "every acknowledged write is there (60)" [ "$(cp_count "$old")" = 60 ]
for i in 5 6 7; do cp_stop "$i"; done

# 4. The Raft log on a file system of its own that fills: the append that finds no room
# takes the server out (here a lone server: nobody to relay to, writes answer 503 with
# the reason); it keeps serving ?stale reads and starts afresh once there is room.
mkdir -p "$GT_TMP/s8"
small_fs "$GT_TMP/s8/raft" 24 || exit 1
CP_FLAGS=(--min-free-space 0)
cp_start 8 --bootstrap "8=$(cp_raft 8)"
gt_check "a lone server elects itself" gt_wait_for "a leader" 30 cp_has_leader 8
fill "$GT_TMP/s8/raft" 0
body="$GT_TMP/big.json"
acked=0 code=200
for ((i = 0; i < 200 && code == 200; i++)); do
    python3 -c "import json,sys; print(json.dumps({'name': 'big-%s' % sys.argv[1], 'image': 'busybox', 'env': {'A': 'a' * 300000}}))" "$i" >"$body"
    code=$(curl -s --max-time 20 -o "$GT_TMP/big.out" -w '%{http_code}' -X POST \
        -H 'Content-Type: application/json' --data-binary "@$body" "http://$(cp_api 8)/v1/apply")
    [ "$code" = 200 ] && acked=$((acked + 1))
done
gt_log "after $acked acknowledged writes: $code $(cat "$GT_TMP/big.out")"
gt_check "the log's file system fills after some writes ($acked)" [ "$acked" -gt 0 ] && [ "$code" != 200 ]
gt_check "the failed append takes the server out" gt_wait_for "storage failed" 30 failed 8
fill "$GT_TMP/s8/raft" 0 refill
gt_check "it is out (gantry_storage_failed)" down_is 8 1
gt_check "the log names the Raft log and the device" grep -q 'storage failed.*Raft log.*no space left' "$GT_TMP/s8.log"
status=$(curl -s --max-time 10 -o "$GT_TMP/w.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"name":"refused","image":"busybox"}' "http://$(cp_api 8)/v1/apply")
gt_check "a write is answered 503 storage_failed ($status)" [ "$status" = 503 ] && grep -q storage_failed "$GT_TMP/w.out"
gt_check "?stale reads are served, the last acknowledged write too" \
    [ "$(cp_client_status 8 "/v1/workloads/big-$((acked - 1))?stale=1")" = 200 ]
rm -f "$GT_TMP/s8/raft/fill" "$GT_TMP/s8/raft/refill"
gt_check "with room again, it starts afresh" gt_wait_for "storage back" 30 down_is 8 0
gt_check "and leads again" gt_wait_for "a leader" 30 cp_has_leader 8
have() { [ "$(cp_client_status 8 "/v1/workloads/big-$1")" = 200 ]; }
lost=0
for ((i = 0; i < acked; i++)); do have "$i" || lost=$((lost + 1)); done
gt_check "no acknowledged write is lost ($acked acknowledged, $lost missing)" [ "$lost" = 0 ]
gt_check "the refused write changed nothing" [ "$(cp_client_status 8 /v1/workloads/refused)" = 404 ]
gt_check "and writes go on" [ "$(cp_apply 8 after-room)" = 200 ]
gt_finish
