# The fleet end to end on three hosts (network namespaces), each running a control-plane
# server and an agent, with real containers: a workload of 6 replicas spreads 2/2/2; an
# agent restart restarts no container; the loss of a node (agent and containers killed)
# gets its replicas replaced on the others; SIGKILL of the leader during a scale from 6 to
# 12 ends with 12 running, none twice; a spec change rolls out without the ready count
# ever dropping below the desired count (sampled every 200 ms); a replica's log is served
# through the API; a node that returns still running replaced replicas stops them.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
for b in "$SCHED" "$AGENT" "$RUNTIME"; do [ -x "$b" ] || gt_skip "$b is not built"; done

N=3
gt_hosts_create $N || exit 1
PREFIX="fl$$-"
gt_on_exit "for i in 1 2 3; do for id in \$($RUNTIME --root $GT_TMP/rt\$i list -q 2>/dev/null); do $RUNTIME --root $GT_TMP/rt\$i delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns 2>/dev/null; done"

rootfs=$GT_TMP/rootfs
mkdir -p "$rootfs/bin" "$rootfs/www"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for t in sh httpd sleep true; do ln -s busybox "$rootfs/bin/$t"; done
echo ok > "$rootfs/www/index.html"

declare -A SPID APID
bootstrap=""
for ((i = 1; i <= N; i++)); do bootstrap+="${bootstrap:+,}$i=198.18.0.$i:7701"; done
servers=""
for ((i = 1; i <= N; i++)); do servers+="${servers:+,}198.18.0.$i:7702"; done

start_server() {
    gt_host_spawn "s$1" "$1" "$SCHED" --id "$1" --data-dir "$GT_TMP/s$1" \
        --raft-addr "198.18.0.$1:7701" --api-addr "198.18.0.$1:7700" \
        --agent-addr "198.18.0.$1:7702" --bootstrap "$bootstrap"
    SPID[$1]=$GT_LAST_PID
}
start_agent() {
    gt_host_spawn "a$1-$2" "$1" "$AGENT" --servers "$servers" --name "node$1" \
        --data-dir "$GT_TMP/a$1" --runtime-root "$GT_TMP/rt$1" --netns-prefix "$PREFIX$1-" \
        --subnet "198.19.$1.0/24" --bridge gybr0 --cpu 2 --memory 2Gi
    APID[$1]=$GT_LAST_PID
}
for ((i = 1; i <= N; i++)); do
    "$AGENT" --data-dir "$GT_TMP/a$i" image import busybox "$rootfs" >/dev/null || exit 1
    start_server "$i"
done
for ((i = 1; i <= N; i++)); do start_agent "$i" 1; done

# api HOST PATH [CURL ARGS]: a request to the server on HOST (followers forward); a 503 (an
# election under way) is repeated as a client would.
api() {
    local h=$1 path=$2; shift 2
    nsenter --net="/run/netns/${GT_HOST_NS[$h]}" curl --retry 30 --retry-max-time 60 -s \
        --max-time 5 "$@" "http://198.18.0.$h:7700$path"
}
# summary HOST: "running ready total nodes" of workload web, nodes as node=count,...
summary() {
    api "$1" /v1/replicas?workload=web | python3 -c '
import json, sys, collections
items = [r for r in json.load(sys.stdin)["items"] if r["workload"] == "web"]
live = [r for r in items if r["state"] not in ("stopping", "stopped", "lost")]
running = [r for r in live if r["state"] == "running"]
ready = [r for r in running if r["ready"]]
nodes = collections.Counter(r["node"] for r in running)
gens = collections.Counter(r["generation"] for r in running)
print(len(running), len(ready), len(live), ",".join("%s=%d" % kv for kv in sorted(nodes.items())),
      ",".join("g%d=%d" % kv for kv in sorted(gens.items())))' 2>/dev/null
}
running_is() { [ "$(summary "$1" | awk '{print $1}')" = "$2" ] && [ "$(summary "$1" | awk '{print $3}')" = "$2" ]; }
leader_of() { api "$1" /v1/cluster | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])' 2>/dev/null; }
nodes_ready() { [ "$(api "$1" /v1/nodes | python3 -c 'import json,sys; print(sum(n["state"]=="ready" for n in json.load(sys.stdin)["items"]))' 2>/dev/null)" = "$2" ]; }
spec() { printf '{"name":"web","image":"busybox","command":["httpd","-f","-p","8080","-h","/www"],"replicas":%d,"resources":{"cpu":"100m","memory":"16Mi"},"stop_grace":"1s","env":{"VERSION":"%s"},"update":{"max_surge":1,"max_unavailable":0}}' "$1" "$2"; }

