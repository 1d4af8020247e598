# Replicas of different clouds reach each other through WireGuard tunnels (docs/network.md,
# "Between clouds"), and nodes of one cloud that cannot route to each other through a VXLAN
# overlay: two switches joined by a router; hosts 1 and 2 on switch A in cloud private,
# host 3 on switch B in cloud public, host 4 on switch B in cloud private. A server and an
# agent per host; each agent makes a key pair, the leader records the public keys and
# tells every agent its peers: those of its cloud on its network to route to directly,
# those of its cloud elsewhere through the overlay, those of other clouds through the
# tunnel. Checked: the routes; a replica on each node reaches the replicas on the other
# three by address; on the router a message between replicas of two clouds shows only as
# WireGuard packets, never in the clear, while the same message within a cloud is visible
# on its switch (so the capture can see it) and in the overlay's packets on the router
# (the overlay does not encrypt); a key rotation changes the node's key and the replicas
# still reach each other; an agent restart keeps them reachable.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/cluster.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
command -v tcpdump >/dev/null || gt_skip "tcpdump is missing"
command -v wireguard-go >/dev/null || gt_skip "wireguard-go is missing"
[ -c /dev/net/tun ] || gt_skip "no /dev/net/tun"
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

gt_clouds_create 2 2 || exit 1
gt_cluster_init 1 nc
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sh sleep ping nc echo
for i in 1 2 3 4; do gt_image_import "$i" "$rootfs"; done
gt_server_start 1
cloud_of() { [ "$1" = 3 ] && echo public || echo private; }
for i in 1 2 3 4; do gt_agent_start "$i" --cloud "$(cloud_of "$i")"; done
gt_check "four nodes are ready" gt_wait_for "4 nodes" 60 gt_nodes_ready 1 4

# key NODE: the node's tunnel key as the leader has it.
key() {
    gt_api 1 /v1/nodes | python3 -c '
import json, sys
for n in json.load(sys.stdin)["items"]:
    if n["name"] == sys.argv[1]:
        print(n["tunnel_key"])' "$1"
}
key3=$(key node3)
key1=$(key node1)
gt_log "tunnel keys: node1 $key1, node3 $key3"
gt_check "every node has a tunnel key" [ -n "$key1" ] && [ -n "$key3" ]

routed() { gt_routed "$@"; }
tun() { echo "gw$$-$1"; }
gt_check "host 1 routes to node2 directly, node3 through the tunnel, node4 through the overlay" \
    gt_wait_for "routes on host 1" 30 routed 1 "198.19.2.0/24 via 198.18.0.2,198.19.3.0/24 dev $(tun 1),198.19.4.0/24 via 198.19.4.0,"
gt_check "host 3 routes to the three nodes of the other cloud through the tunnel" \
    gt_wait_for "routes on host 3" 30 routed 3 "198.19.1.0/24 dev $(tun 3),198.19.2.0/24 dev $(tun 3),198.19.4.0/24 dev $(tun 3),"
gt_check "host 4 routes to nodes 1 and 2 through the overlay" \
    gt_wait_for "routes on host 4" 30 routed 4 "198.19.1.0/24 via 198.19.1.0,198.19.2.0/24 via 198.19.2.0,198.19.3.0/24 dev $(tun 4),"
gt_check "the overlay routes go out of the VXLAN interface" bash -c \
    "ip -n ${GT_HOST_NS[1]} route show proto 152 | grep -q '198.19.4.0/24 via 198.19.4.0 dev gantry-vx onlink'"

cat >"$GT_TMP/ping.json" <<'EOF'
{"name": "pinger", "image": "busybox", "command": ["sleep", "3600"], "replicas": 4,
 "resources": {"cpu": "50m", "memory": "16Mi"}, "stop_grace": "1s"}
EOF
gt_api 1 /v1/apply -X POST --data-binary "@$GT_TMP/ping.json" >/dev/null
replicas() { gt_running pinger; }
spread() { [ "$(replicas | awk '{print $1}' | tr '\n' ' ')" = "node1 node2 node3 node4 " ]; }
gt_check "the four replicas run, one per node" gt_wait_for "pinger spread" 90 spread

