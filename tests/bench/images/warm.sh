#!/usr/bin/env bash
# Benchmark: starting replicas of an image already pulled onto the nodes, beside the same
# start from an imported root filesystem (one flat layer), on one cluster in the same run.
#
#   tests/bench/images/warm.sh [REPLICAS] [RUNS]     (as root; builds build/rel first)
#
# Three hosts (network namespaces), each a server and an agent; Debian's docker-registry on
# host 1 serves a busybox image of two layers (built with umoci, pushed with skopeo), which
# every node pulls beforehand (gantry-agent image pull). Then, RUNS times each, the time
# from `POST /v1/apply` of a REPLICAS-replica workload until every replica runs
# (tests/bench/fleet/apply_latency.py): first the imported busybox running `sleep`, then
# the registry image by its tag, which the leader pins to its digest during the apply (a
# registry round trip) and every node starts from its stored layers. Prints both medians
# and the difference per replica.
set -euo pipefail
cd "$(dirname "$0")/../../.."
REPLICAS=${1:-10}
RUNS=${2:-5}
for tool in docker-registry skopeo umoci busybox python3; do
    command -v $tool >/dev/null || { echo "bench: $tool is missing (deploy/install-deps)" >&2; exit 77; }
done
cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release -DGANTRY_TESTS=ON >/dev/null
cmake --build build/rel -j"$(nproc)" --target gantry-scheduler gantry-agent gantry-runtime gantry >/dev/null
export GANTRY_BUILD_DIR=$PWD/build/rel GANTRY_SOURCE_DIR=$PWD
export GT_BENCH_REPLICAS=$REPLICAS GT_BENCH_RUNS=$RUNS
exec bash tests/bench/images/warm-cluster.sh
