# The fault suite: a seeded random sequence of faults (driver.py plan) on three servers and
# two agent hosts, each host a network namespace, while clients on a sixth host write and
# read registers through the API (client.py). After each fault is undone the run waits,
# bounded, for a write to be acknowledged and records how long that took. At the end:
# every acknowledged write is on every server, the history is linearizable, no replica ran
# on two nodes at once and every node runs what the cluster says it runs, and the servers
# converged on the same applied index and state digest. See docs/testing.md, "Fault suite".
#
#   SEED=N         replays a run (printed at its start)
#   FAULTS=N       faults in the run (20)
#   FAULT_KINDS=a,b,...  kinds to draw from (default: $FT_CI_KINDS below); all: every kind
#   FAULT_CLIENTS=N      concurrent clients (5)
#   FT_SERVER_FLAGS=...  more gantry-scheduler flags (e.g. --verify-interval 3s)
source "$(dirname "$0")/../integration/lib.sh"
source "$(dirname "$0")/../integration/netns.sh"
source "$(dirname "$0")/../integration/cluster.sh"
source "$(dirname "$0")/faults.sh"

if [ -n "${FAULTS_LONG_RUN:-}" ] && [ "${GANTRY_FAULTS_LONG:-}" != 1 ]; then
    gt_skip "the long fault run runs only with GANTRY_FAULTS_LONG=1 (deploy/test -L faults-long)"
fi
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
for b in "$SCHED" "$AGENT" "$RUNTIME"; do [ -x "$b" ] || gt_skip "$b is not built"; done

# The kinds of the CI run: every kind (a kind that finds a product bug leaves this list until
# the bug is fixed; docs/testing.md, "Fault suite").
FT_CI_KINDS=minority,minority-long,majority,bridge,oneway,agent,delay,loss,crash,crash-long,disk,corrupt-state,corrupt-raft,corrupt-quorum,clock
SEED=${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
FAULTS=${FAULTS:-20}
KINDS=${FAULT_KINDS:-$FT_CI_KINDS}
[ "$KINDS" = all ] && KINDS=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import driver; print(",".join(driver.ALL_KINDS))' "$FT_DIR")
gt_hosts_create 6 || exit 1
# Kinds this machine cannot make are left out, saying so.
missing=$(ft_missing_tools | tr '\n' ' ')
drop_kind() {
    KINDS=$(echo ",$KINDS," | sed "s/,$1,/,/g; s/^,//; s/,$//")
    gt_log "fault kind $1 left out: $2"
}
case " $missing " in *" nft "*) for k in bridge oneway loss; do drop_kind $k "nft is missing"; done ;; esac
case " $missing " in *" iptables "*) ft_have_netem || drop_kind delay "neither netem nor iptables" ;; esac
case " $missing " in *" losetup "* | *" mkfs.ext4 "* | *" fallocate "*) drop_kind disk "no loop file systems" ;; esac
case " $missing " in *" libfaketime "*) drop_kind clock "libfaketime is missing" ;; esac
[ -n "$KINDS" ] || gt_skip "no fault kind can be made here"
gt_log "seed $SEED: $FAULTS faults of $KINDS (replay: SEED=$SEED FAULTS=$FAULTS FAULT_KINDS=$KINDS)"

CLIENT_HOST=6
SERVERS="198.18.0.1:7700,198.18.0.2:7700,198.18.0.3:7700"
HOLD_LIMIT=30 # seconds a run waits for a writable cluster after each fault
python3 "$FT_DIR/driver.py" plan "$SEED" "$FAULTS" "$KINDS" >"$GT_TMP/plan" || exit 1

gt_cluster_init 3 ft
# Whatever a failed run leaves: fault tables and queue rules go with the namespaces; the
# switch ports come back up for the namespaces' removal.
gt_on_exit "for h in 1 2 3 4 5 6; do ip -n $GT_HOST_PREFIX-sw link set p\$h up 2>/dev/null; done"

# Each server's data directory is a small file system of its own (the disk-full fault).
for i in 1 2 3; do
    if [[ ",$KINDS," == *,disk,* ]]; then ft_disk_mount "$GT_TMP/s$i" 96 || exit 1; fi
done

