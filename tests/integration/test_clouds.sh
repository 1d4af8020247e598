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
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
SCHED=$GT_BUILD/scheduler/gantry-scheduler
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
GANTRY=$GT_BUILD/ctl/gantry
SAMPLER=$(dirname "$0")/ready_sampler.py
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

N=4
gt_hosts_create $N || exit 1
PREFIX="cl$$-"
gt_on_exit "for i in 1 2 3 4; do for id in \$($RUNTIME --root $GT_TMP/rt\$i list -q 2>/dev/null); do $RUNTIME --root $GT_TMP/rt\$i delete -f \$id >/dev/null 2>&1; done; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns 2>/dev/null; done"

rootfs=$GT_TMP/rootfs
mkdir -p "$rootfs/bin" "$rootfs/www" "$GT_TMP/flags"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for t in sh sleep wget route awk httpd timeout; do ln -s busybox "$rootfs/bin/$t"; done
echo ok >"$rootfs/www/index.html"
cat >"$rootfs/bin/load" <<'EOF'
#!/bin/sh
# Burns CPU while http://GATEWAY:9090/on exists.
while :; do
    gw=$(route -n | awk '$1 == "0.0.0.0" { print $2; exit }')
    case $(timeout 2 wget -S -O /dev/null "http://$gw:9090/on" 2>&1) in
    *" 200 "*) now=on ;;
    *" 404 "*) now=off ;;
    *) now=${now:-off} ;;
    esac
    if [ "$now" = on ]; then
        i=0
        while [ $i -lt 20000 ]; do i=$((i + 1)); done
    else
        sleep 0.3
    fi
done
EOF
chmod +x "$rootfs/bin/load"

declare -A SPID
bootstrap="" servers=""
for i in 1 2 3; do
    bootstrap+="${bootstrap:+,}$i=198.18.0.$i:7701"
    servers+="${servers:+,}198.18.0.$i:7702"
done
start_server() {
    gt_host_spawn "s$1${2:-}" "$1" "$SCHED" --id "$1" --data-dir "$GT_TMP/s$1" \
        --raft-addr "198.18.0.$1:7701" --api-addr "198.18.0.$1:7700" \
        --agent-addr "198.18.0.$1:7702" --bootstrap "$bootstrap" --node-down-timeout 3s ${GT_SERVER_ARGS:-}
    SPID[$1]=$GT_LAST_PID
}
# Private nodes hold 4 replicas of 100m between them; public ones are large and cost.
cloud_of() { [ "$1" -le 2 ] && echo private || echo public; }
for i in 1 2 3 4; do
    "$AGENT" --data-dir "$GT_TMP/a$i" image import busybox "$rootfs" >/dev/null || exit 1
    [ "$i" -le 3 ] && start_server "$i"
    if [ "$(cloud_of "$i")" = private ]; then size=(--cpu 200m --memory 1Gi --cost 0); else size=(--cpu 2 --memory 256Mi --cost 0.$((i + 2))); fi
    gt_host_spawn "a$i" "$i" "$AGENT" --servers "$servers" --name "node$i" --cloud "$(cloud_of "$i")" \
        --data-dir "$GT_TMP/a$i" --runtime-root "$GT_TMP/rt$i" --netns-prefix "$PREFIX$i-" \
        --subnet "198.19.$i.0/24" --bridge gybr0 "${size[@]}"
    gt_host_spawn "flags$i" "$i" busybox httpd -f -p 9090 -h "$GT_TMP/flags"
done

api() {
    local h=$1 path=$2; shift 2
    nsenter --net="/run/netns/${GT_HOST_NS[$h]}" curl -s --max-time 5 "$@" "http://198.18.0.$h:7700$path"
}
gantry() {
    local h=$1; shift
    nsenter --net="/run/netns/${GT_HOST_NS[$h]}" "$GANTRY" --server "http://198.18.0.$h:7700" "$@"
}
leader_of() { api "$1" /v1/cluster | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])' 2>/dev/null; }
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

gt_check "a leader is elected" gt_wait_for leader 30 bash -c "[ -n \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 http://198.18.0.1:7700/v1/cluster | grep -o '\"leader\":[1-9]')\" ]"
gt_check "four nodes register" gt_wait_for nodes 30 bash -c "[ \"\$(nsenter --net=/run/netns/${GT_HOST_NS[1]} curl -s --max-time 2 http://198.18.0.1:7700/v1/nodes | grep -o '\"state\":\"ready\"' | wc -l)\" = 4 ]"
wide=$(gantry 1 get nodes -o wide)
gt_log "nodes:"$'\n'"$wide"
nodes_cost() { grep -E '^node4 +public' <<<"$wide" | grep -q ' 0.6 '; }
gt_check "get nodes -o wide shows cloud and cost" nodes_cost

