# Membership: a 4th server joins (caught up, then promoted to voter) and is removed; a
# planned stop of the leader (SIGTERM) hands leadership over without an election; a server
# whose data directory belongs to another cluster is refused.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require

voters() {
    cp_get "$1" /v1/cluster |
        python3 -c "import json,sys; print(sum(1 for s in json.load(sys.stdin)['servers'] if s['role'] == 'voter'))"
}
servers_in_config() {
    cp_get "$1" /v1/cluster | python3 -c "import json,sys; print(len(json.load(sys.stdin)['servers']))"
}
voters_are() { [ "$(voters "$1")" = "$2" ]; }
servers_are() { [ "$(servers_in_config "$1")" = "$2" ]; }
audit_mentions() { cp_get "$1" '/v1/events?since=0' | grep -q "$2"; }

for i in 1 2 3; do cp_start "$i" --bootstrap "$(cp_bootstrap_list 3)"; done
gt_check "a leader is elected" gt_wait_for "a leader" 30 cp_has_leader 1 2 3
ok=$(cp_bulk_apply 1 200 pre 4)
gt_check "200 applies before the join succeed ($ok)" [ "$ok" -eq 200 ]

# Server 4 joins through a follower's API, which forwards to the leader.
cp_start 4 --join "http://$(cp_api 2)"
gt_check "server 4 becomes a voter" gt_wait_for "4 voters" 30 voters_are 1 4
gt_check "server 4 caught up with the same state" gt_wait_for "same state" 30 cp_same_state 1 2 3 4
gt_check "server 4 holds the workloads" [ "$(cp_count 4)" -eq 200 ]
gt_check "server 4 recorded the cluster id" \
    [ "$(cat "$GT_TMP/s4/cluster-id")" = "$(cp_cluster_field 1 cluster_id)" ]
gt_check "writes through server 4 succeed" [ "$(cp_apply 4 via-four)" = 200 ]
gt_check "the join is in the audit trail" audit_mentions 1 server/4

leader=$(cp_leader 1 2 3 4)
gt_check "removing server 4 answers 200" [ "$(cp_client_status "$leader" /v1/cluster/members/4 -X DELETE)" = 200 ]
gt_check "the configuration has three servers again" gt_wait_for "3 servers" 20 servers_are 1 3
cp_stop 4
gt_check "removing an unknown server answers 404" \
    [ "$(cp_client_status "$(cp_leader 1 2 3)" /v1/cluster/members/9 -X DELETE)" = 404 ]
gt_check "writes go on with three servers" [ "$(cp_apply 1 after-remove)" = 200 ]

# A planned stop of the leader transfers leadership: the term moves by exactly one (no
# election rounds) and the old leader reports the hand-over.
gt_wait_for "a leader" 30 cp_has_leader 1 2 3
leader=$(cp_leader 1 2 3)
[ -n "$leader" ] || exit 1
term=$(cp_cluster_field "$leader" term)
cp_stop "$leader"
rest=()
for i in 1 2 3; do [ "$i" != "$leader" ] && rest+=("$i"); done
gt_check "a new leader is known" gt_wait_for "new leader" 20 cp_has_leader "${rest[@]}"
new_leader=$(cp_leader "${rest[@]}")
gt_check "the old leader handed over to $new_leader" \
    grep -q "leadership transfer finished\" leader=$new_leader" "$GT_TMP/s$leader.log"
gt_check "the term moved by exactly one" [ "$(cp_cluster_field "$new_leader" term)" -eq $((term + 1)) ]
gt_check "the new leader takes writes" [ "$(cp_apply "$new_leader" after-transfer)" = 200 ]
cp_start "$leader"
gt_check "the stopped server rejoins" gt_wait_for "rejoin" 30 cp_same_state 1 2 3

# A server with another cluster's data directory: a one-server cluster 9 makes one, then
# that server tries to join this cluster.
cp_start 9 --bootstrap "9=$(cp_raft 9)"
gt_check "a separate one-server cluster starts" gt_wait_for "other cluster" 20 cp_has_leader 9
gt_check "it takes writes on its own" [ "$(cp_apply 9 other)" = 200 ]
gt_wait_for "cluster id file" 10 test -s "$GT_TMP/s9/cluster-id"
cp_stop 9
cp_start 9 --join "http://$(cp_api 1)"
pid=${CP_PID[9]}
gt_check "the stray server exits" gt_wait_for "stray exits" 20 bash -c "! kill -0 $pid"
wait "$pid"
gt_check "with a non-zero status" [ $? -ne 0 ]
gt_check "saying its data belongs to another cluster" grep -q "belongs to cluster" "$GT_TMP/s9.log"
gt_check "the cluster still has three voters" [ "$(voters 1)" = 3 ]
gt_finish