declare -A SRUN=()
# srv_start I: server I, under its fault clock, with a log of its own per start.
# Snapshots every 4096 entries keep the log that a start loads short: libraft loads its
# entries into an array it grows by realloc, batch after batch, which the sanitizers'
# realloc (a new block and a copy every time) makes quadratic: a 41,000-entry log took
# 5 min 47 s to load in the test build and 0.25 s in a Release build. The default
# threshold (50,000) let a long run's servers take minutes to start.
srv_start() {
    local i=$1
    SRUN[$i]=$((${SRUN[$i]:-0} + 1))
    eval "$(ft_clock_env "$i") gt_server_start $i -r${SRUN[$i]} --min-free-space 16Mi --snapshot-threshold 4096 --snapshot-trailing 1024 ${FT_SERVER_FLAGS:-}"
}
srv_alive() { kill -0 "${SPID[$1]}" 2>/dev/null && [ "$(ps -o stat= -p "${SPID[$1]}" | cut -c1)" != Z ]; }

rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sh sleep
for i in 1 2 3; do srv_start "$i"; done
for i in 4 5; do
    gt_image_import "$i" "$rootfs" || exit 1
    gt_agent_start "$i" --cpu 2 --memory 2Gi
done

# capi PATH [CURL ARGS]: a request from the clients' host to any server that answers it
# (a 503 is repeated as a client would).
capi() {
    local path=$1 i out
    shift
    for i in 1 2 3; do
        out=$(gt_host_exec $CLIENT_HOST curl -sf --retry 5 --retry-max-time 10 --max-time 5 "$@" \
            "http://198.18.0.$i:7700$path") && { printf '%s' "$out"; return 0; }
    done
    return 1
}
# leader_id: the server that leads with the highest term (0 when none says so).
leader_id() {
    local i
    for i in 1 2 3; do
        gt_host_exec "$i" curl -s --max-time 2 "http://198.18.0.$i:7700/v1/cluster"
        echo
    done | python3 -c '
import json, sys
best, term = 0, -1
for line in sys.stdin:
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("state") == "leader" and d.get("term", 0) > term:
        best, term = d["id"], d["term"]
print(best)'
}
# once SERVERS write|read KEY [VALUE]: one operation of the history (client.py once).
once() {
    gt_host_exec $CLIENT_HOST python3 "$FT_DIR/client.py" once --servers "$1" --op "$2" --key "$3" \
        ${4:+--value "$4"} --history "$GT_TMP/history.jsonl" --timeout 5
}
writable() {
    gt_host_exec $CLIENT_HOST python3 "$FT_DIR/client.py" probe --servers "$SERVERS" --limit "$1" --name probe
}
web_running() {
    [ "$(capi '/v1/replicas?workload=web' | python3 -c 'import json,sys; print(sum(r["state"]=="running" for r in json.load(sys.stdin)["items"]))' 2>/dev/null)" = 4 ]
}

has_leader() { [ "$(leader_id)" != 0 ]; }
gt_check "a leader is elected" gt_wait_for leader 60 has_leader
gt_check "the cluster takes writes" gt_wait_for writable 60 writable 5
two_nodes() { [ "$(capi /v1/nodes | grep -o '"state":"ready"' | wc -l)" = 2 ]; }
gt_check "two nodes register" gt_wait_for nodes 60 two_nodes
capi /v1/apply -X POST -d '{"name":"web","image":"busybox","command":["sleep","3600"],"replicas":4,"resources":{"cpu":"10m","memory":"8Mi"},"stop_grace":"1s"}' >/dev/null
gt_check "4 replicas of web run" gt_wait_for "web running" 60 web_running
[ "$GT_FAILED" -eq 0 ] || gt_finish

# Replica ids on both nodes, sampled every second.
gt_spawn dupwatch bash -c "while :; do for i in 4 5; do $RUNTIME --root $GT_TMP/rt\$i list -q 2>/dev/null; done | sort | uniq -d | sed \"s/^/\$(date +%H:%M:%S.%3N) twice: /\"; sleep 1; done"
: >"$GT_TMP/history.jsonl"
gt_host_spawn clients "$CLIENT_HOST" python3 "$FT_DIR/client.py" run --servers "$SERVERS" \
    --history "$GT_TMP/history.jsonl" --stop-file "$GT_TMP/stop" --seed "$SEED" \
    --clients "${FAULT_CLIENTS:-5}" --keys 6
