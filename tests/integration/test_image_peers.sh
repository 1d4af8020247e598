# Layers between the nodes of one cloud (docs/images.md, "Peers: layers within a cloud"):
# one gantry-scheduler, agents with their own layer servers (--blob-listen) and Debian's
# docker-registry, all on the loopback of a network namespace of the test's. An image of
# three layers of random data (built with umoci, pushed with skopeo), three replicas spread
# over three nodes: every replica runs and the registry gives the image about once, not
# three times (each blob is fetched by the node ranked first for it, which serves the
# others). An image pulled through a throttled registry shows its progress in the
# replica's reason. Then the registry stops, one node's copy of a layer is damaged, and a
# fourth node joins and is given a replica: it gets manifest, config and layers from its
# peers, refuses the damaged layer (naming it and the peer) and takes it from the next.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/registry.sh"
gt_require_root
for tool in docker-registry skopeo umoci busybox python3 curl; do
    command -v "$tool" >/dev/null || gt_skip "$tool is not installed (deploy/install-deps)"
done
SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
GANTRY=$GT_BUILD/ctl/gantry
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

gt_hosts_create 1 || exit 1
PREFIX="ip$$-"
REG=127.0.0.1:5000
SLOW=127.0.0.1:5001 # the same registry through a throttling proxy
API=http://127.0.0.1:7700
on_host() { gt_host_exec 1 "$@"; }
gt_on_exit "for d in $GT_TMP/rt*; do [ -d \$d ] || continue; for id in \$($RUNTIME --root \$d list -q 2>/dev/null); do $RUNTIME --root \$d delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns; done"

# ---- The registry, and a proxy that gives its answers at 2 MB/s.
gt_check "the registry answers" gt_registry_start 1 "$REG"
cat >"$GT_TMP/throttle.py" <<'EOF'
import asyncio, sys
port, upstream, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
async def pipe(r, w, limit):
    try:
        while True:
            data = await r.read(16384)
            if not data:
                break
            w.write(data)
            await w.drain()
            if limit:
                await asyncio.sleep(len(data) / rate)
    except Exception:
        pass
    finally:
        w.close()
async def handle(cr, cw):
    try:
        ur, uw = await asyncio.open_connection("127.0.0.1", upstream)
    except Exception:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw, False), pipe(ur, cw, True))
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    async with server:
        await server.serve_forever()
asyncio.run(main())
EOF
gt_host_spawn throttle 1 python3 "$GT_TMP/throttle.py" 5001 5000 2000000
gt_check "the throttled proxy answers" gt_wait_for "proxy" 20 on_host curl -sf "http://$SLOW/v2/"

# ---- Images: app, busybox and three layers of 3 MiB of random data; slow, one of 8 MiB.
OCI=$GT_TMP/oci
umoci init --layout "$OCI" || exit 1
layer() { # IMAGE NAME MIB: a layer of MIB MiB of random data in /data/NAME
    local b=$GT_TMP/bundle
    rm -rf "$b"
    umoci unpack --image "$OCI:$1" "$b" >/dev/null || return 1
    mkdir -p "$b/rootfs/data"
    head -c "$(($3 * 1048576))" /dev/urandom >"$b/rootfs/data/$2"
    umoci repack --image "$OCI:$1" "$b" && rm -rf "$b"
}
base() { # IMAGE: a first layer of busybox
    local b=$GT_TMP/bundle
    rm -rf "$b"
    umoci new --image "$OCI:$1" && umoci unpack --image "$OCI:$1" "$b" >/dev/null || return 1
    mkdir -p "$b/rootfs/bin"
    cp "$(command -v busybox)" "$b/rootfs/bin/busybox"
    for t in sh sleep cat; do ln -sf busybox "$b/rootfs/bin/$t"; done
    umoci repack --image "$OCI:$1" "$b" && rm -rf "$b"
}
{ base app && layer app one 3 && layer app two 3 && layer app three 3 &&
    base slow && layer slow big 8; } || exit 1
for img in app slow; do
    umoci config --image "$OCI:$img" --config.entrypoint /bin/sleep --config.cmd 3600 || exit 1
    gt_check "image $img is pushed" on_host skopeo copy --quiet --dest-tls-verify=false "oci:$OCI:$img" "docker://$REG/test/$img:1"
done
on_host skopeo inspect --raw --tls-verify=false "docker://$REG/test/app:1" >"$GT_TMP/app.json"
on_host skopeo inspect --raw --tls-verify=false "docker://$REG/test/slow:1" >"$GT_TMP/slow.json"
manifest_digest() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }
APP_REF="$REG/test/app@$(manifest_digest "$GT_TMP/app.json")"
SLOW_REF="$SLOW/test/slow@$(manifest_digest "$GT_TMP/slow.json")"
# The bytes a node fetches for an image: config and layers.
image_size() { python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["config"]["size"] + sum(l["size"] for l in m["layers"]))' "$1"; }
APP_SIZE=$(image_size "$GT_TMP/app.json")
gt_log "app: $APP_REF, $APP_SIZE bytes in $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["layers"]))' "$GT_TMP/app.json") layers"

