# Images across the cluster with the real binaries: one server and two agents (a1, a2) on
# the loopback of a network namespace of the test's, with Debian's docker-registry there
# serving an image built with umoci (busybox in one layer, OCI labels in its config) and
# pushed with skopeo. `gantry image pull REF --node a1` pulls it on a1 alone and prints
# its digest; the agents' inventories reach the leader and `gantry get images` shows the
# image on a1 only, with the registry's digest (-o wide with its labels; --node a2 shows
# nothing); `gantry image rm` removes it; a workload of the image with one replica goes to
# the node holding it though the nodes are otherwise equal (ImageLocality), and removing
# the image there is refused while the replica runs. Bad input is refused naming the field.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/registry.sh"
gt_require_root
for tool in docker-registry skopeo umoci busybox python3; do
    command -v "$tool" >/dev/null || gt_skip "$tool is not installed (deploy/install-deps)"
done
SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
GANTRY=$GT_BUILD/ctl/gantry
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

gt_hosts_create 1 || exit 1
REG=127.0.0.1:5000
API=127.0.0.1:7700
PREFIX="gic$$-"
IMAGE=$REG/test/app:1
in_host() { nsenter --net="/run/netns/${GT_HOST_NS[1]}" "$@"; }
gantry() { in_host "$GANTRY" --server "http://$API" "$@"; }
# pull ARGS...: gantry image pull, bounded by the test (a pull may take the leader's 10
# minutes otherwise).
pull() {
    gt_wait_budget 30
    in_host timeout 30 "$GANTRY" --server "http://$API" image pull "$@"
}
api() {
    local path=$1
    shift
    in_host curl -s --max-time 30 "$@" "http://$API$path"
}
gt_on_exit "for d in $GT_TMP/rt1 $GT_TMP/rt2; do for id in \$($RUNTIME --root \$d list -q 2>/dev/null); do $RUNTIME --root \$d delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns; done"

# ---- The registry and the image.
gt_check "the registry answers" gt_registry_start 1 "$REG"
OCI=$GT_TMP/oci
B=$GT_TMP/bundle
umoci init --layout "$OCI" && umoci new --image "$OCI:app" && umoci unpack --image "$OCI:app" "$B" >/dev/null ||
    exit 1
mkdir -p "$B/rootfs/bin"
cp "$(command -v busybox)" "$B/rootfs/bin/busybox"
for t in sh sleep; do ln -sf busybox "$B/rootfs/bin/$t"; done
umoci repack --image "$OCI:app" "$B" || exit 1
umoci config --image "$OCI:app" --config.entrypoint /bin/sleep --config.cmd 1000 \
    --config.label org.opencontainers.image.source=https://example.com/app \
    --config.label org.opencontainers.image.revision=r1 || exit 1
gt_check "the image is pushed" in_host skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:app" "docker://$IMAGE"
DIGEST=sha256:$(in_host skopeo inspect --raw --tls-verify=false "docker://$IMAGE" | sha256sum | cut -d' ' -f1)
gt_log "image $IMAGE is $DIGEST"
echo "{\"registries\":{\"$REG\":{\"insecure\":true}}}" >"$GT_TMP/registries.json"

# ---- One server, two equal agents.
gt_host_spawn s1 1 "$SCHED" --id 1 --data-dir "$GT_TMP/s1" --raft-addr 127.0.0.1:7701 \
    --api-addr "$API" --agent-addr 127.0.0.1:7702 --bootstrap 1=127.0.0.1:7701 \
    --registries "$GT_TMP/registries.json"
for i in 1 2; do
    gt_host_spawn "a$i" 1 "$AGENT" --servers 127.0.0.1:7702 --name "a$i" --data-dir "$GT_TMP/a$i" \
        --runtime-root "$GT_TMP/rt$i" --netns-prefix "$PREFIX$i-" --subnet "198.18.$((40 + i)).0/24" \
        --bridge "gic$i" --cpu 2 --memory 1Gi --heartbeat 500ms --blob-listen off \
        --registries "$GT_TMP/registries.json"
done
nodes_ready() { [ "$(api /v1/nodes | grep -o '"state":"ready"' | wc -l)" = 2 ]; }
gt_check "two nodes are ready" gt_wait_for "nodes" 20 nodes_ready