CLIENTS_PID=$GT_LAST_PID
sleep 2

# node_view: true when the nodes run (runtime state created or running) exactly the
# replicas of web that the cluster has starting or running there; nodes_settled: and 4.
node_view() {
    local want have
    want=$(capi '/v1/replicas?workload=web' | python3 -c 'import json,sys; print(" ".join(sorted("%s@%s" % (r["id"], r["node"]) for r in json.load(sys.stdin)["items"] if r["state"] in ("starting", "running"))))' 2>/dev/null)
    have=$(for i in 4 5; do
        "$RUNTIME" --root "$GT_TMP/rt$i" list --format json 2>/dev/null |
            python3 -c 'import json,sys; [print("%s@node%s" % (c["id"], sys.argv[1])) for c in json.load(sys.stdin) if c["status"] in ("created", "running")]' "$i"
    done | LC_ALL=C sort | xargs)
    echo "cluster: $want | nodes: $have" >"$GT_TMP/nodes.log"
    [ -n "$want" ] && [ "$want" = "$have" ]
}
nodes_settled() { node_view && [ "$(grep -o '@' "$GT_TMP/nodes.log" | wc -l)" = 8 ]; }
# settle_wait LIMIT: prints the seconds until the nodes settled; false after LIMIT.
settle_wait() {
    local start deadline=$((SECONDS + $1))
    start=$(ft_now_ms)
    local first=1
    while [ "$SECONDS" -le "$deadline" ]; do
        if nodes_settled; then
            awk -v a="$start" -v b="$(ft_now_ms)" 'BEGIN { printf "%.2f\n", (b - a) / 1000 }'
            return 0
        fi
        # What differed first, for the record.
        [ "$first" = 1 ] && echo "$(date +%T.%3N) ${2:-}: $(cat "$GT_TMP/nodes.log")" >>"$GT_TMP/settle.log"
        first=0
        sleep 0.2
    done
    echo late
    return 1
}

# Roles, resolved once when a fault starts (LEADER is then the leader's id).
LEADER=1
resolve() {
    local others
    others=$(for i in 1 2 3; do [ "$i" != "$LEADER" ] && echo "$i"; done | tr '\n' ' ')
    case "$1" in
    leader) echo "$LEADER" ;;
    follower0) echo "$others" | awk '{print $1}' ;;
    follower1) echo "$others" | awk '{print $2}' ;;
    followers) echo "$others" | sed 's/ $//' ;;
    agent4) echo 4 ;;
    agent5) echo 5 ;;
    esac
}
downs_in_logs() { cat "$GT_TMP"/s[123]-r*.log 2>/dev/null | grep -c 'msg="node is down"'; }
events_last() { gt_host_exec $CLIENT_HOST python3 "$FT_DIR/client.py" events --servers "$SERVERS" --since "$1"; }

# restart_if_stopped I: a server that exited during a fault (its status and last error are
# noted) is started again.
NOTE=""
# commit_of I: server I's commit index (0 when it does not answer).
commit_of() {
    gt_host_exec "$1" curl -s --max-time 2 "http://198.18.0.$1:7700/v1/cluster" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["commit_index"])' 2>/dev/null || echo 0
}
# up_or_refused I: server I exited, or answers its API.
up_or_refused() {
    srv_alive "$1" || return 0
    gt_host_exec "$1" curl -s --max-time 2 "http://198.18.0.$1:7700/v1/cluster" | grep -c last_index >/dev/null
}
# indexes_of I: "LAST_INDEX APPLIED_INDEX" of server I.
indexes_of() {
    gt_host_exec "$1" curl -s --max-time 2 "http://198.18.0.$1:7700/v1/cluster" |
        python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["last_index"], d["applied_index"])' 2>/dev/null
}
# back_or_refused I INDEX: server I exited, or follows a leader with INDEX applied.
back_or_refused() {
    srv_alive "$1" || return 0
    gt_host_exec "$1" curl -s --max-time 2 "http://198.18.0.$1:7700/v1/cluster" | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d["state"] in ("leader", "follower") and d["leader"] and d["applied_index"] >= int(sys.argv[1]) else 1)' "$2" 2>/dev/null
}
restart_if_stopped() {
    local i=$1 st
    srv_alive "$i" && return 0
    wait "${SPID[$i]}" 2>/dev/null
    st=$?
    NOTE+="server $i exited with status $st ($(grep -v 'level=info' "$GT_TMP/s$i-r${SRUN[$i]}.log" | tail -1 | cut -c1-220)); "
    # A flipped byte of a Raft segment that the server refused later than the fault waited
    # for is put back before it starts again.
    local f
    for f in "${!FT_CORRUPT[@]}"; do
        if [[ $f == "$GT_TMP/s$i/raft/"* ]] && [ -f "$f" ] && ft_corrupt_undo "$f"; then
            NOTE+="byte of $(basename "$f") restored; "
        fi
    done
    [ "${2:-}" = norestart ] || srv_start "$i"
}