# ---- Bursting: 1 -> 6 under load; private holds 4, the rest go public.
api 1 /v1/apply -X POST -d '{"name":"burn","image":"busybox","command":["load"],"resources":{"cpu":"100m","memory":"16Mi"},"stop_grace":"1s","placement":{"clouds":["private","public"]},"autoscale":{"min":1,"max":6,"cpu":"50%","scale_down_after":"5s"}}' >/dev/null
gt_check "burn starts in private" gt_wait_for "burn at 1" 30 is_at 1 burn "1 1 1 0"
sleep 3
echo on >"$GT_TMP/flags/on"
gt_check "under load burn bursts into public: 4 private + 2 public" gt_wait_for "burst" 40 is_at 1 burn "6 6 4 2"
burn_desc=$(gantry 1 describe workload burn)
gt_log "$(grep '^Clouds:' <<<"$burn_desc")"
clouds_line() { grep '^Clouds:' <<<"$burn_desc" | grep 'private 4 (4 ready)' | grep -q 'public 2 (2 ready)'; }
gt_check "describe shows replicas per cloud" clouds_line
rm -f "$GT_TMP/flags/on"
# Scale-down goes public first: the count never has a public replica while private has
# room, sampled until it is back at 1.
public_first=true
for ((k = 0; k < 200; k++)); do
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
out=$(gantry 1 move web --to public --wait --timeout 60s 2>&1)
rc=$?
s=$(sample_stop)
gt_log "gantry move web --to public --wait (exit $rc):"$'\n'"$out"
gt_check "move to public succeeds" [ "$rc" = 0 ]
gt_check "it ends with a summary" bash -c "grep -q '^workload/web moved to public: 4 replicas in' <<<'$out'"
gt_check "every replica is in public" is_at 1 web "4 4 0 4"
gt_check "ready never below 4 during the move (min, samples: $s)" [ "${s%% *}" -ge 4 ]

# Back to private, with the leader killed in the middle.
leader=$(leader_of 1)
other=1; [ "$leader" = 1 ] && other=2
sample_start web
api "$other" /v1/workloads/web/move -X POST -d '{"to":"private"}' >/dev/null
gt_wait_for "a new replica in private" 20 bash -c "[ \"\$(nsenter --net=/run/netns/${GT_HOST_NS[$other]} curl -s --max-time 2 'http://198.18.0.$other:7700/v1/replicas?workload=web' | grep -o '\"cloud\":\"private\"' | wc -l)\" -ge 1 ]"
gt_log "move back started: $(where "$other" web); killing leader $leader"
gt_stop "${SPID[$leader]}" KILL
moved_back() { api "$other" /v1/workloads/web | grep -q '"type":"Moved","message":"to private'; }
gt_check "the move completes under the new leader" gt_wait_for "moved back" 60 moved_back
s=$(sample_stop)
gt_check "every replica is back in private" is_at "$other" web "4 4 4 0"
gt_check "ready never below 4 across the leader change (min, samples: $s)" [ "${s%% *}" -ge 4 ]
gt_check "each step of the move is in the audit trail" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[$other]} $GANTRY --server http://198.18.0.$other:7700 events --workload web | grep -q 'move .*moving to private'"
start_server "$leader" b

# ---- A move to a cloud without room: public nodes have 256Mi of memory.
api "$other" /v1/apply -X POST -d '{"name":"big","image":"busybox","command":["httpd","-f","-p","8080","-h","/www"],"replicas":1,"resources":{"cpu":"50m","memory":"300Mi"},"stop_grace":"1s","placement":{"clouds":["private"]}}' >/dev/null
gt_wait_for "big runs" 30 is_at "$other" big "1 1 1 0"
out=$(gantry "$other" move big --to public --wait --timeout 30s 2>&1)
rc=$?
gt_log "gantry move big --to public --wait (exit $rc): $out"
gt_check "a move without room exits 1" [ "$rc" = 1 ]
gt_check "and says why" bash -c "grep -q 'move to public stopped: .*insufficient memory' <<<'$out'"
sleep 2
gt_check "big still serves from private" is_at "$other" big "1 1 1 0"
gt_check "a move to a cloud without nodes is refused, nothing changes" bash -c "[ \"\$(nsenter --net=/run/netns/${GT_HOST_NS[$other]} curl -s -o /dev/null -w '%{http_code}' -X POST -d '{\"to\":\"mars\"}' http://198.18.0.$other:7700/v1/workloads/web/move)\" = 409 ]"

# ---- Drain: node1's replicas move to node2 make-before-break; node1 ends cordoned.
on1() { api "$other" /v1/replicas | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["items"] if r["node"]=="node1" and r["state"] not in ("stopped","lost")))' 2>/dev/null; }
gt_log "before the drain: $(on1) replicas on node1; web $(where "$other" web)"
# node2 alone must take web's 4 x 50m: big and burn go first.
api "$other" /v1/workloads/big -X DELETE >/dev/null
api "$other" /v1/workloads/burn -X DELETE >/dev/null
gt_wait_for "big gone" 20 is_at "$other" big "0 0 0 0"
gt_wait_for "burn gone" 20 is_at "$other" burn "0 0 0 0"
sample_start web
out=$(gantry "$other" drain node1 --wait --timeout 60s 2>&1)
rc=$?
s=$(sample_stop)
gt_log "gantry drain node1 --wait (exit $rc):"$'\n'"$out"
gt_check "drain succeeds" [ "$rc" = 0 ]
gt_check "node1 holds no replica" [ "$(on1)" = 0 ]
gt_check "node1 is cordoned" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[$other]} $GANTRY --server http://198.18.0.$other:7700 get nodes | grep -qE '^node1 +private +cordoned'"
gt_check "web still has 4 ready" is_at "$other" web "4 4 4 0"
gt_check "ready never below 4 during the drain (min, samples: $s)" [ "${s%% *}" -ge 4 ]
gantry "$other" uncordon node1 >/dev/null
gt_check "uncordon makes it ready again" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[$other]} $GANTRY --server http://198.18.0.$other:7700 get nodes | grep -qE '^node1 +private +ready'"
gt_finish
