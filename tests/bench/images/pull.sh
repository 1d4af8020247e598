#!/usr/bin/env bash
# Benchmark: pulling an image from a registry into a node's store, gantry-agent beside
# skopeo and podman, measured in the same run and the same way.
#
#   tests/bench/images/pull.sh [BUILD_DIR] [RUNS]        (as root; SEED=N for another image)
#
# BUILD_DIR (default build/rel) is configured as a Release build and gantry-agent built
# there. Debian's docker-registry serves on a free loopback port from a temporary
# directory; the image, four layers of about 49 MiB compressed and 82 MiB (4,300 files)
# unpacked, busybox then a mix of incompressible and text files made from the seed by
# mklayers.py, is built with umoci and pushed with skopeo. Then RUNS rounds, each pulling
# once with every tool into an empty store:
#
#   gantry          gantry-agent image pull: fetch, verify, unpack every layer, synced to disk
#   skopeo          skopeo copy docker://REF oci:DIR: fetch and verify only, nothing unpacked
#   podman          podman pull with its own --root, --runroot and --tmpdir (empty): fetch
#                   and unpack (overlay driver), nothing synced
#   podman (init)   the same into a store that podman has initialised and `rmi -a` emptied
#
# and then RUNS warm pulls of the same reference into the stores that hold it. `sync` runs
# before every timed pull, so none pays for what an earlier one left in the page cache, and
# is timed after it as well: gantry syncs what it stores, the peers do not. Prints medians,
# minimum, maximum, the ratios and the bytes each store holds on disk.
#
# Everything runs in a private mount namespace in which an empty directory covers
# /var/lib/containers, so podman's and skopeo's defaults there (blob-info cache, storage)
# stay as they were on the host.
set -euo pipefail
shopt -s inherit_errexit
src=$(cd "$(dirname "$0")/../../.." && pwd)
build=${1:-$src/build/rel}
runs=${2:-5}
seed=${SEED:-1}
here=$src/tests/bench/images
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root" >&2; exit 77; }
for tool in docker-registry skopeo umoci busybox python3 curl unshare; do
    command -v $tool >/dev/null || { echo "bench: $tool is missing (deploy/install-deps)" >&2; exit 77; }
done

if [ -z "${GANTRY_BENCH_PRIVATE_NS:-}" ]; then
    export GANTRY_BENCH_PRIVATE_NS=1
    exec unshare -m --propagation private bash "$0" "$@"
fi

echo "bench: building gantry-agent (Release) in $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS= >/dev/null
if ! cmake --build "$build" -j"$(nproc)" --target gantry-agent >"$build/bench-images-build.log" 2>&1; then
    tail -n 30 "$build/bench-images-build.log" >&2
    echo "bench: the build failed; see $build/bench-images-build.log" >&2
    exit 1
fi
agent=$build/agent/gantry-agent

work=$(mktemp -d /tmp/gantry-bench-images.XXXXXX)
pids=()
made_var_lib_containers=0
alive() {
    local state
    state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}
# stop PID: TERM, up to 5 s, then KILL.
stop() {
    local i
    kill "$1" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        alive "$1" || break
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    local pid mnt
    # A second signal (timeout(1) signals the whole group) must not cut the cleanup short;
    # the commands run from here inherit the ignored signals.
    trap '' INT TERM
    for pid in "${pids[@]}"; do stop "$pid"; done
    # Whatever podman mounted under the work directory, innermost first.
    awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    umount -l /var/lib/containers 2>/dev/null || true
    if [ "$made_var_lib_containers" = 1 ]; then rmdir /var/lib/containers 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ ! -d /var/lib/containers ]; then
    mkdir /var/lib/containers
    made_var_lib_containers=1
fi
mkdir -p "$work/var-lib-containers" "$work/tmp"
mount --bind "$work/var-lib-containers" /var/lib/containers
# podman copies blobs through TMPDIR; every tool gets the same one, on the stores' disk.
export TMPDIR=$work/tmp

now_us() { local t=${EPOCHREALTIME/./}; echo "${t#0}"; }
secs() { awk -v us="$1" 'BEGIN {printf "%.3f", us / 1e6}'; }
# stats FILE: "median min max" of the microsecond samples in FILE.
stats() {
    sort -n "$1" | awk '{v[NR] = $1}
        END {m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR]}'
}
mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
disk() { du -sB1 "$1" | cut -f1; }