: >"$GT_TMP/faults.tsv"
while read -r n kind role hold a1 a2 a3; do
    NOTE=""
    LEADER=$(leader_id)
    [ "$LEADER" = 0 ] && LEADER=1
    case "$kind" in
    oneway | bridge) target=$LEADER ;;
    *) target=$(resolve "$role") ;;
    esac
    gt_log "fault $n/$FAULTS: $kind $role (host ${target// /+}; leader $LEADER) for ${hold}s ${a1:-} ${a2:-} ${a3:-}"
    ev_before=$(events_last -1 | awk '{print $1}')
    logs_before=$(downs_in_logs)
    case "$kind" in
    minority | minority-long | majority | agent)
        hosts=$target
        [ "$kind" = majority ] && [ "$role" = leader ] && hosts="$target $(resolve follower0)"
        # shellcheck disable=SC2086
        ft_isolate $hosts
        sleep "$hold"
        # shellcheck disable=SC2086
        ft_reconnect $hosts
        ;;
    bridge)
        if [ "$role" = leader ]; then pair="$target $(resolve follower0)"; else pair=$(resolve followers); fi
        # shellcheck disable=SC2086
        ft_drop_between $pair
        sleep "$hold"
        # shellcheck disable=SC2086
        ft_heal $pair
        ;;
    oneway)
        l=$(resolve leader)
        fs=$(resolve followers)
        case "$role" in
        leader-out) for f in $fs; do ft_drop_oneway "$l" "$f"; done ;;
        leader-in) for f in $fs; do ft_drop_oneway "$f" "$l"; done ;;
        follower-out) ft_drop_oneway "$(resolve follower0)" "$l" ;;
        esac
        sleep "$hold"
        # shellcheck disable=SC2086
        ft_heal $l $fs
        ;;
    delay)
        ft_delay "$target" "$a1" || NOTE+="delay not installed; "
        sleep "$hold"
        ft_delay_undo "$target"
        ;;
    loss)
        ft_loss "$target" "$a1"
        sleep "$hold"
        ft_loss_undo "$target"
        ;;
    crash | crash-long)
        ft_freeze "$target" "${SPID[$target]}"
        sleep "$hold"
        ft_thaw "$target" "${SPID[$target]}"
        ;;
    disk)
        # Odd faults fill the file system to the last block; even ones leave 8 MiB, below
        # the servers' 16 MiB reserve: the NOSPACE alarm without a failed write.
        if [ $((n % 2)) = 0 ]; then
            ft_disk_fill "$GT_TMP/s$target" 8388608
            NOTE+="filled to 8 MiB free; "
        else
            ft_disk_fill "$GT_TMP/s$target"
        fi
        sleep "$hold"
        ft_disk_free "$GT_TMP/s$target"
        restart_if_stopped "$target"
        ;;
    corrupt-state | corrupt-raft)
        before=$(commit_of "$LEADER")
        # What the server itself had committed when it stopped: started again on the
        # damaged file, it must refuse to run or still hold all of it.
        own=$(commit_of "$target")
        gt_stop "${SPID[$target]}" TERM
        if [ "$a1" = raft ]; then
            # Closed segments only: libraft takes a bad batch in an open segment for a torn
            # last write and closes the segment there, so the byte could not be put back
            # (docs/testing.md, "Fault suite").
            mapfile -t files < <(cd "$GT_TMP/s$target/raft" && ls | grep -E '^[0-9]+-[0-9]+$' | sort)
        else
            files=(state.db)
        fi
        file=""
        if [ "${#files[@]}" -gt 0 ]; then
            pick=$(python3 -c "import sys; print(int(float(sys.argv[1]) * int(sys.argv[2])))" "$a2" "${#files[@]}")
            [ "$a1" = raft ] && file=$GT_TMP/s$target/raft/${files[$pick]} || file=$GT_TMP/s$target/state.db
            if ft_corrupt "$file" "$a3"; then
                NOTE+="flipped byte ${FT_FLIP%% *} of $(basename "$file") (${FT_FLIP#* }); "
            else
                file=""
            fi
        fi
        # Started cut off from the others, so that what it shows is what its own storage
        # held, not what the leader sent it since.
        gt_host_isolate "$target"
        srv_start "$target"
        gt_wait_for "server $target up or refusing" 20 up_or_refused "$target"
        # A server answers its API for a moment before it finds the damage.
        sleep 2
        if srv_alive "$target"; then
            read -r last applied < <(indexes_of "$target")
            NOTE+="started cut off: log to ${last:-?}, applied ${applied:-?}, had committed $own; "
            if [ -n "$last" ] && [ "$last" -lt "$own" ]; then
                NOTE+="LOST COMMITTED ENTRIES $((last + 1))..$own ($(ls "$GT_TMP/s$target/raft" | grep -c '^corrupt-') segments set aside as corrupt); "
            fi
        fi
        gt_host_reconnect "$target"
        # It then either catches up or refuses the data; refused, the byte is put back.
        gt_wait_for "server $target caught up or refusing" 60 back_or_refused "$target" "$before"
        sleep 1
        if ! srv_alive "$target"; then
            restart_if_stopped "$target" norestart
            if [ -n "$file" ] && ft_corrupt_undo "$file"; then NOTE+="byte restored; "; fi
            srv_start "$target"
        elif back_or_refused "$target" "$before"; then
            NOTE+="server runs on the changed file; "
        else
            NOTE+="server runs on the changed file, not caught up; "
        fi
        ;;
    corrupt-quorum)
        # A write that only the leader and one follower hold, and that follower loses to a
        # damaged log: then the two servers without it are a majority. The other follower
        # is cut off while writes go on, the first is stopped and its newest Raft segment
        # damaged, the leader is cut off, and the two followers meet again.
        lag=$(resolve follower1) victim=$(resolve follower0)
        ft_isolate "$lag"
        sleep "$hold"
        # A register of this fault's own, written through the leader: acknowledged, only the
        # leader and the victim hold it.
        NOTE+="write cq-$n: $(once "198.18.0.$LEADER:7700" write "cq-$n" "v$n"); "
        own=$(commit_of "$victim")
        gt_stop "${SPID[$victim]}" TERM
        file=$GT_TMP/s$victim/raft/$(cd "$GT_TMP/s$victim/raft" && ls | grep -E '^[0-9]+-[0-9]+$' | sort -t- -k1,1n | tail -1)
        if ft_corrupt "$file" "$a3"; then
            NOTE+="flipped byte ${FT_FLIP%% *} of $(basename "$file") (${FT_FLIP#* }) on server $victim, which had committed $own; "
        else
            file=""
        fi
        ft_isolate "$LEADER"
        ft_reconnect "$lag"
        srv_start "$victim"
        gt_wait_budget 20
        if t2=$(writable 20); then
            NOTE+="servers $victim and $lag took writes after ${t2}s; "
            NOTE+="read cq-$n through them: $(once "198.18.0.$victim:7700,198.18.0.$lag:7700" read "cq-$n"); "
        fi
        if srv_alive "$victim"; then
            read -r last applied < <(indexes_of "$victim")
            [ -n "$last" ] && [ "$last" -lt "$own" ] && NOTE+="LOST COMMITTED ENTRIES $((last + 1))..$own on server $victim; "
        fi
        ft_reconnect "$LEADER"
        if ! srv_alive "$victim"; then
            restart_if_stopped "$victim" norestart
            if [ -n "$file" ] && ft_corrupt_undo "$file"; then NOTE+="byte restored; "; fi
            srv_start "$victim"
        fi
        ;;
    clock)
        ft_clock_step "$target" "$a1"
        sleep "$hold"
        ft_clock_reset "$target"
        sleep 1.5
        ;;
    esac
    for i in 1 2 3; do srv_alive "$i" || restart_if_stopped "$i"; done
    gt_wait_budget "$HOLD_LIMIT"
    if took=$(writable "$HOLD_LIMIT"); then st=ok; else st=late; fi
    # Node-down declarations while the fault lasted and until the cluster took writes again.
    downs_ev=$([ -n "$ev_before" ] && events_last "$ev_before" | awk '{print $2}')
    downs_logs=$(($(downs_in_logs) - logs_before))
    # After a fault that cuts agents off from the leader (or the leader off from them), the
    # nodes come to run exactly what the cluster places: replicas replaced meanwhile stop.
    settled="-"
    if [[ " agent crash crash-long minority-long " == *" $kind "* ]]; then
        gt_wait_budget 30
        settled=$(settle_wait 30 "fault $n")
        NOTE+="nodes settled: ${settled}; "
    fi
    gt_log "fault $n undone: writable after ${took}s ($st)${NOTE:+; $NOTE}"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$kind" "$role" "$hold" "$took" "$st" \
        "${downs_ev:--}" "$downs_logs" "$settled" "$NOTE" >>"$GT_TMP/faults.tsv"
    [ "$settled" = late ] && gt_log "nodes after fault $n: $(cat "$GT_TMP/nodes.log")"
    sleep 0.5
