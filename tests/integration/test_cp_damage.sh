# Damaged files at a server's start, on a 3-server control plane on loopback: a follower
# whose state database was damaged while it was stopped moves it aside, fetches the leader's
# image and converges without losing an entry; a follower with a damaged Raft segment (a
# closed one, or an open one with batches after the damage), or with a segment gone,
# refuses to start with a message that says what to do, and runs again
# once the file is back; a lone server with a damaged database refuses rather than start
# empty.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require
command -v sqlite3 >/dev/null || gt_skip "sqlite3 is missing"

# Snapshots every few entries, so that a restarted server's snapshot is a marker that needs
# its own database file (with no snapshot it replays the whole log instead).
CP_FLAGS+=(--snapshot-threshold 16 --snapshot-trailing 8)
for i in 1 2 3; do cp_start "$i" --bootstrap "$(cp_bootstrap_list 3)"; done
gt_check "a leader is elected" gt_wait_for "a leader" 30 cp_has_leader 1 2 3
ok=$(cp_bulk_apply 1 60 pre 4)
gt_check "60 applies succeed ($ok)" [ "$ok" -eq 60 ]
gt_wait_for "same state" 30 cp_same_state 1 2 3

leader=$(cp_leader 1 2 3)
victim=1
[ "$leader" = 1 ] && victim=2
snapshots_of() { curl -s "http://$(cp_api "$1")/metrics" | awk '$1 == "gantry_fsm_snapshots_total" { print $2 }'; }
gt_wait_for "a snapshot on server $victim" 30 bash -c "[ \"\$(curl -s http://$(cp_api "$victim")/metrics | awk '\$1 == \"gantry_fsm_snapshots_total\" { print \$2 }')\" -ge 1 ]"

# damage_pages FILE: the database's pages after the first overwritten with other bytes
# (its write-ahead log copied in first, so that the file alone holds the state).
damage_pages() {
    sqlite3 "$1" "PRAGMA wal_checkpoint(TRUNCATE)" >/dev/null
    local size
    size=$(stat -c %s "$1")
    gt_log "damaging $1 ($size bytes) from byte 4096"
    python3 -c '
import sys
path, size = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(4096)
    f.write(bytes((i * 7 + 13) & 0xff for i in range(size - 4096)))' "$1" "$size"
}

# 1. A follower's state database damaged while it is stopped.
cp_stop "$victim"
damage_pages "$GT_TMP/s$victim/state.db"
cp_start "$victim"
gt_check "the damaged database is found at the start and moved aside" \
    gt_wait_for "moved aside" 30 grep -c 'msg="state database damaged".*moved_to=' "$GT_TMP/s$victim.log"
gt_check "the damaged file is kept for inspection" bash -c "ls $GT_TMP/s$victim/state.db.damaged-* >/dev/null"
gt_check "the server fetches the leader's image" \
    gt_wait_for "rebuilt" 60 grep -c 'msg="state rebuilt from the leader' "$GT_TMP/s$victim.log"
