# Gantry clusters on the multi-host harness: a busybox image, control-plane servers and
# agents on hosts, and helpers to talk to the API from inside a host. Source lib.sh and
# netns.sh first, then call gt_cluster_init once the hosts exist.
#
#   gt_hosts_create 4 && gt_cluster_init 3 cl        # servers on hosts 1-3, prefix "cl"
#   gt_cluster_image "$GT_TMP/rootfs" sh sleep httpd # busybox with these applets
#   gt_server_start 1 [LOG-SUFFIX] [FLAGS...]        # SPID[1]
#   gt_agent_start 4 [FLAGS...]                       # node4 on host 4; APID[4]
#   gt_api 1 /v1/nodes [CURL ARGS...]                 # an API request through host 1
#   gt_gantry 1 get nodes                             # the CLI through host 1

SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
GANTRY=$GT_BUILD/ctl/gantry
declare -A SPID APID
GT_BOOTSTRAP=""
GT_AGENT_SERVERS=""
GT_NS_PREFIX=""

# gt_cluster_init SERVERS PREFIX: servers will run on hosts 1..SERVERS; replica namespaces
# are named PREFIX$$-HOST-ID. Every container and namespace the agents leave is removed at
# exit.
gt_cluster_init() {
    local n=$1 i
    GT_NS_PREFIX="$2$$-"
    for ((i = 1; i <= n; i++)); do
        GT_BOOTSTRAP+="${GT_BOOTSTRAP:+,}$i=198.18.0.$i:7701"
        GT_AGENT_SERVERS+="${GT_AGENT_SERVERS:+,}198.18.0.$i:7702"
    done
    # wireguard-go outlives its agent (as the tunnels do) and its host namespace: stopped by
    # the pid the agent recorded.
    gt_on_exit "for f in $GT_TMP/a*/wireguard.pid; do [ -f \$f ] && kill -9 \$(cat \$f) 2>/dev/null; done; rm -f /var/run/wireguard/gw$$-*.sock; true"
    gt_on_exit "for d in $GT_TMP/rt*; do [ -d \$d ] || continue; for id in \$($RUNTIME --root \$d list -q 2>/dev/null); do $RUNTIME --root \$d delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$GT_NS_PREFIX'); do ip netns del \$ns 2>/dev/null; done"
}

# gt_cluster_image DIR APPLET...: a root filesystem of static busybox and the applets.
gt_cluster_image() {
    local dir=$1 t
    shift
    mkdir -p "$dir/bin"
    cp "$(command -v busybox)" "$dir/bin/busybox"
    for t in "$@"; do ln -sf busybox "$dir/bin/$t"; done
}

# gt_cluster_load_image DIR: the image with the load scripts of tests/integration/load:
# `load` burns CPU while the flag file $GT_TMP/flags/on exists, `queue` prints the served
# queue length. gt_cluster_flags HOSTS starts, on every host, the stream of the flag
# (flagd.py, port 9091) and an HTTP server of $GT_TMP/flags (port 9090).
gt_cluster_load_image() {
    gt_cluster_image "$1" sh sleep wget route awk cat timeout httpd mkdir nc
    cp "$GT_SRC/tests/integration/load/load" "$GT_SRC/tests/integration/load/gw" \
        "$GT_SRC/tests/integration/load/queue" "$1/bin/"
}
gt_cluster_flags() {
    local i
    mkdir -p "$GT_TMP/flags"
    for ((i = 1; i <= $1; i++)); do
        gt_host_spawn "flags$i" "$i" busybox httpd -f -p 9090 -h "$GT_TMP/flags"
        gt_host_spawn "flagd$i" "$i" python3 "$GT_SRC/tests/integration/load/flagd.py" \
            "$GT_TMP/flags" 9091
    done
}

# gt_server_start HOST [LOG-SUFFIX] [FLAGS...]: the server of HOST (restarts reuse its data).
gt_server_start() {
    local i=$1 suffix=${2:-}
    shift
    [ $# -gt 0 ] && shift
    gt_host_spawn "s$i$suffix" "$i" "$SCHED" --id "$i" --data-dir "$GT_TMP/s$i" \
        --raft-addr "198.18.0.$i:7701" --api-addr "198.18.0.$i:7700" \
        --agent-addr "198.18.0.$i:7702" --bootstrap "$GT_BOOTSTRAP" "$@"
    SPID[$i]=$GT_LAST_PID
}

# gt_agent_start HOST [FLAGS...]: node HOST's agent, with its own runtime root and subnet.
gt_agent_start() {
    local i=$1
    shift
    gt_host_spawn "a$i" "$i" "$AGENT" --servers "$GT_AGENT_SERVERS" --name "node$i" \
        --data-dir "$GT_TMP/a$i" --runtime-root "$GT_TMP/rt$i" --netns-prefix "$GT_NS_PREFIX$i-" \
        --subnet "198.19.$i.0/24" --bridge gybr0 --tunnel-interface "gw$$-$i" "$@"
    APID[$i]=$GT_LAST_PID
}

# gt_image_import HOST ROOTFS: the busybox image in node HOST's store.
gt_image_import() {
    "$AGENT" --data-dir "$GT_TMP/a$1" image import busybox "$2" >/dev/null
}

# gt_api HOST PATH [CURL ARGS...]: an API request from inside host HOST; a 503 (an election
# under way) is repeated as gt_curl does.
gt_api() {
    local h=$1 path=$2
    shift 2
    nsenter --net="/run/netns/${GT_HOST_NS[$h]}" curl --retry 30 --retry-max-time 60 -s \
        --max-time 5 "$@" "http://198.18.0.$h:7700$path"
}

gt_gantry() {
    local h=$1
    shift
    nsenter --net="/run/netns/${GT_HOST_NS[$h]}" "$GANTRY" --server "http://198.18.0.$h:7700" "$@"
}

gt_leader_of() {
    gt_api "$1" /v1/cluster | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])' 2>/dev/null
}

