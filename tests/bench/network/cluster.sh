# The cluster of tests/bench/network/run.sh (run that): hosts 1 and 2 in cloud private,
# host 3 in cloud public behind a router.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/cluster.sh"
gt_require_root
gt_clouds_create 2 1 || exit 1
gt_cluster_init 1 bn
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sleep
for i in 1 2 3; do gt_image_import "$i" "$rootfs"; done
gt_server_start 1
gt_agent_start 1
gt_agent_start 2
gt_agent_start 3 --cloud public
gt_wait_for "3 nodes" 60 gt_nodes_ready 1 3 || exit 1
gt_api 1 /v1/apply -X POST -d '{"name":"pair","image":"busybox","command":["sleep","3600"],
    "replicas":3,"resources":{"cpu":"100m","memory":"16Mi"},"stop_grace":"1s"}' >/dev/null
# pair_of NODE: "NAMESPACE ADDRESS" of the pair's running replica on NODE.
pair_of() {
    gt_api 1 "/v1/replicas?workload=pair" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["items"]:
    if r["node"] == sys.argv[1] and r["state"] == "running":
        print(sys.argv[2] + sys.argv[1][4:] + "-" + r["id"], r["address"])' "$1" "$GT_NS_PREFIX"
}
all3() { [ -n "$(pair_of node1)" ] && [ -n "$(pair_of node2)" ] && [ -n "$(pair_of node3)" ]; }
gt_wait_for "a replica on each node" 90 all3 || exit 1
read -r NS1 _ <<<"$(pair_of node1)"
read -r NS2 ADDR2 <<<"$(pair_of node2)"
read -r NS3 ADDR3 <<<"$(pair_of node3)"
H1=/run/netns/${GT_HOST_NS[1]}
H2=/run/netns/${GT_HOST_NS[2]}
H3=/run/netns/${GT_HOST_NS[3]}
in_ns() { local ns=$1; shift; nsenter --net="$ns" "$@"; }
gt_wait_for "replica 1 reaches replica 2" 20 in_ns "/run/netns/$NS1" busybox ping -c1 -W2 "$ADDR2" >/dev/null || exit 1
gt_wait_for "replica 1 reaches replica 3" 30 in_ns "/run/netns/$NS1" busybox ping -c1 -W2 "$ADDR3" >/dev/null || exit 1

# tput SERVER_NS CLIENT_NS ADDRESS: received bits per second of one iperf3 run.
tput() {
    in_ns "$1" iperf3 -s -1 -p 5299 >/dev/null 2>&1 &
    local spid=$!
    sleep 0.3
    in_ns "$2" iperf3 -c "$3" -p 5299 -t "$GT_BENCH_SECONDS" -J 2>/dev/null |
        python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))'
    wait "$spid" 2>/dev/null || true
}
# rtt CLIENT_NS ADDRESS: the average round trip of 300 pings, in microseconds.
rtt() {
    in_ns "$1" busybox ping -A -c 300 -q "$2" | awk -F'[/ =]+' '/round-trip/ {printf "%d\n", $(NF-2) * 1000}'
}
median() { sort -n | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
: >"$GT_TMP/ht"; : >"$GT_TMP/rt"; : >"$GT_TMP/hr"; : >"$GT_TMP/rr"
: >"$GT_TMP/xht"; : >"$GT_TMP/xrt"; : >"$GT_TMP/xhr"; : >"$GT_TMP/xrr"
for ((k = 1; k <= GT_BENCH_ROUNDS; k++)); do
    tput "$H2" "$H1" 198.18.0.2 >>"$GT_TMP/ht"
    tput "/run/netns/$NS2" "/run/netns/$NS1" "$ADDR2" >>"$GT_TMP/rt"
    rtt "$H1" 198.18.0.2 >>"$GT_TMP/hr"
    rtt "/run/netns/$NS1" "$ADDR2" >>"$GT_TMP/rr"
    tput "$H3" "$H1" 198.18.1.3 >>"$GT_TMP/xht"
    tput "/run/netns/$NS3" "/run/netns/$NS1" "$ADDR3" >>"$GT_TMP/xrt"
    rtt "$H1" 198.18.1.3 >>"$GT_TMP/xhr"
    rtt "/run/netns/$NS1" "$ADDR3" >>"$GT_TMP/xrr"
    echo "round $k: same cloud: hosts $(tail -n1 "$GT_TMP/ht") bit/s $(tail -n1 "$GT_TMP/hr") us," \
        "replicas $(tail -n1 "$GT_TMP/rt") bit/s $(tail -n1 "$GT_TMP/rr") us;" \
        "two clouds: hosts $(tail -n1 "$GT_TMP/xht") bit/s $(tail -n1 "$GT_TMP/xhr") us," \
        "replicas (WireGuard) $(tail -n1 "$GT_TMP/xrt") bit/s $(tail -n1 "$GT_TMP/xrr") us"
done
report() {
    local ht rt hr rr
    ht=$(median <"$GT_TMP/$2ht"); rt=$(median <"$GT_TMP/$2rt"); hr=$(median <"$GT_TMP/$2hr"); rr=$(median <"$GT_TMP/$2rr")
    python3 -c "
import sys
what, ht, rt, hr, rr = sys.argv[1], *(float(x) for x in sys.argv[2:6])
print('%s: throughput hosts %.2f Gbit/s, replicas %.2f Gbit/s: %.2fx; round trip hosts %d us, replicas %d us: %+d us' % (what, ht / 1e9, rt / 1e9, rt / ht, hr, rr, rr - hr))
" "$1" "$ht" "$rt" "$hr" "$rr"
}
report "same cloud (routes through the nodes)" ""
report "two clouds (WireGuard, wireguard-go)" x
gt_api 1 /v1/workloads/pair -X DELETE >/dev/null
gt_wait_for "pair gone" 30 bash -c "! ip netns list | grep '^$GT_NS_PREFIX' | grep -vq -- '-pool\.'" || true