gt_check "and then holds the same state as the others" gt_wait_for "same state" 60 cp_same_state 1 2 3
replicas_of() { curl -s "http://$(cp_api "$1")/v1/workloads/$2?stale=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["replicas"])' 2>/dev/null; }
gt_check "the first and the last workload written before are there" [ "$(replicas_of "$victim" pre-0)/$(replicas_of "$victim" pre-59)" = 1/1 ]
gt_check "all 60 of them" [ "$(cp_count "$victim")" = 60 ]
gt_check "writes go on" [ "$(cp_apply "$leader" after-damage)" = 200 ]
gt_wait_for "same state" 30 cp_same_state 1 2 3
# Its own snapshot markers name the rebuilt file: it restarts on it.
cp_stop "$victim"
cp_start "$victim"
gt_check "restarted, it keeps the rebuilt file" \
    gt_wait_for "database kept" 30 bash -c "[ \$(grep -c 'msg=\"snapshot restored\".*database=kept' '$GT_TMP/s$victim.log') -ge 1 ]"
gt_check "and agrees with the others" gt_wait_for "same state" 60 cp_same_state 1 2 3

# 2. A byte of a follower's newest closed Raft segment changed while it is stopped.
cp_stop "$victim"
seg=$(cd "$GT_TMP/s$victim/raft" && ls | grep -E '^[0-9]{16}-[0-9]{16}$' | sort | tail -1)
gt_check "server $victim has a closed segment ($seg)" [ -n "$seg" ]
path=$GT_TMP/s$victim/raft/$seg
cp "$path" "$GT_TMP/segment.orig"
size=$(stat -c %s "$path")
python3 -c '
import sys
path, at = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(at); b = f.read(1); f.seek(at); f.write(bytes([b[0] ^ 0xff]))' "$path" $((size - 9))
cp_start "$victim"
exited() { ! kill -0 "$1" 2>/dev/null; }
gt_check "the server refuses the damaged log" gt_wait_for "server $victim exits" 30 exited "${CP_PID[$victim]}"
gt_check "its message names the segment and where to read what to do" \
    grep -q "persisted data is corrupted.*segment $seg.*checksum.*A damaged server" "$GT_TMP/s$victim.log"
gt_check "the segment keeps its name, for the next start to find" [ -f "$path" ]
cp_stop "$victim"
cp "$GT_TMP/segment.orig" "$path"
cp_start "$victim"
gt_check "with the segment restored it runs and agrees" gt_wait_for "same state" 60 cp_same_state 1 2 3

# 3. Segments removed: the log ends before what the database applied. Entries are written
# until the follower's database holds some past its newest snapshot; then every segment
# with entries past that snapshot is taken away.
snap_index() {
    ls "$GT_TMP/s$victim/raft" | sed -n 's/^snapshot-[0-9]*-\([0-9]*\)-[0-9]*\.meta$/\1/p' | sort -n | tail -1
}
# A snapshot taken once the follower has applied its last entry leaves no gap; the tries
# end at different distances from the snapshot points (threshold 16) until one does.
gap=0 snap="" applied=""
for try in 1 2 3 4 5 6 7 8 9 10; do
    cp_bulk_apply "$victim" $((2 + try % 4)) "gap$try" 1 >/dev/null
    gt_wait_for "same state" 30 cp_same_state 1 2 3
    applied=$(cp_cluster_field "$victim" applied_index)
    cp_stop "$victim"
    snap=$(snap_index)
    if [ -n "$snap" ] && [ -n "$applied" ] && [ "$applied" -gt "$snap" ]; then
        gap=1
        break
    fi
    cp_start "$victim"
done
gt_check "server $victim applied entries past its newest snapshot (${snap:-none} < ${applied:-?})" [ "$gap" = 1 ]
mkdir -p "$GT_TMP/moved"
for f in $(ls "$GT_TMP/s$victim/raft" | grep -E '^([0-9]+-[0-9]+|open-[0-9]+)$'); do
    case $f in
    open-*) mv "$GT_TMP/s$victim/raft/$f" "$GT_TMP/moved/" ;;
    *) [ $((10#${f#*-})) -gt "${snap:-0}" ] && mv "$GT_TMP/s$victim/raft/$f" "$GT_TMP/moved/" ;;
    esac
done
gt_log "segments taken away: $(ls "$GT_TMP/moved" | xargs)"
cp_start "$victim"
gt_check "a log with entries missing is refused" gt_wait_for "server $victim exits" 30 exited "${CP_PID[$victim]}"
gt_check "saying entries are missing" grep -q "entries are missing from the log (see docs/operations.md" "$GT_TMP/s$victim.log"
cp_stop "$victim"
mv "$GT_TMP/moved/"* "$GT_TMP/s$victim/raft/"
cp_start "$victim"
gt_check "with the segments back it runs and agrees" gt_wait_for "same state" 60 cp_same_state 1 2 3

# 4. A lone server has no peer to fetch the state from.
for i in 1 2 3; do cp_stop "$i"; done
cp_start 4 --bootstrap "4=$(cp_raft 4)"
gt_check "a one-server cluster elects itself" gt_wait_for "a leader" 30 cp_has_leader 4
ok=$(cp_bulk_apply 4 40 solo 2)
gt_check "40 applies succeed ($ok)" [ "$ok" -eq 40 ]
gt_wait_for "a snapshot on server 4" 30 bash -c "[ \"\$(curl -s http://$(cp_api 4)/metrics | awk '\$1 == \"gantry_fsm_snapshots_total\" { print \$2 }')\" -ge 1 ]"
cp_stop 4
damage_pages "$GT_TMP/s4/state.db"
cp_start 4
gt_check "the lone server refuses to start empty" gt_wait_for "server 4 exits" 30 exited "${CP_PID[4]}"
gt_check "and says to restore a snapshot" grep -q "no other server holds the state: restore a snapshot" "$GT_TMP/s4.log"
cp_stop 4

# 5. A byte of the first batch of an open segment (the one being written) with batches
# after it: not a torn write, so refused too; libraft alone would cut the log there. A lone
# server with libraft's default snapshots, killed as a crash would (a planned stop closes
# the open segment), keeps its entries in open-1.
CP_FLAGS=()
cp_start 5 --bootstrap "5=$(cp_raft 5)"
gt_check "another lone server elects itself" gt_wait_for "a leader" 30 cp_has_leader 5
ok=$(cp_bulk_apply 5 3 open 1)
gt_check "3 applies succeed, one at a time ($ok)" [ "$ok" -eq 3 ]
kill -KILL "${CP_PID[5]}"
gt_wait_for "server 5 gone" 10 exited "${CP_PID[5]}"
path=$GT_TMP/s5/raft/open-1
gt_check "its entries are in the open segment" [ -f "$path" ]
cp "$path" "$GT_TMP/open.orig"
# Byte 12: the first batch's data checksum (a batch: two checksums, an entry count, entry
# headers, data).
python3 -c '
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(12); b = f.read(1); f.seek(12); f.write(bytes([b[0] ^ 0xff]))' "$path"
cp_start 5
gt_check "the server refuses the damaged open segment" gt_wait_for "server 5 exits" 30 exited "${CP_PID[5]}"
gt_check "its message names the segment, the byte and the batches after it" \
    grep -q "damaged Raft segment open-1: data checksum mismatch in the batch at byte 8, followed by [0-9]* valid batch.*A damaged server" "$GT_TMP/s5.log"
cp_stop 5
cp "$GT_TMP/open.orig" "$path"
cp_start 5
gt_check "with the byte restored it runs" gt_wait_for "a leader" 30 cp_has_leader 5
gt_check "with its 3 writes" [ "$(cp_count 5)" = 3 ]
cp_stop 5
gt_finish
