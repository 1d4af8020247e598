#!/usr/bin/env bash
# A local registry with one image, for examples/registry/web.yaml, without internet:
# Debian's docker-registry on 127.0.0.1:5000 (data under /tmp/gantry-registry), and an
# image of busybox httpd serving a page built with umoci and pushed with skopeo as
# 127.0.0.1:5000/demo/web:1 (deploy/install-deps installs all three).
#
#   examples/registry/push.sh          # start the registry (if it is not up) and push
#   examples/registry/push.sh stop     # stop the registry
set -euo pipefail
dir=/tmp/gantry-registry
reg=127.0.0.1:5000
if [ "${1:-}" = stop ]; then
    [ -f "$dir/pid" ] && kill "$(cat "$dir/pid")" 2>/dev/null || true
    rm -f "$dir/pid"
    exit 0
fi
for tool in docker-registry umoci skopeo busybox curl; do
    command -v "$tool" >/dev/null || { echo "push.sh: $tool is missing (deploy/install-deps)" >&2; exit 1; }
done
mkdir -p "$dir/data"
if ! curl -sf "http://$reg/v2/" >/dev/null; then
    printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
        "$dir/data" "$reg" >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    echo $! >"$dir/pid"
    for _ in $(seq 1 100); do curl -sf "http://$reg/v2/" >/dev/null && break; sleep 0.1; done
    curl -sf "http://$reg/v2/" >/dev/null || { echo "push.sh: the registry did not start; see $dir/log" >&2; exit 1; }
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
umoci init --layout "$work/oci"
umoci new --image "$work/oci:web"
umoci unpack --image "$work/oci:web" "$work/b" >/dev/null
mkdir -p "$work/b/rootfs/bin" "$work/b/rootfs/www"
cp "$(command -v busybox)" "$work/b/rootfs/bin/busybox"
for t in sh httpd wget; do ln -sf busybox "$work/b/rootfs/bin/$t"; done
echo "hello from a registry image" >"$work/b/rootfs/www/index.html"
umoci repack --image "$work/oci:web" "$work/b" >/dev/null
umoci config --image "$work/oci:web" --config.entrypoint /bin/httpd \
    --config.cmd -f --config.cmd -p --config.cmd 8080 --config.cmd -h --config.cmd /www \
    --config.exposedports 8080/tcp --config.label org.opencontainers.image.licenses=GPL-2.0 \
    --config.label org.opencontainers.image.source=https://busybox.net
skopeo copy --quiet --dest-tls-verify=false "oci:$work/oci:web" "docker://$reg/demo/web:1"
echo "pushed $reg/demo/web:1 ($(skopeo inspect --tls-verify=false --format '{{.Digest}}' "docker://$reg/demo/web:1"))"
echo "nodes and servers reach it as plain HTTP with --registries examples/registry/registries.json"
