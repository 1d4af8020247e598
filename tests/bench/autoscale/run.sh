#!/usr/bin/env bash
# Benchmark: autoscaler reaction time with real containers on a 3-server control plane and
# 3 nodes (network namespaces on this machine). A workload (cpu 100m, target 50%, min 1,
# max 4) burns CPU while a flag file exists; median of RUNS runs of
#   load start -> first added replica running, load start -> all 4 running,
#   load end -> back to 1 replica (scale_down_after SCALE_DOWN_AFTER, default 30s),
# printed beside the Kubernetes HPA defaults (15 s sync period, 300 s scale-down window).
#   tests/bench/autoscale/run.sh [RUNS] [SCALE_DOWN_AFTER]     (as root; builds build/rel)
set -euo pipefail
cd "$(dirname "$0")/../../.."
RUNS=${1:-5}
DOWN=${2:-30s}
cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release -DGANTRY_TESTS=ON >/dev/null
cmake --build build/rel -j"$(nproc)" --target gantry-scheduler gantry-agent gantry-runtime >/dev/null
export GANTRY_BUILD_DIR=$PWD/build/rel GANTRY_SOURCE_DIR=$PWD
export GT_BENCH_RUNS=$RUNS GT_BENCH_DOWN=$DOWN
exec bash tests/bench/autoscale/cluster.sh
