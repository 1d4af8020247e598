#!/usr/bin/env bash
# Benchmark: the network between replicas on two nodes of one cloud (routes through the
# nodes' addresses, docs/network.md) and on nodes of two clouds (a WireGuard tunnel through
# wireguard-go), each against the same between the bare hosts, in the same run: iperf3 TCP
# throughput and ping round-trip time, ROUNDS interleaved rounds, medians.
#   tests/bench/network/run.sh [ROUNDS] [SECONDS]    (as root; builds build/rel first)
# Three hosts (network namespaces; hosts 1 and 2 on one switch, host 3 on another behind a
# router), a server and an agent each; a workload of three replicas, one per node. The replica side runs iperf3 and ping in the replicas'
# network namespaces (the path a replica's packets take: its veth, the node's bridge and
# routes, the link, the other node's routes and bridge); the host side between the hosts'
# own addresses. Targets: same cloud, replica throughput >= 0.9 x the hosts', RTT at most
# +50 us; two clouds: reported beside the hosts' (encryption in user space costs).
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROUNDS=${1:-3}
SECONDS_EACH=${2:-5}
for tool in iperf3 busybox python3; do
    command -v $tool >/dev/null || { echo "bench: $tool is missing (deploy/install-deps)" >&2; exit 77; }
done
cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release -DGANTRY_TESTS=ON >/dev/null
cmake --build build/rel -j"$(nproc)" --target gantry-scheduler gantry-agent gantry-runtime gantry >/dev/null
export GANTRY_BUILD_DIR=$PWD/build/rel GANTRY_SOURCE_DIR=$PWD
export GT_BENCH_ROUNDS=$ROUNDS GT_BENCH_SECONDS=$SECONDS_EACH
exec bash tests/bench/network/cluster.sh