# ---- One server and three agents, one cloud.
echo "{\"registries\":{\"$REG\":{\"insecure\":true},\"$SLOW\":{\"insecure\":true}}}" >"$GT_TMP/registries.json"
gt_host_spawn s1 1 "$SCHED" --id 1 --data-dir "$GT_TMP/s1" --raft-addr 127.0.0.1:7701 \
    --api-addr 127.0.0.1:7700 --agent-addr 127.0.0.1:7702 --bootstrap 1=127.0.0.1:7701 \
    --registries "$GT_TMP/registries.json"
agent_start() {
    local i=$1
    shift
    gt_host_spawn "a$i" 1 "$AGENT" --servers 127.0.0.1:7702 --name "node$i" --data-dir "$GT_TMP/a$i" \
        --runtime-root "$GT_TMP/rt$i" --netns-prefix "$PREFIX$i-" --subnet "198.19.$i.0/24" \
        --bridge "gpbr$i" --heartbeat 500ms --registries "$GT_TMP/registries.json" \
        --blob-listen "127.0.0.1:771$i" --max-downloads 3 "$@"
}
for i in 1 2 3; do agent_start $i; done
api() { local path=$1; shift; on_host curl -s --max-time 5 "$@" "$API$path"; }
nodes_ready() { [ "$(api /v1/nodes | grep -o '"state":"ready"' | wc -l)" = "$1" ]; }
gt_check "three nodes register" gt_wait_for "3 nodes" 60 nodes_ready 3
listening() { for i in 1 2 3; do grep -c "layer server listening.*advertised=127.0.0.1:771$i" "$GT_TMP/a$i.log" >/dev/null || return 1; done; }
gt_check "each agent's layer server listens" listening

# replicas NAME: "id node state reason" lines.
replicas() {
    api "/v1/replicas?workload=$1" | python3 -c '
import json, sys
for r in json.load(sys.stdin)["items"]:
    if r["state"] not in ("stopped", "lost"):
        print(r["id"], r.get("node"), r["state"], r.get("reason", ""))' 2>/dev/null
}
running_on() { # NAME N: N replicas running, on N distinct nodes
    local out
    out=$(replicas "$1")
    [ "$(grep -c ' running' <<<"$out")" = "$2" ] && [ "$(awk '$3 == "running" {print $2}' <<<"$out" | sort -u | wc -l)" = "$2" ]
}

# ---- Three replicas: the image crosses the registry's link about once.
api /v1/apply -X POST -d "{\"name\":\"app\",\"image\":\"$APP_REF\",\"replicas\":3,\"resources\":{\"cpu\":\"10m\",\"memory\":\"16Mi\"},\"stop_grace\":\"1s\",\"placement\":{\"spread\":\"node\"}}" >"$GT_TMP/apply.json"
gt_log "apply: $(head -c 300 "$GT_TMP/apply.json")"
gt_check "three replicas run, one per node" gt_wait_for "app running" 120 running_on app 3
gt_log "replicas: $(replicas app | tr '\n' ';')"
# bytes_registry of the pulls of app and of the blobs fetched for peers, over the agents.
sum_field() { # FIELD PATTERN FILES...: the sum of FIELD=N on lines matching PATTERN
    local field=$1 pattern=$2
    shift 2
    cat "$@" | grep "$pattern" | grep -o "$field=[0-9]*" | cut -d= -f2 | awk '{s += $1} END {print s + 0}'
}
pulled() { [ "$(cat "$GT_TMP"/a[123].log | grep -c "image pulled.*image=$REG/test/app@")" = 3 ]; }
gt_check "each node logs its pull" gt_wait_for "3 pulls logged" 10 pulled
reg_pulls=$(sum_field bytes_registry "image pulled.*image=$REG/test/app@" "$GT_TMP"/a[123].log)
reg_peers=$(sum_field bytes_registry "blob pulled for peers.*repo=$REG/test/app " "$GT_TMP"/a[123].log)
from_peers=$(sum_field bytes_peers "image pulled.*image=$REG/test/app@" "$GT_TMP"/a[123].log)
REG_TOTAL=$((reg_pulls + reg_peers))
# The registry's own count: the bytes of the blob answers it gave the agents.
served=$(grep -o 'http.request.method=GET http.request.remoteaddr=[^ ]* http.request.uri="/v2/test/app/blobs/[^"]*".*http.response.written=[0-9]*' "$GT_TMP/registry.log" |
    grep -o 'http.response.written=[0-9]*' | cut -d= -f2 | awk '{s += $1} END {print s + 0}')