all_reach() { gt_all_reach pinger "${1:-4}"; }
gt_check "a replica on each node reaches the replicas on the other three, across clouds too" \
    gt_wait_for "pings across clouds" 30 all_reach

# send FROM TO WHERE: replica of node FROM sends a marker over TCP to the replica of node
# TO while tcpdump captures on WHERE ("router" or "switch"); prints the capture as text.
ns_of() { echo "$GT_NS_PREFIX$1-$(replicas | awk -v n="node$1" '$1 == n {print $2}')"; }
addr_of() { replicas | awk -v n="node$1" '$1 == n {print $3}'; }
send() {
    local from=$1 to=$2 where=$3 cap="$GT_TMP/cap-$1-$2.pcap" marker="GANTRY-PLAINTEXT-MARKER-$1$2"
    local capns capif
    if [ "$where" = router ]; then capns=$GT_ROUTER_NS capif=cb; else capns="gt$$-sw" capif=br0; fi
    ip netns exec "$(ns_of "$to")" busybox timeout 8 busybox nc -l -p 9000 >"$GT_TMP/got-$1-$2" &
    local listener=$!
    ip netns exec "$capns" timeout 6 tcpdump -i "$capif" -U -s 0 -w "$cap" >/dev/null 2>&1 &
    local dump=$!
    sleep 1
    local k
    for k in 1 2 3 4 5; do
        echo "$marker" | ip netns exec "$(ns_of "$from")" busybox timeout 2 busybox nc "$(addr_of "$to")" 9000 && break
        sleep 0.3
    done
    wait "$dump" 2>/dev/null
    wait "$listener" 2>/dev/null
    tcpdump -r "$cap" -nn -A 2>/dev/null
}
send 1 3 router >"$GT_TMP/cross.txt"
gt_check "the message from node1's replica reaches node3's replica" \
    grep -q "GANTRY-PLAINTEXT-MARKER-13" "$GT_TMP/got-1-3"
gt_check "between the clouds it travels as WireGuard packets (UDP 51820)" \
    grep -q "UDP, length" "$GT_TMP/cross.txt"
gt_check "and never in the clear" bash -c "! grep -q 'GANTRY-PLAINTEXT-MARKER' '$GT_TMP/cross.txt'"
send 1 2 switch >"$GT_TMP/within.txt"
gt_check "within a cloud the same message is in the clear on the switch (the capture sees it)" \
    grep -q "GANTRY-PLAINTEXT-MARKER-12" "$GT_TMP/within.txt"
send 1 4 router >"$GT_TMP/overlay.txt"
gt_check "the message to node4 reaches its replica through the overlay" \
    grep -q "GANTRY-PLAINTEXT-MARKER-14" "$GT_TMP/got-1-4"
gt_check "as VXLAN packets (UDP 4789) on the router, not encrypted" bash -c \
    "grep -q '4789: VXLAN' '$GT_TMP/overlay.txt' && grep -q 'GANTRY-PLAINTEXT-MARKER-14' '$GT_TMP/overlay.txt'"

gt_gantry 1 rotate-key node3 >"$GT_TMP/rotate.out" 2>&1
gt_check "rotate-key is accepted" grep -q "node/node3 rotating its tunnel key" "$GT_TMP/rotate.out"
rotated() { local k; k=$(key node3); [ -n "$k" ] && [ "$k" != "$key3" ]; }
gt_check "node3 has a new key" gt_wait_for "node3's new key" 20 rotated
gt_check "the event names it" bash -c \
    "nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s http://198.18.0.1:7700/v1/events | grep -q 'new tunnel key'"
gt_check "and the replicas still reach each other" gt_wait_for "pings after the rotation" 30 all_reach

gt_stop "${APID[3]}"
gt_agent_start 3 --cloud public
gt_check "an agent restart keeps every replica reachable" gt_wait_for "pings after a restart" 30 all_reach
gt_finish