gt_check "a leader is elected" gt_wait_for leader 30 bash -c "[ -n \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 http://198.18.0.1:7700/v1/cluster | grep -o '\"leader\":[1-9]')\" ]"
gt_check "three nodes register" gt_wait_for nodes 30 nodes_ready 1 3
applied_6() { api 1 /v1/apply -X POST -d "$(spec 6 v1)" | grep -c created >/dev/null; }
gt_check "apply 6 replicas" applied_6
gt_check "6 replicas run" gt_wait_for "6 running" 30 running_is 1 6
gt_log "placement: $(summary 1)"
gt_check "spread 2/2/2" bash -c "[ \"\$(echo '$(summary 1)' | awk '{print \$4}')\" = node1=2,node2=2,node3=2 ]"

# A replica's log is served through the API from its node's agent.
api 1 /v1/apply -X POST -d '{"name":"talker","image":"busybox","command":["sh","-c","echo hello-from-$HOSTNAME; sleep 3600"],"replicas":1,"resources":{"cpu":"10m","memory":"8Mi"},"stop_grace":"1s"}' >/dev/null
talker_id() { api 1 /v1/replicas?workload=talker | python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin)["items"] if x["state"]=="running"]; print(r[0]["id"] if r else "")' 2>/dev/null; }
gt_wait_for "talker runs" 20 bash -c "[ -n \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 'http://198.18.0.1:7700/v1/replicas?workload=talker' | grep -o running)\" ]"
tid=$(talker_id)
gt_check "logs of replica $tid are served through the API" gt_wait_for "talker's log" 10 bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 5 http://198.18.0.1:7700/v1/replicas/$tid/logs | grep -q hello-from-"
gt_check "logs of an unknown replica: 404" [ "$(api 1 /v1/replicas/nope-1/logs -o "$GT_TMP/discard" -w '%{http_code}')" = 404 ]
api 1 /v1/workloads/talker -X DELETE >/dev/null
gt_wait_for "talker gone" 20 bash -c "[ \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 'http://198.18.0.1:7700/v1/replicas?workload=talker')\" = '{\"items\":[]}' ]"

# An agent restart restarts no container: checked once the new agent adopted its
# containers and has a session, and 2 s more in which a wrong restart would show.
pids_of() { for id in $("$RUNTIME" --root "$GT_TMP/rt$1" list -q); do "$RUNTIME" --root "$GT_TMP/rt$1" state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; done | sort | tr '\n' ' '; }
before=$(pids_of 2)
gt_stop "${APID[2]}" TERM
start_agent 2 2
gt_check "agent restart: a new session" gt_wait_for "agent 2's session" 30 \
    grep -c 'msg="session established"' "$GT_TMP/a2-2.log"
sleep 2
gt_check "agent restart: containers kept (pids $before)" [ "$before" = "$(pids_of 2)" ]
gt_check "agent restart: still 6 running" running_is 1 6

# Node loss: agent 3 and its containers are killed.
gt_stop "${APID[3]}" KILL
for id in $("$RUNTIME" --root "$GT_TMP/rt3" list -q); do "$RUNTIME" --root "$GT_TMP/rt3" delete -f "$id" >/dev/null 2>&1; done
t0=$(date +%s)
# The replacement's speed is measured by tests/bench/fleet/node-loss.sh; here it must happen.
gt_check "node loss: node3's replicas are replaced" gt_wait_for "replacement" 60 bash -c "[ \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 'http://198.18.0.1:7700/v1/replicas?workload=web' | python3 -c 'import json,sys; r=[x for x in json.load(sys.stdin)[\"items\"] if x[\"state\"]==\"running\" and x[\"node\"]!=\"node3\"]; print(len(r))')\" = 6 ]"
took=$(( $(date +%s) - t0 ))
gt_log "node loss: replaced in ${took}s; $(summary 1)"
gt_check "node3 is marked down" bash -c "api() { nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 5 \"\$@\"; }; api http://198.18.0.1:7700/v1/nodes | grep -q '\"name\":\"node3\".*\"state\":\"down\"'"