# gt_pools_warm N [SIZE]: true when the agents of hosts 1..N hold SIZE (4, the agents'
# default --cni-pool) replica networks ready each: what a node that has been up a while
# has, and what benchmarks of start times measure from.
gt_pools_warm() {
    local i
    for ((i = 1; i <= $1; i++)); do
        [ "$(ip netns list | grep -c "^$GT_NS_PREFIX$i-pool\.")" -ge "${2:-4}" ] || return 1
    done
}

# gt_routes HOST: the agent's routes on HOST (proto 152), "DST via GW" or "DST dev IF" each,
# sorted, ','-separated; gt_routed HOST WANT: whether they are WANT.
gt_routes() { ip -n "${GT_HOST_NS[$1]}" route show proto 152 | awk '{print $1, $2, $3}' | sort | tr '\n' ','; }
gt_routed() { [ "$(gt_routes "$1")" = "$2" ]; }

# gt_running WORKLOAD: "NODE ID ADDRESS" of each running replica of WORKLOAD, by node.
gt_running() {
    gt_api 1 "/v1/replicas?workload=$1" | python3 -c '
import json, sys
for r in sorted(json.load(sys.stdin)["items"], key=lambda r: r["node"]):
    if r["state"] == "running":
        print(r["node"], r["id"], r["address"])'
}

# gt_all_reach WORKLOAD N: N replicas of WORKLOAD run, and each pings the replicas on the
# other nodes once (2 s each at most), from its own network namespace.
gt_all_reach() {
    local a b na ida nb addrb ok=0 rs
    mapfile -t rs < <(gt_running "$1")
    [ "${#rs[@]}" -eq "$2" ] || return 1
    for a in "${rs[@]}"; do
        read -r na ida _ <<<"$a"
        for b in "${rs[@]}"; do
            read -r nb _ addrb <<<"$b"
            [ "$na" = "$nb" ] && continue
            if ! ip netns exec "$GT_NS_PREFIX${na#node}-$ida" busybox ping -c1 -W2 "$addrb" \
                >/dev/null 2>&1; then
                gt_log "$na ($ida) does not reach $nb at $addrb"
                ok=1
            fi
        done
    done
    return $ok
}

# gt_nodes_ready HOST N: true when N nodes are ready.
gt_nodes_ready() {
    [ "$(gt_api "$1" /v1/nodes | grep -o '"state":"ready"' | wc -l)" = "$2" ]
}

# gt_has_leader HOST: true when HOST knows a leader.
gt_has_leader() {
    [ -n "$(gt_api "$1" /v1/cluster | grep -o '"leader":[1-9]')" ]
}

# gt_leader_debug HOST: logs what the leader's duties are doing (from /metrics), to explain
# a check that waited in vain.
gt_leader_debug() {
    gt_log "leader seen from host $1: $(gt_api "$1" /metrics | grep -E '^gantry_(leader|raft_(queued|inflight|is_leader|term|commit|applied))' | tr '\n' ' ')"
    gt_log "replicas seen from host $1: $(gt_api "$1" '/v1/replicas?stale=1' | python3 -c '
import json, sys
for r in json.load(sys.stdin)["items"]:
    if r["state"] not in ("stopped",):
        print(r["id"], r.get("node"), r["state"], repr(r.get("reason", "")), end="; ")' 2>&1)"
}

# gt_agents_debug: logs every agent's threads and child processes with where they wait.
gt_agents_debug() {
    local i
    for i in "${!APID[@]}"; do
        gt_log "agent $i (pid ${APID[$i]}) threads: $(ps -T -o tid=,stat=,wchan:24= -p "${APID[$i]}" 2>/dev/null | tr -s ' ' | tr '\n' ';')"
        gt_log "agent $i children: $(ps --ppid "${APID[$i]}" -o pid=,stat=,wchan:24=,args= 2>/dev/null | tr -s ' ' | tr '\n' ';')"
        gt_log "agent $i replicas: $(python3 -c '
import sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=2)
for row in db.execute("SELECT id, state, address, reason FROM replicas"):
    print(*row, end="; ")' "$GT_TMP/a$i/agent.db" 2>&1)"
    done
}
