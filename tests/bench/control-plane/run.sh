#!/usr/bin/env bash
# Control-plane benchmark: gantry-scheduler beside etcd 3.4 (Debian's etcd-server), both as
# three members on loopback with their data on disk, driven by the same load generator.
# Prints one table: sequential write latency p50/p99, throughput with 16 and 64 concurrent
# clients (a ~1 KiB workload apply against an etcd put of the same size through its JSON
# gateway), leader failover (SIGKILL of the leader until the first successful write, median
# of 5) and resident memory per server after the load. The throughput runs alternate
# between the two systems for ROUNDS rounds (default 3) and each figure is the median run,
# so a passing burst of load on this shared machine does not decide the comparison.
#   tests/bench/control-plane/run.sh [REQUESTS_PER_RUN]     (KEEP=1 keeps logs and data;
#   GANTRY_FLAGS="..." passes more flags to every gantry-scheduler)
set -euo pipefail
src=$(cd "$(dirname "$0")/../../.." && pwd)
build=$src/build/bench
work=$(mktemp -d /var/tmp/gantry-bench.XXXXXX)
requests=${1:-20000}
rounds=${ROUNDS:-3}
pids=()

cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    if [ -n "${KEEP:-}" ]; then echo "logs and data kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

command -v etcd >/dev/null || { echo "etcd is not installed (apt-get install etcd-server)"; exit 77; }
# Release builds of gcc warn about a few paths its inliner cannot prove; they stay warnings
# here so the benchmark measures optimised code.
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DGANTRY_SANITIZE=OFF \
    "-DCMAKE_C_FLAGS=-Wno-error=format-truncation -Wno-error=maybe-uninitialized" >/dev/null
cmake --build "$build" -j2 --target gantry-scheduler cp_loadgen >/dev/null
gantry=$build/scheduler/gantry-scheduler
loadgen=$build/tests/bench/control-plane/cp_loadgen

declare -A gpid epid
g_api() { echo "127.0.0.1:$((23000 + 10 * $1))"; }
g_raft() { echo "127.0.0.1:$((23000 + 10 * $1 + 1))"; }
e_client() { echo "127.0.0.1:$((24000 + 10 * $1))"; }
e_peer() { echo "127.0.0.1:$((24000 + 10 * $1 + 1))"; }

g_start() {
    "$gantry" --id "$1" --data-dir "$work/g$1" --raft-addr "$(g_raft "$1")" \
        --api-addr "$(g_api "$1")" --agent-addr "127.0.0.1:$((23000 + 10 * $1 + 2))" \
        --bootstrap "1=$(g_raft 1),2=$(g_raft 2),3=$(g_raft 3)" --log-level warn \
        ${GANTRY_FLAGS:-} >>"$work/g$1.log" 2>&1 &
    gpid[$1]=$!
    pids+=("$!")
}
e_start() {
    etcd --name "e$1" --data-dir "$work/e$1" \
        --listen-client-urls "http://$(e_client "$1")" --advertise-client-urls "http://$(e_client "$1")" \
        --listen-peer-urls "http://$(e_peer "$1")" --initial-advertise-peer-urls "http://$(e_peer "$1")" \
        --initial-cluster "e1=http://$(e_peer 1),e2=http://$(e_peer 2),e3=http://$(e_peer 3)" \
        --initial-cluster-state new --initial-cluster-token gantry-bench --log-level error \
        >>"$work/e$1.log" 2>&1 &
    epid[$1]=$!
    pids+=("$!")
}

# g_leader IDS...: the leader id when every listed server names the same one and it says
# it leads.
g_leader() {
    local i l leader=""
    for i in "$@"; do
        l=$(curl -s --max-time 2 "http://$(g_api "$i")/v1/cluster" |
            python3 -c "import json,sys; print(json.load(sys.stdin)['leader'])" 2>/dev/null) || return 1
        [ -n "$l" ] && [ "$l" != 0 ] || return 1
        [ -z "$leader" ] || [ "$leader" = "$l" ] || return 1
        leader=$l
    done
    [ "$(curl -s --max-time 2 "http://$(g_api "$leader")/v1/cluster" |
        python3 -c "import json,sys; print(json.load(sys.stdin)['state'])" 2>/dev/null)" = leader ] || return 1
    echo "$leader"
}
e_leader() {
    local i
    for i in "$@"; do
        if etcdctl --endpoints "http://$(e_client "$i")" endpoint status -w json 2>/dev/null |
            python3 -c "import json,sys; s=json.load(sys.stdin)[0]['Status']; sys.exit(0 if s['leader']==s['header']['member_id'] else 1)"; then
            echo "$i"
            return 0
        fi
    done
    return 1
}
wait_leader() {
    local kind=$1; shift
    for _ in $(seq 1 300); do
        "${kind}_leader" "$@" >/dev/null && return 0
        sleep 0.1
    done
    echo "no $kind leader" >&2
    return 1
}
rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

for i in 1 2 3; do g_start "$i"; e_start "$i"; done
wait_leader g 1 2 3
wait_leader e 1 2 3
sleep 1

# run KIND CLIENTS REQUESTS -> "ok errors seconds throughput p50 p99"
run() {
    local kind=$1 clients=$2 n=$3 leader target
    wait_leader "$kind" 1 2 3
    if [ "$kind" = g ]; then
        leader=$(g_leader 1 2 3); target=$(g_api "$leader")
        "$loadgen" --mode gantry --target "$target" --clients "$clients" --requests "$n" --id "c$clients-$RANDOM"
    else
        leader=$(e_leader 1 2 3); target=$(e_client "$leader")
        "$loadgen" --mode etcd --target "$target" --clients "$clients" --requests "$n" --id "c$clients-$RANDOM"
    fi
}

