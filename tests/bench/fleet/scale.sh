#!/usr/bin/env bash
# Benchmark: scheduling at fleet scale. A 3-server control plane on loopback (Release
# build, data on disk), NODES simulated nodes (tests/bench/fleet/simnodes.c: real agent
# sessions, simulated containers), then one apply of WORKLOADS workloads totalling
# REPLICAS replicas. Prints the time until all are placed (committed placements) and
# running (reported by the nodes), placements per second, and each server's memory.
# Reference: Nomad's C1M placed 1,000,000 containers on 5,000 hosts in under 5 minutes
# (~3,750/s), C2M 2,000,000 on 6,100 hosts in 22 minutes (~1,500/s); kube-scheduler
# manages about 100-300 pods/s.
#   tests/bench/fleet/scale.sh [NODES] [REPLICAS] [WORKLOADS]   (as root)
set -euo pipefail
cd "$(dirname "$0")/../../.."
NODES=${1:-10000}
REPLICAS=${2:-100000}
WORKLOADS=${3:-100}
cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build/rel -j"$(nproc)" --target gantry-scheduler simnodes >/dev/null
B=$PWD/build/rel
T=$(mktemp -d /tmp/gantry-scale.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
ulimit -n 20000
BASE=23000
boot=""; agents=""
for i in 1 2 3; do
    boot+="${boot:+,}$i=127.0.0.1:$((BASE + 10 * i + 1))"
    agents+="${agents:+,}127.0.0.1:$((BASE + 10 * i + 2))"
done
for i in 1 2 3; do
    "$B/scheduler/gantry-scheduler" --id $i --data-dir "$T/s$i" \
        --raft-addr 127.0.0.1:$((BASE + 10 * i + 1)) --api-addr 127.0.0.1:$((BASE + 10 * i)) \
        --agent-addr 127.0.0.1:$((BASE + 10 * i + 2)) --bootstrap "$boot" \
        --node-down-timeout 60s --log-level warn >"$T/s$i.log" 2>&1 &
    PIDS+=($!)
done
API=http://127.0.0.1:$((BASE + 10))
for _ in $(seq 1 100); do curl -s "$API/v1/cluster" | grep -q '"leader":[1-9]' && break; sleep 0.1; done
"$B/tests/bench/simnodes" "$agents" "$NODES" >"$T/sim.log" 2>&1 &
PIDS+=($!)
count_nodes() { curl -s --max-time 20 "$API/v1/nodes" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))' 2>/dev/null || echo 0; }
t0=$(date +%s.%N)
for _ in $(seq 1 600); do [ "$(count_nodes)" -ge "$NODES" ] && break; sleep 0.5; done
t1=$(date +%s.%N)
echo "== $NODES simulated nodes registered in $(echo "$t1 - $t0" | bc) s"
per=$((REPLICAS / WORKLOADS))
python3 - "$WORKLOADS" "$per" >"$T/apply.json" <<'PY'
import json, sys
w, per = int(sys.argv[1]), int(sys.argv[2])
print(json.dumps({"workloads": [{"name": "w%03d" % i, "image": "busybox", "command": ["sleep", "1d"],
                                 "replicas": per, "resources": {"cpu": "10m", "memory": "16Mi"}}
                                for i in range(w)]}))
PY
status() { curl -s --max-time 20 "$API/v1/workloads" | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(sum(w["status"]["replicas"] for w in items), sum(w["status"]["running"] for w in items))' 2>/dev/null || echo "0 0"; }
t0=$(date +%s.%N)
curl -s --max-time 60 -X POST "$API/v1/apply" --data-binary @"$T/apply.json" >/dev/null
placed_at="" running_at=""
for _ in $(seq 1 1200); do
    read -r placed running < <(status)
    now=$(date +%s.%N)
    [ -z "$placed_at" ] && [ "$placed" -ge "$REPLICAS" ] && placed_at=$now
    [ "$running" -ge "$REPLICAS" ] && { running_at=$now; break; }
    sleep 0.25
done
tp=$(echo "${placed_at:-$now} - $t0" | bc)
tr=$(echo "${running_at:-$now} - $t0" | bc)
printf '== %d replicas of %d workloads on %d nodes\n' "$REPLICAS" "$WORKLOADS" "$NODES"
printf 'placed (committed):    %6.2f s   %8.0f placements/s\n' "$tp" "$(echo "$REPLICAS / $tp" | bc -l)"
note=""; [ -n "$running_at" ] || note=" (not all running: $running of $REPLICAS)"
printf 'running (reported):    %6.2f s   %8.0f replicas/s%s\n' "$tr" "$(echo "$REPLICAS / $tr" | bc -l)" "$note"
for i in 1 2 3; do
    printf 'server %d memory:       %s\n' $i "$(awk '/VmRSS/ {printf "%.0f MiB", $2/1024}' /proc/${PIDS[$((i-1))]}/status)"
done
echo "reference: Nomad C1M ~3,750 placements/s, C2M ~1,500/s; kube-scheduler ~100-300 pods/s"
