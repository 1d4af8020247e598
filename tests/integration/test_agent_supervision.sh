# gantry-agent on its own, driven by a stand-in leader, with real containers: replicas
# start and pass an HTTP health check; a replica's page is served from its address; the
# restart policies (on-failure with backoff and a crash loop, never); an agent killed with
# SIGKILL and restarted adopts its containers without restarting them; a replica taken
# out of the assignment is stopped and leaves nothing behind.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
gt_require_root
command -v busybox >/dev/null || gt_skip "busybox-static is not installed"
AGENT=$GT_BUILD/agent/gantry-agent
RUNTIME=$GT_BUILD/runtime/gantry-runtime
LEADER=$GT_BUILD/tests/integration/agent/fake_leader
[ -x "$AGENT" ] && [ -x "$RUNTIME" ] && [ -x "$LEADER" ] || gt_skip "binaries not built"

gt_hosts_create 1 || exit 1
DATA=$GT_TMP/data
RT=$GT_TMP/runtime
PREFIX="ga$$-"
ASSIGN=$GT_TMP/assignment.jsonl

# Containers outlive the agent by design: the test removes them itself.
gt_on_exit "for id in \$($RUNTIME --root $RT list -q 2>/dev/null); do $RUNTIME --root $RT delete -f \$id >/dev/null 2>&1; done; for ns in \$(ip netns list 2>/dev/null | awk '{print \$1}' | grep '^$PREFIX'); do ip netns del \$ns; done"

rootfs=$GT_TMP/rootfs
mkdir -p "$rootfs/bin" "$rootfs/www"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for t in sh httpd wget true sleep cat echo; do ln -s busybox "$rootfs/bin/$t"; done
echo "hello from gantry" > "$rootfs/www/index.html"
gt_check "image import" "$AGENT" --data-dir "$DATA" image import busybox "$rootfs"

cat > "$ASSIGN" <<'JSON'
{"id":"web-00000001","spec":{"name":"web","image":"busybox","command":["httpd","-f","-p","8080","-h","/www"],"stop_grace":"1s","health":{"http":{"port":8080,"path":"/"},"interval":"200ms","timeout":"1s","failure_threshold":2}}}
{"id":"crash-00000001","spec":{"name":"crash","image":"busybox","command":["sh","-c","exit 3"],"restart":"on-failure"}}
{"id":"once-00000001","spec":{"name":"once","image":"busybox","command":["true"],"restart":"never"}}
JSON

gt_host_spawn leader 1 "$LEADER" 127.0.0.1:7702 "$ASSIGN"
LEADER_PID=$GT_LAST_PID
start_agent() {
    gt_host_spawn "agent$1" 1 "$AGENT" --servers 127.0.0.1:7702 --name n1 --data-dir "$DATA" \
        --netns-prefix "$PREFIX" --runtime-root "$RT" --subnet 198.18.9.0/24 --bridge gabr0 \
        --heartbeat 500ms
    AGENT_PID=$GT_LAST_PID
}
start_agent 1
LOG=$GT_TMP/leader.log

# status ID: the last status line the leader printed for a replica.
status() { grep "\"id\": *\"$1\"" "$LOG" | tail -n 1; }
field() { status "$1" | sed -n "s/.*\"$2\": *\"\{0,1\}\([^,\"}]*\).*/\1/p"; }

gt_check "web-00000001 runs and turns ready" gt_wait_for "web-00000001 ready" 20 bash -c "grep -q '\"id\": *\"web-00000001\".*\"ready\": *true' '$LOG'"
addr=$(field web-00000001 address)
gt_log "web-00000001 address: $addr"
gt_check "web-00000001 serves its page at its address" bash -c "nsenter --net=/run/netns/${GT_HOST_NS[1]} busybox wget -qO- http://$addr:8080/ | grep -q 'hello from gantry'"
gt_check "crash-00000001 is restarted with backoff into a crash loop" gt_wait_for "crash loop" 20 bash -c "grep '\"id\": *\"crash-00000001\"' '$LOG' | grep -q 'crash loop'"
gt_check "crash-00000001 reports its exit code" bash -c "grep '\"id\": *\"crash-00000001\"' '$LOG' | grep -q '\"exit_code\": *3'"
# Restarted for real, each time in a new container, not just counted.
gt_check "crash-00000001 is started again after each exit" gt_wait_for "crash restarts" 20 bash -c "[ \$(grep -c 'replica started.*replica=crash-00000001' '$GT_TMP/agent1.log') -ge 3 ]"
gt_check "and its exits are reported once each" bash -c "[ \$(grep -c 'replica exited.*replica=crash-00000001' '$GT_TMP/agent1.log') -le \$(grep -c 'replica started.*replica=crash-00000001' '$GT_TMP/agent1.log') ]"
gt_check "once-00000001 exits and stays down (restart: never)" gt_wait_for "once exited" 20 bash -c "[ \"\$(grep '\"id\": *\"once-00000001\"' '$LOG' | tail -n1 | grep -o '\"state\": *[0-9]*' | grep -o '[0-9]*$')\" = 5 ]"
sleep 1
gt_check "once-00000001 was never restarted" bash -c "! grep '\"id\": *\"once-00000001\"' '$LOG' | grep -q '\"restarts\": *[1-9]'"

