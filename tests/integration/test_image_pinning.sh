# The leader pins an image tag to a digest at apply, against Debian's docker-registry on a
# test host: `gantry apply` says the digest, describe and the audit trail show it with the
# image's OCI labels; moving the tag in the registry changes nothing for the workload (a
# replica added later still runs the pinned bytes) until the next apply, which pins the new
# digest and rolls the replicas to it; a tag the registry lacks is refused at apply with
# the registry's answer and changes nothing; with the registry down the apply goes through
# unpinned, with a warning. The image's StopSignal, ExposedPorts and Labels reach the
# container as its OCI annotations. An image loaded on an air-gapped node is pinned to the
# copy the node reports while the registry is down, and runs.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/registry.sh"
source "$(dirname "$0")/cluster.sh"
gt_require_root
for tool in docker-registry skopeo umoci busybox python3; do
    command -v "$tool" >/dev/null || gt_skip "$tool is not installed (deploy/install-deps)"
done
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

gt_hosts_create 2 || exit 1
gt_cluster_init 1 pin
REG=198.18.0.1:5000
in_host() { nsenter --net="/run/netns/${GT_HOST_NS[1]}" "$@"; }
gantry() { gt_gantry 1 "$@"; }

gt_check "the registry answers" gt_registry_start 1 "$REG"

# build_image NAME VERSION: busybox whose entrypoint prints "version VERSION" and sleeps,
# labelled with its licence and revision, in the OCI layout $GT_TMP/oci under NAME.
OCI=$GT_TMP/oci
umoci init --layout "$OCI" || exit 1
build_image() {
    local b=$GT_TMP/bundle-$1
    umoci new --image "$OCI:$1" && umoci unpack --image "$OCI:$1" "$b" >/dev/null || return 1
    mkdir -p "$b/rootfs/bin"
    cp "$(command -v busybox)" "$b/rootfs/bin/busybox"
    for t in sh sleep echo; do ln -sf busybox "$b/rootfs/bin/$t"; done
    echo "$2" >"$b/rootfs/version"
    umoci repack --image "$OCI:$1" "$b" || return 1
    umoci config --image "$OCI:$1" --config.entrypoint /bin/sh --config.cmd -c \
        --config.cmd "echo version $2; exec sleep 1000" \
        --config.label org.opencontainers.image.licenses=MIT \
        --config.label "org.opencontainers.image.revision=rev-$2" \
        --config.stopsignal SIGINT --config.exposedports 8080/tcp \
        --manifest.annotation org.opencontainers.image.source=https://example.org/web
}
push() { in_host skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:$1" "docker://$REG/$2"; }
digest_of() { in_host skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$REG/$1"; }
gt_check "version 1 is built" build_image v1 1
gt_check "version 2 is built" build_image v2 2
gt_check "version 1 is pushed as test/web:1" push v1 test/web:1
gt_check "version 2 is pushed as test/web:2" push v2 test/web:2
D1=$(digest_of test/web:1)
D2=$(digest_of test/web:2)
gt_log "digests: 1=$D1 2=$D2"
gt_check "the two digests differ" [ -n "$D1" ] && [ "$D1" != "$D2" ]

echo "{\"registries\":{\"$REG\":{\"insecure\":true}}}" >"$GT_TMP/registries.json"
gt_server_start 1 "" --registries "$GT_TMP/registries.json"
gt_agent_start 2 --registries "$GT_TMP/registries.json"
gt_check "the cluster has a leader" gt_wait_for "leader" 60 gt_has_leader 1
gt_check "the node is ready" gt_wait_for "node" 60 gt_nodes_ready 1 1

cat >"$GT_TMP/web.yaml" <<EOF
name: web
image: $REG/test/web:1
replicas: 1
stop_grace: 1s
EOF
gantry apply -f "$GT_TMP/web.yaml" >"$GT_TMP/apply1.out" 2>&1
gt_log "apply: $(tr '\n' '|' <"$GT_TMP/apply1.out")"
gt_check "apply says which digest it pinned" grep -q "image $REG/test/web:1 pinned to $D1" "$GT_TMP/apply1.out"

# versions NAME: the "version N" lines the workload's replicas printed, one per replica.
versions() {
    local id
    for id in $(gt_api 1 "/v1/replicas?workload=$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["items"]:
    if r["state"] == "running":
        print(r["id"])' 2>/dev/null); do
        grep -h -m1 '^version ' "$GT_TMP/rt2/$id/container.log" 2>/dev/null
    done | sort | tr '\n' ' '
}
runs() { [ "$(versions "$1")" = "$2" ]; }
gt_check "the replica runs version 1" gt_wait_for "web on version 1" 90 runs web "version 1 "
gantry describe workload web >"$GT_TMP/describe.out" 2>&1
gt_check "describe shows the pinned digest" grep -q "Image digest: $D1" "$GT_TMP/describe.out"
gt_check "and the image's labels" grep -q "org.opencontainers.image.licenses=MIT" "$GT_TMP/describe.out"
gt_check "and its annotations" grep -q "org.opencontainers.image.source=https://example.org/web" "$GT_TMP/describe.out"
gt_check "and the ports the image exposes" grep -q "org.opencontainers.image.exposedPorts=8080/tcp" "$GT_TMP/describe.out"
events_say() { gt_api 1 /v1/events | grep -q "$1"; }
gt_check "the apply event records the digest and the labels" \
    events_say "pinned to $D1 (.*licenses=MIT.*revision=rev-1"
first_id() { gt_api 1 "/v1/replicas?workload=$1" | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin)["items"] if r["state"] == "running"][0])'; }
"$RUNTIME" --root "$GT_TMP/rt2" state "$(first_id web)" >"$GT_TMP/state.json" 2>&1
annotation() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["annotations"].get(sys.argv[2], ""))' "$GT_TMP/state.json" "$1"; }
gt_check "the image's StopSignal reaches the container's annotations" [ "$(annotation org.opencontainers.image.stopSignal)" = SIGINT ]
gt_check "and its exposed ports" [ "$(annotation org.opencontainers.image.exposedPorts)" = 8080/tcp ]
gt_check "and its labels" [ "$(annotation org.opencontainers.image.licenses)" = MIT ]
gt_check "the agent pulled by digest" grep -q "image pulled.*$D1" "$GT_TMP/a2.log"

