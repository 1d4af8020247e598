# A 3-server control plane on loopback: a leader is elected; 500 applies sent round-robin
# to all servers succeed; SIGKILL of the leader under write load loses no acknowledged
# write and a new leader takes writes; the killed server comes back and catches up; a full
# restart brings back identical state on every server.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require

for i in 1 2 3; do cp_start "$i" --bootstrap "$(cp_bootstrap_list 3)"; done
gt_check "a leader is elected" gt_wait_for "a leader" 30 cp_has_leader 1 2 3

ok=0
for ((i = 0; i < 500; i++)); do
    [ "$(cp_apply $((i % 3 + 1)) "rr-$i")" = 200 ] && ok=$((ok + 1))
done
gt_check "500 applies sent round-robin to all servers succeed ($ok)" [ "$ok" -eq 500 ]
gt_check "every server applied the same state" gt_wait_for "same state" 30 cp_same_state 1 2 3
gt_check "every server holds the 500 workloads" [ "$(cp_count 1)$(cp_count 2)$(cp_count 3)" = 500500500 ]
gt_check "a follower's write was forwarded" \
    bash -c "curl -s http://$(cp_api 1)/metrics http://$(cp_api 2)/metrics http://$(cp_api 3)/metrics | grep -q 'gantry_http_forwarded_total{route=\"apply\"}'"

gt_wait_for "a stable leader" 30 cp_has_leader 1 2 3
leader=$(cp_leader 1 2 3)
[ -n "$leader" ] || exit 1
survivors=()
for i in 1 2 3; do [ "$i" != "$leader" ] && survivors+=("$i"); done
gt_log "leader is $leader, survivors ${survivors[*]}"

# Writes keep arriving at every server while the leader is killed: the kill comes once 10
# were acknowledged, and the writer stops once 10 more were acknowledged after it.
acked=$GT_TMP/acked
acked_count() { [ -f "$acked" ] && wc -l <"$acked" || echo 0; }
acked_reach() { [ "$(acked_count)" -ge "$1" ]; }
gt_spawn writer "$GT_SRC/tests/integration/cp/writer.sh" "$CP_BASE" "1 2 3" fo "$acked" 120
writer=$GT_LAST_PID
gt_check "writes are acknowledged before the kill" gt_wait_for "10 writes" 30 acked_reach 10
at_kill=$(acked_count)
cp_stop "$leader" KILL
gt_check "the survivors elect a new leader" gt_wait_for "new leader" 30 cp_has_leader "${survivors[@]}"
new_leader=$(cp_leader "${survivors[@]}")
gt_check "the new leader is a survivor ($new_leader)" [ "$new_leader" != "$leader" ]
gt_check "the new leader takes writes" gt_wait_for "write after failover" 20 \
    bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' -X POST -d '{\"name\":\"after-failover\",\"image\":\"busybox\"}' http://$(cp_api "$new_leader")/v1/apply)\" = 200 ]"
gt_check "writes are acknowledged after the kill" gt_wait_for "10 more writes" 30 acked_reach $((at_kill + 10))
gt_stop "$writer"
gt_log "$(acked_count) writes acknowledged, $at_kill of them before the kill"
gt_check "the survivors converge" gt_wait_for "survivors same state" 30 cp_same_state "${survivors[@]}"
for s in "${survivors[@]}"; do
    cp_names "$s" >"$GT_TMP/names-$s"
    missing=$(sort "$acked" | comm -23 - <(sort "$GT_TMP/names-$s") | wc -l)
    gt_check "every acknowledged write is on server $s (missing $missing)" [ "$missing" -eq 0 ]
done

cp_start "$leader"
gt_check "the killed server catches up" gt_wait_for "catch up" 30 cp_same_state 1 2 3
gt_check "it holds the write taken after the failover" \
    bash -c "curl -s 'http://$(cp_api "$leader")/v1/workloads/after-failover?stale=1' | grep -q '\"generation\":1'"

# A long-poll through a follower is relayed to the leader and woken by a new event. Other
# events (the reconciler's) may come first, so the client polls on from each answer's last.
# Each poll asks to wait 60 s and the check allows 40: a relay that answered only at the
# end of the wait would fail it.
gt_wait_for "a leader" 30 cp_has_leader 1 2 3
leader=$(cp_leader 1 2 3)
follower=1
[ "$leader" = 1 ] && follower=2
poll_for() {
    local id=$1 want=$2 since body i
    since=$(cp_get "$id" '/v1/events?since=0&stale=1' |
        python3 -c "import json,sys; print(json.load(sys.stdin)['last'])")
    for ((i = 0; i < 20; i++)); do
        body=$(gt_curl -s --max-time 70 "http://$(cp_api "$id")/v1/events?since=$since&wait=60" 2>/dev/null)
        grep -q "$want" <<<"$body" && return 0
        since=$(python3 -c "import json,sys; print(json.load(sys.stdin)['last'])" <<<"$body") || return 1
    done
    return 1
}
(poll_for "$follower" workload/polled && touch "$GT_TMP/polled") &
poller=$!
GT_PIDS+=("$poller")
sleep 1
cp_apply "$leader" polled >/dev/null
gt_check "a relayed long-poll answers with the new event" \
    gt_wait_for "poll answer" 40 test -e "$GT_TMP/polled"
wait "$poller" 2>/dev/null
# With nothing to wait for, the relayed answer comes only after the wait asked for (a lower
# bound: the clock starts before the request is sent).
t0=$(date +%s%N)
body=$(gt_curl -s --max-time 30 "http://$(cp_api "$follower")/v1/events?since=999999&wait=2")
waited_ms=$((($(date +%s%N) - t0) / 1000000))
gt_log "a relayed long-poll with nothing new answered after ${waited_ms} ms: $body"
gt_check "a relayed long-poll with nothing new answers empty" grep -q '"items":\[\]' <<<"$body"
gt_check "only after its wait of 2 s (${waited_ms} ms)" [ "$waited_ms" -ge 2000 ]

# A long-poll parked on a server that stops is answered, not dropped.
curl -s --max-time 40 "http://$(cp_api "$leader")/v1/events?since=999999&wait=30" >"$GT_TMP/poll2" &
poller=$!
sleep 1

# A full restart replays the log on every server: the state comes back identical.
before=$(cp_workloads_sum 1)
for i in 1 2 3; do cp_stop "$i"; done
gt_check "the parked long-poll was answered at shutdown" bash -c "! kill -0 $poller"
wait "$poller"
gt_check "with an empty list" grep -q '"items":\[\]' "$GT_TMP/poll2"
for i in 1 2 3; do cp_start "$i"; done
gt_check "a leader is elected after a full restart" gt_wait_for "leader after restart" 30 cp_has_leader 1 2 3
gt_check "every server comes back with the same state" gt_wait_for "same state after restart" 30 cp_same_state 1 2 3
gt_check "the workloads equal those before the restart" [ "$(cp_workloads_sum 1)" = "$before" ]
gt_finish