pid_before=$("$RUNTIME" --root "$RT" state web-00000001 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
gt_log "web-00000001 container pid before agent restart: $pid_before"
gt_stop "$AGENT_PID" KILL
gt_check "containers outlive a killed agent" kill -0 "$pid_before"
lines=$(wc -l < "$LOG")
start_agent 2
gt_check "the restarted agent reports web-00000001 running in its hello" gt_wait_for "hello" 20 bash -c "tail -n +$((lines + 1)) '$LOG' | grep '\"event\": *\"hello\"' | grep -q '\"id\": *\"web-00000001\".*\"state\": *2'"
sleep 1
pid_after=$("$RUNTIME" --root "$RT" state web-00000001 | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p')
gt_check "web-00000001 was adopted, not restarted (pid $pid_before)" [ "$pid_before" = "$pid_after" ]
gt_check "exactly one container per replica" bash -c "[ \$($RUNTIME --root $RT list -q | grep -c '^web-00000001$') = 1 ]"

grep -v '"web-00000001"' "$ASSIGN" > "$ASSIGN.new" && mv "$ASSIGN.new" "$ASSIGN"
kill -HUP "$LEADER_PID"
gt_check "web-00000001 is stopped when withdrawn" gt_wait_for "web-00000001 stopped" 20 bash -c "grep '\"id\": *\"web-00000001\"' '$LOG' | tail -n1 | grep -q '\"state\": *4'"
gt_check "its container is gone" bash -c "! $RUNTIME --root $RT list -q | grep -q '^web-00000001$'"
gt_check "its network namespace is gone" bash -c "! ip netns list 2>/dev/null | grep -q '^${PREFIX}web-00000001'"

# A stop for a replica the node does not hold (its last report was lost with a leader) is
# answered with "stopped", so the leader does not wait for it forever.
echo '{"stop":"ghost-1"}' >>"$ASSIGN"
kill -HUP "$LEADER_PID"
gt_check "a stop for an unknown replica is answered: stopped" gt_wait_for "ghost-1 stopped" 20 bash -c "grep '\"id\": *\"ghost-1\"' '$LOG' | grep -q '\"state\": *4'"

# Ids are checked at the agent's boundary: one that could name a path, or that is not of
# its workload, is refused with a warning, and nothing is made for it.
echo '{"id":"../../evil-00000001","spec":{"name":"evil","image":"busybox","command":["true"]}}' >>"$ASSIGN"
echo '{"id":"other-00000002","spec":{"name":"web","image":"busybox","command":["true"]}}' >>"$ASSIGN"
kill -HUP "$LEADER_PID"
refused() { [ "$(grep -c 'assigned replica refused' "$GT_TMP/agent2.log")" -ge "$1" ]; }
gt_check "an assigned id that is a path is refused" gt_wait_for "refusals" 20 refused 2
gt_check "the warning shows the id made harmless" grep -q 'assigned replica refused.*replica=??????evil-00000001' "$GT_TMP/agent2.log"
gt_check "no container is made for them" bash -c "! $RUNTIME --root $RT list -q | grep -Eq 'evil|other'"
# (By their ids: other tests running beside this one may have namespaces of a workload
# named "other".)
gt_check "nor a network namespace" bash -c "! ip netns list 2>/dev/null | grep -Eq 'evil-00000001|other-00000002'"
gt_finish
