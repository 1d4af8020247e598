# Snapshots with a low threshold: a server stopped while thousands of entries are written
# catches up through a snapshot install, and a cluster restarted after them comes back
# with identical state on every server (snapshot restore plus log replay).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require
CP_FLAGS+=(--snapshot-threshold 200 --snapshot-trailing 100)

for i in 1 2 3; do cp_start "$i" --bootstrap "$(cp_bootstrap_list 3)"; done
gt_check "a leader is elected" gt_wait_for "a leader" 30 cp_has_leader 1 2 3
leader=$(cp_leader 1 2 3)
[ -n "$leader" ] || exit 1
follower=1
[ "$leader" = 1 ] && follower=2
cp_stop "$follower"
others=()
for i in 1 2 3; do [ "$i" != "$follower" ] && others+=("$i"); done

# Two clients at a time: thousands of Raft entries even with group commit.
ok=$(cp_bulk_apply "$leader" 3000 bulk 2)
gt_check "3000 applies with one server down succeed ($ok)" [ "$ok" -eq 3000 ]
# Summed over the running servers: an election under load may have moved the lead.
entries=0
snaps=0
for i in "${others[@]}"; do
    entries=$((entries + $(cp_metric "$i" gantry_raft_entries_total)))
    snaps=$((snaps + $(cp_metric "$i" gantry_fsm_snapshots_total)))
done
gt_log "the leaders wrote $entries entries"
gt_check "thousands of entries were written" [ "$entries" -ge 1000 ]
gt_check "the running servers took snapshots" [ "$snaps" -ge 1 ]

cp_start "$follower"
gt_check "the stopped server catches up" gt_wait_for "catch up" 60 cp_same_state 1 2 3
gt_check "it caught up through a snapshot install" \
    [ "$(cp_metric "$follower" gantry_fsm_restores_total)" -ge 1 ]
# The leader's own snapshots are markers of its database file: the follower got a full
# image of that file instead, and replaced its database with it.
image_sent() {
    local i
    for i in "${others[@]}"; do
        grep -c 'msg="snapshot image made for a follower"' "$GT_TMP/s$i.log" >/dev/null && return 0
    done
    return 1
}
gt_check "the leader sent an image of its database" image_sent
gt_check "the follower replaced its database with it" \
    grep -q 'msg="snapshot restored".*database=replaced' "$GT_TMP/s$follower.log"
gt_check "it holds every workload" [ "$(cp_count "$follower")" -eq 3000 ]

before=$(cp_workloads_sum "$leader")
for i in 1 2 3; do cp_stop "$i"; done
for i in 1 2 3; do cp_start "$i"; done
gt_check "a leader is elected after the restart" gt_wait_for "leader after restart" 30 cp_has_leader 1 2 3
gt_check "every server comes back with the same state" gt_wait_for "same state" 60 cp_same_state 1 2 3
gt_check "the workloads equal those before the restart" [ "$(cp_workloads_sum 1)" = "$before" ]
for i in 1 2 3; do
    gt_check "server $i restored a snapshot at start" [ "$(cp_metric "$i" gantry_fsm_restores_total)" -ge 1 ]
    gt_check "server $i holds 3000 workloads" [ "$(cp_count "$i")" -eq 3000 ]
    gt_check "server $i kept its database file" \
        grep -q 'msg="snapshot restored".*database=kept' "$GT_TMP/s$i.log"
done
gt_check "the restarted cluster takes writes" gt_wait_for "write after restart" 20 \
    bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{\"name\":\"after-restart\",\"image\":\"busybox\"}' http://$(cp_api 1)/v1/apply)\" = 200 ]"

# Every server killed at once while writes arrive and snapshots are taken: each comes back
# from its own database file and log, with every acknowledged write.
# The crash comes once 10 writes were acknowledged and a snapshot was taken since the
# restart, however long that takes on this machine.
acked=$GT_TMP/acked
acked_count() { [ -f "$acked" ] && wc -l <"$acked" || echo 0; }
snaps_since_restart() {
    local i n=0
    for i in 1 2 3; do n=$((n + $(cp_metric "$i" gantry_fsm_snapshots_total))); done
    echo "$n"
}
crash_ready() { [ "$(acked_count)" -ge 10 ] && [ "$(snaps_since_restart)" -ge 1 ]; }
gt_spawn writer "$GT_SRC/tests/integration/cp/writer.sh" "$CP_BASE" "1 2 3" crash "$acked" 120
writer=$GT_LAST_PID
gt_check "writes are acknowledged and a snapshot taken before the crash" \
    gt_wait_for "10 writes and a snapshot" 60 crash_ready
snaps=$(snaps_since_restart)
for i in 1 2 3; do cp_stop "$i" KILL; done
gt_stop "$writer"
gt_log "$(acked_count) writes acknowledged before the crash, $snaps snapshots since the restart"
for i in 1 2 3; do cp_start "$i"; done
gt_check "a leader is elected after the crash" gt_wait_for "leader after crash" 30 cp_has_leader 1 2 3
gt_check "every server comes back with the same state" gt_wait_for "same state" 60 cp_same_state 1 2 3
skipped=0
for i in 1 2 3; do skipped=$((skipped + $(cp_metric "$i" gantry_fsm_skipped_total))); done
gt_log "$skipped replayed entries were in the database files already"
gt_check "replayed entries the database files held were skipped" [ "$skipped" -ge 1 ]
for i in 1 2 3; do
    cp_names "$i" >"$GT_TMP/names-$i"
    missing=$(sort "$acked" | comm -23 - <(sort "$GT_TMP/names-$i") | wc -l)
    gt_check "every acknowledged write is on server $i (missing $missing)" [ "$missing" -eq 0 ]
done
gt_finish
