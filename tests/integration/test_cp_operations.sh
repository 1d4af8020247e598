# Operations after faults, through the gantry CLI and gantry-scheduler's flags
# (docs/operations.md "Membership", "Backup", "Disaster recovery"): cluster members lists
# the voters and the leader; transfer-leader moves leadership to a named voter and to any
# other; snapshot save writes a file that --restore seeds a new cluster of three from, with
# every workload and a new cluster id (or the old one with --keep-cluster-id); a damaged or
# foreign file is refused and changes nothing; and after two of three servers are
# SIGKILLed, --force-new-cluster on the survivor gives a writable one-server cluster with
# every acknowledged write, which two wiped servers join back to three voters; cluster
# verify finds the three in agreement, cluster status shows none diverged, and the command
# line cluster join-token prints adds a fourth server.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require
GANTRY=$GT_BUILD/ctl/gantry
[ -x "$GANTRY" ] || gt_skip "gantry is not built"

# g ID ARGS...: the CLI against server ID.
g() {
    local id=$1; shift
    "$GANTRY" --server "http://$(cp_api "$id")" "$@"
}
# run NAME ID ARGS...: the CLI against server ID, output in $GT_TMP/NAME.out and .err, exit
# status in RC.
RC=0
run() {
    local name=$1; shift
    g "$@" >"$GT_TMP/$name.out" 2>"$GT_TMP/$name.err"
    RC=$?
    gt_log "gantry ${*:2} -> $RC"
}
members_json() { g "$1" cluster members -o json; }
# voters_are ID N: server ID's leader view has N voters.
voters_are() {
    [ "$(members_json "$1" | python3 -c "import json,sys; print(sum(s['role'] == 'voter' for s in json.load(sys.stdin)['servers']))")" = "$2" ]
}
# members_applied_known ID: every member reported its applied index (its API address is in
# the state and it answers).
members_applied_known() {
    members_json "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); sys.exit(0 if len(d['servers']) == 3 and all(s['applied_index'] is not None for s in d['servers']) else 1)"
}
leader_is() { [ "$(cp_leader "${@:2}")" = "$1" ]; }
leader_is_not() { local l; l=$(cp_leader "${@:2}") && [ "$l" != "$1" ]; }
names_file() { cp_names "$1" | sort >"$2"; }
cluster_id() { cp_cluster_field "$1" cluster_id; }

for i in 1 2 3; do cp_start "$i" --bootstrap "$(cp_bootstrap_list 3)"; done
gt_check "a leader is elected" gt_wait_for "a leader" 30 cp_has_leader 1 2 3
ok=$(cp_bulk_apply 1 60 old 4)
gt_check "60 applies succeed ($ok)" [ "$ok" -eq 60 ]

# ---- cluster members
gt_check "every member's addresses are recorded and it reports its applied index" \
    gt_wait_for "members report" 30 members_applied_known 1
leader=$(cp_leader 1 2 3)
follower=1
[ "$leader" = 1 ] && follower=2
run members "$follower" cluster members
gt_check "members through a follower: exit 0" [ "$RC" = 0 ]
gt_check "members lists three voters" [ "$(grep -cE '^[123] +voter +(leader|follower) ' "$GT_TMP/members.out")" = 3 ]
gt_check "members marks the leader" grep -qE "^$leader +voter +leader +\* " "$GT_TMP/members.out"
gt_check "members names the leader in its heading" grep -qE "^Leader: +server $leader \(term " "$GT_TMP/members.out"
gt_check "members shows each server's addresses" \
    grep -qE "^$follower .* $(cp_raft "$follower") +$(cp_api "$follower") +$(cp_agent "$follower") " "$GT_TMP/members.out"

# ---- transfer-leader
target=3
[ "$leader" = 3 ] && target=2
term=$(cp_cluster_field "$leader" term)
run transfer "$follower" cluster transfer-leader "$target"
gt_check "transfer-leader $target: exit 0" [ "$RC" = 0 ]
gt_check "it says where leadership went" \
    grep -qx "leadership moved from server $leader to server $target (term [0-9]*)" "$GT_TMP/transfer.out"
