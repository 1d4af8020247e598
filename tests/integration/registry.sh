# Debian's docker-registry for the tests and benchmarks, on a host of the multi-host
# harness (source lib.sh and netns.sh first). Its data goes to $GT_TMP/registry and its
# log, one line a request, to $GT_TMP/registry.log.
#
#   gt_registry_start 1 198.18.0.1:5000     # REG_PID; true once /v2/ answers (30 s at most)

gt_registry_start() {
    local h=$1 addr=$2
    mkdir -p "$GT_TMP/registry"
    printf 'version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
        "$GT_TMP/registry" "$addr" >"$GT_TMP/registry.yml"
    gt_host_spawn registry "$h" docker-registry serve "$GT_TMP/registry.yml"
    REG_PID=$GT_LAST_PID
    gt_wait_for "registry" 30 gt_host_exec "$h" curl -sf "http://$addr/v2/"
}