# SIGKILL of the leader during a scale from 6 to 12.
leader=$(leader_of 1)
other=1; [ "$leader" = 1 ] && other=2
gt_log "leader is server $leader; scaling through server $other"
api "$other" /v1/workloads/web/scale -X POST -d '{"replicas":12}' >/dev/null
gt_stop "${SPID[$leader]}" KILL
survivor=$other
gt_check "after leader kill: 12 running" gt_wait_for "12 running" 40 running_is "$survivor" 12
containers() { for i in 1 2; do "$RUNTIME" --root "$GT_TMP/rt$i" list -q; done; }
gt_check "after leader kill: no replica id twice" bash -c "[ \$( (for i in 1 2; do $RUNTIME --root $GT_TMP/rt\$i list -q; done) | sort | uniq -d | wc -l) = 0 ]"
gt_wait_for "12 containers" 15 bash -c "[ \$( (for i in 1 2; do $RUNTIME --root $GT_TMP/rt\$i list -q; done) | wc -l) = 12 ]"
gt_log "containers on the live nodes: $(containers | wc -l)"
gt_check "after leader kill: exactly 12 containers" [ "$(containers | wc -l)" = 12 ]
start_server "$leader"

# A rolling update keeps the ready count at or above desired.
api "$survivor" /v1/apply -X POST -d "$(spec 12 v2)" >/dev/null
min=99
for ((k = 0; k < 300; k++)); do
    s=$(summary "$survivor")
    ready=$(echo "$s" | awk '{print $2}')
    [ -n "$ready" ] && [ "$ready" -lt "$min" ] && min=$ready
    echo "$s" | awk '{print $5}' | grep -qx 'g2=12' && break
    sleep 0.2
done
gt_log "rolling update: min ready $min; $(summary "$survivor")"
gt_check "rolling update completes (all 12 on generation 2)" bash -c "echo '$(summary "$survivor")' | awk '{print \$5}' | grep -qx g2=12"
gt_check "rolling update: ready never below 12 (min $min)" [ "$min" -ge 12 ]

# A node that comes back still running replicas that were replaced meanwhile: the agent is
# told to stop them.
gt_stop "${APID[2]}" KILL
running_on_2=$("$RUNTIME" --root "$GT_TMP/rt2" list -q | wc -l)
gt_log "agent 2 killed; its $running_on_2 containers keep running"
gt_check "node2's replicas are replaced on node1" gt_wait_for "replaced on node1" 20 bash -c "[ \"\$(nsenter --net=/run/netns/${GT_HOST_NS[$survivor]} curl -s --max-time 2 'http://198.18.0.$survivor:7700/v1/replicas?workload=web' | python3 -c 'import json,sys; print(sum(1 for x in json.load(sys.stdin)[\"items\"] if x[\"state\"]==\"running\" and x[\"node\"]==\"node1\"))')\" = 12 ]"
start_agent 2 3
gt_check "the returning node's replaced containers are stopped" gt_wait_for "rt2 empty" 30 bash -c "[ \$($RUNTIME --root $GT_TMP/rt2 list -q | wc -l) = 0 ]"
gt_check "still 12 running" running_is "$survivor" 12

# A stop that was carried out while its report was lost (with a leader, say) does not leave
# the replica "stopping", holding its node's room, for ever: asked again, the agent answers
# that it does not hold the replica, and the replica is gone.
gt_stop "${APID[1]}" KILL
api "$survivor" /v1/apply -X POST -d "$(spec 11 v2)" >/dev/null
stopping_on_1() { api "$survivor" '/v1/replicas?workload=web' | python3 -c 'import json,sys; print(" ".join(x["id"] for x in json.load(sys.stdin)["items"] if x["state"] in ("stopping", "lost") and x["node"]=="node1"))' 2>/dev/null; }
some_stopping() { [ -n "$(stopping_on_1)" ]; }
none_stopping() { [ -z "$(stopping_on_1)" ]; }
gt_wait_for "a replica stopping on node1" 10 some_stopping
ghost=$(stopping_on_1)
gt_log "stopping on node1 while its agent is down: $ghost"
for id in $ghost; do
    "$RUNTIME" --root "$GT_TMP/rt1" delete -f "$id" >/dev/null 2>&1
    python3 -c 'import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); db.execute("DELETE FROM replicas WHERE id=?", (sys.argv[2],)); db.commit()' "$GT_TMP/a1/agent.db" "$id"
done
start_agent 1 2
gt_check "the replica whose report was lost is gone" gt_wait_for "no stopping replica" 20 none_stopping
gt_check "11 running" gt_wait_for "11 running" 20 running_is "$survivor" 11
gt_finish
