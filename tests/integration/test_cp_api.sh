# The API on a one-server cluster: apply, get, list, scale, delete, events with long-poll,
# health and metrics; bad input gets 4xx with the documented error body and changes
# nothing; garbage on a socket closes only that connection; bad flags and a taken port
# stop the server with a clear message.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require

api="http://$(cp_api 1)"
cp_start 1 --bootstrap "1=$(cp_raft 1)"
gt_check "a one-server cluster elects itself" gt_wait_for "leader" 20 cp_has_leader 1

post() { curl -s --max-time 10 -X POST -H 'Content-Type: application/json' "$api$1" -d "$2"; }
code_of() {
    curl -s -o "$GT_TMP/body" -w '%{http_code}' --max-time 10 "$@"
}
events_last() { cp_get 1 '/v1/events?since=0' | python3 -c "import json,sys; print(json.load(sys.stdin)['last'])"; }
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval('d' + sys.argv[1]))" "$1"; }

spec='{"name":"web","image":"busybox","command":["httpd","-f"],"replicas":3,"resources":{"cpu":"250m","memory":"64Mi"}}'
gt_check "apply creates" [ "$(post /v1/apply "$spec" | json_get "['workloads'][0]['outcome']")" = created ]
gt_check "the same spec again is unchanged" \
    [ "$(post /v1/apply "$spec" | json_get "['workloads'][0]['outcome']")" = unchanged ]
gt_check "a changed spec is updated to generation 2" \
    [ "$(post /v1/apply "${spec/busybox/alpine}" | json_get "['workloads'][0]['generation']")" = 2 ]
gt_check "apply of several workloads at once" \
    [ "$(post /v1/apply '{"workloads":[{"name":"a","image":"x"},{"name":"b","image":"y"}]}' | json_get "['workloads'][1]['outcome']")" = created ]
gt_check "get answers the spec with defaults" \
    [ "$(cp_get 1 /v1/workloads/web | json_get "['spec']['restart']")" = always ]
gt_check "get answers the status" [ "$(cp_get 1 /v1/workloads/web | json_get "['status']['desired']")" = 3 ]
gt_check "list answers items" [ "$(cp_get 1 /v1/workloads | json_get "['items'].__len__()")" = 3 ]
gt_check "scale answers 200" [ "$(code_of -X POST -d '{"replicas":5}' "$api/v1/workloads/web/scale")" = 200 ]
gt_check "scale changes the desired count" \
    [ "$(cp_get 1 /v1/workloads/web | json_get "['status']['desired']")" = 5 ]
gt_check "delete answers 200" [ "$(code_of -X DELETE "$api/v1/workloads/b")" = 200 ]
gt_check "a deleted workload is gone" [ "$(code_of "$api/v1/workloads/b")" = 404 ]
gt_check "delete of an unknown workload answers 404" [ "$(code_of -X DELETE "$api/v1/workloads/nope")" = 404 ]
gt_check "the 404 has the error body" grep -q '"code":"not_found"' "$GT_TMP/body"

# Bad input: each answer is a 4xx with the error body, and nothing changes.
last=$(events_last)
digest=$(cp_state 1 | cut -d" " -f2)
bad() {
    local want=$1 code=$2 path=$3 body=$4 got
    got=$(code_of -X POST -H 'Content-Type: application/json' --data-binary "$body" "$api$path")
    [ "$got" = "$want" ] && grep -q "\"code\":\"$code\"" "$GT_TMP/body"
}
gt_check "invalid JSON: 400 invalid_json" bad 400 invalid_json /v1/apply '{"name":'
gt_check "unknown field: 400 invalid_spec" bad 400 invalid_spec /v1/apply '{"name":"x","image":"y","replica":2}'
gt_check "the error names the field" grep -q '"path":"replica"' "$GT_TMP/body"
gt_check "wrong type: 400 invalid_spec" bad 400 invalid_spec /v1/apply '{"name":"x","image":"y","replicas":"two"}'
gt_check "invalid name: 400 invalid_spec" bad 400 invalid_spec /v1/apply '{"name":"Not_A_Label","image":"y"}'
gt_check "one bad spec among several: 400 with its index" \
    bad 400 invalid_spec /v1/apply '{"workloads":[{"name":"ok1","image":"x"},{"name":"bad","image":"x","resources":{"cpu":"lots"}}]}'
gt_check "the path carries the index" grep -q '"path":"workloads\[1\].resources.cpu"' "$GT_TMP/body"
gt_check "duplicate names in one apply: 400" \
    bad 400 invalid_spec /v1/apply '{"workloads":[{"name":"d","image":"x"},{"name":"d","image":"x"}]}'
gt_check "unknown top-level key: 400" bad 400 invalid_request /v1/apply '{"workloads":[],"dry":true}'
gt_check "a JSON array body: 400" bad 400 invalid_json /v1/apply '[1,2]'
gt_check "scale with a negative count: 400" bad 400 invalid_request /v1/workloads/web/scale '{"replicas":-1}'
gt_check "scale with an unknown key: 400" bad 400 invalid_request /v1/workloads/web/scale '{"replicas":1,"x":1}'
gt_check "scale of an unknown workload: 404" bad 404 not_found /v1/workloads/nope/scale '{"replicas":1}'
head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$GT_TMP/big.json"
gt_check "an oversize body: 413" \
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 -X POST --data-binary @"$GT_TMP/big.json" "$api/v1/apply")" = 413 ]
gt_check "an unknown endpoint: 404" [ "$(code_of "$api/v1/nothing")" = 404 ]
gt_check "a wrong method: 405" [ "$(code_of -X PUT "$api/v1/apply")" = 405 ]
gt_check "a bad since: 400" [ "$(code_of "$api/v1/events?since=abc")" = 400 ]
gt_check "rejected requests wrote no event" [ "$(events_last)" = "$last" ]
gt_check "rejected requests changed no state" [ "$(cp_state 1 | cut -d" " -f2)" = "$digest" ]