done <"$GT_TMP/plan"

touch "$GT_TMP/stop"
gt_wait_budget 30
for ((k = 0; k < 300; k++)); do kill -0 "$CLIENTS_PID" 2>/dev/null || break; sleep 0.1; done
gt_stop "$CLIENTS_PID"
gt_log "clients stopped: $(wc -l <"$GT_TMP/history.jsonl") operations"

alive=""
for i in 1 2 3; do srv_alive "$i" && alive+="$i "; done
gt_check "every server runs at the end (running: ${alive:-none})" [ "$alive" = "1 2 3 " ]
for i in 1 2 3; do srv_alive "$i" || restart_if_stopped "$i"; done

# Convergence: the same applied index and state digest on every server.
state_of() { gt_host_exec "$1" curl -s --max-time 2 "http://198.18.0.$1:7700/v1/cluster" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["applied_index"], d["state_digest"])' 2>/dev/null; }
converged() {
    local a b c
    a=$(state_of 1) b=$(state_of 2) c=$(state_of 3)
    echo "$(date +%T.%3N) 1: $a; 2: $b; 3: $c" >>"$GT_TMP/convergence.log"
    [ -n "$a" ] && [ "$a" = "$b" ] && [ "$b" = "$c" ]
}
gt_check "the servers converge (same applied index and state digest)" gt_wait_for converged 60 converged
gt_log "states: $(tail -1 "$GT_TMP/convergence.log")"

