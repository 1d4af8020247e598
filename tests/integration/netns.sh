# Multi-host harness: N hosts on this machine, each a network namespace with one interface
# (eth0) joined through a veth pair to a bridge that lives in a namespace of its own. Hosts
# get addresses 198.18.0.1 .. 198.18.0.N/24 (the benchmarking range, owned by the test)
# and no default route, so nothing they send can leave the test's switch. Source lib.sh
# first; every namespace is removed at teardown, pass or fail.
#
#   gt_hosts_create 3            # hosts 1..3; GT_HOST_NS[i], GT_HOST_ADDR[i]
#   gt_clouds_create 2 3         # two clouds: hosts 1..2 on switch A (198.18.0.i/24),
#                                # hosts 3..5 on switch B (198.18.1.i/24), a router
#                                # (GT_ROUTER_NS) between them at .254 of each, with
#                                # interfaces ca and cb; here every host has a default
#                                # route through its switch's router address
#   gt_host_exec 2 ip addr       # run a command on host 2
#   gt_host_spawn agent2 2 CMD   # start a tracked background process on host 2
#   gt_host_isolate 2 / gt_host_reconnect 2   # cut host 2's link / restore it

GT_HOST_NS=()
GT_HOST_ADDR=()
GT_HOST_SW=() # the switch namespace each host's eth0 is joined to
GT_HOST_PREFIX=""
GT_ROUTER_NS=""

# gt__switch_create NS: a switch, a namespace holding the bridge br0.
gt__switch_create() {
    gt_netns_add "$1" || return 1
    ip -n "$1" link set lo up
    ip -n "$1" link add br0 type bridge || return 1
    ip -n "$1" link set br0 up
}

# gt__host_add I SW ADDR/LEN: host I, a namespace whose eth0 has ADDR/LEN and is joined to
# switch SW through the switch port p$I.
gt__host_add() {
    local i=$1 sw=$2 cidr=$3
    local ns="$GT_HOST_PREFIX-h$i"
    gt_netns_add "$ns" || return 1
    ip -n "$ns" link set lo up
    # Create the pair inside the host namespace, then move the peer to the switch.
    ip -n "$ns" link add eth0 type veth peer name "p$i" || return 1
    ip -n "$ns" link set "p$i" netns "$sw"
    ip -n "$sw" link set "p$i" master br0
    ip -n "$sw" link set "p$i" up
    ip -n "$ns" addr add "$cidr" dev eth0
    ip -n "$ns" link set eth0 up
    GT_HOST_NS[$i]=$ns
    GT_HOST_ADDR[$i]=${cidr%/*}
    GT_HOST_SW[$i]=$sw
}

gt_hosts_create() {
    local n=$1 i sw
    GT_HOST_PREFIX="gt$$"
    sw="$GT_HOST_PREFIX-sw"
    gt__switch_create "$sw" || return 1
    for ((i = 1; i <= n; i++)); do
        gt__host_add "$i" "$sw" "198.18.0.$i/24" || return 1
    done
}

# gt__router_port ROUTER IF SW PORT ADDR/LEN: the router's interface IF with ADDR/LEN,
# joined to switch SW through the switch port PORT.
gt__router_port() {
    local r=$1 ifname=$2 sw=$3 port=$4 cidr=$5
    ip -n "$r" link add "$ifname" type veth peer name "$port" || return 1
    ip -n "$r" link set "$port" netns "$sw"
    ip -n "$sw" link set "$port" master br0
    ip -n "$sw" link set "$port" up
    ip -n "$r" addr add "$cidr" dev "$ifname"
    ip -n "$r" link set "$ifname" up
}

gt_clouds_create() {
    local na=$1 nb=$2 i
    GT_HOST_PREFIX="gt$$"
    local swa="$GT_HOST_PREFIX-sw" swb="$GT_HOST_PREFIX-swb"
    GT_ROUTER_NS="$GT_HOST_PREFIX-r"
    gt__switch_create "$swa" || return 1
    gt__switch_create "$swb" || return 1
    gt_netns_add "$GT_ROUTER_NS" || return 1
    ip -n "$GT_ROUTER_NS" link set lo up
    gt__router_port "$GT_ROUTER_NS" ca "$swa" ra 198.18.0.254/24 || return 1
    gt__router_port "$GT_ROUTER_NS" cb "$swb" rb 198.18.1.254/24 || return 1
    ip netns exec "$GT_ROUTER_NS" sysctl -qw net.ipv4.ip_forward=1 || return 1
    for ((i = 1; i <= na + nb; i++)); do
        if ((i <= na)); then
            gt__host_add "$i" "$swa" "198.18.0.$i/24" || return 1
            ip -n "${GT_HOST_NS[$i]}" route add default via 198.18.0.254 || return 1
        else
            gt__host_add "$i" "$swb" "198.18.1.$i/24" || return 1
            ip -n "${GT_HOST_NS[$i]}" route add default via 198.18.1.254 || return 1
        fi
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
    ip -n "${GT_HOST_SW[$1]}" link set "p$1" down
}

gt_host_reconnect() {
    ip -n "${GT_HOST_SW[$1]}" link set "p$1" up
}
