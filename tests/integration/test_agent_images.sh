# gantry-agent runs replicas of images pulled from a real registry (Debian's docker-registry
# in a network namespace of the test's), driven by a stand-in leader: an image of two
# layers built here with umoci (the second deletes a file of the first: a whiteout) and
# pushed with skopeo; a spec without a command runs the image's Entrypoint and Cmd with its
# Env (under the spec's env), WorkingDir and User (a name from the image's /etc/passwd); a
# second replica of the image fetches nothing again; an image the registry lacks leaves its
# replica waiting with ImagePullBackOff and the registry's answer.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/registry.sh"
gt_require_root
for tool in docker-registry skopeo umoci busybox; do
    command -v "$tool" >/dev/null || gt_skip "$tool is not installed (deploy/install-deps)"
done
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
LEADER=$GT_BUILD/tests/integration/agent/fake_leader
[ -x "$AGENT" ] && [ -x "$RUNTIME" ] && [ -x "$LEADER" ] || gt_skip "binaries not built"

gt_hosts_create 1 || exit 1
DATA=$GT_TMP/data
RT=$GT_TMP/runtime
PREFIX="gi$$-"
ASSIGN=$GT_TMP/assignment.jsonl
REG=127.0.0.1:5000
in_host() { nsenter --net="/run/netns/${GT_HOST_NS[1]}" "$@"; }

gt_on_exit "for id in \$($RUNTIME --root $RT list -q 2>/dev/null); do $RUNTIME --root $RT delete -f \$id >/dev/null 2>&1; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns; done"

# The registry, on the host's loopback.
gt_check "the registry answers" gt_registry_start 1 "$REG"

# The image: busybox and a few files in one layer; the second layer deletes /gone.
OCI=$GT_TMP/oci
B=$GT_TMP/bundle
umoci init --layout "$OCI" && umoci new --image "$OCI:app" && umoci unpack --image "$OCI:app" "$B" >/dev/null ||
    exit 1
mkdir -p "$B/rootfs/bin" "$B/rootfs/etc" "$B/rootfs/srv"
cp "$(command -v busybox)" "$B/rootfs/bin/busybox"
for t in sh cat id pwd sleep test echo; do ln -sf busybox "$B/rootfs/bin/$t"; done
echo "hello from the first layer" >"$B/rootfs/etc/motd"
echo "app:x:1000:1001::/srv:/bin/sh" >"$B/rootfs/etc/passwd"
echo "this file is deleted by the second layer" >"$B/rootfs/gone"
umoci repack --image "$OCI:app" "$B" || exit 1
rm -rf "$B"
umoci unpack --image "$OCI:app" "$B" >/dev/null || exit 1
rm "$B/rootfs/gone"
umoci repack --image "$OCI:app" "$B" || exit 1
script='echo "entry $GREETING $LANG"; cat /etc/motd; echo "uid $(id -u) gid $(id -g)"; echo "cwd $(pwd)"; test -e /gone && echo "gone: present" || echo "gone: absent"; exec sleep 1000'
umoci config --image "$OCI:app" --config.entrypoint /bin/sh --config.cmd -c --config.cmd "$script" \
    --config.env GREETING=from-image --config.env LANG=C.UTF-8 --config.workingdir /srv \
    --config.user app || exit 1
gt_check "the image is pushed" in_host skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:app" "docker://$REG/test/app:1"
layers=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(len(m["layers"]))' \
    "$(in_host skopeo inspect --raw --tls-verify=false "docker://$REG/test/app:1" >"$GT_TMP/manifest.json"; echo "$GT_TMP/manifest.json")")
gt_check "it has two layers ($layers)" [ "$layers" = 2 ]

echo "{\"registries\":{\"$REG\":{\"insecure\":true}}}" >"$GT_TMP/registries.json"
cat >"$ASSIGN" <<JSON
{"id":"app-00000001","spec":{"name":"app","image":"$REG/test/app:1","env":{"GREETING":"from-spec"},"stop_grace":"1s"}}
{"id":"nope-00000001","spec":{"name":"nope","image":"$REG/test/nope:1","stop_grace":"1s"}}
JSON
gt_host_spawn leader 1 "$LEADER" 127.0.0.1:7702 "$ASSIGN"
LEADER_PID=$GT_LAST_PID
gt_host_spawn agent 1 "$AGENT" --servers 127.0.0.1:7702 --name n1 --data-dir "$DATA" \
    --netns-prefix "$PREFIX" --runtime-root "$RT" --subnet 198.18.9.0/24 --bridge gibr0 \
    --heartbeat 500ms --registries "$GT_TMP/registries.json"
LOG=$GT_TMP/leader.log
status() { grep "\"id\": *\"$1\"" "$LOG" | tail -n 1; }
running() { status "$1" | grep -c '"state": *2' >/dev/null; }

gt_check "app-00000001 runs from the pulled image" gt_wait_for "app-00000001 running" 60 running app-00000001
clog() { cat "$RT/$1/container.log" 2>/dev/null; }
# The script's last line before its sleep says it has written the others.
gt_check "the image's Entrypoint and Cmd run" \
    gt_wait_for "output" 20 bash -c "grep -q 'gone: ' '$RT/app-00000001/container.log'"
gt_check "with the spec's env over the image's" grep -q "entry from-spec C.UTF-8" <<<"$(clog app-00000001)"
gt_log "app-00000001 output: $(clog app-00000001 | tr '\n' '|')"
gt_check "the first layer's files are there" grep -q "hello from the first layer" <<<"$(clog app-00000001)"
gt_check "the second layer's whiteout hides /gone" grep -q "gone: absent" <<<"$(clog app-00000001)"
gt_check "the image's User (a name in its /etc/passwd) is the process's uid and gid" grep -q "uid 1000 gid 1001" <<<"$(clog app-00000001)"
gt_check "its WorkingDir the cwd" grep -q "cwd /srv" <<<"$(clog app-00000001)"
gt_check "the pull is logged once, with both layers" \
    bash -c "[ \$(grep -c 'image pulled.*image=$REG/test/app:1.*layers=2' '$GT_TMP/agent.log') = 1 ]"

echo "{\"id\":\"app-00000002\",\"spec\":{\"name\":\"app\",\"image\":\"$REG/test/app:1\",\"stop_grace\":\"1s\"}}" >>"$ASSIGN"
kill -HUP "$LEADER_PID"
gt_check "a second replica of the image runs" gt_wait_for "app-00000002 running" 60 running app-00000002
gt_check "without fetching the image again" \
    bash -c "[ \$(grep -c 'image pulled.*image=$REG/test/app:1' '$GT_TMP/agent.log') = 1 ]"
gt_check "both replicas share the unpacked layers" \
    [ "$(find "$DATA/oci/layers" -mindepth 1 -maxdepth 1 -type d | wc -l)" = 2 ]

pullbackoff() { status nope-00000001 | grep -c 'ImagePullBackOff: .*test/nope' >/dev/null; }
gt_check "an image the registry lacks: ImagePullBackOff with the registry's answer" \
    gt_wait_for "nope-00000001 backoff" 60 pullbackoff
gt_log "nope-00000001: $(status nope-00000001 | grep -o '"reason": *"[^"]*"')"
gt_check "and it is not running" bash -c "! $RUNTIME --root $RT list -q | grep -q '^nope-00000001$'"
gt_finish
