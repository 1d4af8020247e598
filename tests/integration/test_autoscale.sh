# Autoscaling with real containers on three hosts (network namespaces), each with a
# control-plane server and an agent. Replicas burn CPU while a flag file exists: each host
# serves a directory over HTTP (busybox httpd on the bridge gateway its containers route
# through) and streams it to the replicas (which wait for it without using CPU). With cpu
# 100m, target 50%, min 1, max 4 a workload grows from 1 to 4 once the flag appears and
# returns to 1 after scale_down_after once it is gone (how fast is measured by
# tests/bench/autoscale/run.sh); a workload held at its target for 60 s never scales (no flapping); an exec
# metric drives scaling the same way; an idle workload with min 0 goes to zero, shows as
# idle, and wakes on a scale; a leader killed in the middle of a scale-up leaves the new
# leader to finish it; gantry top and describe show the figures.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
source "$(dirname "$0")/cluster.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
command -v python3 >/dev/null || gt_skip "python3 is missing"
for b in "$SCHED" "$AGENT" "$RUNTIME" "$GANTRY"; do [ -x "$b" ] || gt_skip "$b is not built"; done

N=3
gt_hosts_create $N || exit 1
gt_cluster_init $N as
# The image: busybox with the load scripts (tests/integration/load).
rootfs=$GT_TMP/rootfs
gt_cluster_load_image "$rootfs"
gt_cluster_flags $N
echo 0 >"$GT_TMP/flags/queue"
start_server() { gt_server_start "$1" "${2:-}" ${GT_SERVER_ARGS:-}; }
for ((i = 1; i <= N; i++)); do
    gt_image_import "$i" "$rootfs" || exit 1
    start_server "$i"
    gt_agent_start "$i" --cpu 2 --memory 2Gi
done
api() { gt_api "$@"; }
gantry() { gt_gantry "$@"; }
leader_of() { gt_leader_of "$@"; }
# desired HOST NAME: the workload's desired count.
desired() { api "$1" "/v1/workloads/$2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["desired"])' 2>/dev/null; }
# running HOST NAME: how many of its replicas run.
running() { api "$1" "/v1/replicas?workload=$2" | python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin)["items"] if r["state"]=="running"))' 2>/dev/null; }
settled_at() { [ "$(desired "$1" "$2")" = "$3" ] && [ "$(running "$1" "$2")" = "$3" ]; }
# scale_events HOST NAME: the autoscaler's scale events of the workload, one per line.
scale_events() {
    api "$1" "/v1/events?since=0" | python3 -c '
import json, sys
for e in json.load(sys.stdin)["items"]:
    if e["object"] == "workload/'"$2"'" and e["kind"] == "scale" and e["actor"] == "autoscaler":
        print(e["message"])' 2>/dev/null
}
flag() { if [ "$1" = on ]; then echo on >"$GT_TMP/flags/on"; else rm -f "$GT_TMP/flags/on"; fi; }

gt_check "a leader is elected" gt_wait_for leader 30 gt_has_leader 1
gt_check "three nodes register" gt_wait_for nodes 30 gt_nodes_ready 1 3

base='"image":"busybox","resources":{"cpu":"100m","memory":"16Mi"},"stop_grace":"1s"'
# steady: two replicas at their CPU request against a 100% target, for the flapping check.
api 1 /v1/apply -X POST -d '{"name":"steady",'"$base"',"command":["sh","-c","while :; do :; done"],"replicas":2,"autoscale":{"min":1,"max":4,"cpu":"100%"}}' >/dev/null
steady_from=$(date +%s)
# idle: min 0, retired after 3 s without load.
api 1 /v1/apply -X POST -d '{"name":"idle",'"$base"',"command":["sleep","3600"],"replicas":2,"autoscale":{"min":0,"max":3,"cpu":"50%","idle_after":"3s"}}' >/dev/null
# burn: the CPU-driven workload of the issue.
api 1 /v1/apply -X POST -d '{"name":"burn",'"$base"',"command":["load"],"replicas":1,"autoscale":{"min":1,"max":4,"cpu":"50%","scale_down_after":"8s"}}' >/dev/null
gt_check "burn runs 1 replica" gt_wait_for "burn at 1" 30 settled_at 1 burn 1

# Load: 1 -> 4.
sleep 3 # the window holds idle samples first
flag on
t0=$(date +%s.%N)
gt_check "burn grows from 1 to 4 under load" gt_wait_for "burn at 4" 60 settled_at 1 burn 4
up=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
gt_log "burn: 1 -> 4 running in ${up}s; decisions: $(scale_events 1 burn | tr '\n' ';')"
for id in $(api 1 "/v1/replicas?workload=burn" | python3 -c 'import json,sys; print(" ".join(r["id"] for r in json.load(sys.stdin)["items"]))'); do
    gt_log "log of $id: $(api 1 "/v1/replicas/$id/logs" | tail -n 3 | tr '\n' '|')"
done
with_figures() { scale_events 1 burn | grep -cE '^cpu [0-9]+% of target 50%( \(at its quota\))? over [0-9.]+s: [0-9] -> [0-9]$' >/dev/null; }
gt_check "scale events carry the figures" with_figures

