# The agent's own database (agent.db) under faults, with a real control plane and real
# containers: (a) agent.db on a small tmpfs that is filled up: a replica newly placed on
# the node is reported failed with "agent database: disk full at PATH" and gets no
# container, the replicas already there keep running; the node gets the StoragePressure
# condition with that reason (API, `gantry get nodes`, an audit event), so a new workload
# waits Unschedulable for it while the node is alone, and once a second node (host 2) joins
# goes there, also when scaled up; once space is freed the waiting replica starts, the
# condition clears and placement uses the node again; (b) rows deleted from agent.db while the agent is down: after a
# restart the container the leader still places there is adopted (same process), the one
# the leader no longer wants is stopped, none runs unseen; (c) agent.db overwritten with
# garbage while the agent is down: it is moved aside with a log naming both paths, and the
# replicas converge to the leader's placement with every record rebuilt; (d) a read-only
# agent.db (or a read-only directory without one) makes the agent exit non-zero with a
# message naming the file and what to do.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
command -v sqlite3 >/dev/null || gt_skip "the sqlite3 shell is missing"
SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
for b in "$SCHED" "$AGENT" "$RUNTIME"; do [ -x "$b" ] || gt_skip "$b is not built"; done

gt_hosts_create 2 || exit 1
PREFIX="st$$-"
DATA=$GT_TMP/data
RT=$GT_TMP/rt
DB=$DATA/agent.db
GANTRY=$GT_BUILD/ctl/gantry
[ -x "$GANTRY" ] || gt_skip "$GANTRY is not built"
# node2 (host 2) joins in (a) only, with its own data, runtime root and namespaces.
DATA2=$GT_TMP/data2
RT2=$GT_TMP/rt2
mkdir -p "$DATA2"
mkdir -p "$DATA"
mount -t tmpfs -o size=16m,mode=0700 tmpfs "$DATA" || gt_skip "cannot mount a tmpfs"
# Containers outlive the agent by design: the test removes them, then the tmpfs.
gt_on_exit "umount -l $DATA"
gt_on_exit "for rt in $RT $RT2; do for id in \$($RUNTIME --root \$rt list -q 2>/dev/null); do $RUNTIME --root \$rt delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns 2>/dev/null; done"

rootfs=$GT_TMP/rootfs
mkdir -p "$rootfs/bin" "$rootfs/www"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for t in sh httpd sleep; do ln -s busybox "$rootfs/bin/$t"; done
echo ok > "$rootfs/www/index.html"
gt_check "image import into the small data dir" "$AGENT" --data-dir "$DATA" image import busybox "$rootfs"
gt_check "image import for node2" "$AGENT" --data-dir "$DATA2" image import busybox "$rootfs"

gt_host_spawn s1 1 "$SCHED" --id 1 --data-dir "$GT_TMP/s1" --raft-addr 198.18.0.1:7701 \
    --api-addr 198.18.0.1:7700 --agent-addr 198.18.0.1:7702 --bootstrap 1=198.18.0.1:7701 \
    --node-down-timeout 60s
N_AGENT=0
start_agent() {
    N_AGENT=$((N_AGENT + 1))
    gt_host_spawn "agent$N_AGENT" 1 "$AGENT" --servers 198.18.0.1:7702 --name node1 \
        --data-dir "$DATA" --runtime-root "$RT" --netns-prefix "$PREFIX" \
        --subnet 198.19.7.0/24 --bridge gsbr0 --cpu 4 --memory 2Gi
    APID=$GT_LAST_PID
    ALOG=$GT_TMP/agent$N_AGENT.log
}
start_agent

