# Shared harness for integration tests (sourced by bash scripts).
#
# Every process a test starts goes through gt_spawn, every network namespace through
# gt_netns_add, every extra teardown step through gt_on_exit; an EXIT trap stops the
# processes by PID (SIGTERM, then SIGKILL), removes the namespaces and the scratch
# directory, whether the test passed or failed. Checks are counted and the last line is
# "N passed, N failed".

set -uo pipefail

GT_NAME=$(basename "${0%.sh}")
GT_PIDS=()
GT_NETNS=()
GT_HOOKS=()
GT_PASSED=0
GT_FAILED=0
GT_TMP=$(mktemp -d "/tmp/gantry-${GT_NAME}.XXXXXX")
GT_BUILD=${GANTRY_BUILD_DIR:-$(pwd)}
GT_SRC=${GANTRY_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

gt_log() { printf '[%s %s] %s\n' "$GT_NAME" "$(date +%H:%M:%S.%3N)" "$*"; }

# gt_skip REASON: exit 77, which CTest reports as skipped.
gt_skip() { gt_log "SKIP: $*"; exit 77; }

gt_require_root() { [ "$(id -u)" -eq 0 ] || gt_skip "needs root"; }

# gt_spawn NAME CMD...: starts CMD in the background with output in $GT_TMP/NAME.log;
# sets GT_LAST_PID.
gt_spawn() {
    local name=$1; shift
    "$@" >"$GT_TMP/$name.log" 2>&1 &
    GT_LAST_PID=$!
    GT_PIDS+=("$GT_LAST_PID")
    gt_log "started $name pid=$GT_LAST_PID"
}

# gt_stop PID [SIGNAL]: stops one process started by gt_spawn and waits for it (5 s max
# before SIGKILL).
gt_stop() {
    local pid=$1 sig=${2:-TERM} i
    kill -"$sig" "$pid" 2>/dev/null || return 0
    for i in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# gt_pool_namespaces_del DATA PREFIX: removes the namespaces of the warm pool of replica
# networks that the agent with data directory DATA and --netns-prefix PREFIX left behind
# (they outlive the agent, as replica namespaces do); found through its CNI cache, so that
# another agent's are left alone.
gt_pool_namespaces_del() {
    local f id
    for f in "$1"/cni/cache/*-pool.*-eth0.json; do
        [ -f "$f" ] || continue
        id=$(basename "$f" -eth0.json)
        ip netns del "$2${id#*-}" 2>/dev/null
    done
    return 0
}

# gt_netns_add NAME: creates a network namespace owned by this test (removed at exit).
gt_netns_add() {
    ip netns add "$1" || return 1
    GT_NETNS+=("$1")
}

# gt_on_exit CMD: runs CMD (a string, eval'd) at teardown, last registered first.
gt_on_exit() { GT_HOOKS+=("$1"); }

# gt_wait_for DESC SECONDS CMD...: polls CMD every 100 ms until it succeeds; false on
# timeout. Bounded in time (a slow CMD does not stretch the wait) and in count. The limits
# of every wait a run starts add up in GT_WAIT_TOTAL: the teardown fails a run whose
# limits exceed the test's CTest TIMEOUT, which would kill a slow run before its failing
# check could say which it was.
GT_WAIT_TOTAL=0
gt_wait_for() {
    local desc=$1 secs=$2; shift 2
    GT_WAIT_TOTAL=$((GT_WAIT_TOTAL + secs))
    local tries=$((secs * 10)) i deadline=$((SECONDS + secs))
    for ((i = 0; i < tries && SECONDS <= deadline; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    gt_log "timed out after ${secs}s waiting for: $desc"
    return 1
}

# gt_curl CURL-ARGS...: curl for API requests, which repeats a request answered 503 (no
# leader: an election under way) after the Retry-After the server gives, for at most 60 s,
# as the CLI does. Tests whose subject is the 503 itself use curl.
gt_curl() {
    # curl truncates the output file before it repeats a transfer, and fails on /dev/null
    # (exit 23, nothing printed): a file of the test's takes its place.
    local args=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -o ] && [ "${2:-}" = /dev/null ]; then
            args+=(-o "$GT_TMP/curl-discard.$BASHPID")
            shift 2
            continue
        fi
        args+=("$1")
        shift
    done
    curl --retry 30 --retry-max-time 60 "${args[@]}"
}

# gt_wait_budget SECONDS: counts in GT_WAIT_TOTAL a wait that the test bounds itself (a
# sampling loop, a command's own --timeout).
gt_wait_budget() { GT_WAIT_TOTAL=$((GT_WAIT_TOTAL + $1)); }

# gt_check DESC CMD...: one counted check.
gt_check() {
    local desc=$1; shift
    if "$@"; then
        GT_PASSED=$((GT_PASSED + 1)); gt_log "ok: $desc"
    else
        GT_FAILED=$((GT_FAILED + 1)); gt_log "FAIL: $desc"
    fi
}

gt_teardown() {
    local status=$? _gt_hook _gt_pid _gt_try
    trap - EXIT INT TERM
    set +u
    # Processes first (a hook may remove what they use), then the hooks, last first.
    for _gt_pid in "${GT_PIDS[@]}"; do kill -TERM "$_gt_pid" 2>/dev/null || true; done
    for _gt_pid in "${GT_PIDS[@]}"; do
        for _gt_try in $(seq 1 50); do kill -0 "$_gt_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$_gt_pid" 2>/dev/null || true
        wait "$_gt_pid" 2>/dev/null || true
    done
    for ((_gt_hook = ${#GT_HOOKS[@]} - 1; _gt_hook >= 0; _gt_hook--)); do
        (eval "${GT_HOOKS[$_gt_hook]}") || true
    done
    for ns in "${GT_NETNS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    # A sanitizer report in any process the test started fails the test, even when every
    # check passed: the report is a bug that the checks did not see.
    local f
    for f in "$GT_TMP"/*.log; do
        [ -f "$f" ] || continue
        if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f"; then
            gt_log "FAIL: sanitizer report in $(basename "$f"):"
            grep -E -A 30 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$f" | head -n 60
            [ "$status" -eq 0 ] && status=1
        fi
    done
    if [ -n "${GANTRY_TEST_TIMEOUT:-}" ] && [ "$GT_WAIT_TOTAL" -ge "$GANTRY_TEST_TIMEOUT" ]; then
        gt_log "FAIL: the limits of this run's waits add up to ${GT_WAIT_TOTAL}s, not below its CTest TIMEOUT of ${GANTRY_TEST_TIMEOUT}s"
        [ "$status" -eq 0 ] && status=1
    fi
    gt_log "the limits of this run's waits add up to ${GT_WAIT_TOTAL}s"
    if [ "$status" -ne 0 ] || [ "$GT_FAILED" -ne 0 ]; then
        for f in "$GT_TMP"/*.log; do
            [ -f "$f" ] || continue
            echo "---- $(basename "$f") (last 40 lines)"; tail -n 40 "$f"
        done
    fi
    if [ -n "${GT_KEEP:-}" ]; then
        gt_log "kept $GT_TMP (GT_KEEP)"
    else
        rm -rf "$GT_TMP"
    fi
    exit "$status"
}
trap gt_teardown EXIT
trap 'exit 130' INT TERM

# gt_finish: prints the closing line and exits non-zero if any check failed.
gt_finish() {
    echo "$GT_PASSED passed, $GT_FAILED failed"
    [ "$GT_FAILED" -eq 0 ]
    exit $?
}
