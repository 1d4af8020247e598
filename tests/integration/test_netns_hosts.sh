# The multi-host harness: hosts reach each other through the test's switch, have no route
# out, can be cut off and reconnected, and are gone after teardown.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/netns.sh"
gt_require_root
command -v ip >/dev/null || gt_skip "iproute2 is not installed"
command -v busybox >/dev/null || gt_skip "busybox is not installed"

gt_hosts_create 3 || { gt_log "cannot create hosts"; exit 1; }
gt_check "host 1 reaches host 3" gt_host_exec 1 busybox ping -c1 -W2 198.18.0.3
gt_check "host 3 reaches host 2" gt_host_exec 3 busybox ping -c1 -W2 198.18.0.2
gt_check "no default route on a host" bash -c "! ip -n ${GT_HOST_NS[2]} route | grep -q default"
gt_host_isolate 2
gt_check "an isolated host is unreachable" bash -c "! ip netns exec ${GT_HOST_NS[1]} busybox ping -c1 -W1 198.18.0.2"
gt_host_reconnect 2
gt_check "a reconnected host is reachable again" gt_wait_for reconnect 10 gt_host_exec 1 busybox ping -c1 -W1 198.18.0.2
gt_host_spawn server 3 busybox nc -l -p 7000
gt_check "a process spawned on a host runs there" gt_wait_for "listener" 10 gt_host_exec 3 sh -c "ss -ltn | grep -q :7000"
gt_finish