# The tag moves in the registry: the workload keeps its bytes.
gt_check "test/web:1 now points at version 2" push v2 test/web:1
gt_check "the registry says so" [ "$(digest_of test/web:1)" = "$D2" ]
gantry scale web 2 >/dev/null
gt_check "a replica added after the tag moved still runs version 1" \
    gt_wait_for "two replicas on version 1" 90 runs web "version 1 version 1 "

# The next apply pins the new digest and rolls the replicas to it.
sed -i 's/^replicas: 1/replicas: 2/' "$GT_TMP/web.yaml"
gantry apply -f "$GT_TMP/web.yaml" >"$GT_TMP/apply2.out" 2>&1
gt_log "apply: $(tr '\n' '|' <"$GT_TMP/apply2.out")"
gt_check "the next apply pins the tag's new digest" grep -q "pinned to $D2" "$GT_TMP/apply2.out"
gt_check "and starts a new generation" grep -q "generation 2" "$GT_TMP/apply2.out"
gt_check "the replicas roll to version 2" gt_wait_for "web on version 2" 120 runs web "version 2 version 2 "
gantry apply -f "$GT_TMP/web.yaml" >"$GT_TMP/apply3.out" 2>&1
gt_check "an apply of the same file again changes nothing" grep -q "unchanged" "$GT_TMP/apply3.out"

