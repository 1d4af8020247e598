# Hybrid cloud with real containers on four hosts (network namespaces): two small private
# nodes and two public nodes with a cost; servers on hosts 1-3. An autoscaled workload
# under load bursts into public once private is full, and when the load drops the public
# replicas go first; `gantry move --to public` and back keep the ready count at or above
# the desired count (sampled every 200 ms) and end with every replica in the target
# cloud, also when the leader is killed in the middle of a move; a move to a cloud without
# room stops with a clear error while the workload keeps serving; a drain empties a node
# without dropping the ready count and leaves it cordoned.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/cluster.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
SAMPLER=$(dirname "$0")/ready_sampler.py
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

N=4
gt_hosts_create $N || exit 1
gt_cluster_init 3 cl
rootfs=$GT_TMP/rootfs
gt_cluster_load_image "$rootfs"
mkdir -p "$rootfs/www" && echo ok >"$rootfs/www/index.html"
gt_cluster_flags $N
start_server() { gt_server_start "$1" "${2:-}" ${GT_SERVER_ARGS:-}; }
# Private nodes hold 4 replicas of 100m between them; public ones are large and cost.
cloud_of() { [ "$1" -le 2 ] && echo private || echo public; }
for i in 1 2 3 4; do
    gt_image_import "$i" "$rootfs" || exit 1
    [ "$i" -le 3 ] && start_server "$i"
    if [ "$(cloud_of "$i")" = private ]; then size=(--cpu 200m --memory 1Gi --cost 0); else size=(--cpu 2 --memory 256Mi --cost 0.$((i + 2))); fi
    gt_agent_start "$i" --cloud "$(cloud_of "$i")" "${size[@]}"
