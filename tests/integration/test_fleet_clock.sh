# Steps of the leader's wall clock change no decision. One control-plane server on host 1,
# run under libfaketime with its wall clock read from a file (the monotonic clock left
# alone, as an NTP step leaves it), and agents on hosts 2 and 3 with real clocks and
# real containers.
#
# 1. The leader's wall clock steps back an hour; web is scaled from 2 to 4: the new
#    replicas are pushed and run.
# 2. It steps forward two hours (an hour ahead of the real time): no node is declared down,
#    no replica is replaced (the same replicas and container pids), and a scale to 6 works.
# 3. Host 3 is cut off: node3 goes down, web's replicas there are replaced, keep's (its
#    disconnect_grace is 10 minutes) is kept, unknown. The leader's clock steps another hour
#    ahead: keep's replica is still not replaced, as its grace counts on the leader's
#    monotonic clock. Host 3 returns: the replica is taken back running, not restarted.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/cluster.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
for b in "$SCHED" "$AGENT" "$RUNTIME"; do [ -x "$b" ] || gt_skip "$b is not built"; done
FAKETIME_LIB=""
for f in /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 \
    /usr/lib/*/faketime/libfaketimeMT.so.1 /usr/lib/faketime/libfaketimeMT.so.1; do
    [ -f "$f" ] && { FAKETIME_LIB=$f; break; }
done
[ -n "$FAKETIME_LIB" ] || gt_skip "libfaketime is not installed"

gt_hosts_create 3 || exit 1
gt_cluster_init 1 ck
rootfs=$GT_TMP/rootfs
gt_cluster_image "$rootfs" sh httpd sleep
mkdir -p "$rootfs/www" && echo ok >"$rootfs/www/index.html"

# The server's wall clock: an offset from the real time in seconds, in a file libfaketime
# reads again every second (FAKETIME_CACHE_DURATION).
clock=$GT_TMP/clock1
echo "+0" >"$clock"
# clock_set OFFSET: the server's wall clock runs OFFSET seconds from the real time.
clock_set() { echo "$1" >"$clock.new" && mv "$clock.new" "$clock"; }
LD_PRELOAD=$FAKETIME_LIB FAKETIME_TIMESTAMP_FILE=$clock FAKETIME_DONT_FAKE_MONOTONIC=1 \
    FAKETIME_CACHE_DURATION=1 \
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 gt_server_start 1
for i in 2 3; do
    gt_image_import "$i" "$rootfs" || exit 1
    gt_agent_start "$i" --cpu 2 --memory 2Gi
done

# spec NAME REPLICAS [EXTRA JSON]: an httpd workload.
spec() {
    printf '{"name":"%s","image":"busybox","command":["httpd","-f","-p","8080","-h","/www"],"replicas":%d,"resources":{"cpu":"100m","memory":"16Mi"},"stop_grace":"1s"%s}' \
        "$1" "$2" "${3:-}"
}
# summary NAME: "running ready live nodes" of a workload's live replicas (not stopping,
# stopped or lost), nodes as name=count,...
summary() {
    gt_api 1 "/v1/replicas?workload=$1" | python3 -c '
import json, sys, collections
live = [r for r in json.load(sys.stdin)["items"] if r["state"] not in ("stopping", "stopped", "lost")]
running = [r for r in live if r["state"] == "running"]
ready = [r for r in running if r["ready"]]
nodes = collections.Counter(r["node"] for r in running)
print(len(running), len(ready), len(live), ",".join("%s=%d" % kv for kv in sorted(nodes.items())) or "-")' 2>/dev/null
}
summary_is() { [ "$(summary "$1")" = "$2" ]; }
# running_is NAME N: N replicas of NAME run and are ready, and none other is live.
running_is() { [ "$(summary "$1" | cut -d' ' -f1-3)" = "$2 $2 $2" ]; }
# ids NAME: the ids of a workload's replicas, whatever their state, sorted.
ids() {
    gt_api 1 "/v1/replicas?workload=$1" | python3 -c '
import json, sys
print(" ".join(sorted(r["id"] for r in json.load(sys.stdin)["items"])))' 2>/dev/null
}
# pids: "id=pid ..." of every container on nodes 2 and 3, sorted.
pids() {
    local i id
    for i in 2 3; do
        for id in $("$RUNTIME" --root "$GT_TMP/rt$i" list -q 2>/dev/null); do
            echo "$id=$("$RUNTIME" --root "$GT_TMP/rt$i" state "$id" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')"
        done
    done | sort | tr '\n' ' '
}
# newest_event_ms: the time stamp of the newest audit event.
newest_event_ms() {
    gt_api 1 "/v1/events?since=0" | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
print(max(items, key=lambda e: e["seq"])["time_ms"])' 2>/dev/null
}
# stamped_near OFFSET: the newest event was stamped OFFSET seconds (within a minute) from
# the real time: the server's clock was stepped.
stamped_near() {
    local t now
    t=$(newest_event_ms) && now=$(date +%s%3N) && [ -n "$t" ] &&
        [ $(((t - now) / 1000 - $1)) -gt -60 ] && [ $(((t - now) / 1000 - $1)) -lt 60 ]
}
node_state() {
    gt_api 1 /v1/nodes | python3 -c 'import json,sys; print([n["state"] for n in json.load(sys.stdin)["items"] if n["name"] == sys.argv[1]][0])' "$1" 2>/dev/null
}
node_is() { [ "$(node_state "$1")" = "$2" ]; }
down_logged() { grep -c 'msg="node is down"' "$GT_TMP"/s1*.log || true; }
scale() { gt_api 1 "/v1/workloads/$1/scale" -X POST -d "{\"replicas\":$2}" | grep -q '"replicas"'; }
# settle SECONDS: time for the leader to act on a step, were it to (several passes of its
# duties, liveness walks and reconcile passes over cut-off workloads).
settle() {
    gt_wait_budget "$1"
    sleep "$1"
}

gt_check "a leader is elected" gt_wait_for leader 30 gt_has_leader 1
gt_check "two nodes register" gt_wait_for nodes 30 gt_nodes_ready 1 2
applied() { gt_api 1 /v1/apply -X POST -d "$1" | grep -q created; }
gt_check "apply web, 2 replicas" applied "$(spec web 2)"
gt_check "apply keep, 2 replicas, disconnect_grace 10m" applied "$(spec keep 2 ',"disconnect_grace":"10m"')"
gt_check "web runs, one replica on each node" gt_wait_for "web 2/2" 60 summary_is web "2 2 2 node2=1,node3=1"
gt_check "keep runs, one replica on each node" gt_wait_for "keep 2/2" 60 summary_is keep "2 2 2 node2=1,node3=1"

# ---- 1. The leader's wall clock steps back an hour.
clock_set -3600
settle 2
gt_check "scale web to 4 with the clock an hour back" scale web 4
gt_check "the scale is stamped an hour back" stamped_near -3600
gt_check "4 replicas of web run" gt_wait_for "web 4/4" 60 running_is web 4
gt_log "web: $(summary web); keep: $(summary keep)"

# ---- 2. It steps forward two hours: an hour ahead of the real time.
before_ids="$(ids web)|$(ids keep)"
before_pids=$(pids)
downs=$(down_logged)
gt_log "replicas $before_ids; containers $before_pids"
clock_set +3600
settle 8
gt_check "with the clock an hour ahead no node was declared down" [ "$(down_logged)" = "$downs" ]
both_ready() { node_is node2 ready && node_is node3 ready; }
gt_check "both nodes stay ready" both_ready
gt_check "no replica was replaced" [ "$(ids web)|$(ids keep)" = "$before_ids" ]
gt_check "every container kept its pid" [ "$(pids)" = "$before_pids" ]
gt_check "scale web to 6 with the clock an hour ahead" scale web 6
gt_check "the scale is stamped an hour ahead" stamped_near 3600
gt_check "6 replicas of web run" gt_wait_for "web 6/6" 60 running_is web 6
gt_check "keep still runs as it did" summary_is keep "2 2 2 node2=1,node3=1"

# ---- 3. A node cut off while the clock steps ahead.
keep3=$(gt_api 1 "/v1/replicas?workload=keep" | python3 -c 'import json,sys; print([r["id"] for r in json.load(sys.stdin)["items"] if r["node"] == "node3"][0])' 2>/dev/null)
keep3_pid() { "$RUNTIME" --root "$GT_TMP/rt3" state "$keep3" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'; }
keep_pid=$(keep3_pid)
gt_log "node3 runs keep's $keep3 (pid $keep_pid)"
gt_host_isolate 3
gt_check "node3 goes down" gt_wait_for "node3 down" 60 node_is node3 down
gt_check "web's replicas are replaced on node2" gt_wait_for "web on node2" 60 summary_is web "6 6 6 node2=6"
keep_unknown() {
    gt_api 1 "/v1/replicas?workload=keep" | python3 -c '
import json, sys
items = json.load(sys.stdin)["items"]
r = [x for x in items if x["id"] == sys.argv[1]][0]
ok = len(items) == 2 and not r["ready"] and r["reason"].startswith("unknown: ") and r["state"] == "running"
sys.exit(0 if ok else 1)' "$keep3" 2>/dev/null
}
gt_check "keep's replica on node3 is unknown, not replaced" gt_wait_for "keep unknown" 30 keep_unknown
clock_set +7200
settle 8
gt_check "the clock's step ends no disconnect_grace: keep's replica is not replaced" keep_unknown
gt_host_reconnect 3
gt_check "node3 comes back" gt_wait_for "node3 ready" 60 node_is node3 ready
gt_check "keep's replica on node3 is taken back running" gt_wait_for "keep 2/2" 60 summary_is keep "2 2 2 node2=1,node3=1"
gt_check "keep's container on node3 was not restarted" [ "$(keep3_pid)" = "$keep_pid" ]
gt_check "web's copies on node3 are stopped" gt_wait_for "node3 empty of web" 60 \
    bash -c "! $RUNTIME --root $GT_TMP/rt3 list -q 2>/dev/null | grep -q '^web-'"
gt_check "6 replicas of web run" summary_is web "6 6 6 node2=6"
gt_finish