# The registry.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for ((i = 0; i < 100; i++)); do
    curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break
    alive "${pids[0]}" || { cat "$work/registry.log" >&2; echo "bench: the registry exited" >&2; exit 1; }
    sleep 0.1
done
curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || { echo "bench: the registry does not answer" >&2; exit 1; }

# The image.
ref=127.0.0.1:$port/bench/app:1
echo "bench: building the image (seed $seed) and pushing it to $ref"
mkdir -p "$work/layers"
python3 "$here/mklayers.py" "$seed" "$work/layers" >"$work/layers.txt"
oci=$work/oci
umoci init --layout "$oci"
umoci new --image "$oci:app"
n=0
while read -r name files _; do
    n=$((n + 1))
    umoci raw add-layer --image "$oci:app" --history.created 2026-01-01T00:00:00Z \
        --history.created_by "mklayers.py $seed: $name, $files files" "$work/layers/layer-$n.tar"
done <"$work/layers.txt"
umoci config --image "$oci:app" --created 2026-01-01T00:00:00Z --config.entrypoint /bin/sh
skopeo copy --quiet --dest-tls-verify=false "oci:$oci:app" "docker://$ref"
skopeo inspect --raw --tls-verify=false "docker://$ref" >"$work/manifest.json"
rm -rf "$work/layers" "$oci"
read -r n_layers packed < <(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(len(m["layers"]), sum(l["size"] for l in m["layers"]))' "$work/manifest.json")
read -r files unpacked < <(awk '{f += $2; b += $3} END {print f, b}' "$work/layers.txt")

echo "{\"registries\": {\"127.0.0.1:$port\": {\"insecure\": true}}}" >"$work/registries.json"
# in_podman STORE ARGS...: podman with all its state under $work/STORE.
in_podman() {
    local store=$work/$1
    shift
    podman --root "$store/root" --runroot "$store/run" --tmpdir "$store/tmp" \
        --storage-driver overlay --events-backend none --cgroup-manager cgroupfs "$@"
}

# pull TOOL: one pull into TOOL's store, its output in $work/out-TOOL.
pull() {
    case $1 in
    gantry) "$agent" --data-dir "$work/gantry" --registries "$work/registries.json" image pull "$ref" ;;
    skopeo) skopeo copy --quiet --src-tls-verify=false "docker://$ref" "oci:$work/skopeo:app" ;;
    podman | podman-init) in_podman "$1" pull --quiet --tls-verify=false "$ref" ;;
    esac >"$work/out-$1" 2>&1
}
# empty TOOL: the store as a cold pull finds it.
empty() {
    case $1 in
    gantry | skopeo | podman) rm -rf "${work:?}/$1" ;;
    podman-init)
        in_podman "$1" rmi -af >/dev/null 2>&1 ||
            { rm -rf "${work:?}/$1"; in_podman "$1" images >/dev/null; } ;;
    esac
}
# timed KIND TOOL: sync, pull, sync; appends the pull and the pull with its sync, in
# microseconds, to $work/KIND-TOOL and $work/KIND-TOOL-sync. With KIND gantry-cold, the
# time until gantry logged "image pulled" (fetched and verified) goes to $work/cold-gantry-fetch.
timed() {
    local kind=$1 tool=$2 s e
    sync
    s=$(now_us)
    pull "$tool" || return 1
    e=$(now_us)
    sync
    echo $((e - s)) >>"$work/$kind-$tool"
    echo $(($(now_us) - s)) >>"$work/$kind-$tool-sync"
    if [ "$kind-$tool" = cold-gantry ]; then
        local at
        at=$(sed -n 's/^time=\([^ ]*\) .*msg="image pulled".*/\1/p' "$work/out-gantry")
        [ -n "$at" ] && echo $(($(date -d "$at" +%s%6N) - s)) >>"$work/cold-gantry-fetch"
    fi
    return 0
}

tools=(gantry skopeo)
skipped=()
if ! command -v podman >/dev/null; then
    skipped+=("podman: not installed (deploy/install-deps installs it)")
else
    tools+=(podman podman-init)
    in_podman podman-init images >/dev/null 2>"$work/out-podman-init" || {
        skipped+=("podman: $(tail -n 1 "$work/out-podman-init")")
        tools=(gantry skopeo)
    }
fi

