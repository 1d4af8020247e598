# The cluster of tests/bench/images/warm.sh, torn down by the integration harness when the
# measurement ends.
source "$GANTRY_SOURCE_DIR/tests/integration/lib.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/netns.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/registry.sh"
source "$GANTRY_SOURCE_DIR/tests/integration/cluster.sh"
gt_require_root
N=3
REG=198.18.0.1:5000
gt_hosts_create $N || exit 1
gt_cluster_init $N bw
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sleep
in_host() { nsenter --net="/run/netns/${GT_HOST_NS[1]}" "$@"; }

gt_registry_start 1 "$REG" || exit 1
OCI=$GT_TMP/oci
B=$GT_TMP/bundle
umoci init --layout "$OCI" && umoci new --image "$OCI:app" && umoci unpack --image "$OCI:app" "$B" >/dev/null || exit 1
mkdir -p "$B/rootfs/bin"
cp "$(command -v busybox)" "$B/rootfs/bin/busybox"
for t in sh sleep; do ln -sf busybox "$B/rootfs/bin/$t"; done
umoci repack --image "$OCI:app" "$B" >/dev/null || exit 1
rm -rf "$B" && umoci unpack --image "$OCI:app" "$B" >/dev/null || exit 1
mkdir -p "$B/rootfs/etc" && echo app >"$B/rootfs/etc/hostname"
umoci repack --image "$OCI:app" "$B" >/dev/null || exit 1
umoci config --image "$OCI:app" --config.entrypoint /bin/sleep --config.cmd 3600 || exit 1
in_host skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:app" "docker://$REG/bench/app:1" || exit 1
echo "{\"registries\":{\"$REG\":{\"insecure\":true}}}" >"$GT_TMP/registries.json"

for ((i = 1; i <= N; i++)); do
    gt_image_import "$i" "$rootfs"
    gt_host_exec "$i" "$AGENT" --data-dir "$GT_TMP/a$i" --registries "$GT_TMP/registries.json" \
        image pull "$REG/bench/app:1" >/dev/null || exit 1
    gt_server_start "$i" "" --registries "$GT_TMP/registries.json"
done
for ((i = 1; i <= N; i++)); do gt_agent_start "$i" --registries "$GT_TMP/registries.json"; done
gt_wait_for "3 nodes" 30 gt_nodes_ready 1 3 || exit 1
gt_wait_for "warm pools of replica networks" 60 gt_pools_warm 3 || exit 1
replicas=${GT_BENCH_REPLICAS:-10}
runs=${GT_BENCH_RUNS:-5}
lat=$GANTRY_SOURCE_DIR/tests/bench/fleet/apply_latency.py
echo "== apply -> all running, $replicas replicas on 3 nodes, 3 servers: imported root filesystem"
gt_host_exec 1 python3 "$lat" http://198.18.0.1:7700 "$replicas" "$runs" | tee "$GT_TMP/flat.out"
echo "== the same with $REG/bench/app:1 (pinned at apply, layers already on every node)"
gt_host_exec 1 python3 "$lat" http://198.18.0.1:7700 "$replicas" "$runs" "$REG/bench/app:1" | tee "$GT_TMP/oci.out"
flat=$(awk '/^median/ {print $2}' "$GT_TMP/flat.out")
oci=$(awk '/^median/ {print $2}' "$GT_TMP/oci.out")
python3 -c "
import sys
flat, oci, n = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
print('median: flat %.0f ms, pulled image %.0f ms: %+.1f ms per replica (%.2fx)' % (flat, oci, (oci - flat) / n, oci / flat))
" "$flat" "$oci" "$replicas"
