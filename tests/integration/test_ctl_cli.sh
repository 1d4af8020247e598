# The gantry CLI against a live single-server control plane on 127.0.0.1: golden tables,
# JSON and YAML output, apply idempotence and round trips, every bad-input case of a spec
# file (FILE:LINE:COLUMN: key.path: message, exit 2, nothing applied), usage errors with
# hints, delete, scale, events (listing and -f), cluster status, logs, --wait failing,
# an unreachable server, and the bash completion.
source "$(dirname "$0")/lib.sh"

GANTRY=$GT_BUILD/ctl/gantry
SCHED=$GT_BUILD/scheduler/gantry-scheduler
[ -x "$GANTRY" ] || gt_skip "gantry is not built"
[ -x "$SCHED" ] || gt_skip "gantry-scheduler is not built"
command -v python3 >/dev/null || gt_skip "python3 is missing"

API=127.0.0.1:17710
export GANTRY_ADDR=http://$API
gt_spawn scheduler "$SCHED" --id 1 --data-dir "$GT_TMP/s1" --raft-addr 127.0.0.1:17711 \
    --api-addr "$API" --agent-addr 127.0.0.1:17712 --bootstrap 1=127.0.0.1:17711
gt_check "the control plane elects itself leader" \
    gt_wait_for "a leader" 30 "$GANTRY" cluster status

# run NAME ARGS...: runs gantry with stdout in $GT_TMP/NAME.out, stderr in NAME.err and
# the exit status in RC.
run() {
    local name=$1; shift
    "$GANTRY" "$@" >"$GT_TMP/$name.out" 2>"$GT_TMP/$name.err"
    RC=$?
}
out() { cat "$GT_TMP/$1.out"; }
err() { cat "$GT_TMP/$1.err"; }
# same TEXT FILE: the file holds exactly TEXT (diff shown on failure).
same() {
    if ! diff -u <(printf '%s\n' "$1") "$2" >"$GT_TMP/diff"; then
        cat "$GT_TMP/diff"
        return 1
    fi
}
# ages FILE: the table with every cell of its AGE column replaced by <age>, padded to the
# column's width, so that golden tables still check the alignment.
ages() {
    python3 - "$1" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
head = lines[0]
start = head.index("AGE")
m = re.search(r"\S", head[start + 3:])
end = start + 3 + m.start() if m else None
for i, line in enumerate(lines):
    cell = "AGE" if i == 0 else "<age>"
    if end is None:
        print(line[:start] + cell)
    else:
        print(line[:start] + cell.ljust(end - start) + line[end:])
PY
}
names() { "$GANTRY" get workloads -o name; }

# ---- version, empty listings
run version version
gt_check "version exits 0 and names the client" \
    bash -c "[ $RC = 0 ] && grep -q '^Client: gantry ' '$GT_TMP/version.out' && grep -q '^Server: ' '$GT_TMP/version.out'"
run empty get workloads
gt_check "get workloads on an empty cluster" \
    bash -c "[ $RC = 0 ] && [ ! -s '$GT_TMP/empty.out' ] && grep -qx 'No workloads found.' '$GT_TMP/empty.err'"

# ---- apply and its idempotence
EX=$GT_SRC/examples
run apply1 apply -f "$EX/hello.yaml"
gt_check "apply creates hello" [ "$RC" = 0 ]
gt_check "apply prints the outcome" same "workload/hello created (generation 1)" "$GT_TMP/apply1.out"
run apply2 apply -f "$EX/hello.yaml"
gt_check "a second apply says unchanged" \
    same "workload/hello unchanged (generation 1)" "$GT_TMP/apply2.out"
run apply3 apply -f "$EX"
gt_check "apply of a directory reads every file in name order" same "workload/web created (generation 1)
workload/jobs created (generation 1)
workload/hello unchanged (generation 1)
workload/frontend created (generation 1)
workload/api created (generation 1)
workload/cache created (generation 1)
workload/worker created (generation 1)" "$GT_TMP/apply3.out"