gt_check "the term moved on" [ "$(cp_cluster_field "$target" term)" -gt "$term" ]
gt_check "server $target leads" gt_wait_for "leader $target" 20 leader_is "$target" 1 2 3
run transfer-self "$target" cluster transfer-leader "$target"
gt_check "transfer to the leader itself: nothing to do" \
    bash -c "[ $RC = 0 ] && grep -qx 'server $target already leads the cluster' '$GT_TMP/transfer-self.out'"
run transfer-any 1 cluster transfer-leader
gt_check "transfer-leader without an id: exit 0" [ "$RC" = 0 ]
gt_check "leadership left server $target" gt_wait_for "another leader" 20 leader_is_not "$target" 1 2 3
gt_check "to the voter it names" \
    grep -qx "leadership moved from server $target to server $(cp_leader 1 2 3) (term [0-9]*)" "$GT_TMP/transfer-any.out"
run transfer-unknown 1 cluster transfer-leader 9
gt_check "transfer to an unknown server: exit 1, named" \
    bash -c "[ $RC = 1 ] && grep -qx 'gantry: server 9 is not a member of the cluster' '$GT_TMP/transfer-unknown.err'"
run transfer-bad 1 cluster transfer-leader two
gt_check "transfer to a bad id: exit 2" \
    bash -c "[ $RC = 2 ] && grep -q 'is not a server id' '$GT_TMP/transfer-bad.err'"
gt_check "the cluster takes writes after the transfers" [ "$(cp_apply 1 after-transfer)" = 200 ]

# ---- snapshot save
backup=$GT_TMP/backup.snapshot
run save 2 cluster snapshot save "$backup"
gt_check "snapshot save: exit 0" [ "$RC" = 0 ]
gt_check "it wrote the file" test -s "$backup"
gt_check "it says the index and the size" \
    grep -qE "^snapshot of cluster $(cluster_id 1) at index [0-9]+ saved to $backup \([0-9.]+ KiB, $(stat -c %s "$backup") bytes\)$" "$GT_TMP/save.out"
run save-again 1 cluster snapshot save "$backup"
gt_check "saving over the file again: exit 0, no temporary file left" \
    bash -c "[ $RC = 0 ] && [ -z \"\$(ls '$GT_TMP' | grep 'backup.snapshot.tmp')\" ]"
old_cluster=$(cluster_id 1)
names_file 1 "$GT_TMP/old.names"
gt_check "the backup holds 61 workloads" [ "$(wc -l <"$GT_TMP/old.names")" -eq 61 ]