echo "image pull benchmark: $runs rounds; $(nproc) cores, $(uname -r), load $(cut -d' ' -f1 /proc/loadavg)"
echo "peers: $(skopeo --version)$(command -v podman >/dev/null && echo ", $(podman --version)"); registry: $(docker-registry --version | awk '{print $NF}')"
echo "image: $n_layers layers, $(mib "$packed") compressed, $(mib "$unpacked") in $files files unpacked"

# expect TOOL WORD: gantry's pull printed WORD first ("pulled", "up to date").
expect() {
    if [ "$1" = gantry ] && ! grep -q "^$2 " "$work/out-gantry"; then
        cat "$work/out-gantry" >&2
        exit 1
    fi
}
for ((round = 1; round <= runs; round++)); do
    for tool in "${tools[@]}"; do
        [ "$round" = 1 ] || empty "$tool"
        if ! timed cold "$tool" "$tool"; then
            echo "bench: $tool failed:" >&2
            tail -n 5 "$work/out-$tool" >&2
            if [ "$tool" = gantry ]; then exit 1; fi
            skipped+=("$tool: $(tail -n 1 "$work/out-$tool")")
            left=()
            for t in "${tools[@]}"; do
                if [ "$t" != "$tool" ]; then left+=("$t"); fi
            done
            tools=("${left[@]}")
            continue
        fi
        expect "$tool" pulled
    done
done
[ "$(find "$work/gantry/oci/layers" -mindepth 1 -maxdepth 1 | wc -l)" = "$n_layers" ] ||
    { echo "bench: gantry's store does not hold $n_layers unpacked layers" >&2; exit 1; }
declare -A on_disk
for tool in "${tools[@]}"; do
    case $tool in
    gantry) on_disk[$tool]=$(disk "$work/gantry") ;;
    skopeo) on_disk[$tool]=$(disk "$work/skopeo") ;;
    *) on_disk[$tool]=$(disk "$work/$tool/root") ;;
    esac
done
gantry_blobs=$(disk "$work/gantry/oci/blobs")
gantry_layers=$(disk "$work/gantry/oci/layers")

for ((round = 1; round <= runs; round++)); do
    for tool in "${tools[@]}"; do
        timed warm "$tool" "$tool" || { tail -n 5 "$work/out-$tool" >&2; exit 1; }
        expect "$tool" "up to date"
    done
done

label() {
    case $1 in
    gantry) echo "gantry (fetch+unpack)" ;;
    skopeo) echo "skopeo (fetch only)" ;;
    podman) echo "podman (fetch+unpack)" ;;
    podman-init) echo "podman, store initialised" ;;
    esac
}
declare -A med
printf '\ncold pull, empty store (s)\n'
printf '%-28s %8s %8s %8s %14s %12s\n' tool median min max "median+sync" "on disk"
for tool in "${tools[@]}"; do
    read -r m lo hi < <(stats "$work/cold-$tool")
    read -r ms _ _ < <(stats "$work/cold-$tool-sync")
    med[$tool]=$m med[$tool-sync]=$ms
    printf '%-28s %8s %8s %8s %14s %12s\n' "$(label "$tool")" "$(secs "$m")" "$(secs "$lo")" \
        "$(secs "$hi")" "$(secs "$ms")" "$(mib "${on_disk[$tool]}")"
done
read -r fetch _ _ < <(stats "$work/cold-gantry-fetch")
echo "gantry: fetched and verified after $(secs "$fetch") s (median), then unpacked;" \
    "on disk $(mib "$gantry_blobs") of blobs as pulled and $(mib "$gantry_layers") of unpacked layers"
printf '\nwarm pull, the store holds the image (s)\n'
printf '%-28s %8s %8s %8s\n' tool median min max
for tool in "${tools[@]}"; do
    read -r m lo hi < <(stats "$work/warm-$tool")
    med[warm-$tool]=$m
    printf '%-28s %8s %8s %8s\n' "$(label "$tool")" "$(secs "$m")" "$(secs "$lo")" "$(secs "$hi")"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
echo
for tool in "${tools[@]}"; do
    if [ "$tool" = gantry ]; then continue; fi
    echo "gantry/$tool: cold $(ratio "${med[gantry]}" "${med[$tool]}")," \
        "cold with sync $(ratio "${med[gantry-sync]}" "${med[$tool-sync]}")," \
        "warm $(ratio "${med[warm-gantry]}" "${med[warm-$tool]}")"
done
for s in "${skipped[@]}"; do echo "skipped $s"; done