gt_log "app is $APP_SIZE bytes; from the registry: $reg_pulls (pulls) + $reg_peers (for peers) = $REG_TOTAL bytes by the agents' logs, $served by the registry's; from peers: $from_peers bytes"
gt_check "the registry gave the image about once (< 1.5 x $APP_SIZE)" [ "$REG_TOTAL" -lt $((APP_SIZE * 3 / 2)) -a "$REG_TOTAL" -ge "$APP_SIZE" ]
gt_check "the registry's own count agrees (< 1.5 x $APP_SIZE)" [ "$served" -lt $((APP_SIZE * 3 / 2)) ]
gt_check "the other nodes got it from their peers (bytes_peers $from_peers)" [ "$from_peers" -gt 0 ]

# ---- Progress: a pull through the throttled registry shows in the replica's reason.
: >"$GT_TMP/reasons"
api /v1/apply -X POST -d "{\"name\":\"slow\",\"image\":\"$SLOW_REF\",\"replicas\":1,\"resources\":{\"cpu\":\"10m\",\"memory\":\"16Mi\"},\"stop_grace\":\"1s\"}" >/dev/null
slow_running() { replicas slow >>"$GT_TMP/reasons"; running_on slow 1; }
gt_check "a replica of an image behind a slow registry runs" gt_wait_for "slow running" 90 slow_running
progress_line=$(grep -m1 -E 'pulling image [^ ]*test/slow@sha256:[0-9a-f]{64}: [0-9]+\.[0-9]/[0-9]+\.[0-9] MB' "$GT_TMP/reasons")
gt_log "a reason while it pulled: $progress_line"
gt_check "its reason showed the pull's progress" [ -n "$progress_line" ]
shown=$(grep -oE '[0-9]+\.[0-9]/[0-9]+\.[0-9] MB' "$GT_TMP/reasons" | sort -u | wc -l)
gt_check "more than one step of it ($shown)" [ "$shown" -ge 2 ]

# ---- The registry stops; node4 joins and takes a replica from its peers, one of which
# holds a damaged copy of the largest layer.
gt_stop "$REG_PID"
gt_check "the registry is gone" bash -c "! nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -sf http://$REG/v2/ >/dev/null"
read -r BLOB TARGET < <(python3 - "$GT_TMP/app.json" <<'EOF'
import hashlib, json, sys
m = json.load(open(sys.argv[1]))
blob = max(m["layers"], key=lambda l: l["size"])["digest"]
score = lambda n: int.from_bytes(hashlib.sha256((blob + "\n" + n).encode()).digest()[:8], "big")
order = sorted(["node1", "node2", "node3", "node4"], key=lambda n: (-score(n), n))
print(blob, [n for n in order if n != "node4"][0])
EOF
)
file=$GT_TMP/a${TARGET#node}/oci/blobs/sha256/${BLOB#sha256:}
gt_log "damaging $BLOB on $TARGET, the first node node4 asks for it ($file)"
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(4096); b = f.read(1); f.seek(4096); f.write(bytes([b[0] ^ 0xff])); f.close()' "$file"
agent_start 4
gt_check "node4 registers" gt_wait_for "4 nodes" 30 nodes_ready 4
api /v1/workloads/app/scale -X POST -d '{"replicas":4}' >/dev/null
gt_check "a fourth replica runs on node4, the registry stopped" gt_wait_for "app on 4 nodes" 120 running_on app 4
gt_log "replicas: $(replicas app | tr '\n' ';')"
manifest_from_peers() { grep -c "registry unreachable, manifest from peers.*test/app@" "$GT_TMP/a4.log" >/dev/null; }
gt_check "node4 got the manifest from its peers" manifest_from_peers
damaged=$(grep "peer served a damaged blob" "$GT_TMP/a4.log" | head -n 1)
gt_log "node4: $damaged"
names() { grep -c "blob=$BLOB peer=$TARGET .*$BLOB.*not used" <<<"$damaged" >/dev/null; }
gt_check "node4 refused the damaged layer, naming it and the peer" names
line=$(grep "image pulled.*image=$REG/test/app@" "$GT_TMP/a4.log")
gt_log "node4: $line"
gt_check "and took everything from its peers" bash -c "grep -c 'bytes_registry=0 bytes_peers=$APP_SIZE' <<<'$line' >/dev/null"
gt_check "nothing damaged was kept on node4" bash -c "[ \"\$(sha256sum $GT_TMP/a4/oci/blobs/sha256/${BLOB#sha256:} | cut -d' ' -f1)\" = ${BLOB#sha256:} ]"

gt_check "get replicas shows replicas with their reasons" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} $GANTRY --server $API get replicas | grep -c 'app-' >/dev/null"
gt_finish
