# gantry-agent image load on a node that reaches no registry: an image of two layers (the
# second deletes a file of the first: a whiteout) built with umoci, loaded as the OCI
# layout directory, as a tar.gz of a layout skopeo wrote, and as a docker save archive
# skopeo wrote; `image pull` of each loaded name then uses the stored image although its
# registry (a port nothing listens on) cannot be reached, and an image that is not stored
# fails with the connection error. A damaged archive is refused and records nothing. (That
# the loaded layers unpack, whiteout included, is test_image_load's.)
source "$(dirname "$0")/lib.sh"
gt_require_root
for tool in skopeo umoci python3; do
    command -v "$tool" >/dev/null || gt_skip "$tool is not installed (deploy/install-deps)"
done
AGENT=$GT_BUILD/agent/gantry-agent
[ -x "$AGENT" ] || gt_skip "binaries not built"

# A registry address nothing answers on.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
echo "{\"registries\":{\"$REG\":{\"insecure\":true}}}" >"$GT_TMP/registries.json"

# The image: /etc/motd and /gone in the first layer; the second deletes /gone.
OCI=$GT_TMP/oci
B=$GT_TMP/bundle
{ umoci init --layout "$OCI" && umoci new --image "$OCI:app" &&
    umoci unpack --image "$OCI:app" "$B"; } >/dev/null || exit 1
mkdir -p "$B/rootfs/etc"
echo "hello from the first layer" >"$B/rootfs/etc/motd"
echo "deleted by the second layer" >"$B/rootfs/gone"
umoci repack --image "$OCI:app" "$B" || exit 1
rm -rf "$B"
umoci unpack --image "$OCI:app" "$B" >/dev/null || exit 1
rm "$B/rootfs/gone"
umoci repack --image "$OCI:app" "$B" || exit 1
umoci config --image "$OCI:app" --config.cmd /bin/sh || exit 1
MANIFEST=$(python3 -c 'import json,sys
for m in json.load(open(sys.argv[1]))["manifests"]:
    if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == "app":
        print(m["digest"])' "$OCI/index.json")
gt_log "umoci's manifest: $MANIFEST"

# The same image as a tar.gz of a layout skopeo wrote (named by its ref.name) and as a
# docker save archive (named by its RepoTags).
gt_check "skopeo writes an OCI layout" skopeo copy --quiet "oci:$OCI:app" "oci:$GT_TMP/layout2:$REG/test/app:2"
tar -C "$GT_TMP/layout2" -czf "$GT_TMP/app.oci.tar.gz" . || exit 1
gt_check "skopeo writes a docker save archive" skopeo copy --quiet "oci:$OCI:app" "docker-archive:$GT_TMP/app.docker.tar:$REG/test/app:3"

# load DATA ARGS... and pull DATA REF: the agent's image commands on DATA, their output in
# $GT_TMP/load-N.out and their stderr (logs, errors) in $GT_TMP/load-N.log.
N=0
load() {
    local data=$1; shift
    N=$((N + 1))
    "$AGENT" --data-dir "$data" image load "$@" >"$GT_TMP/load-$N.out" 2>"$GT_TMP/load-$N.log"
}
out() { cat "$GT_TMP/load-$N.out"; }
pull() {
    local data=$1 ref=$2
    N=$((N + 1))
    "$AGENT" --data-dir "$data" --registries "$GT_TMP/registries.json" image pull "$ref" \
        >"$GT_TMP/load-$N.out" 2>"$GT_TMP/load-$N.log"
}
err() { cat "$GT_TMP/load-$N.log"; }

D1=$GT_TMP/d1 D2=$GT_TMP/d2 D3=$GT_TMP/d3
gt_check "an OCI layout directory loads under --name" load "$D1" "$OCI" --name "$REG/test/app:1"
gt_log "$(out)"
gt_check "it prints the name, manifest, layers and size" \
    grep -qE "^loaded $REG/test/app:1@$MANIFEST: 2 layers, [0-9.]+(Ki|Mi)?$" <<<"$(out)"
gt_check "a tar.gz of a layout loads under its ref.name" load "$D2" "$GT_TMP/app.oci.tar.gz"
gt_log "$(out)"
gt_check "named $REG/test/app:2, with skopeo's manifest" \
    grep -qE "^loaded $REG/test/app:2@sha256:[0-9a-f]{64}: 2 layers" <<<"$(out)"
gt_check "a docker save archive loads under its RepoTags" load "$D3" "$GT_TMP/app.docker.tar"
gt_log "$(out)"
gt_check "named $REG/test/app:3" grep -qE "^loaded $REG/test/app:3@sha256:[0-9a-f]{64}: 2 layers" <<<"$(out)"

for i in 1 2 3; do
    gt_check "image pull $REG/test/app:$i with the registry unreachable uses the loaded image" \
        pull "$GT_TMP/d$i" "$REG/test/app:$i"
    gt_log "$(out)"
    gt_check "it is up to date" grep -q "^up to date $REG/test/app:$i@sha256:" <<<"$(out)"
    gt_check "and says the registry was unreachable" grep -q "registry unreachable, using the stored image" <<<"$(err)"
done
gt_check "an image the node does not hold still needs the registry" \
    bash -c "! '$AGENT' --data-dir '$D1' --registries '$GT_TMP/registries.json' image pull '$REG/test/nope:1' 2>'$GT_TMP/nope.log'"
gt_check "and the error says it could not connect" grep -q "cannot connect" "$GT_TMP/nope.log"

# A docker save archive whose layer was changed after the config named it.
mkdir -p "$GT_TMP/damaged"
tar -C "$GT_TMP/damaged" -xf "$GT_TMP/app.docker.tar" || exit 1
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Layers"][0])' "$GT_TMP/damaged/manifest.json")
echo "appended" >>"$GT_TMP/damaged/$layer"
tar -C "$GT_TMP/damaged" -cf "$GT_TMP/damaged.tar" . || exit 1
D4=$GT_TMP/d4
gt_check "a docker save archive with a changed layer is refused" \
    bash -c "! '$AGENT' --data-dir '$D4' image load '$GT_TMP/damaged.tar' 2>'$GT_TMP/damaged.log'"
gt_log "$(cat "$GT_TMP/damaged.log")"
gt_check "naming the layer and the diff_id" grep -q "Layers\[0\] \"$layer\" hashes to sha256:.*rootfs.diff_ids\[0\]" "$GT_TMP/damaged.log"
gt_check "and recording nothing" [ "$(find "$D4/oci/images" -type f | wc -l)" = 0 ]
gt_finish
