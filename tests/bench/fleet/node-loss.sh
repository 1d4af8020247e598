#!/usr/bin/env bash
# Benchmark: how long a fleet takes to replace the replicas of a node that dies (its agent
# and containers SIGKILLed), with the default node-down timeout, on a 3-server control
# plane and 3 real nodes (network namespaces on this machine). 6 replicas; each run kills
# the node holding most of them and times the kill -> 6 running elsewhere, then brings the
# node back. Median of RUNS runs, beside the defaults of Kubernetes (node-monitor-grace-
# period 40 s, then the not-ready toleration of 300 s) and Nomad (heartbeat TTL plus a
# 10 s grace).
#   tests/bench/fleet/node-loss.sh [RUNS]      (as root; builds build/rel first)
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${1:-5}
cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release -DGANTRY_TESTS=ON >/dev/null
cmake --build build/rel -j"$(nproc)" --target gantry-scheduler gantry-agent gantry-runtime >/dev/null
export GANTRY_BUILD_DIR=$PWD/build/rel GANTRY_SOURCE_DIR=$PWD GT_BENCH_RUNS=$RUNS
exec bash tests/bench/fleet/node-loss-cluster.sh
