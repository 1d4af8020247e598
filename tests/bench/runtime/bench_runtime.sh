#!/usr/bin/env bash
# Benchmark: gantry-runtime beside crun and runc on one busybox bundle, measured in the
# same run and the same way.
#
#   tests/bench/runtime/bench_runtime.sh [BUILD_DIR] [ITERATIONS]
#
# BUILD_DIR defaults to build/rel (configure it with -DCMAKE_BUILD_TYPE=Release: sanitizer
# builds distort both time and memory). Needs root, crun, runc and busybox-static.
#
# crun 1.8 refuses hybrid cgroup hosts, so every runtime runs inside `unshare -m` with
# /sys/fs/cgroup/unified unmounted; that wrapper is timed alone and subtracted.
#
# Prints, per runtime: the median of `run` of /bin/true (create, start, wait, delete), the
# time to start 50 detached `sleep` containers and to remove them, and for gantry-runtime
# the private memory (Private_Dirty) of each idle monitor.
set -euo pipefail
shopt -s inherit_errexit
src=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$src/build/rel}
iterations=${2:-40}
ours=$build/runtime/gantry-runtime
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 77; }
for tool in crun runc busybox unshare; do
    command -v $tool >/dev/null || { echo "bench: $tool is missing (deploy/install-deps)" >&2; exit 77; }
done
[ -x "$ours" ] || { echo "bench: $ours is missing; build it with: cmake -S . -B build/rel -DCMAKE_BUILD_TYPE=Release && cmake --build build/rel" >&2; exit 1; }

work=$(mktemp -d /tmp/gantry-bench-runtime.XXXXXX)
chmod 755 "$work"
cleanup() {
    local rt
    for rt in gantry crun runc; do
        [ -d "$work/state-$rt" ] || continue
        for id in $(ls "$work/state-$rt" 2>/dev/null); do
            wrap "$(bin $rt)" --root "$work/state-$rt" delete --force "$id" >/dev/null 2>&1 || true
        done
    done
    rm -rf "$work"
}
trap cleanup EXIT

bin() { case $1 in gantry) echo "$ours" ;; *) command -v "$1" ;; esac; }
# wrap CMD...: the same private mount namespace for every runtime.
wrap() { unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh "$@"; }

# One bundle: busybox with applet links; runc's default spec with /bin/true.
bundle=$work/bundle
mkdir -p "$bundle/rootfs/bin"
cp /bin/busybox "$bundle/rootfs/bin/"
for applet in $(/bin/busybox --list); do
    [ -e "$bundle/rootfs/bin/$applet" ] || ln -s busybox "$bundle/rootfs/bin/$applet"
done
(cd "$bundle" && runc spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' "$bundle/config.json"
sleeper=$work/sleeper
mkdir -p "$sleeper"
sed -e 's/"\/bin\/true"$/"\/bin\/sleep", "600"/' -e "s|\"path\": \"rootfs\"|\"path\": \"$bundle/rootfs\"|" \
    "$bundle/config.json" >"$sleeper/config.json"

now_us() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
median() { sort -n | awk '{v[NR]=$1} END {if (NR % 2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }
ms() { awk -v us="$1" 'BEGIN {printf "%.1f", us / 1000}'; }

# Times `run` of /bin/true for every runtime and the wrapper alone, interleaved (one of
# each per round) so that load from elsewhere on the machine hits all of them alike.
# Leaves one file of microsecond samples per runtime in $work/samples-NAME.
time_runs() {
    local rt b i s
    for rt in gantry crun runc; do
        b=$(bin "$rt")
        mkdir -p "$work/state-$rt"
        # Two untimed runs warm the page cache and the cgroup parents.
        for i in 1 2; do
            wrap "$b" --root "$work/state-$rt" run -b "$bundle" "warm-$i" >/dev/null ||
                { echo "bench: $rt run failed" >&2; exit 1; }
        done
    done
    for ((i = 0; i < iterations; i++)); do
        s=$(now_us)
        wrap true
        echo $(($(now_us) - s)) >>"$work/samples-wrapper"
        for rt in gantry crun runc; do
            b=$(bin "$rt")
            s=$(now_us)
            wrap "$b" --root "$work/state-$rt" run -b "$bundle" "bench-$i" >/dev/null
            echo $(($(now_us) - s)) >>"$work/samples-$rt"
        done
    done
}

# Starts 50 detached sleepers in one wrapper, then removes them in another; prints
# "start_us remove_us".
time_fifty() {
    local rt=$1 b s start
    b=$(bin "$rt")
    s=$(now_us)
    wrap sh -c 'for i in $(seq 1 50); do "$1" --root "$2" run -d -b "$3" "sleep-$i" </dev/null >/dev/null 2>&1 || exit 1; done' \
        sh "$b" "$work/state-$rt" "$sleeper"
    start=$(($(now_us) - s))
    if [ "$rt" = gantry ]; then
        monitor_memory >"$work/monitor-memory"
    fi
    s=$(now_us)
    wrap sh -c 'for i in $(seq 1 50); do "$1" --root "$2" delete --force "sleep-$i" || exit 1; done' \
        sh "$b" "$work/state-$rt"
    echo "$start $(($(now_us) - s))"
}

# Private_Dirty (kB) of each gantry-runtime monitor: "median max".
monitor_memory() {
    local f pid
    for f in "$work"/state-gantry/sleep-*/state.json; do
        pid=$(sed -n 's/.*"monitorPid":\([0-9]*\).*/\1/p' "$f")
        awk '/^Private_Dirty:/ {print $2}' "/proc/$pid/smaps_rollup"
    done | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)], v[NR]}'
}

echo "gantry-runtime benchmark: $iterations interleaved rounds, medians; $(nproc) cores, $(uname -r), load $(cut -d' ' -f1 /proc/loadavg)"
echo "peers: $(crun --version | head -1), $(runc --version | head -1)"
time_runs
wrapper=$(median <"$work/samples-wrapper")
declare -A run fifty
for rt in gantry crun runc; do
    run[$rt]=$(median <"$work/samples-$rt")
    fifty[$rt]=$(time_fifty "$rt")
done
printf '\n%-16s %14s %14s %16s %16s\n' runtime "run (ms)" "net of wrapper" "50 starts (s)" "50 deletes (s)"
for rt in gantry crun runc; do
    name=$rt
    [ "$rt" = gantry ] && name=gantry-runtime
    read -r start remove <<<"${fifty[$rt]}"
    printf '%-16s %14s %14s %16s %16s\n' "$name" "$(ms "${run[$rt]}")" \
        "$(ms $((${run[$rt]%.*} - ${wrapper%.*})))" \
        "$(awk -v us="$start" 'BEGIN {printf "%.2f", us / 1e6}')" \
        "$(awk -v us="$remove" 'BEGIN {printf "%.2f", us / 1e6}')"
done
printf '%-16s %14s\n' "unshare wrapper" "$(ms "$wrapper")"
read -r mem_median mem_max <"$work/monitor-memory"
echo
echo "gantry-runtime monitor Private_Dirty over 50 idle containers: median ${mem_median} kB, max ${mem_max} kB"
g=${run[gantry]%.*} c=${run[crun]%.*} r=${run[runc]%.*} w=${wrapper%.*}
echo "net ratios: gantry/crun $(awk -v a=$((g - w)) -v b=$((c - w)) 'BEGIN {printf "%.2f", a / b}')," \
    "gantry/runc $(awk -v a=$((g - w)) -v b=$((r - w)) 'BEGIN {printf "%.2f", a / b}')"