# ---- get: tables, json, yaml, names
run table get workloads
gt_check "get workloads table (golden)" same "NAME       DESIRED   RUNNING   READY   GENERATION   AGE
api        3         0         0       1            <age>
cache      1         0         0       1            <age>
frontend   2         0         0       1            <age>
hello      3         0         0       1            <age>
jobs       1         0         0       1            <age>
web        1         0         0       1            <age>
worker     2         0         0       1            <age>" <(ages "$GT_TMP/table.out")
run wide get workloads -o wide
gt_check "get workloads -o wide (golden)" same "NAME       DESIRED   RUNNING   READY   GENERATION   AGE   IMAGE     CPU    MEMORY   RESTART      CLOUDS           PORTS
api        3         0         0       1            <age> busybox   500m   128Mi    always       any              <none>
cache      1         0         0       1            <age> busybox   100m   256Mi    always       any              <none>
frontend   2         0         0       1            <age> busybox   200m   32Mi     always       private,public   <none>
hello      3         0         0       1            <age> busybox   100m   32Mi     always       private,public   <none>
jobs       1         0         0       1            <age> busybox   100m   16Mi     always       any              <none>
web        1         0         0       1            <age> busybox   250m   32Mi     always       private,public   <none>
worker     2         0         0       1            <age> busybox   250m   64Mi     on-failure   any              <none>" \
    <(ages "$GT_TMP/wide.out")
run one get workloads hello
gt_check "get workloads NAME (golden)" same "NAME    DESIRED   RUNNING   READY   GENERATION   AGE
hello   3         0         0       1            <age>" <(ages "$GT_TMP/one.out")
run json get workloads -o json
gt_check "get workloads -o json parses and lists 7" \
    bash -c "[ $RC = 0 ] && python3 -m json.tool '$GT_TMP/json.out' >/dev/null && [ \"\$(python3 -c 'import json,sys; print(len(json.load(sys.stdin)[\"items\"]))' <'$GT_TMP/json.out')\" = 7 ]"
run json1 get workloads hello -o json
gt_check "get workloads NAME -o json is the workload" \
    bash -c "[ \"\$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"name\"], d[\"status\"][\"desired\"], d[\"spec\"][\"health\"][\"interval\"])' <'$GT_TMP/json1.out')\" = 'hello 3 2s' ]"
run yaml get workloads hello -o yaml
gt_check "get -o yaml prints the spec with defaults" \
    bash -c "grep -qx 'name: hello' '$GT_TMP/yaml.out' && grep -qx 'stop_grace: 10s' '$GT_TMP/yaml.out' && grep -qx '  failure_threshold: 3' '$GT_TMP/yaml.out'"
gt_check "the YAML of a workload applies as unchanged" \
    bash -c "'$GANTRY' apply -f - <'$GT_TMP/yaml.out' | grep -qx 'workload/hello unchanged (generation 1)'"
run yamlall get workloads -o yaml
gt_check "get workloads -o yaml is one document per workload" \
    bash -c "[ \$(grep -c '^---\$' '$GT_TMP/yamlall.out') = 6 ] && '$GANTRY' apply -f - <'$GT_TMP/yamlall.out' | grep -c unchanged | grep -qx 7"
run names get workloads -o name
gt_check "get -o name" same "api
cache
frontend
hello
jobs
web
worker" "$GT_TMP/names.out"
run nodes get nodes
gt_check "get nodes without agents" bash -c "[ $RC = 0 ] && grep -qx 'No nodes found.' '$GT_TMP/nodes.err'"
for kind in nodes replicas; do
    run "j$kind" get "$kind" -o json
    gt_check "get $kind -o json parses" \
        bash -c "[ $RC = 0 ] && python3 -m json.tool '$GT_TMP/j$kind.out' >/dev/null"
done
run repw get replicas --workload hello
gt_check "get replicas --workload" bash -c "[ $RC = 0 ] && grep -qx 'No replicas found.' '$GT_TMP/repw.err'"
run nf get workloads nope
gt_check "a missing workload: one sentence, exit 1" \
    bash -c "[ $RC = 1 ] && [ \"\$(cat '$GT_TMP/nf.err')\" = 'gantry: workload \"nope\" not found' ]"

