# Published ports (docs/network.md, docs/spec.md "ports"): three hosts on one switch, a
# server and two nodes. A workload whose port 80 is published on host port 8080 runs one
# replica per node, and each node's address answers on 8080 with the replica of that node,
# from a third host and from the node itself; get workloads -o wide shows the port. A third
# replica finds no node with the port free and waits with a condition naming it; another
# workload wanting host port 8080 waits too, and runs once it asks for 8081. An agent
# restart keeps the port answering. A deleted workload leaves no DNAT or firewall rule, no
# lease and no namespace of its replicas on the nodes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/cluster.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
command -v iptables >/dev/null || gt_skip "iptables is missing"
[ -x /usr/lib/cni/portmap ] || gt_skip "the CNI plugins (containernetworking-plugins) are missing"
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

gt_hosts_create 3 || exit 1
gt_cluster_init 1 np
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sh sleep httpd mkdir hostname cat
for i in 1 2; do gt_image_import "$i" "$rootfs"; done
gt_server_start 1
for i in 1 2; do gt_agent_start "$i"; done
gt_check "two nodes are ready" gt_wait_for "2 nodes" 60 gt_nodes_ready 1 2

# web SCALE [HOST_PORT]: the spec of the web workload.
web() {
    cat <<EOF
{"name": "${3:-web}", "image": "busybox", "replicas": $1, "stop_grace": "1s",
 "command": ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 80 -h /tmp/www"],
 "resources": {"cpu": "20m", "memory": "16Mi"},
 "ports": [{"container_port": 80, "host_port": ${2:-8080}, "name": "http"}]}
EOF
}
apply() { gt_api 1 /v1/apply -X POST --data-binary @- >"$GT_TMP/apply.out"; }
web 2 | apply
# running WORKLOAD: "NODE ID" of each running replica.
running() {
    gt_api 1 "/v1/replicas?workload=$1" | python3 -c '
import json, sys
for r in sorted(json.load(sys.stdin)["items"], key=lambda r: r["node"]):
    if r["state"] == "running":
        print(r["node"], r["id"])'
}
two_nodes() { [ "$(running web | awk '{print $1}' | tr '\n' ' ')" = "node1 node2 " ]; }
gt_check "the two replicas run, one per node" gt_wait_for "web on both nodes" 90 two_nodes

# answers FROM NODE: host FROM gets the name of NODE's replica from NODE's address:8080.
answers() {
    local want got
    want=$(running web | awk -v n="node$2" '$1 == n {print $2}')
    got=$(gt_host_exec "$1" curl -s --max-time 3 "http://198.18.0.$2:8080/")
    [ -n "$want" ] && [ "$got" = "$want" ]
}
gt_check "node1's address answers on 8080 from another host, with node1's replica" \
    gt_wait_for "8080 on node1" 20 answers 3 1
gt_check "node2's address answers on 8080 from another host, with node2's replica" \
    gt_wait_for "8080 on node2" 20 answers 3 2
gt_check "and from the node itself" gt_wait_for "8080 from node1" 20 answers 1 1
gt_gantry 1 get workloads -o wide >"$GT_TMP/wide.out" 2>&1
gt_check "get workloads -o wide shows the published port" grep -q "8080:80/tcp" "$GT_TMP/wide.out"

# reason WORKLOAD: the workload's conditions and pending replicas' reasons, on one line.
reason() { gt_api 1 "/v1/workloads/$1" | tr -d '\n'; gt_api 1 "/v1/replicas?workload=$1" | tr -d '\n'; }
says() { reason "$1" | grep -q "$2"; }
web 3 | apply
gt_check "a third replica waits: both nodes already run one on host port 8080/tcp" \
    gt_wait_for "the port condition" 30 says web "already run a replica of the workload on host port 8080/tcp"
gt_check "and the two keep running" two_nodes
web 1 8080 other | apply
gt_check "another workload on host port 8080 waits with the port named" \
    gt_wait_for "other's condition" 30 says other "host port 8080/tcp in use"
web 1 8081 other | apply
other_runs() { [ -n "$(running other)" ]; }
gt_check "on host port 8081 it runs" gt_wait_for "other on 8081" 60 other_runs
web 2 | apply

# An agent restart keeps the published port answering.
gt_stop "${APID[1]}"
gt_agent_start 1
gt_check "node1 is ready again" gt_wait_for "node1 back" 60 gt_nodes_ready 1 2
gt_check "and its address still answers on 8080" gt_wait_for "8080 after a restart" 20 answers 3 1

addrs=$(gt_api 1 "/v1/replicas?workload=web" | python3 -c '
import json, sys
print(" ".join(r["address"] for r in json.load(sys.stdin)["items"] if r["address"]))')
gt_log "web replicas at: $addrs"
gt_api 1 /v1/workloads/web -X DELETE >/dev/null
gt_api 1 /v1/workloads/other -X DELETE >/dev/null
no_replicas() { [ "$(gt_api 1 /v1/replicas)" = '{"items":[]}' ]; }
gt_check "the workloads are deleted" gt_wait_for "replicas gone" 60 no_replicas
# clean HOST: no DNAT of 8080/8081, no firewall rule or lease for a replica's address, no
# namespace of a replica (those of the warm pool stay).
clean() {
    local h=$1 a
    gt_host_exec "$h" iptables -t nat -S | grep -q -- "--dport 808[01]" && return 1
    for a in $addrs; do
        gt_host_exec "$h" iptables -S | grep -q -- "$a/32" && return 1
    done
    ip netns list | awk '{print $1}' | grep "^$GT_NS_PREFIX$h-" | grep -vq "^$GT_NS_PREFIX$h-pool\." && return 1
    # host-local leases: one file per address in use, named by the address; the pool's stay.
    local leased pooled
    leased=$(find "$GT_TMP/a$h/cni/ipam/gantry" -name '198.*' 2>/dev/null | wc -l)
    pooled=$(ip netns list | grep -c "^$GT_NS_PREFIX$h-pool\.")
    [ "$leased" = "$pooled" ]
}
gt_check "node1 keeps no rule, lease or namespace of the deleted replicas" \
    gt_wait_for "node1 clean" 30 clean 1
gt_check "nor does node2" gt_wait_for "node2 clean" 30 clean 2
gt_finish
