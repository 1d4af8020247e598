# Replicas of different nodes of one cloud reach each other by address (docs/network.md,
# "Between nodes"): four hosts (network namespaces on one switch), a server and agents
# with their own replica subnets. The leader records each node's subnet and the address
# it connects from and tells every agent the others; each agent routes to their subnets
# through them. Checked: the subnets and addresses in `get nodes -o wide`; the routes on
# every host; a replica on each node pings the replicas of the other two; a node whose
# subnet overlaps another's is left out of the others' routes with a warning; a node that
# comes back with another subnet moves its route; a node started without --subnet gets
# the first free subnet of the cluster network (--cluster-network) from the leader, keeps
# it across a restart, and its replica reaches the others; an agent restart keeps every
# replica reachable; a node that is down is removed (one that is up is not) and the others
# drop their route to it; a new cluster whose network covers a route of its server's host
# is refused; a removed workload leaves no namespace behind.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/cluster.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

gt_hosts_create 4 || exit 1
gt_cluster_init 1 nr
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sh sleep ping
for i in 1 2 3 4; do gt_image_import "$i" "$rootfs"; done
gt_server_start 1 "" --cluster-network 198.20.0.0/16 --node-subnet-size 24
for i in 1 2 3; do gt_agent_start "$i"; done
gt_check "three nodes are ready" gt_wait_for "3 nodes" 60 gt_nodes_ready 1 3

gt_gantry 1 get nodes -o wide >"$GT_TMP/nodes.out" 2>&1
gt_log "nodes: $(tr '\n' '|' <"$GT_TMP/nodes.out")"
gt_check "get nodes -o wide shows node2's subnet and the address it connects from" \
    grep -Eq "^node2 .* 198\.18\.0\.2 +198\.19\.2\.0/24 " "$GT_TMP/nodes.out"

routed() { gt_routed "$@"; }
gt_check "host 1 routes to the subnets of nodes 2 and 3" gt_wait_for "routes on host 1" 20 \
    routed 1 "198.19.2.0/24 via 198.18.0.2,198.19.3.0/24 via 198.18.0.3,"
gt_check "host 3 routes to the subnets of nodes 1 and 2" gt_wait_for "routes on host 3" 20 \
    routed 3 "198.19.1.0/24 via 198.18.0.1,198.19.2.0/24 via 198.18.0.2,"

cat >"$GT_TMP/ping.json" <<'EOF'
{"name": "pinger", "image": "busybox", "command": ["sleep", "3600"], "replicas": 3,
 "resources": {"cpu": "50m", "memory": "16Mi"}, "stop_grace": "1s"}
EOF
gt_api 1 /v1/apply -X POST --data-binary "@$GT_TMP/ping.json" >/dev/null
replicas() { gt_running pinger; }
spread() { [ "$(replicas | awk '{print $1}' | tr '\n' ' ')" = "node1 node2 node3 " ]; }
gt_check "the three replicas run, one per node" gt_wait_for "pinger spread" 90 spread

all_reach() { gt_all_reach pinger "${1:-3}"; }
gt_check "a replica on each node reaches the replicas on the other two by address" \
    gt_wait_for "pings across nodes" 20 all_reach

# A fourth node whose subnet is node1's: the others leave it out, and say why.
gt_agent_start 4 --subnet 198.19.1.0/24
gt_check "a fourth node joins" gt_wait_for "4 nodes" 60 gt_nodes_ready 1 4
warned() { grep -q "network peer left out: its subnet overlaps.*node=node4" "$GT_TMP/a2.log"; }
gt_check "host 2 leaves out node4, whose subnet overlaps node1's, and says so" \
    gt_wait_for "overlap warning" 20 warned
gt_check "and keeps its route to node1" \
    routed 2 "198.19.1.0/24 via 198.18.0.1,198.19.3.0/24 via 198.18.0.3,"
gt_check "node4 leaves out node1" grep -q "network peer left out: its subnet overlaps.*node=node1" \
    "$GT_TMP/a4.log"

# node4 comes back with a subnet of its own, then with another: its route follows.
gt_stop "${APID[4]}"
gt_agent_start 4 --subnet 198.19.4.0/24
gt_check "node4 with its own subnet is routed to" gt_wait_for "route to node4" 30 routed 2 \
    "198.19.1.0/24 via 198.18.0.1,198.19.3.0/24 via 198.18.0.3,198.19.4.0/24 via 198.18.0.4,"
gt_stop "${APID[4]}"
gt_agent_start 4 --subnet 198.19.44.0/24
gt_check "node4 back with another subnet: the old route goes, the new one comes" \
    gt_wait_for "node4's new route" 30 routed 2 \
    "198.19.1.0/24 via 198.18.0.1,198.19.3.0/24 via 198.18.0.3,198.19.44.0/24 via 198.18.0.4,"

gt_stop "${APID[4]}"

# node5 on host 4, without --subnet: the leader carves the first free subnet of the
# cluster network, the agent takes it and keeps it.
start_node5() {
    gt_host_spawn "a5" 4 "$AGENT" --servers "$GT_AGENT_SERVERS" --name node5 \
        --data-dir "$GT_TMP/a5" --runtime-root "$GT_TMP/rt4" --netns-prefix "${GT_NS_PREFIX}5-" \
        --bridge gybr0
    APID[5]=$GT_LAST_PID
}
gt_image_import 5 "$rootfs"
start_node5
node5_subnet() { gt_gantry 1 get nodes -o wide | grep -Eq "^node5 .* 198\.18\.0\.4 +198\.20\.0\.0/24 "; }
gt_check "node5, started without --subnet, is given 198.20.0.0/24 by the leader" \
    gt_wait_for "node5's subnet" 60 node5_subnet
