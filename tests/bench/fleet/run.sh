#!/usr/bin/env bash
# Benchmark: end-to-end latency from `apply` to all replicas running, for a 10-replica
# workload on a 3-server control plane with 3 real nodes (network namespaces on this
# machine, real containers), median of 5 runs. Reference points: Docker Swarm published a
# scheduling delay p50 of 230 ms; Kubernetes' pod start-up objective is p99 under 5 s.
#   tests/bench/fleet/run.sh [REPLICAS] [RUNS]      (as root; builds build/rel first)
set -euo pipefail
cd "$(dirname "$0")/../../.."
REPLICAS=${1:-10}
RUNS=${2:-5}
cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release -DGANTRY_TESTS=ON >/dev/null
cmake --build build/rel -j"$(nproc)" --target gantry-scheduler gantry-agent gantry-runtime >/dev/null
export GANTRY_BUILD_DIR=$PWD/build/rel GANTRY_SOURCE_DIR=$PWD
export GT_BENCH_REPLICAS=$REPLICAS GT_BENCH_RUNS=$RUNS
exec bash tests/bench/fleet/cluster.sh