# where NAME: "node1 node2 ..." of the image NAME as GET /v1/images has it, with its digest.
where() {
    api "/v1/images${2:+?node=$2}" | python3 -c '
import json, sys
for i in json.load(sys.stdin)["items"]:
    if i["name"] == sys.argv[1]:
        print(i["digest"], " ".join(i["nodes"]))' "$1" 2>/dev/null
}
is_at() { [ "$(where "$IMAGE")" = "$1" ]; }

gantry get images >"$GT_TMP/none.out" 2>"$GT_TMP/none.err"
rc=$?
gt_check "no images at first" bash -c "[ $rc = 0 ] && grep -c 'No images found.' '$GT_TMP/none.err' >/dev/null"

# ---- Pull on a1.
pull "$IMAGE" --node a1 >"$GT_TMP/pull.out" 2>&1
rc=$?
gt_log "gantry image pull $IMAGE --node a1 (exit $rc):"$'\n'"$(cat "$GT_TMP/pull.out")"
gt_check "image pull --node a1 exits 0" [ "$rc" = 0 ]
pulled_row() { grep -E "^a1 +$DIGEST +[0-9.]+ [KM]iB +[0-9.]+ [KM]iB +0 B +pulled$" "$GT_TMP/pull.out" | grep -c . >/dev/null; }
gt_check "it prints a1's digest, the bytes from the registry and none from peers" pulled_row
gt_check "get images shows the image on a1 only, with the registry's digest" \
    gt_wait_for "the image on a1" 10 is_at "$DIGEST a1"
gantry get images >"$GT_TMP/table.out" 2>&1
gt_log "gantry get images:"$'\n'"$(cat "$GT_TMP/table.out")"
table_row() { grep -E "^$IMAGE +${DIGEST:7:12} +[0-9.]+ [KM]iB +a1$" "$GT_TMP/table.out" | grep -c . >/dev/null; }
gt_check "the table: NAME, 12 digits of DIGEST, SIZE, NODES" table_row
gt_check "the table's header" bash -c "head -n 1 '$GT_TMP/table.out' | grep -cE '^NAME +DIGEST +SIZE +NODES$' >/dev/null"
gantry get images -o wide >"$GT_TMP/wide.out" 2>&1
gt_log "gantry get images -o wide:"$'\n'"$(cat "$GT_TMP/wide.out")"
wide_row() { grep -E "^$IMAGE .* a1 +https://example.com/app +r1 " "$GT_TMP/wide.out" | grep -c . >/dev/null; }
gt_check "-o wide shows the OCI labels" wide_row
gt_check "image ls --node a2 shows nothing" \
    bash -c "[ -z \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} '$GANTRY' --server http://$API image ls --node a2 2>/dev/null)\" ]"
gt_check "image ls --node a1 shows it" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} '$GANTRY' --server http://$API image ls --node a1 | grep -c '^$IMAGE ' >/dev/null"

# ---- Remove it from a1.
gantry image rm "$IMAGE" --node a1 >"$GT_TMP/rm.out" 2>&1
rc=$?
gt_check "image rm exits 0 and says so" \
    bash -c "[ $rc = 0 ] && grep -cx 'image $IMAGE removed from node a1' '$GT_TMP/rm.out' >/dev/null"
gt_check "get images no longer shows it" gt_wait_for "the image gone" 10 is_at ""
gantry image rm "$IMAGE" --node a1 >"$GT_TMP/rm2.out" 2>&1
rc=$?
gt_check "removing it again: exit 1, not found on a1" \
    bash -c "[ $rc = 1 ] && grep -c 'not found on node a1' '$GT_TMP/rm2.out' >/dev/null"

# ---- ImageLocality: with the image on a2 only, one replica goes to a2 (by name order,
# a1 would win a tie).
pull "$IMAGE" --node a2 >"$GT_TMP/pull2.out" 2>&1
gt_check "image pull --node a2" gt_wait_for "the image on a2" 10 is_at "$DIGEST a2"
api /v1/apply -X POST -d "{\"name\":\"app\",\"image\":\"$IMAGE\",\"replicas\":1,\"resources\":{\"cpu\":\"100m\",\"memory\":\"16Mi\"},\"stop_grace\":\"1s\"}" >"$GT_TMP/apply.out"
gt_log "apply: $(cat "$GT_TMP/apply.out")"
replica_on() {
    api /v1/replicas | python3 -c '
import json, sys
live = [r for r in json.load(sys.stdin)["items"] if r["state"] not in ("stopping", "stopped", "lost")]
print(" ".join(r["node"] + ":" + r["state"] for r in live))' 2>/dev/null
}
running_on_a2() { [ "$(replica_on)" = "a2:running" ]; }
gt_check "the replica is placed on a2, the node holding the image, and runs" \
    gt_wait_for "app on a2" 45 running_on_a2
