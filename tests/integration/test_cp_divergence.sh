# Divergence checks on a 3-server control plane on loopback: servers that applied the same
# log agree at every check; a follower whose state database was changed behind its back
# (its file edited while it was stopped) is found at the next check, on demand or on
# schedule, reported in the audit trail and /v1/cluster, rebuilds its state from the
# leader's image without losing an entry, and is reported again once it matches.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require
command -v sqlite3 >/dev/null || gt_skip "sqlite3 is missing"

# Checks only when asked at first (a scheduled one could find the edit below before the
# check the test makes); the second case restarts the servers with checks every 3 s.
# Snapshots every few entries, so that a restarted server keeps its database file (with
# no snapshot it rebuilds the file by replaying the whole log, which would undo the edit).
CP_FLAGS+=(--verify-interval 0 --snapshot-threshold 16 --snapshot-trailing 8)
for i in 1 2 3; do cp_start "$i" --bootstrap "$(cp_bootstrap_list 3)"; done
gt_check "a leader is elected" gt_wait_for "a leader" 30 cp_has_leader 1 2 3
ok=$(cp_bulk_apply 1 50 pre 4)
gt_check "50 applies succeed ($ok)" [ "$ok" -eq 50 ]
gt_wait_for "same state" 30 cp_same_state 1 2 3

# verify ID: POST /v1/cluster/verify through server ID; prints the answer.
verify() { gt_curl -s --max-time 30 -X POST "http://$(cp_api "$1")/v1/cluster/verify"; }
# events_of ID KIND OBJECT: the audit events of that kind about that object.
events_of() {
    cp_get "$1" '/v1/events?since=0&stale=1' | python3 -c '
import json, sys
for e in json.load(sys.stdin)["items"]:
    if e["kind"] == sys.argv[1] and e["object"] == sys.argv[2]:
        print(e["message"])' "$2" "$3"
}
has_event() { [ -n "$(events_of "$1" "$2" "$3")" ]; }
diverged_list() {
    cp_get "$1" /v1/cluster | python3 -c 'import json,sys; print(",".join(str(s) for s in json.load(sys.stdin).get("diverged", [])))'
}

answer=$(verify 1)
gt_log "check on agreeing servers: $answer"
agree() { python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["index"] > 0 and all(s["state"] == "same" for s in d["servers"]) and len(d["servers"]) == 3 else 1)' <<<"$answer"; }
gt_check "servers that applied the same log agree" agree
gt_check "and nothing is reported diverged" [ -z "$(diverged_list 1)" ]

# A follower's database edited while it is stopped: its file is sound, its state is not.
leader=$(cp_leader 1 2 3)
victim=1
[ "$leader" = 1 ] && victim=2
gt_wait_for "a snapshot on server $victim" 30 bash -c "[ \"\$(curl -s http://$(cp_api "$victim")/metrics | awk '\$1 == \"gantry_fsm_snapshots_total\" { print \$2 }')\" -ge 1 ]"
cp_stop "$victim"
sqlite3 "$GT_TMP/s$victim/state.db" "UPDATE workloads SET replicas = replicas + 7 WHERE name = 'pre-3'"
cp_start "$victim"
gt_check "the edited file is kept at the restart" \
    gt_wait_for "database kept" 30 grep -c 'msg="snapshot restored".*database=kept' "$GT_TMP/s$victim.log"
