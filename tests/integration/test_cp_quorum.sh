# Without a majority the control plane refuses writes with 503 no_leader (and Retry-After)
# instead of accepting what it cannot commit; when the others come back nothing is lost.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/cp/cluster.sh"
cp_require

for i in 1 2 3; do cp_start "$i" --bootstrap "$(cp_bootstrap_list 3)"; done
gt_check "a leader is elected" gt_wait_for "a leader" 30 cp_has_leader 1 2 3
ok=$(cp_bulk_apply 1 100 kept 4)
gt_check "100 applies succeed ($ok)" [ "$ok" -eq 100 ]
leader=$(cp_leader 1 2 3)
[ -n "$leader" ] || exit 1
last=1
[ "$leader" = 1 ] && last=2
for i in 1 2 3; do [ "$i" != "$last" ] && cp_stop "$i" KILL; done

refused() {
    local headers=$GT_TMP/refused.h body
    body=$(curl -s -D "$headers" --max-time 10 -X POST -d '{"name":"lonely","image":"busybox"}' \
        "http://$(cp_api "$last")/v1/apply")
    grep -q '^HTTP/1.1 503' "$headers" && grep -qi '^Retry-After: 1' "$headers" &&
        echo "$body" | grep -q '"code":"no_leader"'
}
gt_check "the server left alone refuses writes with 503 no_leader" gt_wait_for "refusal" 20 refused
gt_check "reads without a leader are refused too" [ "$(cp_status "$last" /v1/workloads)" = 503 ]
gt_check "a stale read still answers" [ "$(cp_count "$last")" -eq 100 ]
gt_check "health still answers" [ "$(cp_status "$last" /healthz)" = 200 ]

for i in 1 2 3; do [ "$i" != "$last" ] && cp_start "$i"; done
gt_check "a leader is elected again" gt_wait_for "leader again" 30 cp_has_leader 1 2 3
gt_check "every server converges" gt_wait_for "same state" 30 cp_same_state 1 2 3
for i in 1 2 3; do
    gt_check "server $i holds the 100 workloads" [ "$(cp_count "$i")" -ge 100 ]
done
gt_check "the refused write was not applied" [ "$(cp_client_status 1 /v1/workloads/lonely)" = 404 ]
gt_check "writes succeed again" [ "$(cp_apply "$last" back)" = 200 ]
gt_finish
