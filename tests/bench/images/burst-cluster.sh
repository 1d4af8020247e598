# The cluster and the measurements of tests/bench/images/burst.sh, under the integration
# harness (lib.sh), which stops every process and removes every namespace at the end.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/registry.sh"
gt_require_root
RUNS=${GT_BENCH_RUNS:-3}
NODES=${GT_BENCH_NODES:-5}
SEED=${GT_BENCH_SEED:-1}
SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
REG=127.0.0.1:5000
API=http://127.0.0.1:7700
PREFIX="bb$$-"
gt_hosts_create 1 || exit 1
on_host() { gt_host_exec 1 "$@"; }
gt_on_exit "for d in $GT_TMP/run*/rt*; do [ -d \$d ] || continue; for id in \$($RUNTIME --root \$d list -q 2>/dev/null); do $RUNTIME --root \$d delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns; done"

gt_registry_start 1 "$REG" || exit 1

echo "bench: building the image (seed $SEED) and pushing it to $REG/bench/burst:1"
mkdir -p "$GT_TMP/layers"
python3 "$GANTRY_SOURCE_DIR/tests/bench/images/mklayers.py" "$SEED" "$GT_TMP/layers" >"$GT_TMP/layers.txt"
OCI=$GT_TMP/oci
umoci init --layout "$OCI" && umoci new --image "$OCI:app" || exit 1
n=0
while read -r name files _; do
    n=$((n + 1))
    umoci raw add-layer --image "$OCI:app" --history.created 2026-01-01T00:00:00Z \
        --history.created_by "mklayers.py $SEED: $name, $files files" "$GT_TMP/layers/layer-$n.tar" || exit 1
done <"$GT_TMP/layers.txt"
umoci config --image "$OCI:app" --created 2026-01-01T00:00:00Z --config.entrypoint /bin/sleep \
    --config.cmd 3600 || exit 1