# ---- damaged and foreign files are refused and change nothing
python3 - "$backup" "$GT_TMP" <<'EOF'
import sys
data = open(sys.argv[1], 'rb').read()
out = sys.argv[2]
db = data.find(b'SQLite format 3\0')
open(out + '/cut.snapshot', 'wb').write(data[:len(data) // 2])
open(out + '/foreign.snapshot', 'wb').write(b'SQLite format 3\0' + data[db + 16:])
broken = bytearray(data)
broken[db + 4096:db + 4104] = b'\xff' * 8  # the b-tree header of the database's second page
open(out + '/broken.snapshot', 'wb').write(bytes(broken))
EOF
before=$(cp_state 1)
# Every workload of server 1 with its generation and spec, one line each.
workloads_of() {
    cp_get "$1" '/v1/workloads?stale=1' | python3 -c '
import json, sys
for w in sorted(json.load(sys.stdin)["items"], key=lambda w: w["name"]):
    print(w["name"], w["generation"], json.dumps(w["spec"], sort_keys=True))'
}
workloads_of 1 >"$GT_TMP/before-refused.workloads"
refused() {
    local name=$1 want=$2 dir=$GT_TMP/refused-$1 rc
    timeout 20 "$CP_BIN" --id 7 --data-dir "$dir" --raft-addr "$(cp_raft 7)" --api-addr "$(cp_api 7)" \
        --agent-addr "$(cp_agent 7)" --restore "$GT_TMP/$name.snapshot" >"$GT_TMP/$name.log" 2>&1
    rc=$?
    gt_log "--restore $name.snapshot -> $rc: $(tail -n 1 "$GT_TMP/$name.log")"
    [ "$rc" = 1 ] && grep -q "is refused: $want" "$GT_TMP/$name.log" && [ ! -e "$dir" ]
}
gt_check "a file cut short is refused, naming the problem, and no data directory is made" \
    refused cut "snapshot holds [0-9]* database bytes, header says [0-9]*"
gt_check "a file without a Gantry header is refused" refused foreign "snapshot has no Gantry header"
gt_check "a file with a damaged database is refused" refused broken "its database is damaged"
# What the refused restores could have touched: the running cluster's workloads and its
# identity. Not its applied index: the leader's divergence check (--verify-interval, 30 s)
# is an entry of its own, and the first one falls about here, 30 s after the start.
gt_log "state of server 1 before the refused restores: $before; after: $(cp_state 1)"
workloads_of 1 >"$GT_TMP/after-refused.workloads"
gt_check "the running cluster is unchanged: its 61 workloads, generations and specs, and its id" \
    bash -c "[ \$(wc -l <'$GT_TMP/after-refused.workloads') = 61 ] && cmp -s '$GT_TMP/before-refused.workloads' '$GT_TMP/after-refused.workloads' && [ '$(cluster_id 1)' = '$old_cluster' ]"
gt_check "and still has three voters" voters_are 1 3

# ---- restore into a new cluster of three: 4 restores, 5 and 6 join it
cp_start 4 --restore "$backup"
gt_check "the restored server leads a cluster of its own" gt_wait_for "leader 4" 30 cp_has_leader 4
cp_start 5 --join "http://$(cp_api 4)"
cp_start 6 --join "http://$(cp_api 4)"
gt_check "the two others join it as voters" gt_wait_for "3 voters" 60 voters_are 4 3
gt_check "the three servers hold the same state" gt_wait_for "same state" 60 cp_same_state 4 5 6
for i in 4 5 6; do
    names_file "$i" "$GT_TMP/new$i.names"
    gt_check "server $i holds every workload of the old cluster" cmp -s "$GT_TMP/old.names" "$GT_TMP/new$i.names"
done
new_cluster=$(cluster_id 4)
gt_check "the new cluster has a new cluster id ($new_cluster)" \
    bash -c "[ -n '$new_cluster' ] && [ '$new_cluster' != '$old_cluster' ]"
gt_check "every server of it records that id" \
    bash -c "[ \"\$(cat '$GT_TMP/s5/cluster-id')\" = '$new_cluster' ] && [ \"\$(cat '$GT_TMP/s6/cluster-id')\" = '$new_cluster' ]"
audit_mentions() { cp_get "$1" '/v1/events?since=0' | grep -c "$2" >/dev/null; }
gt_check "the restore is in its audit trail" \
    audit_mentions 4 "restored from a snapshot of cluster $old_cluster at index"
gt_check "the new cluster takes writes" [ "$(cp_apply 5 in-new-cluster)" = 200 ]
gt_check "the old cluster does not see them" [ "$(cp_count 1)" -eq 61 ]
for i in 4 5 6; do cp_stop "$i"; done

# gantry cluster snapshot restore prepares the data directory (gantry-scheduler on the
# PATH); the server then starts from it with no restore flag. --keep-cluster-id keeps the
# old id.
restore_cli() {
    PATH="$(dirname "$CP_BIN"):$PATH" "$GANTRY" cluster snapshot restore "$backup" \
        --data-dir "$GT_TMP/s8" --id 8 --raft-addr "$(cp_raft 8)" --keep-cluster-id \
        >"$GT_TMP/restore-cli.out" 2>&1
}
restore_cli
rc=$?
gt_log "gantry cluster snapshot restore -> $rc: $(head -c 300 "$GT_TMP/restore-cli.out")"
gt_check "gantry cluster snapshot restore prepares the data directory" \
    bash -c "[ $rc = 0 ] && grep -q 'holds the restored state as server 8' '$GT_TMP/restore-cli.out'"
restore_cli
rc=$?
gt_check "a second restore into it is refused, naming the directory" \
    bash -c "[ $rc = 1 ] && grep -q '$GT_TMP/s8 holds Raft state already' '$GT_TMP/restore-cli.out'"
cp_start 8
gt_check "a restore that keeps the cluster id leads" gt_wait_for "leader 8" 30 cp_has_leader 8
cp_start 9 --join "http://$(cp_api 8)"
gt_check "a server joins it" gt_wait_for "2 voters" 60 voters_are 8 2
gt_check "it keeps the old cluster id" [ "$(cluster_id 8)" = "$old_cluster" ]
gt_check "the joined server holds the same state" gt_wait_for "same state" 60 cp_same_state 8 9
names_file 9 "$GT_TMP/keep.names"
gt_check "with every workload" cmp -s "$GT_TMP/old.names" "$GT_TMP/keep.names"
cp_stop 8
cp_stop 9

# ---- a lost majority: two followers SIGKILLed while writes are acknowledged
gt_wait_for "a leader" 30 cp_has_leader 1 2 3
survivor=$(cp_leader 1 2 3)
[ -n "$survivor" ] || exit 1
lost=()
for i in 1 2 3; do [ "$i" != "$survivor" ] && lost+=("$i"); done
acked=$GT_TMP/acked
acked_count() { [ -f "$acked" ] && wc -l <"$acked" || echo 0; }
gt_spawn writer "$GT_SRC/tests/integration/cp/writer.sh" "$CP_BASE" "$survivor" late "$acked" 120
writer=$GT_LAST_PID
gt_wait_budget 120
gt_check "writes are acknowledged" gt_wait_for "20 acknowledged writes" 60 bash -c "[ \$(wc -l <'$acked') -ge 20 ]"
for i in "${lost[@]}"; do cp_stop "$i" KILL; done
gt_stop "$writer"
gt_log "$(acked_count) writes acknowledged before the majority was lost"
gt_check "the survivor refuses writes without a majority" \
    [ "$(cp_status "$survivor" /v1/apply -X POST -d '{"name":"no-majority","image":"busybox"}')" = 503 ]
cp_stop "$survivor"

cp_start "$survivor" --force-new-cluster
gt_check "the survivor leads a one-server cluster" gt_wait_for "survivor leads" 30 cp_has_leader "$survivor"
gt_check "it says loudly what it did" \
    grep -q "gantry-scheduler: --force-new-cluster: the Raft configuration in .* is now this server alone" "$GT_TMP/s$survivor.log"
gt_check "and what may be lost" grep -q "writes the lost servers acknowledged after that index are gone" "$GT_TMP/s$survivor.log"
gt_check "its configuration is itself alone" voters_are "$survivor" 1
gt_check "it keeps the cluster id" [ "$(cluster_id "$survivor")" = "$old_cluster" ]
names_file "$survivor" "$GT_TMP/survivor.names"
missing=$(sort "$acked" | comm -23 - "$GT_TMP/survivor.names" | wc -l)
gt_check "every acknowledged write is there ($missing missing)" [ "$missing" -eq 0 ]
gt_check "and every earlier workload" bash -c "[ -z \"\$(comm -23 '$GT_TMP/old.names' '$GT_TMP/survivor.names')\" ]"
gt_check "it takes writes" [ "$(cp_apply "$survivor" after-force)" = 200 ]

# The lost servers come back wiped, through --join.
for i in "${lost[@]}"; do
    rm -rf "${GT_TMP:?}/s$i"
    cp_start "$i" --join "http://$(cp_api "$survivor")"
done
gt_check "the wiped servers join back to three voters" gt_wait_for "3 voters" 60 voters_are "$survivor" 3
gt_check "all three hold the same state" gt_wait_for "same state" 60 cp_same_state 1 2 3
gt_check "the rejoined servers hold every workload" \
    bash -c "[ \"\$(cp_count ${lost[0]})\" = \"\$(cp_count $survivor)\" ] && [ \"\$(cp_count ${lost[1]})\" = \"\$(cp_count $survivor)\" ]"
gt_check "writes through a rejoined server succeed" [ "$(cp_apply "${lost[0]}" after-rejoin)" = 200 ]
# ---- divergence checks and join command lines, through the CLI (docs/cli.md "cluster verify",
# "cluster join-token"), on the three servers of the recovered cluster
leader=$(cp_leader 1 2 3)
run verify "${lost[0]}" cluster verify
gt_check "cluster verify through a follower: exit 0" [ "$RC" = 0 ]
gt_check "it names the three servers, each with a digest, all the same" \
    [ "$(grep -cE '^[123] +[0-9a-f]{16} +same$' "$GT_TMP/verify.out")" = 3 ]
gt_check "it says that they agree" grep -qE '^3 servers agree at index [0-9]+ ' "$GT_TMP/verify.out"
run verify-json "$leader" cluster verify -o json
gt_check "verify -o json prints the answer: three servers, the same state" \
    python3 -c "import json,sys; d=json.load(open('$GT_TMP/verify-json.out')); sys.exit(0 if $RC == 0 and d['majority'] and sorted(s['id'] for s in d['servers']) == [1, 2, 3] and all(s['state'] == 'same' for s in d['servers']) else 1)"
run status "${lost[1]}" cluster status
gt_check "cluster status: exit 0, no server diverged" \
    bash -c "[ $RC = 0 ] && grep -qx 'Diverged:  none' '$GT_TMP/status.out'"
gt_check "it shows the leader's last check" \
    grep -qE "^Verified:  index [0-9]+.*, by server $leader in [0-9]+ ms \([0-9]+ checks?, [0-9]+ divergences? found\)$" "$GT_TMP/status.out"
run join-server "${lost[0]}" cluster join-token --role server
gt_check "join-token --role server: exit 0" [ "$RC" = 0 ]
gt_check "it prints a gantry-scheduler line with the next id that joins through the leader" \
    grep -qE "^    gantry-scheduler --id 4 .*--join http://$(cp_api "$leader")$" "$GT_TMP/join-server.out"
gt_check "and says that it carries no secret" grep -q "This carries no secret" "$GT_TMP/join-server.out"
run join-node "$leader" cluster join-token --role node -q
gt_check "join-token --role node -q: one gantry-agent line" \
    bash -c "[ $RC = 0 ] && [ \$(wc -l <'$GT_TMP/join-node.out') = 1 ] && grep -q '^gantry-agent --servers ' '$GT_TMP/join-node.out'"
for i in 1 2 3; do
    gt_check "it lists server $i's agent stream" grep -q "[ ,]$(cp_agent "$i")[ ,]" "$GT_TMP/join-node.out"
done
# The server line for --host 127.0.0.1, with the test's ports and a data directory of the
# test's, adds a fourth voter.
join_line=$(g "$leader" cluster join-token --role server --host 127.0.0.1 -q)
gt_check "--host fills in the new server's address" grep -q -- "--raft-addr 127.0.0.1:7701 " <<<"$join_line"
join_line=${join_line//127.0.0.1:7701/$(cp_raft 4)}
join_line=${join_line//127.0.0.1:7700/$(cp_api 4)}
join_line=${join_line//127.0.0.1:7702/$(cp_agent 4)}
join_line=${join_line//\/var\/lib\/gantry\/s4/$GT_TMP/s4-joined}
read -ra join_args <<<"$join_line"
gt_log "joining with: $join_line"
"$CP_BIN" "${join_args[@]:1}" >>"$GT_TMP/s4-joined.log" 2>&1 &
CP_PID[4]=$!
GT_PIDS+=("$!")
gt_check "the printed gantry-scheduler line joins a fourth voter" gt_wait_for "4 voters" 60 voters_are "$leader" 4
run remove-joined "$leader" cluster remove 4
gt_check "cluster remove 4: exit 0" [ "$RC" = 0 ]
cp_stop 4
gt_check "three voters again" voters_are "$leader" 3
gt_finish