gt_log "replicas: $(replica_on)"
gantry image rm "$IMAGE" --node a2 >"$GT_TMP/inuse.out" 2>&1
rc=$?
gt_log "gantry image rm while in use (exit $rc): $(cat "$GT_TMP/inuse.out")"
gt_check "removing an image a replica runs from is refused (exit 1, in use by replica)" \
    bash -c "[ $rc = 1 ] && grep -c 'is in use by replica app-' '$GT_TMP/inuse.out' >/dev/null"
code=$(api /v1/images/rm -o /dev/null -w '%{http_code}' -X POST -d "{\"ref\":\"$IMAGE\",\"node\":\"a2\"}")
gt_check "the API answers 409 ($code)" [ "$code" = 409 ]
gt_check "and the image stays" is_at "$DIGEST a2"

# ---- A pull on every ready node, and errors.
pull "$IMAGE" >"$GT_TMP/pull3.out" 2>&1
rc=$?
both() { [ "$(grep -cE '^a[12] +sha256:.* pulled$' "$GT_TMP/pull3.out")" = 2 ]; }
gt_check "a pull without --node or --cloud goes to every ready node" [ "$rc" = 0 ]
gt_check "and prints both" both
gt_check "both hold it" gt_wait_for "the image on both" 10 is_at "$DIGEST a1 a2"
pull "$REG/test/nope:1" --node a1 >"$GT_TMP/nope.out" 2>&1
rc=$?
gt_log "pull of a missing image (exit $rc): $(cat "$GT_TMP/nope.out")"
gt_check "a failed pull exits 1 with the node's error" \
    bash -c "[ $rc = 1 ] && grep -cE '^a1 +- +- +- +- +failed: .*test/nope' '$GT_TMP/nope.out' >/dev/null"
pull "$IMAGE" --cloud elsewhere >"$GT_TMP/cloud.out" 2>&1
rc=$?
gt_check "a cloud without nodes: exit 1" \
    bash -c "[ $rc = 1 ] && grep -c 'cloud \"elsewhere\" has no node' '$GT_TMP/cloud.out' >/dev/null"
gantry image pull 'Not A Ref' >"$GT_TMP/bad.out" 2>&1
rc=$?
gt_check "a bad reference: exit 2, nothing sent" [ "$rc" = 2 ]
bad_field() {
    local body=$1 field=$2 out
    out=$(api /v1/images/pull -w ' %{http_code}' -X POST -d "$body")
    gt_log "POST /v1/images/pull $body: $out"
    grep -c "\"path\":\"$field\".* 400$" <<<"$out" >/dev/null
}
gt_check "400 naming ref when it is missing" bad_field '{"node":"a1"}' ref
gt_check "400 naming ref when it is not a reference" bad_field '{"ref":"Bad Ref"}' ref
gt_check "400 naming an unknown key" bad_field "{\"ref\":\"$IMAGE\",\"nodes\":\"a1\"}" nodes
gt_check "400 naming cloud when both are given" bad_field "{\"ref\":\"$IMAGE\",\"node\":\"a1\",\"cloud\":\"c\"}" cloud
out=$(api /v1/images/rm -w ' %{http_code}' -X POST -d "{\"ref\":\"$IMAGE\"}")
gt_check "rm without a node: 400 naming node" bash -c "grep -c '\"path\":\"node\".* 400$' <<<'$out' >/dev/null"
code=$(api /v1/images/pull -o /dev/null -w '%{http_code}' -X POST -d "{\"ref\":\"$IMAGE\",\"node\":\"a9\"}")
gt_check "an unknown node: 404 ($code)" [ "$code" = 404 ]

# ---- Deleting the workload frees the image.
api /v1/workloads/app -X DELETE >/dev/null
no_replica() { [ -z "$(replica_on)" ]; }
gt_check "the workload's replica stops" gt_wait_for "replica gone" 20 no_replica
rm_a2() { gantry image rm "$IMAGE" --node a2 >/dev/null 2>&1; }
gt_check "then the image can be removed from a2" gt_wait_for "rm on a2" 20 rm_a2
gt_check "and only a1 holds it" gt_wait_for "the image on a1" 10 is_at "$DIGEST a1"
gt_check "no sanitizer report from any gantry run" \
    bash -c "! grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$GT_TMP'/*.out"
gt_finish