api() {
    local path=$1; shift
    gt_host_exec 1 curl --retry 30 --retry-max-time 60 -s --max-time 5 "$@" "http://198.18.0.1:7700$path"
}
# replicas [WORKLOAD]: "id state ready reason" per replica on one line each.
replicas() {
    api "/v1/replicas${1:+?workload=$1}" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["items"]:
    print(r["id"], r["state"], str(r["ready"]).lower(), r["reason"].replace(" ", "_"))' 2>/dev/null
}
running_count() { replicas "$1" | awk '$2 == "running"' | wc -l; }
running_is() { [ "$(running_count "$1")" = "$2" ] && [ "$(replicas "$1" | wc -l)" = "$2" ]; }
scale() { api "/v1/workloads/$1/scale" -X POST -d "{\"replicas\":$2}" >/dev/null; }
containers() { "$RUNTIME" --root "$RT" list -q | sort | tr '\n' ' '; }
# The ids the leader holds as live on node1, sorted like containers().
placed() { replicas | awk '$2 != "stopping" && $2 != "stopped" && $2 != "lost" {print $1}' | sort | tr '\n' ' '; }
pid_of() { "$RUNTIME" --root "$RT" state "$1" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
rows() { sqlite3 "$DB" 'SELECT id FROM replicas ORDER BY id' 2>/dev/null | tr '\n' ' '; }
# nodes: "name state condition=message,..." per node, blanks in messages as _.
nodes() {
    api /v1/nodes | python3 -c '
import json, sys
for n in json.load(sys.stdin)["items"]:
    print(n["name"], n["state"], ",".join(c["type"] + "=" + c["message"].replace(" ", "_") for c in n["conditions"]) or "-")' 2>/dev/null
}
# placement WORKLOAD: "node:state" of each of its replicas, sorted; "none" without any.
placement() { api "/v1/replicas?workload=$1" | python3 -c 'import json,sys; print(" ".join(sorted(r["node"] + ":" + r["state"] for r in json.load(sys.stdin)["items"])) or "none")' 2>/dev/null; }
# events_say PREFIX: an audit event's message starts with PREFIX.
events_say() { api "/v1/events" | python3 -c 'import json,sys; sys.exit(0 if any(e["message"].startswith(sys.argv[1]) for e in json.load(sys.stdin)["items"]) else 1)' "$1"; }
# cli_node_state NODE: the STATE column of `gantry get nodes` for NODE.
cli_node_state() { gt_host_exec 1 "$GANTRY" --server http://198.18.0.1:7700 get nodes | awk -v n="$1" '$1 == n {print $3}'; }
unschedulable() { api "/v1/workloads/$1" | python3 -c 'import json,sys; print(" ".join(c["message"] for c in json.load(sys.stdin)["status"]["conditions"] if c["type"] == "Unschedulable"))' 2>/dev/null; }
web() { printf '{"name":"web","image":"busybox","command":["httpd","-f","-p","8080","-h","/www"],"replicas":%d,"resources":{"cpu":"10m","memory":"16Mi"},"stop_grace":"1s"}' "$1"; }

gt_check "a leader is elected" gt_wait_for leader 30 bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 http://198.18.0.1:7700/v1/cluster | grep -q '\"leader\":1'"
gt_check "node1 registers" gt_wait_for node 30 bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 http://198.18.0.1:7700/v1/nodes | grep -q '\"state\":\"ready\"'"
api /v1/apply -X POST -d "$(web 2)" >/dev/null
gt_check "2 web replicas run" gt_wait_for "2 running" 30 running_is web 2

# ---- (a) disk full
before=$(for id in $(containers); do pid_of "$id"; done | tr '\n' ' ')
dd if=/dev/zero of="$DATA/fill" bs=64k >/dev/null 2>&1
gt_log "data dir filled: $(df -h "$DATA" | tail -n 1)"
scale web 3
failed_with_disk_full() { replicas web | grep -c " failed false agent_database:_disk_full_at_${DB}" >/dev/null; }
gt_check "the new replica is reported failed: disk full at $DB" gt_wait_for "failed report" 20 failed_with_disk_full
new_id=$(replicas web | awk '$2 == "failed" {print $1}' | head -n 1)
gt_log "refused replica: $new_id; $(replicas web | tr '\n' ';')"
gt_check "the agent logs that its database refuses writes" grep -q 'agent database refuses writes' "$ALOG"
gt_check "no container was started for it" bash -c "! $RUNTIME --root $RT list -q | grep -qx '$new_id'"
sleep 2
gt_check "the agent keeps running" kill -0 "$APID"
gt_check "the 2 replicas it had keep running (pids $before)" [ "$before" = "$(for id in $(containers); do pid_of "$id"; done | tr '\n' ' ')" ]
gt_check "and are still reported running" [ "$(running_count web)" = 2 ]
gt_check "the refused replica is still not running" bash -c "! $RUNTIME --root $RT list -q | grep -qx '$new_id'"

# The node as a whole: StoragePressure with the agent's reason, so nothing new goes there.
pressure_shown() { nodes | grep -c "^node1 ready StoragePressure=agent_database:_disk_full_at_${DB}_(" >/dev/null; }
gt_check "node1 shows the StoragePressure condition with the agent's reason" gt_wait_for "StoragePressure" 10 pressure_shown
gt_log "nodes: $(nodes | tr '\n' ';')"
gt_check "gantry get nodes shows node1 ready,StoragePressure" [ "$(cli_node_state node1)" = "ready,StoragePressure" ]
gt_check "an audit event says so" events_say "node node1: storage refuses writes: agent database: disk full at $DB ("
burst() { printf '{"name":"burst","image":"busybox","command":["sleep","3600"],"replicas":%d,"resources":{"cpu":"10m","memory":"8Mi"},"stop_grace":"1s"}' "$1"; }
burst_is() { [ "$(placement burst)" = "$1" ]; }
api /v1/apply -X POST -d "$(burst 1)" >/dev/null
waits_for_storage() { unschedulable burst | grep -c "0/1 nodes available: 1 under StoragePressure (the agent's database refuses writes)" >/dev/null; }
gt_check "a new workload, node1 alone, waits: Unschedulable for StoragePressure" gt_wait_for "Unschedulable" 20 waits_for_storage
gt_log "burst: $(unschedulable burst)"
gt_check "and none of its replicas is placed on node1" burst_is none
gt_host_spawn agent2 2 "$AGENT" --servers 198.18.0.1:7702 --name node2 \
    --data-dir "$DATA2" --runtime-root "$RT2" --netns-prefix "${PREFIX}n2-" \
    --subnet 198.19.8.0/24 --bridge gsbr0 --cpu 4 --memory 2Gi
A2PID=$GT_LAST_PID
gt_check "node2 joins: the waiting replica runs there" gt_wait_for "burst on node2" 40 burst_is "node2:running"
scale burst 3
# Spread alone would put the next replica on node1, which holds none of burst's.
gt_check "scaled to 3, both new replicas go to node2" gt_wait_for "3 on node2" 40 burst_is "node2:running node2:running node2:running"
gt_check "node1 still shows StoragePressure" pressure_shown
gt_check "node1's 2 running web replicas stay where they are" [ "$(running_count web)" = 2 ]

rm -f "$DATA/fill"
gt_check "space freed: the waiting replica starts (3 running)" gt_wait_for "3 running" 30 running_is web 3
gt_check "the agent logs that writes succeed again" grep -q 'agent database takes writes again' "$ALOG"
gt_check "agent.db records all 3" gt_wait_for "3 rows" 10 bash -c "[ \"\$(sqlite3 '$DB' 'SELECT count(*) FROM replicas' 2>/dev/null)\" = 3 ]"
pressure_gone() { nodes | grep -cx "node1 ready -" >/dev/null; }
gt_check "node1's StoragePressure clears" gt_wait_for "condition cleared" 20 pressure_gone
gt_check "gantry get nodes shows node1 ready" [ "$(cli_node_state node1)" = "ready" ]
gt_check "an audit event says so" events_say "node node1: storage takes writes again"
scale burst 4
gt_check "scaled to 4, the new replica goes to node1 again" gt_wait_for "burst on node1" 40 burst_is "node1:running node2:running node2:running node2:running"
# node2 leaves: burst is deleted (its replicas stop), node2 is cordoned so that the sections
# below place on node1 alone, and its agent stops.
api /v1/workloads/burst -X DELETE >/dev/null
burst_gone() { burst_is none && [ -z "$("$RUNTIME" --root "$RT2" list -q)" ]; }
gt_check "burst's replicas are gone" gt_wait_for "burst gone" 40 burst_gone
api /v1/nodes/node2/cordon -X POST >/dev/null
node2_cordoned() { nodes | grep -c '^node2 cordoned ' >/dev/null; }
gt_check "node2 is cordoned" gt_wait_for "node2 cordoned" 10 node2_cordoned
gt_stop "$A2PID" TERM

# ---- (b) rows lost while the agent is down
api /v1/apply -X POST -d '{"name":"solo","image":"busybox","command":["sleep","3600"],"replicas":1,"resources":{"cpu":"10m","memory":"8Mi"},"stop_grace":"1s"}' >/dev/null
gt_check "solo runs" gt_wait_for "solo running" 30 running_is solo 1
solo_id=$(replicas solo | awk '{print $1}')
kept_id=$(replicas web | awk '$2 == "running" {print $1}' | head -n 1)
kept_pid=$(pid_of "$kept_id")
gt_stop "$APID" KILL
sqlite3 "$DB" "DELETE FROM replicas WHERE id IN ('$kept_id', '$solo_id')"
gt_check "rows of $kept_id and $solo_id are gone" bash -c "! sqlite3 '$DB' 'SELECT id FROM replicas' | grep -qE '^($kept_id|$solo_id)\$'"
api /v1/workloads/solo -X DELETE >/dev/null
start_agent
gt_check "the unrecorded containers are adopted at start" gt_wait_for "adoption" 20 bash -c "[ \$(grep -c 'adopted a container agent.db has no record of' '$ALOG') = 2 ]"
gt_check "solo's container, no longer wanted by the leader, is stopped" gt_wait_for "solo stopped" 40 bash -c "! $RUNTIME --root $RT list -q | grep -qx '$solo_id'"
gt_check "solo is gone from the leader" gt_wait_for "solo gone" 20 bash -c "[ -z \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 'http://198.18.0.1:7700/v1/replicas?workload=solo' | grep -o '\"id\"')\" ]"
gt_check "$kept_id, still placed here, is adopted: same process" [ "$kept_pid" = "$(pid_of "$kept_id")" ]
gt_check "and recorded again" gt_wait_for "kept row" 10 bash -c "sqlite3 '$DB' 'SELECT id FROM replicas WHERE length(spec) > 0' | grep -qx '$kept_id'"
gt_check "3 web replicas run" gt_wait_for "3 running" 20 running_is web 3
gt_check "containers are exactly what the leader places" gt_wait_for "converged" 20 bash -c "[ \"\$($RUNTIME --root $RT list -q | sort | tr '\n' ' ')\" = \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 5 http://198.18.0.1:7700/v1/replicas | python3 -c 'import json,sys; print(\" \".join(sorted(r[\"id\"] for r in json.load(sys.stdin)[\"items\"] if r[\"state\"] not in (\"stopping\",\"stopped\",\"lost\"))) + \" \")')\" ]"

# ---- (c) a damaged agent.db
pids=$(for id in $(containers); do pid_of "$id"; done | tr '\n' ' ')
addresses() { api /v1/replicas?workload=web | python3 -c 'import json,sys; print(" ".join(sorted(r["id"] + "=" + r["address"] for r in json.load(sys.stdin)["items"])))'; }
addrs=$(addresses)
gt_stop "$APID" TERM
head -c 65536 /dev/urandom > "$DB"
scale web 4
start_agent
gt_check "the damaged file is moved aside, both paths logged" gt_wait_for "move-aside log" 20 grep -q "agent database damaged: moved aside.*path=$DB moved_to=$DB.corrupt-" "$ALOG"
gt_check "it is kept as $DB.corrupt-*" bash -c "ls $DB.corrupt-* >/dev/null"
gt_check "4 web replicas run" gt_wait_for "4 running" 30 running_is web 4
gt_check "the 3 earlier containers were adopted, not restarted (pids $pids)" [ "$(for id in $(containers); do pid_of "$id"; done | grep -cxE "$(echo $pids | tr ' ' '|')")" = 3 ]
gt_check "containers are exactly what the leader places" [ "$(containers)" = "$(placed)" ]
gt_check "the adopted replicas kept their addresses ($addrs)" bash -c "for a in $addrs; do grep -qwF \"\$a\" <<<'$(addresses)' || exit 1; done"
gt_check "agent.db records every replica again" gt_wait_for "4 rows" 10 bash -c "[ \"\$(sqlite3 '$DB' 'SELECT count(*) FROM replicas WHERE length(spec) > 0' 2>/dev/null)\" = 4 ]"

# ---- (d) an agent.db the agent cannot write: a read-only filesystem, empty (no database can
# be created) or holding one. The agent exits before it touches a container.
RO=$GT_TMP/ro
mkdir -p "$RO"
mount -t tmpfs -o size=1m,mode=0700 tmpfs "$RO" || exit 1
gt_on_exit "umount -l $RO"
pids=$(for id in $(containers); do pid_of "$id"; done | tr '\n' ' ')
RO_N=0
# ro_agent WHAT PROBLEM: an agent on $RO exits non-zero, naming the file and PROBLEM.
ro_agent() {
    mount -o remount,ro "$RO" || return 1
    RO_N=$((RO_N + 1))
    gt_host_spawn "ro$RO_N" 1 "$AGENT" --servers 198.18.0.1:7702 --name node-ro \
        --data-dir "$RO" --runtime-root "$RT" --netns-prefix "$PREFIX" \
        --subnet 198.19.7.0/24 --bridge gsbr0
    local pid=$GT_LAST_PID rc=0
    gt_check "$1: the agent exits" gt_wait_for "agent exit" 20 bash -c "! kill -0 $pid 2>/dev/null"
    kill -0 "$pid" 2>/dev/null || { wait "$pid"; rc=$?; }
    gt_check "$1: non-zero ($rc)" [ "$rc" -ne 0 ]
    gt_check "$1: saying which file and what to do" bash -c "grep 'gantry-agent: ' '$GT_TMP/ro$RO_N.log' | grep 'make its directory writable' | grep -q 'agent database: $2 at $RO/agent.db'"
    mount -o remount,rw "$RO"
}
ro_agent "read-only dir, no agent.db" "cannot open"
sqlite3 "$RO/agent.db" 'PRAGMA user_version=1' && sync
ro_agent "read-only agent.db" "read-only"
gt_check "the node's containers were not touched (pids $pids)" [ "$(for id in $(containers); do pid_of "$id"; done | tr '\n' ' ')" = "$pids" ]
gt_finish
