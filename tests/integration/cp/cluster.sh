# Helpers for control-plane integration tests (sourced after lib.sh): start servers of a
# loopback cluster, find the leader, send requests, compare state across servers.
#
# Server N listens on 127.0.0.1: API $CP_BASE+10N, Raft +1, agent stream +2; its data dir
# is $GT_TMP/sN. CP_BASE is a random block of 100 ports below the ephemeral range with no
# listener, so that suites of several builds on one machine do not meet.

CP_BIN=$GT_BUILD/scheduler/gantry-scheduler
declare -A CP_PID=()

cp_pick_base() {
    local try base listening
    listening=$(ss -Hltn 2>/dev/null | awk '{ n = split($4, a, ":"); print a[n] }')
    for ((try = 0; try < 50; try++)); do
        base=$((20000 + 100 * (RANDOM % 120)))
        if ! awk -v lo="$base" -v hi=$((base + 99)) '$1 >= lo && $1 <= hi { found = 1 } END { exit !found }' \
            <<<"$listening"; then
            echo "$base"
            return 0
        fi
    done
    echo 20000
}
CP_BASE=$(cp_pick_base)
gt_log "control-plane ports from $CP_BASE"
# The servers run the product's default timeouts. On a busy machine a server may be held up
# long enough for an election: requests that are not about elections go through
# cp_client_status/gt_curl, which repeat a 503 as a client would. CP_FLAGS: flags a test adds to
# every server it starts.
CP_FLAGS=()

cp_require() {
    gt_require_root
    [ -x "$CP_BIN" ] || gt_skip "gantry-scheduler is not built"
    command -v curl >/dev/null || gt_skip "curl is missing"
}

cp_api() { echo "127.0.0.1:$((CP_BASE + 10 * $1))"; }
cp_raft() { echo "127.0.0.1:$((CP_BASE + 10 * $1 + 1))"; }
cp_agent() { echo "127.0.0.1:$((CP_BASE + 10 * $1 + 2))"; }

# cp_bootstrap_list N: "1=RAFT,2=RAFT,..." for servers 1..N.
cp_bootstrap_list() {
    local i list=""
    for ((i = 1; i <= $1; i++)); do list+="${list:+,}$i=$(cp_raft "$i")"; done
    echo "$list"
}

# cp_start ID [FLAGS...]: starts server ID (log in $GT_TMP/sID.log, appended on restarts).
cp_start() {
    local id=$1; shift
    local log="$GT_TMP/s$id.log"
    "$CP_BIN" --id "$id" --data-dir "$GT_TMP/s$id" --raft-addr "$(cp_raft "$id")" \
        --api-addr "$(cp_api "$id")" --agent-addr "$(cp_agent "$id")" "${CP_FLAGS[@]}" "$@" \
        >>"$log" 2>&1 &
    CP_PID[$id]=$!
    GT_PIDS+=("$!")
    gt_log "started server $id pid=$! $*"
}

# cp_stop ID [SIGNAL]: stops server ID and waits for it.
cp_stop() {
    local id=$1 sig=${2:-TERM}
    [ -n "${CP_PID[$id]:-}" ] || return 0
    gt_stop "${CP_PID[$id]}" "$sig"
    gt_log "stopped server $id with SIG$sig"
    unset "CP_PID[$id]"
}

cp_get() { curl -s --max-time 10 "http://$(cp_api "$1")$2"; }

# cp_status ID PATH [CURL ARGS]: prints the HTTP status of a request.
cp_status() {
    local id=$1 path=$2; shift 2
    curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "http://$(cp_api "$id")$path"
}

# cp_field ID JQ-LIKE-KEY: a top-level field of GET /v1/cluster on server ID.
cp_cluster_field() {
    cp_get "$1" /v1/cluster | python3 -c "import json,sys; print(json.load(sys.stdin)['$2'])" 2>/dev/null
}

# cp_leader IDS...: prints the leader id when every listed server agrees on one, knows its
# API address (so it can forward writes), and that server says it leads.
cp_leader() {
    local id leader="" l
    for id in "$@"; do
        l=$(cp_get "$id" /v1/cluster | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['leader'] if d['leader_api_address'] else 0)" 2>/dev/null)
        [ -n "$l" ] && [ "$l" != 0 ] || return 1
        if [ -z "$leader" ]; then leader=$l; elif [ "$leader" != "$l" ]; then return 1; fi
    done
    [ -n "$leader" ] || return 1
    [ "$(cp_cluster_field "$leader" state)" = leader ] || return 1
    # The leader's port must be answered by this cluster's server, nothing else.
    [ "$(cp_cluster_field "$leader" cluster_id)" = "$(cp_cluster_field "$1" cluster_id)" ] || return 1
    echo "$leader"
}