# Garbage on one connection closes it; the server keeps serving everyone else.
exec 7<>/dev/tcp/127.0.0.1/$((CP_BASE + 10))
printf '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n' >&7
reply=$(timeout 5 cat <&7 | head -c 200)
exec 7>&-
gt_log "answer to garbage: ${reply%%$'\r'*}"
gt_check "garbage gets at most a 400 and a close" bash -c "[ -z \"$reply\" ] || echo \"$reply\" | grep -q '^HTTP/1.1 4'"
gt_check "the server still answers others" [ "$(code_of "$api/healthz")" = 200 ]

# Long-poll: a waiting reader is answered as soon as a new event is applied (polling on
# from each answer's last, since the reconciler may write events too). Each poll asks to
# wait 60 s and the check allows 40: a server that answered only at the end of the wait
# would fail it.
poll_for() {
    local since body i
    since=$(events_last)
    for ((i = 0; i < 20; i++)); do
        body=$(curl -s --max-time 70 "$api/v1/events?since=$since&wait=60" 2>/dev/null)
        grep -q "$1" <<<"$body" && return 0
        since=$(python3 -c "import json,sys; print(json.load(sys.stdin)['last'])" <<<"$body") || return 1
    done
    return 1
}
(poll_for workload/polled && touch "$GT_TMP/polled") &
poller=$!
GT_PIDS+=("$poller")
sleep 1
post /v1/apply '{"name":"polled","image":"busybox"}' >/dev/null
gt_check "the long-poll answers with the new event" gt_wait_for "poll answer" 40 test -e "$GT_TMP/polled"
wait "$poller" 2>/dev/null
# With nothing to wait for, the answer comes only after the wait asked for: a lower bound
# that a slow machine cannot break (the clock starts before the request is sent).
t0=$(date +%s%N)
body=$(curl -s --max-time 30 "$api/v1/events?since=999999&wait=2")
waited_ms=$((($(date +%s%N) - t0) / 1000000))
gt_log "a long-poll with nothing new answered after ${waited_ms} ms"
gt_check "a long-poll with nothing new answers empty" grep -q '"items":\[\]' <<<"$body"
gt_check "only after its wait of 2 s (${waited_ms} ms)" [ "$waited_ms" -ge 2000 ]

# Cluster status and metrics.
gt_check "cluster status names the leader" [ "$(cp_cluster_field 1 leader)" = 1 ]
metrics=$(cp_get 1 /metrics)
for m in gantry_raft_term gantry_raft_commit_index gantry_raft_applied_index gantry_raft_leader \
    'gantry_http_requests_total{route="apply",code="2xx"}' \
    'gantry_http_request_duration_seconds_bucket{route="apply",le="+Inf"}'; do
    gt_check "metrics have $m" grep -qF "$m" <<<"$metrics"
done
# The leader's write stages: entries settled, and time spent queued and in flight.
positive() { awk -v m="$1" '$1 == m { ok = $2 > 0 } END { exit !ok }' <<<"$metrics"; }
for m in gantry_raft_entries_settled_total gantry_raft_entry_seconds_total \
    gantry_proposal_queue_seconds_total; do
    gt_check "metric $m has counted the writes" positive "$m"
done
gt_check "a backup snapshot can be downloaded" \
    bash -c "curl -s --max-time 10 '$api/v1/cluster/snapshot' | head -c 4 | grep -q GYS1"

# Flags and start-up errors.
"$CP_BIN" --id 0 --data-dir "$GT_TMP/x" >"$GT_TMP/flag.out" 2>&1
gt_check "--id 0 is a usage error (2)" [ $? -eq 2 ]
gt_check "naming the flag" grep -q -- '--id' "$GT_TMP/flag.out"
"$CP_BIN" --id 1 --data-dir "$GT_TMP/x" --election-timeout soon >"$GT_TMP/flag.out" 2>&1
gt_check "a bad duration is a usage error (2)" [ $? -eq 2 ]
"$CP_BIN" --id 2 --data-dir "$GT_TMP/x2" --raft-addr "$(cp_raft 1)" --api-addr 127.0.0.1:$((CP_BASE + 90)) \
    --bootstrap "2=$(cp_raft 1)" >"$GT_TMP/port.out" 2>&1
gt_check "a taken Raft port stops the start (1)" [ $? -eq 1 ]
gt_check "saying the address is in use" grep -q 'already in use' "$GT_TMP/port.out"
"$CP_BIN" --id 3 --data-dir "$GT_TMP/x3" >"$GT_TMP/empty.out" 2>&1
gt_check "an empty data dir without --bootstrap or --join is refused" grep -q -- '--bootstrap' "$GT_TMP/empty.out"
"$CP_BIN" --id 2 --data-dir "$GT_TMP/s1" --raft-addr 127.0.0.1:$((CP_BASE + 91)) >"$GT_TMP/id.out" 2>&1
gt_check "another server's data dir is refused" grep -q 'belongs to server 1' "$GT_TMP/id.out"
"$CP_BIN" --id 1 --data-dir "$GT_TMP/s1" --raft-addr 127.0.0.1:$((CP_BASE + 92)) \
    --api-addr 127.0.0.1:$((CP_BASE + 93)) --agent-addr 127.0.0.1:$((CP_BASE + 94)) >"$GT_TMP/lock.out" 2>&1
gt_check "a data dir in use is refused (1)" [ $? -eq 1 ]
gt_check "saying it is in use" grep -q 'in use by another gantry-scheduler' "$GT_TMP/lock.out"
gt_finish
