# Multi-host harness: N hosts on this machine, each a network namespace with one interface
# (eth0) joined through a veth pair to a bridge that lives in a namespace of its own. Hosts
# get addresses 198.18.0.1 .. 198.18.0.N/24 (the benchmarking range, owned by the test)
# and no default route, so nothing they send can leave the test's switch. Source lib.sh
# first; every namespace is removed at teardown, pass or fail.
#
#   gt_hosts_create 3            # hosts 1..3; GT_HOST_NS[i], GT_HOST_ADDR[i]
#   gt_host_exec 2 ip addr       # run a command on host 2
#   gt_host_spawn agent2 2 CMD   # start a tracked background process on host 2
#   gt_host_isolate 2 / gt_host_reconnect 2   # cut host 2's link / restore it

GT_HOST_NS=()
GT_HOST_ADDR=()
GT_HOST_PREFIX=""

gt_hosts_create() {
    local n=$1 i sw
    GT_HOST_PREFIX="gt$$"
    sw="$GT_HOST_PREFIX-sw"
    gt_netns_add "$sw" || return 1
    ip -n "$sw" link set lo up
    ip -n "$sw" link add br0 type bridge || return 1
    ip -n "$sw" link set br0 up
    for ((i = 1; i <= n; i++)); do
        local ns="$GT_HOST_PREFIX-h$i"
        gt_netns_add "$ns" || return 1
        ip -n "$ns" link set lo up
        # Create the pair inside the host namespace, then move the peer to the switch.
        ip -n "$ns" link add eth0 type veth peer name "p$i" || return 1
        ip -n "$ns" link set "p$i" netns "$sw"
        ip -n "$sw" link set "p$i" master br0
        ip -n "$sw" link set "p$i" up
        ip -n "$ns" addr add "198.18.0.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        GT_HOST_NS[$i]=$ns
        GT_HOST_ADDR[$i]="198.18.0.$i"
    done
}

# Commands enter only the host's network namespace (nsenter), not a mount namespace of
# its own as `ip netns exec` would: the cgroup hierarchies under /sys/fs/cgroup stay
# visible to the runtime.
gt_host_exec() {
    local i=$1; shift
    nsenter --net="/run/netns/${GT_HOST_NS[$i]}" "$@"
}

gt_host_spawn() {
    local name=$1 i=$2; shift 2
    gt_spawn "$name" nsenter --net="/run/netns/${GT_HOST_NS[$i]}" "$@"
}

gt_host_isolate() {
    ip -n "$GT_HOST_PREFIX-sw" link set "p$1" down
}

gt_host_reconnect() {
    ip -n "$GT_HOST_PREFIX-sw" link set "p$1" up
}