# top shows usage per workload and replica, also as a share of the request.
top=$(gantry 1 top burn)
gt_log "gantry top burn:"$'\n'"$top"
gt_check "top lists the 4 replicas of burn with CPU" [ "$(echo "$top" | grep -c '^burn-')" = 4 ]
top_share() { grep -E '^burn ' <<<"$top" | grep -cE '[0-9]+m +[0-9]+%' >/dev/null; }
gt_check "top shows CPU as a share of the request" top_share
burn_desc=$(gantry 1 describe workload burn)
gt_log "gantry describe workload burn:"$'\n'"$burn_desc"
desc_live() { grep -A1 '^Autoscale' <<<"$burn_desc" | grep -c 'active; now cpu' >/dev/null; }
desc_last() { grep -q 'Autoscaled .*-> 4' <<<"$burn_desc"; }
gt_check "describe shows the autoscaler's figures" desc_live
gt_check "describe shows the last decision" desc_last

# Load ends: back to 1 after scale_down_after (8 s) plus the figures catching up.
flag off
t0=$(date +%s.%N)
gt_check "burn returns to 1 after the flag is gone" gt_wait_for "burn at 1" 90 settled_at 1 burn 1
down=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
gt_log "burn: 4 -> 1 in ${down}s (scale_down_after 8s)"
gt_check "not before scale_down_after (took ${down}s)" python3 -c "import sys; sys.exit(0 if $down >= 8 else 1)"

# The idle workload went to zero meanwhile and wakes on a scale.
gt_check "idle workload retired to zero" gt_wait_for "idle at 0" 30 settled_at 1 idle 0
shown_idle() { gantry 1 describe workload idle | grep -c 'idle: scaled to zero' >/dev/null; }
gt_check "idle workload is shown as idle" shown_idle
idle_listed() { gantry 1 get workloads | grep -cE '^idle +0 \(idle\)' >/dev/null; }
gt_check "get workloads lists it as idle" idle_listed
gantry 1 scale idle 2 >/dev/null
gt_check "gantry scale wakes it" gt_wait_for "idle at 2" 30 settled_at 1 idle 2

# The exec metric drives scaling the same way: queue 12 against target 5.
api 1 /v1/apply -X POST -d '{"name":"worker",'"$base"',"command":["sleep","3600"],"replicas":1,"autoscale":{"min":1,"max":4,"scale_down_after":"5s","metric":{"exec":["queue"],"target":5}}}' >/dev/null
gt_wait_for "worker at 1" 30 settled_at 1 worker 1
echo 12 >"$GT_TMP/flags/queue"
gt_check "the exec metric scales worker to 4" gt_wait_for "worker at 4" 30 settled_at 1 worker 4
gt_log "worker decisions: $(scale_events 1 worker | tr '\n' ';')"
names_metric() { scale_events 1 worker | grep -c 'metric 12 against target 5' >/dev/null; }
gt_check "its reason names the metric" names_metric
echo 0 >"$GT_TMP/flags/queue"
gt_check "a zero queue brings worker back to 1" gt_wait_for "worker at 1" 40 settled_at 1 worker 1

# An HTTP metric: each replica serves 7 at /load against a target of 5, up to max 3.
api 1 /v1/apply -X POST -d '{"name":"served",'"$base"',"command":["sh","-c","mkdir -p /www && echo 7 > /www/load && exec httpd -f -p 8080 -h /www"],"replicas":1,"autoscale":{"min":1,"max":3,"metric":{"http":{"port":8080,"path":"/load"},"target":5}}}' >/dev/null
gt_check "the HTTP metric scales served to its max of 3" gt_wait_for "served at 3" 30 settled_at 1 served 3
gt_log "served decisions: $(scale_events 1 served | tr '\n' ';')"

# A leader change in the middle of a scale-up: the new leader carries on.
flag on
scaling() { [ "$(desired 1 burn)" -ge 2 ] 2>/dev/null; }
gt_wait_for "burn scaling" 20 scaling
leader=$(leader_of 1)
other=1; [ "$leader" = 1 ] && other=2
gt_log "burn at $(desired "$other" burn); killing leader $leader; top:"$'\n'"$(gantry "$other" top burn)"$'\n'"$(gantry "$other" describe workload burn | grep -A1 ^Autoscale)"
gt_stop "${SPID[$leader]}" KILL
gt_check "the new leader scales burn to 4" gt_wait_for "burn at 4 after leader change" 40 settled_at "$other" burn 4
if ! settled_at "$other" burn 4; then
    gt_leader_debug "$other"
    gt_agents_debug
    for id in $(api "$other" "/v1/replicas?workload=burn" | python3 -c 'import json,sys; print(" ".join(r["id"] for r in json.load(sys.stdin)["items"]))'); do
        gt_log "log of $id: $(api "$other" "/v1/replicas/$id/logs" | tail -n 3 | tr '\n' '|')"
    done
    gt_log "top: $(gantry "$other" top burn | tr '\n' '|')"
fi
new_leader=$(leader_of "$other")
flag off
gt_check "and back to 1 when the load ends" gt_wait_for "burn at 1 after leader change" 90 settled_at "$other" burn 1
gt_check "the decisions after the change are the new leader's ($new_leader)" [ "$new_leader" != "$leader" ]
start_server "$leader" b

# steady was at its target all along: no scale in at least 60 s.
left=$((steady_from + 62 - $(date +%s)))
[ "$left" -gt 0 ] && sleep "$left"
gt_log "steady: $(( $(date +%s) - steady_from ))s at its target; top: $(gantry "$other" top steady | grep -E '^steady ')"
gt_check "no flapping: steady never scaled ($(scale_events "$other" steady | tr '\n' ';'))" [ -z "$(scale_events "$other" steady)" ]
gt_check "steady still at 2" settled_at "$other" steady 2
gt_finish