on_host skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:app" "docker://$REG/bench/burst:1" || exit 1
on_host skopeo inspect --raw --tls-verify=false "docker://$REG/bench/burst:1" >"$GT_TMP/manifest.json"
rm -rf "$GT_TMP/layers" "$OCI"
read -r n_layers size < <(python3 -c 'import json, sys
m = json.load(open(sys.argv[1]))
print(len(m["layers"]), m["config"]["size"] + sum(l["size"] for l in m["layers"]))' "$GT_TMP/manifest.json")
echo "{\"registries\":{\"$REG\":{\"insecure\":true}}}" >"$GT_TMP/registries.json"

mib() { awk -v b="$1" 'BEGIN {printf "%.1f MiB", b / 1048576}'; }
now_ms() { local t=${EPOCHREALTIME/./}; echo $((${t#0} / 1000)); }
api() { local path=$1; shift; on_host curl -s --max-time 5 "$@" "$API$path"; }
running() { # N: N replicas of burst run
    [ "$(api "/v1/replicas?workload=burst" | grep -o '"state":"running"' | wc -l)" = "$1" ]
}
sum_field() { # FIELD PATTERN FILES...
    local field=$1 pattern=$2
    shift 2
    cat "$@" | grep "$pattern" | grep -o "$field=[0-9]*" | cut -d= -f2 | awk '{s += $1} END {print s + 0}'
}
# registry_bytes FROM: the bytes of the blob answers in the registry's log after line FROM.
registry_bytes() {
    tail -n +"$(($1 + 1))" "$GT_TMP/registry.log" | grep 'msg="response completed"' |
        grep 'http.request.uri="/v2/bench/burst/blobs/' | grep -o 'http.response.written=[0-9]*' |
        cut -d= -f2 | awk '{s += $1} END {print s + 0}'
}

# run MODE K: one cold burst with layer servers on (peers) or off (registry); appends
# "ms_running bytes_agents bytes_registry ms_fetched" to $GT_TMP/result-MODE.
run() {
    local mode=$1 k=$2 dir=$GT_TMP/run$2-$1 i pids=()
    mkdir -p "$dir"
    gt_host_spawn "run$k-$mode-s1" 1 "$SCHED" --id 1 --data-dir "$dir/s1" --raft-addr 127.0.0.1:7701 \
        --api-addr 127.0.0.1:7700 --agent-addr 127.0.0.1:7702 --bootstrap 1=127.0.0.1:7701 \
        --registries "$GT_TMP/registries.json"
    pids+=("$GT_LAST_PID")
    for ((i = 1; i <= NODES; i++)); do
        local blob=off
        [ "$mode" = peers ] && blob=127.0.0.1:$((7710 + i))
        gt_host_spawn "run$k-$mode-a$i" 1 "$AGENT" --servers 127.0.0.1:7702 --name "node$i" \
            --data-dir "$dir/a$i" --runtime-root "$dir/rt$i" --netns-prefix "$PREFIX$k$mode$i-" \
            --subnet "198.19.$i.0/24" --bridge "bb$k${mode:0:1}$i" --heartbeat 500ms \
            --registries "$GT_TMP/registries.json" --blob-listen "$blob"
        pids+=("$GT_LAST_PID")
    done
    ready() { [ "$(api /v1/nodes | grep -o '"state":"ready"' | wc -l)" = "$NODES" ]; }
    gt_wait_for "$NODES nodes" 60 ready || return 1
    local from start end
    from=$(wc -l <"$GT_TMP/registry.log")
    start=$(now_ms)
    api /v1/apply -X POST -d "{\"name\":\"burst\",\"image\":\"$REG/bench/burst:1\",\"replicas\":$NODES,\"resources\":{\"cpu\":\"10m\",\"memory\":\"16Mi\"},\"stop_grace\":\"1s\",\"placement\":{\"spread\":\"node\"}}" >/dev/null
    gt_wait_for "burst running" 300 running "$NODES" || return 1
    end=$(now_ms)
    sleep 1 # the agents' last log lines
    local logs=() agents reg
    for ((i = 1; i <= NODES; i++)); do logs+=("$GT_TMP/run$k-$mode-a$i.log"); done
    agents=$(($(sum_field bytes_registry 'image pulled.*bench/burst' "${logs[@]}") +
        $(sum_field bytes_registry 'blob pulled for peers.*bench/burst' "${logs[@]}")))
    reg=$(registry_bytes "$from")
    # When the last node had the whole image in its store (its "image pulled" line).
    local fetched=0 t
    for f in "${logs[@]}"; do
        t=$(sed -n 's/^time=\([^ ]*\) .*msg="image pulled".*bench\/burst.*/\1/p' "$f" | head -n 1)
        [ -n "$t" ] && t=$(($(date -d "$t" +%s%3N) - start)) && [ "$t" -gt "$fetched" ] && fetched=$t
    done
    echo "$((end - start)) $agents $reg $fetched" >>"$GT_TMP/result-$mode"
    printf '  %-8s run %d: all %d fetched %5.2f s and running %5.2f s after the apply; from the registry %s (agents) %s (registry), %.2fx the image\n' \
        "$mode" "$k" "$NODES" "$(awk -v m="$fetched" 'BEGIN {print m / 1000}')" \
        "$(awk -v m=$((end - start)) 'BEGIN {print m / 1000}')" "$(mib "$agents")" \
        "$(mib "$reg")" "$(awk -v a="$reg" -v s="$size" 'BEGIN {print a / s}')"
    api /v1/workloads/burst -X DELETE >/dev/null
    gone() { [ "$(api "/v1/replicas?workload=burst" | grep -c '"state":"running"')" = 0 ]; }
    gt_wait_for "burst stopped" 60 gone || true
    for i in "${pids[@]}"; do gt_stop "$i"; done
    for ((i = 1; i <= NODES; i++)); do
        for id in $($RUNTIME --root "$dir/rt$i" list -q 2>/dev/null); do
            $RUNTIME --root "$dir/rt$i" delete -f "$id" >/dev/null 2>&1
        done
    done
    rm -rf "$dir"/a* "$dir"/s1
    # The next run's nodes take the same subnets on bridges of their own: an agent refuses a
    # subnet that a route of the host (these bridges') already covers.
    for ((i = 1; i <= NODES; i++)); do on_host ip link del "bb$k${mode:0:1}$i" 2>/dev/null || true; done
}

echo "image burst benchmark: $NODES nodes, $RUNS runs each; $(nproc) cores, $(uname -r), load $(cut -d' ' -f1 /proc/loadavg)"
echo "image: $n_layers layers, $(mib "$size") (config and layers as the manifest gives them)"
for ((k = 1; k <= RUNS; k++)); do
    run peers "$k" || { echo "bench: the run with peers failed" >&2; exit 1; }
    run registry "$k" || { echo "bench: the run without peers failed" >&2; exit 1; }
done
# median FILE COLUMN
median() { awk -v c="$2" '{print $c}' "$1" | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
pt=$(median "$GT_TMP/result-peers" 1)
bt=$(median "$GT_TMP/result-registry" 1)
pa=$(median "$GT_TMP/result-peers" 2)
ba=$(median "$GT_TMP/result-registry" 2)
pr=$(median "$GT_TMP/result-peers" 3)
br=$(median "$GT_TMP/result-registry" 3)
pf=$(median "$GT_TMP/result-peers" 4)
bf=$(median "$GT_TMP/result-registry" 4)
s() { awk -v m="$1" 'BEGIN {printf "%.2f", m / 1000}'; }
echo "medians over $RUNS runs:"
printf '  peers:    all fetched %s s, all running %s s after the apply; from the registry %s by the agents, %s by the registry (%.2fx the image)\n' \
    "$(s "$pf")" "$(s "$pt")" "$(mib "$pa")" "$(mib "$pr")" "$(awk -v a="$pr" -v s="$size" 'BEGIN {print a / s}')"
printf '  no peers: all fetched %s s, all running %s s after the apply; from the registry %s by the agents, %s by the registry (%.2fx the image)\n' \
    "$(s "$bf")" "$(s "$bt")" "$(mib "$ba")" "$(mib "$br")" "$(awk -v a="$br" -v s="$size" 'BEGIN {print a / s}')"
printf '  registry bytes, no peers / peers: %.2f; time to all running, no peers / peers: %.2f (to all fetched: %.2f)\n' \
    "$(awk -v a="$br" -v b="$pr" 'BEGIN {print a / b}')" "$(awk -v a="$bt" -v b="$pt" 'BEGIN {print a / b}')" \
    "$(awk -v a="$bf" -v b="$pf" 'BEGIN {print a / b}')"
