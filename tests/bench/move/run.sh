#!/usr/bin/env bash
# Benchmark: moving a 10-replica workload (busybox httpd, no health check, max_surge 2)
# between a private and a public cloud of two nodes each, on a 3-server control plane
# (network namespaces on this machine, real containers). Prints the time of each move from
# the request until every replica runs ready in the target cloud, and the fewest ready
# replicas seen (polled every 50 ms). Targets: under 3 s, never below 10 ready.
#   tests/bench/move/run.sh [MOVES] [REPLICAS]      (as root; builds build/rel first)
set -euo pipefail
cd "$(dirname "$0")/../../.."
MOVES=${1:-6}
REPLICAS=${2:-10}
cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release -DGANTRY_TESTS=ON >/dev/null
cmake --build build/rel -j"$(nproc)" --target gantry-scheduler gantry-agent gantry-runtime >/dev/null
export GANTRY_BUILD_DIR=$PWD/build/rel GANTRY_SOURCE_DIR=$PWD
export GT_BENCH_MOVES=$MOVES GT_BENCH_REPLICAS=$REPLICAS
exec bash tests/bench/move/cluster.sh
