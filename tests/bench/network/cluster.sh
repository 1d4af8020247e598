# The cluster of tests/bench/network/run.sh (run that): two hosts, one cloud.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/cluster.sh"
gt_require_root
gt_hosts_create 2 || exit 1
gt_cluster_init 1 bn
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sleep
for i in 1 2; do gt_image_import "$i" "$rootfs"; done
gt_server_start 1
for i in 1 2; do gt_agent_start "$i"; done
gt_wait_for "2 nodes" 60 gt_nodes_ready 1 2 || exit 1
gt_api 1 /v1/apply -X POST -d '{"name":"pair","image":"busybox","command":["sleep","3600"],
    "replicas":2,"resources":{"cpu":"100m","memory":"16Mi"},"stop_grace":"1s"}' >/dev/null
# pair_of NODE: "NAMESPACE ADDRESS" of the pair's running replica on NODE.
pair_of() {
    gt_api 1 "/v1/replicas?workload=pair" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["items"]:
    if r["node"] == sys.argv[1] and r["state"] == "running":
        print(sys.argv[2] + sys.argv[1][4:] + "-" + r["id"], r["address"])' "$1" "$GT_NS_PREFIX"
}
both() { [ -n "$(pair_of node1)" ] && [ -n "$(pair_of node2)" ]; }
gt_wait_for "a replica on each node" 90 both || exit 1
read -r NS1 _ <<<"$(pair_of node1)"
read -r NS2 ADDR2 <<<"$(pair_of node2)"
H1=/run/netns/${GT_HOST_NS[1]}
H2=/run/netns/${GT_HOST_NS[2]}
in_ns() { local ns=$1; shift; nsenter --net="$ns" "$@"; }
gt_wait_for "replica 1 reaches replica 2" 20 in_ns "/run/netns/$NS1" busybox ping -c1 -W2 "$ADDR2" >/dev/null || exit 1

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
for ((k = 1; k <= GT_BENCH_ROUNDS; k++)); do
    tput "$H2" "$H1" 198.18.0.2 >>"$GT_TMP/ht"
    tput "/run/netns/$NS2" "/run/netns/$NS1" "$ADDR2" >>"$GT_TMP/rt"
    rtt "$H1" 198.18.0.2 >>"$GT_TMP/hr"
    rtt "/run/netns/$NS1" "$ADDR2" >>"$GT_TMP/rr"
    echo "round $k: hosts $(tail -n1 "$GT_TMP/ht") bit/s $(tail -n1 "$GT_TMP/hr") us, replicas $(tail -n1 "$GT_TMP/rt") bit/s $(tail -n1 "$GT_TMP/rr") us"
done
ht=$(median <"$GT_TMP/ht"); rt=$(median <"$GT_TMP/rt"); hr=$(median <"$GT_TMP/hr"); rr=$(median <"$GT_TMP/rr")
python3 -c "
import sys
ht, rt, hr, rr = (float(x) for x in sys.argv[1:5])
print('throughput: hosts %.2f Gbit/s, replicas on two nodes %.2f Gbit/s: %.2fx' % (ht / 1e9, rt / 1e9, rt / ht))
print('round trip: hosts %d us, replicas %d us: %+d us' % (hr, rr, rr - hr))
" "$ht" "$rt" "$hr" "$rr"
gt_api 1 /v1/workloads/pair -X DELETE >/dev/null
gt_wait_for "pair gone" 30 bash -c "! ip netns list | grep -q '^$GT_NS_PREFIX'" || true