done
api() { gt_api "$@"; }
gantry() { gt_gantry "$@"; }
leader_of() { gt_leader_of "$@"; }
# where HOST NAME: "ready total private public" of the workload's live replicas.
where() {
    api "$1" "/v1/replicas?workload=$2" | python3 -c '
import json, sys
live = [r for r in json.load(sys.stdin)["items"] if r["state"] not in ("stopping", "stopped", "lost")]
ready = sum(1 for r in live if r["state"] == "running" and r["ready"])
print(ready, len(live), sum(1 for r in live if r["cloud"] == "private"), sum(1 for r in live if r["cloud"] == "public"))' 2>/dev/null
}
is_at() { [ "$(where "$1" "$2")" = "$3" ]; }
desired() { api "$1" "/v1/workloads/$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["desired"])' 2>/dev/null; }
# sample_start NAME: samples NAME's ready count from host 4 (no server there) until sample_stop.
sample_start() {
    rm -f "$GT_TMP/sample.stop" "$GT_TMP/sample.out" "$GT_TMP/sample.out.started"
    gt_host_spawn "sampler-$1-$RANDOM" 4 python3 "$SAMPLER" "$1" "$GT_TMP/sample.out" "$GT_TMP/sample.stop" \
        http://198.18.0.1:7700 http://198.18.0.2:7700 http://198.18.0.3:7700
    SAMPLER_PID=$GT_LAST_PID
    gt_wait_for "sampler started" 10 test -e "$GT_TMP/sample.out.started"
}
sample_stop() {
    touch "$GT_TMP/sample.stop"
    gt_wait_for "sampler" 10 test -s "$GT_TMP/sample.out"
    gt_stop "$SAMPLER_PID"
    cat "$GT_TMP/sample.out"
}

gt_check "a leader is elected" gt_wait_for leader 30 gt_has_leader 1
gt_check "four nodes register" gt_wait_for nodes 30 gt_nodes_ready 1 4
wide=$(gantry 1 get nodes -o wide)
gt_log "nodes:"$'\n'"$wide"
nodes_cost() { grep -E '^node4 +public' <<<"$wide" | grep -c ' 0.6 ' >/dev/null; }
gt_check "get nodes -o wide shows cloud and cost" nodes_cost

# ---- Bursting: 1 -> 6 under load; private holds 4, the rest go public.
api 1 /v1/apply -X POST -d '{"name":"burn","image":"busybox","command":["load"],"resources":{"cpu":"100m","memory":"16Mi"},"stop_grace":"1s","placement":{"clouds":["private","public"]},"autoscale":{"min":1,"max":6,"cpu":"50%","scale_down_after":"5s"}}' >/dev/null
gt_check "burn starts in private" gt_wait_for "burn at 1" 30 is_at 1 burn "1 1 1 0"
sleep 3
echo on >"$GT_TMP/flags/on"
gt_check "under load burn bursts into public: 4 private + 2 public" gt_wait_for "burst" 60 is_at 1 burn "6 6 4 2"
burn_desc=$(gantry 1 describe workload burn)
gt_log "$(grep '^Clouds:' <<<"$burn_desc")"
clouds_line() { grep '^Clouds:' <<<"$burn_desc" | grep 'private 4 (4 ready)' | grep -c 'public 2 (2 ready)' >/dev/null; }
gt_check "describe shows replicas per cloud" clouds_line
rm -f "$GT_TMP/flags/on"
# Scale-down goes public first: the count never has a public replica while private has
# room, sampled until it is back at 1 (at most 120 s).
public_first=true
gt_wait_budget 120
deadline=$((SECONDS + 120))
for ((k = 0; k < 600 && SECONDS < deadline; k++)); do
    w=$(where 1 burn)
    set -- $w
    if [ -n "$w" ] && [ "$2" -le 4 ] && [ "$4" -gt 0 ]; then public_first=false; fi
    [ "$w" = "1 1 1 0" ] && break
    sleep 0.2
done
gt_log "burn after the load: $(where 1 burn) (ready total private public)"
gt_check "when the load drops burn returns to 1 replica in private" is_at 1 burn "1 1 1 0"
gt_check "the public replicas were removed first" $public_first

# ---- Moves: web (4 x 50m, max_surge 2) to public and back.
api 1 /v1/apply -X POST -d '{"name":"web","image":"busybox","command":["httpd","-f","-p","8080","-h","/www"],"replicas":4,"resources":{"cpu":"50m","memory":"16Mi"},"stop_grace":"1s","placement":{"clouds":["private"]},"update":{"max_surge":2,"max_unavailable":1}}' >/dev/null
gt_check "web runs in private" gt_wait_for "web private" 30 is_at 1 web "4 4 4 0"
sample_start web
gt_wait_budget 60
out=$(gantry 1 move web --to public --wait --timeout 60s 2>&1)
rc=$?
s=$(sample_stop)
gt_log "gantry move web --to public --wait (exit $rc):"$'\n'"$out"
gt_check "move to public succeeds" [ "$rc" = 0 ]
summary() { grep -q '^workload/web moved to public: 4 replicas in' <<<"$out"; }
gt_check "it ends with a summary" summary
gt_check "every replica is in public" is_at 1 web "4 4 0 4"
gt_check "ready never below 4 during the move (min, samples: $s)" [ "${s%% *}" -ge 4 ]

# Back to private, with the leader killed in the middle.
leader=$(leader_of 1)
other=1; [ "$leader" = 1 ] && other=2
sample_start web
api "$other" /v1/workloads/web/move -X POST -d '{"to":"private"}' >/dev/null
some_private() { [ "$(where "$other" web | awk '{print $3}')" -ge 1 ] 2>/dev/null; }
gt_wait_for "a new replica in private" 20 some_private
gt_log "move back started: $(where "$other" web); killing leader $leader"
gt_stop "${SPID[$leader]}" KILL
moved_back() { api "$other" /v1/workloads/web | grep -c '"type":"Moved","message":"to private' >/dev/null; }
gt_check "the move completes under the new leader" gt_wait_for "moved back" 60 moved_back
moved_back || { gt_leader_debug "$other"; gt_agents_debug; }
s=$(sample_stop)
gt_check "every replica is back in private" is_at "$other" web "4 4 4 0"
gt_check "ready never below 4 across the leader change (min, samples: $s)" [ "${s%% *}" -ge 4 ]
audited() { gantry "$other" events --workload web | grep -c 'move .*moving to private' >/dev/null; }
gt_check "each step of the move is in the audit trail" audited
start_server "$leader" b

# ---- A move to a cloud without room: public nodes have 256Mi of memory.
api "$other" /v1/apply -X POST -d '{"name":"big","image":"busybox","command":["httpd","-f","-p","8080","-h","/www"],"replicas":1,"resources":{"cpu":"50m","memory":"300Mi"},"stop_grace":"1s","placement":{"clouds":["private"]}}' >/dev/null
gt_wait_for "big runs" 30 is_at "$other" big "1 1 1 0"
gt_wait_budget 30
out=$(gantry "$other" move big --to public --wait --timeout 30s 2>&1)
rc=$?
gt_log "gantry move big --to public --wait (exit $rc): $out"
gt_check "a move without room exits 1" [ "$rc" = 1 ]
says_why() { grep -q 'move to public stopped: .*insufficient memory' <<<"$out"; }
gt_check "and says why" says_why
sleep 2
gt_check "big still serves from private" is_at "$other" big "1 1 1 0"
refused() { [ "$(api "$other" /v1/workloads/web/move -o "$GT_TMP/discard" -w '%{http_code}' -X POST -d '{"to":"mars"}')" = 409 ]; }
gt_check "a move to a cloud without nodes is refused, nothing changes" refused

# ---- Drain: node1's replicas move to node2 make-before-break; node1 ends cordoned.
on1() { api "$other" /v1/replicas | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["items"] if r["node"]=="node1" and r["state"] not in ("stopped","lost")))' 2>/dev/null; }
gt_log "before the drain: $(on1) replicas on node1; web $(where "$other" web)"
# node2 alone must take web's 4 x 50m: big and burn go first.
api "$other" /v1/workloads/big -X DELETE >/dev/null
api "$other" /v1/workloads/burn -X DELETE >/dev/null
gt_wait_for "big gone" 20 is_at "$other" big "0 0 0 0"
gt_wait_for "burn gone" 20 is_at "$other" burn "0 0 0 0"
sample_start web
gt_wait_budget 60
out=$(gantry "$other" drain node1 --wait --timeout 60s 2>&1)
rc=$?
s=$(sample_stop)
gt_log "gantry drain node1 --wait (exit $rc):"$'\n'"$out"
gt_check "drain succeeds" [ "$rc" = 0 ]
gt_check "node1 holds no replica" [ "$(on1)" = 0 ]
node1_is() { gantry "$other" get nodes | grep -cE "^node1 +private +$1" >/dev/null; }
gt_check "node1 is cordoned" node1_is cordoned
gt_check "web still has 4 ready" is_at "$other" web "4 4 4 0"
gt_check "ready never below 4 during the drain (min, samples: $s)" [ "${s%% *}" -ge 4 ]
gantry "$other" uncordon node1 >/dev/null
gt_check "uncordon makes it ready again" node1_is ready
gt_finish