# ---- bad input: each prints FILE:LINE:COLUMN: key.path: message, exits 2, applies nothing
BAD=$GT_TMP/bad
mkdir -p "$BAD"
before=$(names)
bad_case() { # NAME CONTENT EXPECTED-FIRST-LINE
    printf '%s' "$2" >"$BAD/$1.yaml"
    run "bad-$1" apply -f "$BAD/$1.yaml"
    local first
    first=$(head -n 1 "$GT_TMP/bad-$1.err")
    gt_check "bad input $1: exit 2 ($RC)" [ "$RC" = 2 ]
    gt_check "bad input $1: $3" [ "$first" = "$BAD/$1.yaml:$3" ]
    gt_check "bad input $1: says nothing was applied" \
        grep -q 'nothing was applied$' "$GT_TMP/bad-$1.err"
    gt_check "bad input $1: nothing changed on the server" [ "$(names)" = "$before" ]
}
bad_case syntax $'name: s1\nimage: [busybox\nreplicas: 1\n' \
    "3:9: did not find expected ',' or ']' (while parsing a flow sequence at line 2, column 8)"
bad_case unknown $'name: s2\nimage: busybox\nreplica: 3\n' \
    "3:1: replica: unknown key; did you mean 'replicas'?"
bad_case type $'name: s3\nimage: busybox\nreplicas: three\n' \
    "3:1: replicas: must be a whole number, not a string"
bad_case quantity $'name: s4\nimage: busybox\nresources:\n  memory: 64Q\n' \
    '4:3: resources.memory: invalid memory quantity "64Q": unknown unit "Q" (use Ki, Mi, Gi, Ti, Pi, Ei, K, M, G, T, P or E)'
bad_case missing $'name: s5\nreplicas: 2\n' "1:1: image: required field is missing"
bad_case duplicate $'name: s6\nimage: busybox\n---\nname: s6\nimage: busybox\n' \
    '4:1: name: workload "s6" is defined twice in this file (first at line 1)'
bad_case dns $'name: Web_1\nimage: busybox\n' \
    "1:1: name: \"Web_1\" is not a DNS label: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
bad_case range $'name: s8\nimage: busybox\nreplicas: 10001\n' \
    "3:1: replicas: must be between 0 and 10000 (got 10001)"
bad_case onebad $'name: good-one\nimage: busybox\n---\nname: bad-one\nimage: busybox\nrestart: sometimes\n' \
    '6:1: restart: "sometimes" is not one of always, on-failure or never'
gt_check "one bad document means the good one was not applied either" \
    bash -c "! '$GANTRY' get workloads good-one >/dev/null 2>&1"
mkdir -p "$BAD/dir"
printf 'name: x1\nimage: busybox\n' >"$BAD/dir/a.yaml"
printf 'name: x2\nimage: busybox\n---\nname: x1\nimage: busybox\n' >"$BAD/dir/b.yml"
run crossdup apply -f "$BAD/dir"
gt_check "a name defined in two files of a directory" \
    bash -c "[ $RC = 2 ] && grep -qx '$BAD/dir/b.yml:4:1: name: workload \"x1\" is also defined in $BAD/dir/a.yaml' '$GT_TMP/crossdup.err'"
gt_check "the directory applied nothing" [ "$(names)" = "$before" ]
run nofile apply -f "$BAD/absent.yaml"
gt_check "a missing file: exit 2 naming the path" \
    bash -c "[ $RC = 2 ] && grep -q 'absent.yaml: No such file or directory' '$GT_TMP/nofile.err'"

# ---- usage errors
run u1 aply -f x
gt_check "unknown command: exit 2 with a hint" \
    bash -c "[ $RC = 2 ] && grep -qx 'gantry: unknown command \"aply\"; did you mean \"apply\"?' '$GT_TMP/u1.err'"
run u2 get workloads --outptu json
gt_check "unknown flag: exit 2 with a hint" \
    bash -c "[ $RC = 2 ] && grep -qx 'gantry: get: unknown flag \"--outptu\"; did you mean \"--output\"?' '$GT_TMP/u2.err'"
run u3 get workloadz
gt_check "unknown kind: exit 2 with a hint" \
    bash -c "[ $RC = 2 ] && grep -q 'did you mean \"workloads\"' '$GT_TMP/u3.err'"
run u4 get workloads -o xml
gt_check "unknown output format: exit 2" bash -c "[ $RC = 2 ]"
run u5 scale hello lots
gt_check "scale to a non-number: exit 2" \
    bash -c "[ $RC = 2 ] && grep -q 'must be a whole number from 0 to 10000' '$GT_TMP/u5.err'"