# Warm both up, then measure.
run g 16 2000 >/dev/null || true
run e 16 2000 >/dev/null || true
declare -A res all
for kind in g e; do
    res[$kind-seq]=$(run "$kind" 1 $((requests / 10)))
done
for round in $(seq 1 "$rounds"); do
    for clients in 16 64; do
        for kind in g e; do
            all[$kind-$clients]+="$(run "$kind" "$clients" "$requests")"$'\n'
        done
    done
done
# The run with the median throughput (4th field) of each kind and concurrency.
for key in g-16 e-16 g-64 e-64; do
    res[$key]=$(printf '%s' "${all[$key]}" | sort -n -k4 | awk '{ a[NR] = $0 } END { print a[int((NR + 1) / 2)] }')
done
rss_g=0 rss_e=0
for i in 1 2 3; do
    r=$(rss_mb "${gpid[$i]}"); [ "$r" -gt "$rss_g" ] && rss_g=$r
    r=$(rss_mb "${epid[$i]}"); [ "$r" -gt "$rss_e" ] && rss_e=$r
done

# Failover: SIGKILL the leader, then write to the survivors until one write succeeds. Runs
# in this shell (not a subshell) so the restarted member's pid is kept; sets fo_ms.
failover() {
    local kind=$1 leader="" others=() i t0 t1 targets=""
    for _ in $(seq 1 300); do
        leader=$("${kind}_leader" 1 2 3) && break
        sleep 0.1
    done
    for i in 1 2 3; do [ "$i" != "$leader" ] && others+=("$i"); done
    for i in "${others[@]}"; do
        targets+="${targets:+,}$([ "$kind" = g ] && g_api "$i" || e_client "$i")"
    done
    local pid
    if [ "$kind" = g ]; then pid=${gpid[$leader]}; else pid=${epid[$leader]}; fi
    t0=$(date +%s%N)
    kill -KILL "$pid"
    wait "$pid" 2>/dev/null || true
    t1=$("$loadgen" --mode "$([ "$kind" = g ] && echo gantry || echo etcd)" --target "$targets" --probe 30000)
    fo_ms=$(((t1 - t0) / 1000000))
    if [ "$kind" = g ]; then g_start "$leader"; else e_start "$leader"; fi
    wait_leader "$kind" 1 2 3
    sleep 2
}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
fo_g=() fo_e=()
for _ in 1 2 3 4 5; do
    failover g
    fo_g+=("$fo_ms")
    failover e
    fo_e+=("$fo_ms")
done
med_g=$(printf '%s\n' "${fo_g[@]}" | median)
med_e=$(printf '%s\n' "${fo_e[@]}" | median)

field() { echo "$1" | awk -v f="$2" '{ print $f }'; }
printf '\nControl plane, 3 servers on loopback, data on disk (%s, %d cores)\n' "$(uname -r)" "$(nproc)"
printf '%-44s %14s %14s\n' "" "gantry" "etcd 3.4"
printf '%-44s %14s %14s\n' "sequential write p50 (ms)" "$(field "${res[g-seq]}" 5)" "$(field "${res[e-seq]}" 5)"
printf '%-44s %14s %14s\n' "sequential write p99 (ms)" "$(field "${res[g-seq]}" 6)" "$(field "${res[e-seq]}" 6)"
printf '%-44s %14s %14s\n' "sequential writes/s" "$(field "${res[g-seq]}" 4)" "$(field "${res[e-seq]}" 4)"
rounds_of() { printf '%s' "${all[$1]}" | awk '{ printf "%s%s", (NR > 1 ? "," : ""), $4 }'; }
printf '%-44s %14s %14s\n' "writes/s, 16 clients (median of $rounds)" "$(field "${res[g-16]}" 4)" "$(field "${res[e-16]}" 4)"
printf '%-44s %14s %14s\n' "writes/s, 16 clients, each round" "$(rounds_of g-16)" "$(rounds_of e-16)"
printf '%-44s %14s %14s\n' "p50 / p99 ms, 16 clients" "$(field "${res[g-16]}" 5) / $(field "${res[g-16]}" 6)" "$(field "${res[e-16]}" 5) / $(field "${res[e-16]}" 6)"
printf '%-44s %14s %14s\n' "writes/s, 64 clients (median of $rounds)" "$(field "${res[g-64]}" 4)" "$(field "${res[e-64]}" 4)"
printf '%-44s %14s %14s\n' "writes/s, 64 clients, each round" "$(rounds_of g-64)" "$(rounds_of e-64)"
printf '%-44s %14s %14s\n' "p50 / p99 ms, 64 clients" "$(field "${res[g-64]}" 5) / $(field "${res[g-64]}" 6)" "$(field "${res[e-64]}" 5) / $(field "${res[e-64]}" 6)"
ratio() { awk -v g="$(field "${res[g-$1]}" 4)" -v e="$(field "${res[e-$1]}" 4)" 'BEGIN { printf "%.2fx", g / e }'; }
printf '%-44s %14s %14s\n' "throughput gantry / etcd, 16 and 64 clients" "$(ratio 16)" "$(ratio 64)"
printf '%-44s %14s %14s\n' "failover ms, median of 5" "$med_g" "$med_e"
printf '%-44s %14s %14s\n' "failover ms, all runs" "$(IFS=,; echo "${fo_g[*]}")" "$(IFS=,; echo "${fo_e[*]}")"
printf '%-44s %14s %14s\n' "resident memory per server after load (MB)" "$rss_g" "$rss_e"
errors_of() {
    printf '%s\n%s%s' "${res[$1-seq]}" "${all[$1-16]}" "${all[$1-64]}" | awk '{ n += $2 } END { print n + 0 }'
}
printf '%-44s %14s %14s\n' "errors (all runs)" "$(errors_of g)" "$(errors_of e)"