# A second workload of the image: the leader asks the registry for the tag's manifest and
# takes the labels of the config it read before (content-addressed, so they cannot have
# changed) without fetching it again.
blob_gets() { grep -c 'http.request.method=GET.*/blobs/sha256' "$GT_TMP/registry.log" || true; }
gets_before=$(blob_gets)
sed 's/^name: web/name: web2/; s/^replicas: 2/replicas: 1/' "$GT_TMP/web.yaml" >"$GT_TMP/web2.yaml"
gantry apply -f "$GT_TMP/web2.yaml" >"$GT_TMP/apply4.out" 2>&1
gt_check "a second workload of the image pins the same digest" grep -q "pinned to $D2" "$GT_TMP/apply4.out"
event_of() {
    gt_api 1 /v1/events | python3 -c 'import json, sys
for e in json.load(sys.stdin)["items"]:
    if e["object"] == "workload/" + sys.argv[1]:
        print(e["message"])' "$1"
}
web2_labelled() { [[ "$(event_of web2)" == *"pinned to $D2 ("*licenses=MIT*revision=rev-2* ]]; }
gt_check "with the image's labels" web2_labelled
gt_check "and no blob fetched from the registry for it" [ "$(blob_gets)" = "$gets_before" ]

# A tag the registry lacks: refused at apply, nothing changes.
sed 's#test/web:1#test/web:nope#; s/^name: web/name: nope/' "$GT_TMP/web.yaml" >"$GT_TMP/nope.yaml"
refused() { ! gantry apply -f "$GT_TMP/nope.yaml" >"$GT_TMP/nope.out" 2>&1; }
gt_check "an apply of a tag the registry lacks fails" refused
gt_log "nope: $(tr '\n' '|' <"$GT_TMP/nope.out")"
gt_check "with the registry's answer" grep -q "MANIFEST_UNKNOWN" "$GT_TMP/nope.out"
gt_check "naming the image field" grep -q "image" "$GT_TMP/nope.out"
gt_check "and no workload is created" [ "$(gt_api 1 /v1/workloads/nope -o /dev/null -w '%{http_code}')" = 404 ]

# The registry down: the apply goes through unpinned, with a warning.
gt_stop "$REG_PID"
sed 's/^name: web/name: down/' "$GT_TMP/web.yaml" >"$GT_TMP/down.yaml"
applied_down() { gantry apply -f "$GT_TMP/down.yaml" >"$GT_TMP/down.out" 2>&1; }
gt_check "with the registry down an apply still succeeds" applied_down
gt_log "down: $(tr '\n' '|' <"$GT_TMP/down.out")"
gt_check "and warns that the image is not pinned" grep -q "warning: image $REG/test/web:1 not pinned" "$GT_TMP/down.out"

# Air-gapped: an image loaded on the node, the registry still down. The apply pins the copy
# the node reports holding, and the replica runs it.
gt_check "version 1 is copied into a layout of its own" skopeo copy --quiet "oci:$OCI:v1" "oci:$GT_TMP/air:air"
gt_check "and loaded on the node" "$AGENT" --data-dir "$GT_TMP/a2" image load "$GT_TMP/air" --name "$REG/test/air:1"
DA=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"])' "$GT_TMP/air")
reported() { gt_api 1 /v1/images | grep -q "$REG/test/air:1"; }
gt_check "the node reports it" gt_wait_for "air in the inventory" 30 reported
sed 's#test/web:1#test/air:1#; s/^name: web/name: air/; s/^replicas: 2/replicas: 1/' "$GT_TMP/web.yaml" >"$GT_TMP/air.yaml"
gantry apply -f "$GT_TMP/air.yaml" >"$GT_TMP/air.out" 2>&1
gt_log "air: $(tr '\n' '|' <"$GT_TMP/air.out")"
gt_check "the apply pins the digest the node holds" grep -q "image $REG/test/air:1 pinned to $DA" "$GT_TMP/air.out"
gt_check "and says the registry could not be reached" grep -q "pinned to the copy the nodes hold" "$GT_TMP/air.out"
gt_check "the replica runs the loaded image" gt_wait_for "air running" 90 runs air "version 1 "
gt_finish