run u6 scale hello
gt_check "scale without a count: exit 2" bash -c "[ $RC = 2 ]"
run u7 apply
gt_check "apply without -f: exit 2" bash -c "[ $RC = 2 ]"
run u8 --server ftp://x get nodes
gt_check "a server URL that is not http: exit 2" bash -c "[ $RC = 2 ]"
run u9
gt_check "no command: usage on stderr, exit 2" \
    bash -c "[ $RC = 2 ] && grep -q '^Usage: gantry' '$GT_TMP/u9.err'"
for c in apply get describe delete scale logs events cluster version; do
    run "help-$c" "$c" --help
    gt_check "$c --help shows usage and examples" \
        bash -c "[ $RC = 0 ] && grep -q '^Usage: gantry $c' '$GT_TMP/help-$c.out' && grep -q '^Examples:' '$GT_TMP/help-$c.out'"
done

# ---- scale, delete, describe
run scale scale hello 5
gt_check "scale" bash -c "[ $RC = 0 ] && grep -q '^workload/hello scaled to 5 replicas' '$GT_TMP/scale.out'"
gt_check "scale is visible in get" \
    bash -c "[ \"\$('$GANTRY' get workloads hello -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"status\"][\"desired\"])')\" = 5 ]"
run scalenf scale nope 2
gt_check "scale of a missing workload: exit 1" \
    bash -c "[ $RC = 1 ] && grep -qx 'gantry: workload \"nope\" not found' '$GT_TMP/scalenf.err'"
run del delete worker
gt_check "delete" same "workload/worker deleted" "$GT_TMP/del.out"
gt_check "the deleted workload is gone" bash -c "! '$GANTRY' get workloads worker >/dev/null 2>&1"
run del2 delete worker
gt_check "deleting it again: exit 1, not found" \
    bash -c "[ $RC = 1 ] && grep -qx 'gantry: workload \"worker\" not found' '$GT_TMP/del2.err'"
run desc describe workload hello
gt_check "describe shows the spec, conditions and events" \
    bash -c "[ $RC = 0 ] && grep -qx 'Name:         hello' '$GT_TMP/desc.out' && grep -q '^Health:       exec wget -q -O- http://127.0.0.1:8080/, interval 2s' '$GT_TMP/desc.out' && grep -q '^  Progressing ' '$GT_TMP/desc.out' && grep -q 'replicas 3 -> 5' '$GT_TMP/desc.out'"
run descnf describe workload nope
gt_check "describe of a missing workload: exit 1" bash -c "[ $RC = 1 ]"

# ---- events
run ev events
gt_check "events lists the trail" \
    bash -c "[ $RC = 0 ] && head -n 1 '$GT_TMP/ev.out' | grep -q '^SEQ  *TIME  *KIND  *OBJECT  *MESSAGE  *ACTOR' && grep -q 'delete  *workload/worker' '$GT_TMP/ev.out' && grep -q 'scale  *workload/hello  *replicas 3 -> 5: manual' '$GT_TMP/ev.out'"
run evw events --workload hello
gt_check "events --workload keeps only that workload" \
    bash -c "[ $RC = 0 ] && [ \$(tail -n +2 '$GT_TMP/evw.out' | grep -vc 'workload/hello') = 0 ] && [ \$(tail -n +2 '$GT_TMP/evw.out' | wc -l) -ge 3 ]"
last=$(tail -n 1 "$GT_TMP/ev.out" | awk '{print $1}')
run evs events --since "$last"
gt_check "events --since past the end lists nothing" \
    bash -c "[ $RC = 0 ] && grep -qx 'No events found.' '$GT_TMP/evs.err'"
run evbad events --since -3
gt_check "events --since with a bad number: exit 2" bash -c "[ $RC = 2 ]"
gt_spawn follow "$GANTRY" events -f --since "$last"
follower=$GT_LAST_PID
sleep 0.5
"$GANTRY" scale hello 2 >/dev/null
gt_check "events -f prints a new event as it happens" \
    gt_wait_for "the followed event" 10 grep -q 'replicas 5 -> 2' "$GT_TMP/follow.log"
gt_stop "$follower"