cp_has_leader() { cp_leader "$@" >/dev/null; }

# cp_client_status ID PATH [CURL ARGS]: prints the HTTP status of a request as a client sees
# it, repeated while the answer is 503 (gt_curl).
cp_client_status() {
    local id=$1 path=$2; shift 2
    gt_curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "http://$(cp_api "$id")$path"
}

# cp_apply ID NAME [IMAGE]: applies a small workload through server ID; prints the status.
cp_apply() {
    cp_client_status "$1" /v1/apply -X POST -H 'Content-Type: application/json' \
        -d "{\"name\":\"$2\",\"image\":\"${3:-busybox}\",\"replicas\":1}"
}

# cp_count ID: number of workloads in server ID's own copy.
cp_count() {
    cp_get "$1" '/v1/workloads?stale=1' |
        python3 -c "import json,sys; print(len(json.load(sys.stdin)['items']))" 2>/dev/null
}

# cp_names ID: sorted workload names in server ID's own copy.
cp_names() {
    cp_get "$1" '/v1/workloads?stale=1' |
        python3 -c "import json,sys; [print(w['name']) for w in json.load(sys.stdin)['items']]"
}

# cp_state ID: "APPLIED_INDEX DIGEST" of server ID.
cp_state() {
    cp_get "$1" /v1/cluster |
        python3 -c "import json,sys; d=json.load(sys.stdin); print(d['applied_index'], d['state_digest'])" 2>/dev/null
}

# cp_same_state IDS...: true when every server has applied the same index with the same
# state digest.
# The last states compared are kept in $GT_TMP/states.log, which a failed run prints.
cp_same_state() {
    local first="" s id same=0 seen=""
    for id in "$@"; do
        s=$(cp_state "$id")
        seen+="server $id: ${s:-no answer}; "
        [ -n "$s" ] || same=1
        if [ -z "$first" ]; then first=$s; elif [ "$s" != "$first" ]; then same=1; fi
    done
    if [ "$same" != 0 ]; then
        {
            echo "$(date +%H:%M:%S.%3N) $seen"
            for id in "$@"; do
                cp_get "$id" /v1/cluster | python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join("%s=%s" % (k, d[k]) for k in ("id", "state", "term", "leader", "commit_index", "applied_index", "last_index")))' 2>&1
            done
        } >"$GT_TMP/states.log"
    fi
    return $same
}

# cp_metric ID NAME: value of an unlabelled metric on server ID.
cp_metric() { cp_get "$1" /metrics | awk -v m="$2" '$1 == m { print $2 }'; }

# cp_bulk_apply ID COUNT PREFIX [PARALLEL]: applies COUNT workloads PREFIX-0.. through server
# ID with curl's parallel transfers, each repeated while answered 503 (as gt_curl); prints
# how many answered 200.
cp_bulk_apply() {
    local id=$1 count=$2 prefix=$3 par=${4:-16} i
    local cfg="$GT_TMP/bulk-$prefix.curl"
    : >"$cfg"
    for ((i = 0; i < count; i++)); do
        [ "$i" -gt 0 ] && echo next >>"$cfg"
        printf 'url = "http://%s/v1/apply"\nrequest = "POST"\ndata = "{\\"name\\":\\"%s-%d\\",\\"image\\":\\"busybox\\"}"\nheader = "Content-Type: application/json"\noutput = "%s"\nwrite-out = "%%{http_code}\\n"\nmax-time = 20\nretry = 30\nretry-max-time = 60\n' \
            "$(cp_api "$id")" "$prefix" "$i" "$GT_TMP/bulk-$prefix.body" >>"$cfg"
    done
    # The answers stay in bulk-PREFIX.codes for a test to show.
    curl -s --parallel --parallel-max "$par" -K "$cfg" 2>/dev/null | tee "$GT_TMP/bulk-$prefix.codes" |
        grep -c '^200$'
}

# cp_workloads_sum ID: checksum of the workloads (specs, generations, status) in server ID's
# own copy.
cp_workloads_sum() { cp_get "$1" '/v1/workloads?stale=1' | md5sum | cut -d' ' -f1; }