gt_host_exec $CLIENT_HOST python3 "$FT_DIR/client.py" final --servers "$SERVERS" --keys 6 \
    --history "$GT_TMP/history.jsonl" --out "$GT_TMP/final.json" || gt_check "final reads of every server" false

# The nodes run what the cluster says, each replica on one node only.
gt_check "the nodes run exactly the replicas the cluster places, 4 of web" gt_wait_for "nodes settle" 60 nodes_settled
gt_log "$(cat "$GT_TMP/nodes.log")"
gt_check "no replica id ran on two nodes at once ($(grep -c twice "$GT_TMP/dupwatch.log") samples)" \
    bash -c "! grep -q twice $GT_TMP/dupwatch.log"

python3 "$FT_DIR/driver.py" report --history "$GT_TMP/history.jsonl" --final "$GT_TMP/final.json" \
    --faults "$GT_TMP/faults.tsv" >"$GT_TMP/report.txt" 2>&1
while read -r _ verdict desc; do
    gt_check "$desc" [ "$verdict" = PASS ]
done < <(grep '^CHECK ' "$GT_TMP/report.txt")
grep -v '^CHECK ' "$GT_TMP/report.txt"
gt_log "seed $SEED (replay: SEED=$SEED FAULTS=$FAULTS FAULT_KINDS=$KINDS)"
if [ -n "${FAULT_KEEP_HISTORY:-}" ]; then
    cp "$GT_TMP/history.jsonl" "$GT_TMP/final.json" "$GT_TMP/faults.tsv" "$FAULT_KEEP_HISTORY/" 2>/dev/null
fi
gt_finish