gt_wait_for "a leader" 30 cp_has_leader 1 2 3
leader=$(cp_leader 1 2 3)
same_index() {
    local a b
    a=$(cp_state "$leader" | cut -d' ' -f1)
    b=$(cp_state "$victim" | cut -d' ' -f1)
    [ -n "$a" ] && [ "$a" = "$b" ]
}
gt_wait_for "the restarted follower caught up" 30 same_index
gt_check "its digest differs from the leader's" [ "$(cp_state "$leader")" != "$(cp_state "$victim")" ]
t0=$(date +%s%N)
answer=$(verify "$leader")
found_ms=$((($(date +%s%N) - t0) / 1000000))
gt_log "check with a diverged follower (answered in ${found_ms} ms): $answer"
flagged() { python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if [s["id"] for s in d["servers"] if s["state"] == "diverged"] == [int(sys.argv[1])] else 1)' "$victim" <<<"$answer"; }
gt_check "the check names the diverged follower, and only it" flagged
gt_check "the audit trail records it" gt_wait_for "diverged event" 20 has_event "$leader" diverged "server/$victim"
gt_check "it rebuilds its state from the leader's image" \
    gt_wait_for "rebuilt" 60 grep -c 'msg="state rebuilt from the leader' "$GT_TMP/s$victim.log"
gt_check "and then holds the same state as the others" gt_wait_for "same state" 60 cp_same_state 1 2 3
gt_check "every workload is there, unedited" \
    bash -c "[ \"\$(curl -s 'http://$(cp_api "$victim")/v1/workloads/pre-3?stale=1' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"spec\"][\"replicas\"])')\" = 1 ]"
answer=$(verify "$leader")
gt_log "check after the rebuild: $answer"
gt_check "the next check reports it converged" gt_wait_for "converged event" 40 has_event "$leader" converged "server/$victim"
gt_check "and /v1/cluster lists no diverged server" gt_wait_for "none diverged" 20 bash -c "[ -z \"\$(curl -s http://$(cp_api "$leader")/v1/cluster | python3 -c 'import json,sys; print(json.load(sys.stdin).get(\"diverged\", []) or \"\")')\" ]"
gt_check "writes go on" [ "$(cp_apply "$leader" after-rebuild)" = 200 ]

# On schedule: the same edit, found by a check nobody asked for. Every server restarts with
# checks every 3 s, one at a time.
CP_FLAGS+=(--verify-interval 3s)
for i in 1 2 3; do
    cp_stop "$i"
    cp_start "$i"
    gt_wait_for "a leader" 30 cp_has_leader 1 2 3
    gt_wait_for "same state" 60 cp_same_state 1 2 3
done
leader=$(cp_leader 1 2 3)
victim=1
[ "$leader" = 1 ] && victim=2
kept_before=$(grep -c 'msg="snapshot restored".*database=kept' "$GT_TMP/s$victim.log")
rebuilt_before=$(grep -c 'msg="state rebuilt from the leader' "$GT_TMP/s$victim.log")
reports_before=$(events_of "$leader" diverged "server/$victim" | wc -l)
cp_stop "$victim"
sqlite3 "$GT_TMP/s$victim/state.db" "UPDATE workloads SET generation = generation + 5 WHERE name = 'pre-4'"
t0=$(date +%s)
cp_start "$victim"
gt_check "the file, edited again, is kept at the restart" \
    gt_wait_for "database kept" 30 bash -c "[ \$(grep -c 'msg=\"snapshot restored\".*database=kept' '$GT_TMP/s$victim.log') -gt $kept_before ]"
one_more_report() { [ "$(events_of "$leader" diverged "server/$victim" | wc -l)" -gt "$reports_before" ]; }
gt_check "a scheduled check finds it" gt_wait_for "another diverged event" 60 one_more_report
gt_log "found $(( $(date +%s) - t0 ))s after the restart (checks every 3 s)"
gt_check "and it is rebuilt again" gt_wait_for "rebuilt again" 60 bash -c "[ \$(grep -c 'msg=\"state rebuilt from the leader' '$GT_TMP/s$victim.log') -gt $rebuilt_before ]"
# With checks every 3 s the applied indexes move while they are read one after the other:
# a check of its own compares the servers at one entry.
all_same() {
    answer=$(verify "$leader")
    python3 -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d["servers"]) == 3 and all(s["state"] == "same" for s in d["servers"]) else 1)' <<<"$answer"
}
gt_check "and then a check finds every server the same" gt_wait_for "all the same" 60 all_same
gt_finish
