#!/usr/bin/env bash
# Benchmark: a burst of replicas of an image no node holds, with layers shared between the
# nodes of a cloud (docs/images.md, "Peers: layers within a cloud") and without.
#
#   tests/bench/images/burst.sh [BUILD_DIR] [RUNS] [NODES]   (as root; SEED=N for another image)
#
# BUILD_DIR (default build/rel) is configured as a Release build and the binaries built
# there. On the loopback of a network namespace: Debian's docker-registry serving the image
# of tests/bench/images/pull.sh (mklayers.py: 4 layers, about 49 MiB compressed, busybox
# first), one gantry-scheduler, and NODES (default 5) agents in one cloud, each with its own
# store, started empty for every run. Each run applies a workload of NODES replicas spread
# over the nodes and times it from the apply until every node has the image in its store
# (the last "image pulled" line) and until every replica runs (the layers unpacked), once
# with every agent's layer server on (--blob-listen 127.0.0.1:PORT) and once with them off
# (the peer-less baseline: each node fetches the whole image from the registry). For both
# it prints the times and the bytes fetched from the registry, as the agents count them
# (bytes_registry of their pulls and of the blobs fetched for peers) and as the registry
# counts them (the blob answers in its log), against the image's size, and the ratios.
set -euo pipefail
src=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$src/build/rel}
runs=${2:-3}
nodes=${3:-5}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 77; }
for tool in docker-registry skopeo umoci busybox python3 curl; do
    command -v $tool >/dev/null || { echo "bench: $tool is missing (deploy/install-deps)" >&2; exit 77; }
done
echo "bench: building (Release) in $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS= >/dev/null
if ! cmake --build "$build" -j"$(nproc)" --target gantry-scheduler gantry-agent gantry-runtime \
    >"$build/bench-burst-build.log" 2>&1; then
    tail -n 30 "$build/bench-burst-build.log" >&2
    echo "bench: the build failed; see $build/bench-burst-build.log" >&2
    exit 1
fi
export GANTRY_BUILD_DIR=$build GANTRY_SOURCE_DIR=$src
export GT_BENCH_RUNS=$runs GT_BENCH_NODES=$nodes GT_BENCH_SEED=${SEED:-1}
exec bash "$src/tests/bench/images/burst-cluster.sh"