gt_check "its agent takes it" gt_wait_for "node5 took its subnet" 20 \
    grep -q "replica subnet from the leader.*subnet=198.20.0.0/24" "$GT_TMP/a5.log"
gt_check "and host 2 routes to it" gt_wait_for "route to node5" 30 routed 2 \
    "198.19.1.0/24 via 198.18.0.1,198.19.3.0/24 via 198.18.0.3,198.19.44.0/24 via 198.18.0.4,198.20.0.0/24 via 198.18.0.4,"
gt_api 1 /v1/workloads/pinger/scale -X POST -d '{"replicas": 4}' >/dev/null
on_node5() { replicas | grep -q "^node5 .* 198\.20\.0\."; }
gt_check "a fourth replica runs on node5 with an address of its subnet" \
    gt_wait_for "pinger on node5" 90 on_node5
gt_check "every replica reaches the replicas of the other nodes, node5's too" \
    gt_wait_for "pings across four nodes" 20 all_reach 4
gt_stop "${APID[5]}"
start_node5
gt_check "node5's agent, restarted without --subnet, keeps its subnet" \
    gt_wait_for "node5 back" 30 grep -q "session established" "$GT_TMP/a5.log"
gt_check "from its own database" bash -c "! grep -q 'replica subnet from the leader' '$GT_TMP/a5.log'"
gt_check "and the leader still records it" node5_subnet

# An agent restart keeps its replica and the routes.
gt_stop "${APID[2]}"
gt_agent_start 2
ready_again() { [ "$(gt_api 1 /v1/nodes | grep -o '"state":"ready"' | wc -l)" -ge 4 ]; }
gt_check "node2 is ready again" gt_wait_for "nodes ready" 60 ready_again
gt_check "after node2's agent restarted every replica still reaches the others" \
    gt_wait_for "pings across nodes" 20 all_reach 4

# node4 is down (its agent stopped): removing it frees its subnet, and the other nodes
# drop their route to it. A node that is up cannot be removed.
node_state() { gt_api 1 /v1/nodes | python3 -c 'import json, sys
print(" ".join(n["state"] for n in json.load(sys.stdin)["items"] if n["name"] == sys.argv[1]))' "$1"; }
down4() { [ "$(node_state node4)" = down ]; }
gt_check "node4 is down" gt_wait_for "node4 down" 30 down4
refused_up() { ! gt_gantry 1 remove-node node1 >"$GT_TMP/rm1.out" 2>&1; }
gt_check "removing node1, which is up, is refused" refused_up
gt_check "saying why" grep -q 'node "node1" is ready: only a node that is down can be removed' \
    "$GT_TMP/rm1.out"
gt_gantry 1 remove-node node4 >"$GT_TMP/rm4.out" 2>&1
gt_check "node4 is removed" grep -qx "node/node4 removed" "$GT_TMP/rm4.out"
gt_check "and gone from the nodes" [ -z "$(node_state node4)" ]
gt_check "host 2 drops its route to node4's subnet" gt_wait_for "node4's route gone" 20 routed 2 \
    "198.19.1.0/24 via 198.18.0.1,198.19.3.0/24 via 198.18.0.3,198.20.0.0/24 via 198.18.0.4,"
gt_check "the event names the subnet released" bash -c \
    "nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s http://198.18.0.1:7700/v1/events | grep -q 'subnet released: 198.19.44.0/24'"

# A new cluster whose network covers a network of its server's host is refused at start,
# naming both, and nothing is made: host 2 routes 198.19.2.0/24 to its bridge (and the
# other nodes' subnets through them; the message names the first route it finds).
rc=0
gt_host_exec 2 timeout 20 "$SCHED" --id 9 --data-dir "$GT_TMP/fresh" --raft-addr 198.18.0.2:17701 \
    --api-addr 198.18.0.2:17700 --agent-addr 198.18.0.2:17702 --bootstrap 9=198.18.0.2:17701 \
    --cluster-network 198.19.0.0/16 >"$GT_TMP/fresh.out" 2>&1 || rc=$?
gt_check "a new cluster's network over a route of the host is refused (exit 1)" [ "$rc" = 1 ]
gt_log "refused with: $(cat "$GT_TMP/fresh.out")"
gt_check "naming both" grep -Eq "cluster network 198.19.0.0/16 overlaps the host's route 198.19.[0-9]+.0/24 dev (gybr0|eth0)" "$GT_TMP/fresh.out"
gt_check "and nothing is made" [ ! -e "$GT_TMP/fresh" ]

gt_api 1 /v1/workloads/pinger -X DELETE >/dev/null
# A replica's network goes with it; the warm pool of each node (--cni-pool, 4 by default)
# keeps namespaces of its own, named <prefix>pool.<hex>.
no_namespaces() { ! ip netns list | grep "^$GT_NS_PREFIX" | grep -vq "^$GT_NS_PREFIX[0-9]-pool\."; }
gt_check "the deleted workload leaves no network namespace" gt_wait_for "namespaces gone" 30 no_namespaces
# Every veth left on a host's bridge is one of its pools' (node4 and node5 both ran on host
# 4).
only_pool_veths() {
    local i veths pool prefixes
    for i in 1 2 3 4; do
        prefixes="$GT_NS_PREFIX$i-pool\."
        [ "$i" = 4 ] && prefixes="$prefixes\|${GT_NS_PREFIX}5-pool\."
        veths=$(ip -n "${GT_HOST_NS[$i]}" -o link show master gybr0 | grep -c veth)
        pool=$(ip netns list | grep -c "^\($prefixes\)")
        [ "$veths" = "$pool" ] || { echo "host $i: $veths veths, $pool pooled" >&2; return 1; }
    done
    return 0
}
gt_check "nor a veth on any host but those of the warm pool" gt_wait_for "veths gone" 30 only_pool_veths
gt_finish