# ---- cluster status, logs, --wait, unreachable server
run cs cluster status
gt_check "cluster status names the leader and the server" \
    bash -c "[ $RC = 0 ] && grep -qx 'Leader:    server 1 (API 127.0.0.1:17710)' '$GT_TMP/cs.out' && grep -qE '^  1 +leader +voter +127.0.0.1:17711 +127.0.0.1:17710 +127.0.0.1:17712\$' '$GT_TMP/cs.out'"
run logs logs hello-0
gt_check "logs: exit 1 with a clear sentence" \
    bash -c "[ $RC = 1 ] && grep -qE '^gantry: (the server does not serve logs|replica .* not found)' '$GT_TMP/logs.err'"
printf 'name: waiter\nimage: busybox\nreplicas: 2\n' >"$GT_TMP/waiter.yaml"
run wait apply -f "$GT_TMP/waiter.yaml" --wait --timeout 20s
gt_check "apply --wait without any node: exit 1" [ "$RC" = 1 ]
gt_check "apply --wait names the server's placement failure" \
    grep -qx 'gantry: workload/waiter failed: Unschedulable: 2 of 2 replicas cannot be placed: 0/0 nodes available (0/2 ready, 0 running (no replicas placed yet))' "$GT_TMP/wait.err"
gt_check "the workload itself was applied" grep -qx 'workload/waiter created (generation 1)' "$GT_TMP/wait.out"
run badtimeout apply -f "$EX/hello.yaml" --wait --timeout soon
gt_check "a bad --timeout: exit 2" bash -c "[ $RC = 2 ] && grep -q -- '--timeout \"soon\"' '$GT_TMP/badtimeout.err'"
run unreach --server http://127.0.0.1:17719 get workloads
gt_check "an unreachable server: exit 1 and says so" \
    bash -c "[ $RC = 1 ] && grep -q '^gantry: cannot reach the control plane at http://127.0.0.1:17719: ' '$GT_TMP/unreach.err'"
GANTRY_ADDR=http://127.0.0.1:17719 run unreach2 get workloads
gt_check "GANTRY_ADDR is used" bash -c "[ $RC = 1 ] && grep -q '127.0.0.1:17719' '$GT_TMP/unreach2.err'"

# ---- bash completion
complete_words() {
    PATH=$(dirname "$GANTRY"):$PATH bash -c '
        source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
        _gantry; echo "${COMPREPLY[*]}"' _ "$GT_SRC/deploy/gantry-completion.bash" "$@"
}
gt_check "completion of commands" [ "$(complete_words gantry de)" = "describe delete dev" ]
gt_check "completion of flags" [ "$(complete_words gantry get workloads --o)" = "--output" ]
gt_check "completion of workload names from the server" \
    [ "$(complete_words gantry scale "")" = "api cache frontend hello jobs waiter web" ]
gt_check "completion of output formats" [ "$(complete_words gantry get nodes -o "")" = "wide json yaml name" ]
gt_check "completion of cluster subcommands" [ "$(complete_words gantry cluster "")" = "status members verify join-token remove transfer-leader snapshot" ]
gt_check "completion of join-token roles" [ "$(complete_words gantry cluster join-token --role "")" = "server node" ]
# ---- a spec file written as JSON
printf '{"name": "from-json", "image": "busybox",\n "replicas": "3"}\n' >"$GT_TMP/bad.json"
run badjson apply -f "$GT_TMP/bad.json"
gt_check "a JSON spec file's problem has its position" \
    bash -c "[ $RC = 2 ] && grep -qx '$GT_TMP/bad.json:2:2: replicas: must be a whole number, not a string' '$GT_TMP/badjson.err'"
printf '{"name": "from-json", "image": "busybox", "replicas": 3}\n' >"$GT_TMP/good.json"
run goodjson apply -f "$GT_TMP/good.json"
gt_check "a JSON spec file applies" same "workload/from-json created (generation 1)" "$GT_TMP/goodjson.out"

# Every gantry run above was built with the sanitizers; a report on its standard error is
# a bug even when the output was right.
gt_check "no sanitizer report from any gantry run" \
    bash -c "! grep -lE 'ERROR: (Address|Leak)Sanitizer|runtime error:' '$GT_TMP'/*.err"
gt_finish
