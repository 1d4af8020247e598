# The agent's registry client (agent/registry.c, through tests/integration/registry_fetch)
# against Debian's docker-registry: a three-layer busybox image with a whiteout, built with
# umoci and pushed with skopeo, resolved (tag to digest, as skopeo sees it) and pulled
# with every digest checked; a damaged blob in the registry's storage refused, leaving no
# file; basic auth from an auth file, and refused without it; a download cut off part way
# resumed with a Range request; a multi-arch index resolved to this node's platform; a
# mirror that is down skipped for the registry, and a working one used first; a stopped
# registry reported as such. A stand-in front (Python) adds what docker-registry cannot:
# Bearer tokens from a token server, blobs redirected to another host (which must not
# receive the credentials) that ignores Range.
source "$(dirname "$0")/lib.sh"
for tool in docker-registry skopeo umoci python3 tar sha256sum; do
    command -v "$tool" >/dev/null || gt_skip "$tool is not installed (deploy/install-deps)"
done
BUSYBOX=$(command -v busybox) || gt_skip "busybox-static is not installed"
FETCH=$GT_BUILD/tests/integration/registry_fetch
[ -x "$FETCH" ] || gt_skip "registry_fetch is not built"

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
P1=$(free_port)    # the registry
P2=$(free_port)    # the registry with basic auth
P3=$(free_port)    # the Bearer front
P4=$(free_port)    # the front's blob storage (on 127.0.0.2: another origin)
DEAD=$(free_port)  # nothing listens here
R1=127.0.0.1:$P1
R2=127.0.0.1:$P2
R3=127.0.0.1:$P3

# registry_fetch NAME ARGS...: runs the client (bounded), output in $GT_TMP/NAME.out and
# NAME.log (a .log, so that the teardown sees sanitizer reports); sets RC.
fetch() {
    local name=$1; shift
    timeout 60 "$FETCH" "$@" >"$GT_TMP/$name.out" 2>"$GT_TMP/$name.log"
    RC=$?
}
# all CMD ARGS -- CMD ARGS -- ...: true when every command is (one gt_check, several
# conditions); rc_is N: the last fetch exited N; not CMD: CMD failed.
all() {
    local cmd=()
    while [ $# -gt 0 ]; do
        if [ "$1" = -- ]; then
            "${cmd[@]}" || return 1
            cmd=()
        else
            cmd+=("$1")
        fi
        shift
    done
    [ ${#cmd[@]} -eq 0 ] || "${cmd[@]}"
}
rc_is() { [ "$RC" = "$1" ]; }
not() { ! "$@"; }
out_has() { grep -q -- "$2" "$GT_TMP/$1.out"; }
err_has() { grep -q -- "$2" "$GT_TMP/$1.log"; }
field() { awk -v k="$2" '$1 == k {print $2; exit}' "$GT_TMP/$1.out"; }

# ---------------------------------------------------------------------------------------
# Registries

registry_config() { # NAME PORT [AUTH-BLOCK]
    mkdir -p "$GT_TMP/$1-data"
    cat >"$GT_TMP/$1.yml" <<EOF
version: 0.1
log: {level: info}
storage:
  filesystem: {rootdirectory: $GT_TMP/$1-data}
http: {addr: 127.0.0.1:$2}
${3:-}
EOF
}
registry_config reg1 "$P1"
gt_spawn reg1 docker-registry serve "$GT_TMP/reg1.yml"
REG1_PID=$GT_LAST_PID

# htpasswd wants bcrypt: Python's crypt module (3.12 and older), the bcrypt module, or
# perl's crypt() through libxcrypt, whichever this host has.
PASS=s3cret-pw
hash=$(python3 -W ignore -c 'import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))' "$PASS" 2>/dev/null)
[[ $hash == '$2'* ]] || hash=$(python3 -c 'import bcrypt, sys; print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt()).decode())' "$PASS" 2>/dev/null)
[[ $hash == '$2'* ]] || hash=$(perl -e 'print crypt($ARGV[0], "\$2b\$10\$gantrytestsaltgantrysa")' "$PASS" 2>/dev/null)
gt_check "a bcrypt hash for the htpasswd file" test "${hash:0:2}" = '$2'
echo "alice:$hash" >"$GT_TMP/htpasswd"
registry_config reg2 "$P2" "auth: {htpasswd: {realm: gantry-test, path: $GT_TMP/htpasswd}}"
gt_spawn reg2 docker-registry serve "$GT_TMP/reg2.yml"

gt_check "the registry answers /v2/" gt_wait_for "registry 1" 20 curl -sf "http://$R1/v2/"
gt_check "the registry with auth answers /v2/ with 401" \
    gt_wait_for "registry 2" 20 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://$R2/v2/)\" = 401 ]"

# ---------------------------------------------------------------------------------------
# A three-layer image: busybox, files, and a layer that deletes one of them (a whiteout).
# GNU tar writes the layers (umoci insert writes tars strict readers refuse).

OCI=$GT_TMP/oci
mkdir -p "$GT_TMP/l1/bin" "$GT_TMP/l2/etc" "$GT_TMP/l2/www" "$GT_TMP/l3/etc"
cp "$BUSYBOX" "$GT_TMP/l1/bin/busybox"
ln -s busybox "$GT_TMP/l1/bin/sh"
echo hello >"$GT_TMP/l2/www/index.html"
echo doomed >"$GT_TMP/l2/etc/remove-me"
echo kept >"$GT_TMP/l2/etc/kept"
: >"$GT_TMP/l3/etc/.wh.remove-me"
echo added >"$GT_TMP/l3/etc/added"
build_image() {
    umoci init --layout "$OCI" &&
        umoci new --image "$OCI:amd64" &&
        for l in l1 l2 l3; do
            tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$GT_TMP/$l" \
                -cf "$GT_TMP/$l.tar" . &&
                umoci raw add-layer --image "$OCI:amd64" "$GT_TMP/$l.tar" || return 1
        done &&
        umoci config --image "$OCI:amd64" --os linux --architecture amd64 --config.cmd /bin/sh &&
        umoci config --image "$OCI:amd64" --tag arm64 --os linux --architecture arm64
}
gt_check "umoci builds the image" build_image >"$GT_TMP/umoci.log" 2>&1
SKOPEO=(skopeo --insecure-policy)
gt_check "skopeo pushes it to the registry" \
    "${SKOPEO[@]}" copy -q --dest-tls-verify=false "oci:$OCI:amd64" "docker://$R1/test/busybox:v1"
gt_check "skopeo pushes it to the registry with auth" \
    "${SKOPEO[@]}" copy -q --dest-tls-verify=false --dest-creds "alice:$PASS" "oci:$OCI:amd64" \
    "docker://$R2/test/busybox:v1"
SKOPEO_DIGEST=$("${SKOPEO[@]}" inspect --tls-verify=false --format '{{.Digest}}' \
    "docker://$R1/test/busybox:v1" 2>>"$GT_TMP/skopeo.log")

cat >"$GT_TMP/insecure.json" <<EOF
{"registries": {"$R1": {"insecure": true}, "$R2": {"insecure": true},
                "$R3": {"insecure": true}}}
EOF
CFG=(--config "$GT_TMP/insecure.json")

# ---------------------------------------------------------------------------------------
# Resolve and pull

fetch resolve "${CFG[@]}" --resolve-only "$R1/test/busybox:v1"
gt_check "the tag resolves (exit 0)" [ "$RC" = 0 ]
gt_check "the digest is the one skopeo inspect shows ($SKOPEO_DIGEST)" \
    all [ -n "$SKOPEO_DIGEST" ] -- [ "$(field resolve resolved)" = "$SKOPEO_DIGEST" ]

# Every blob named in the manifest is in DIR and hashes to its name; the manifest's
# config and layers are exactly what was fetched.
blobs_ok() { # OUT-NAME DIR
    local dir=$2 d n=0 manifest
    manifest=$(field "$1" manifest) || return 1
    [ -n "$manifest" ] || return 1
    for d in $(awk '$1 == "manifest" || $1 == "config" || $1 == "layer" || $1 == "index" {print $2}' "$GT_TMP/$1.out"); do
        [ "$(sha256sum <"$dir/blobs/sha256/${d#sha256:}" | cut -d' ' -f1)" = "${d#sha256:}" ] || return 1
        n=$((n + 1))
    done
    python3 - "$dir/blobs/sha256/${manifest#sha256:}" "$GT_TMP/$1.out" <<'PY' || return 1
import json, sys
m = json.load(open(sys.argv[1]))
lines = [l.split() for l in open(sys.argv[2])]
want = [("config", m["config"]["digest"], m["config"]["size"])] + \
       [("layer", l["digest"], l["size"]) for l in m["layers"]]
got = [(l[0], l[1], int(l[2])) for l in lines if l[0] in ("config", "layer")]
sys.exit(0 if want == got else 1)
PY
    [ "$n" -ge 5 ]
}
fetch pull "${CFG[@]}" "$R1/test/busybox:v1" "$GT_TMP/pull"
gt_check "the image is pulled (exit 0)" [ "$RC" = 0 ]
gt_check "manifest, config and three layers, each with its digest" blobs_ok pull "$GT_TMP/pull"
gt_check "the manifest is the resolved one" [ "$(field pull manifest)" = "$SKOPEO_DIGEST" ]
L1=$(awk '$1 == "layer" {print $2; exit}' "$GT_TMP/pull.out")
L2=$(awk '$1 == "layer" {n++; if (n == 2) print $2}' "$GT_TMP/pull.out")
L3=$(awk '$1 == "layer" {n++; if (n == 3) print $2}' "$GT_TMP/pull.out")
gt_check "the last layer holds the whiteout" \
    bash -c "tar -tzf '$GT_TMP/pull/blobs/sha256/${L3#sha256:}' | grep -q 'etc/.wh.remove-me'"
gt_check "the first layer holds busybox" \
    bash -c "tar -tzf '$GT_TMP/pull/blobs/sha256/${L1#sha256:}' | grep -q 'bin/busybox'"
gt_check "the directory is an OCI layout skopeo reads" \
    bash -c "[ \"\$(skopeo --insecure-policy inspect --format '{{.Digest}}' oci:$GT_TMP/pull:v1)\" = '$SKOPEO_DIGEST' ]"
fetch again "${CFG[@]}" "$R1/test/busybox:v1" "$GT_TMP/pull"
gt_check "pulling again fetches nothing: every blob is already there" \
    all [ "$RC" = 0 ] -- [ "$(grep -c ' present$' "$GT_TMP/again.out")" = 4 ]

fetch nosuch "${CFG[@]}" --resolve-only "$R1/test/busybox:nosuch"
gt_check "an unknown tag: 404 with the registry's MANIFEST_UNKNOWN" \
    all [ "$RC" = 1 ] -- err_has nosuch "manifest $R1/test/busybox:nosuch: GET http://$R1/v2/test/busybox/manifests/nosuch: 404 Not Found: MANIFEST_UNKNOWN: manifest unknown"
fetch https --resolve-only "$R1/test/busybox:v1"
gt_check "a plain-HTTP registry not marked insecure: a TLS error that says so" \
    all [ "$RC" = 1 ] -- err_has https "GET https://$R1/v2/: TLS handshake failed" -- \
    err_has https "must be marked insecure"
fetch badref --resolve-only "$R1/test/BusyBox:v1"
gt_check "a bad reference: the problem and its column" \
    all [ "$RC" = 1 ] -- err_has badref "column 22: repository names must be lower-case ('B')"

# ---------------------------------------------------------------------------------------
# Resuming

# A download cut off by the cancel flag leaves a partial file; the next run asks for the
# rest with Range and hashes what was there.
fetch cancelled "${CFG[@]}" --cancel-after 300000 "$R1/test/busybox:v1" "$GT_TMP/resume"
part=$GT_TMP/resume/blobs/sha256/${L1#sha256:}
size1=$(awk -v d="$L1" '$1 == "layer" && $2 == d {print $3}' "$GT_TMP/pull.out")
have=$(stat -c %s "$part" 2>/dev/null || echo 0)
gt_check "a cancelled download exits 3 and keeps its partial file ($have of $size1 bytes)" \
    all [ "$RC" = 3 ] -- [ "$have" -gt 0 ] -- [ "$have" -lt "$size1" ]
gt_check "the cancel is reported as such" err_has cancelled "canceled"
fetch resumed "${CFG[@]}" "$R1/test/busybox:v1" "$GT_TMP/resume"
gt_check "the next run resumes at byte $have and completes" \
    all [ "$RC" = 0 ] -- out_has resumed "^layer $L1 $size1 resumed=$have\$"
gt_check "with every digest right" blobs_ok resumed "$GT_TMP/resume"
gt_check "the registry served a 206 for it" \
    grep -q "GET /v2/test/busybox/blobs/$L1 HTTP/1.1\" 206" "$GT_TMP/reg1.log"

# A partial file made by hand: the first half of the layer.
mkdir -p "$GT_TMP/half/blobs/sha256"
head -c $((size1 / 2)) "$GT_TMP/pull/blobs/sha256/${L1#sha256:}" >"$GT_TMP/half/blobs/sha256/${L1#sha256:}"
fetch half "${CFG[@]}" "$R1/test/busybox:v1" "$GT_TMP/half"
gt_check "a half-written layer is completed from byte $((size1 / 2))" \
    all [ "$RC" = 0 ] -- out_has half "^layer $L1 $size1 resumed=$((size1 / 2))\$" -- \
    blobs_ok half "$GT_TMP/half"

# A partial file with wrong bytes: the digest fails, one retry from byte 0 succeeds.
mkdir -p "$GT_TMP/junk/blobs/sha256"
head -c 1000 /dev/zero >"$GT_TMP/junk/blobs/sha256/${L1#sha256:}"
fetch junk "${CFG[@]}" "$R1/test/busybox:v1" "$GT_TMP/junk"
gt_check "a partial file with wrong bytes is fetched again from byte 0" \
    all [ "$RC" = 0 ] -- out_has junk "^layer $L1 $size1\$" -- blobs_ok junk "$GT_TMP/junk"

# ---------------------------------------------------------------------------------------
# A damaged blob in the registry's storage (same size, one byte changed)

stored=$GT_TMP/reg1-data/docker/registry/v2/blobs/sha256/${L2:7:2}/${L2#sha256:}/data
cp "$stored" "$GT_TMP/l2.good"
printf 'X' | dd of="$stored" bs=1 seek=20 conv=notrunc status=none
fetch damaged "${CFG[@]}" "$R1/test/busybox:v1" "$GT_TMP/damaged"
gt_check "a damaged blob is refused (exit 1)" [ "$RC" = 1 ]
gt_check "the error names the blob and says it is damaged" \
    all err_has damaged "blob $L2 of $R1/test/busybox from $R1: the content's digest is sha256:" -- \
    err_has damaged "damaged in the registry or on the way"
gt_check "and no file is left for it" [ ! -e "$GT_TMP/damaged/blobs/sha256/${L2#sha256:}" ]
cp "$GT_TMP/l2.good" "$stored"
# One byte short: the length the registry announces is not the blob's.
stored3=$GT_TMP/reg1-data/docker/registry/v2/blobs/sha256/${L3:7:2}/${L3#sha256:}/data
cp "$stored3" "$GT_TMP/l3.good"
truncate -s -1 "$stored3"
fetch short "${CFG[@]}" "$R1/test/busybox:v1" "$GT_TMP/short"
gt_check "a blob of the wrong size is refused, naming it, and leaves no file" \
    all [ "$RC" = 1 ] -- err_has short "blob $L3 of $R1/test/busybox from $R1: the registry sends $(($(stat -c %s "$GT_TMP/l3.good") - 1)) bytes, the manifest says" -- \
    [ ! -e "$GT_TMP/short/blobs/sha256/${L3#sha256:}" ]
cp "$GT_TMP/l3.good" "$stored3"

# ---------------------------------------------------------------------------------------
# Basic auth from an auth file

printf '{"auths": {"%s": {"auth": "%s"}}}\n' "$R2" "$(printf 'alice:%s' "$PASS" | base64 -w0)" \
    >"$GT_TMP/auth.json"
printf '{"auths": {"%s": {"username": "alice", "password": "wrong-pw"}}}\n' "$R2" \
    >"$GT_TMP/wrong.json"
fetch noauth "${CFG[@]}" "$R2/test/busybox:v1" "$GT_TMP/noauth"
gt_check "without credentials: refused with 401 and the registry's UNAUTHORIZED" \
    all [ "$RC" = 1 ] -- err_has noauth "401 Unauthorized: UNAUTHORIZED: authentication required" -- \
    err_has noauth "no auth file is configured"
fetch wrongauth "${CFG[@]}" --auth "$GT_TMP/wrong.json" "$R2/test/busybox:v1" "$GT_TMP/wrongauth"
gt_check "with a wrong password: refused, naming the auth file" \
    all [ "$RC" = 1 ] -- err_has wrongauth "refused the credentials from $GT_TMP/wrong.json"
fetch auth "${CFG[@]}" --jobs 3 --auth "$GT_TMP/auth.json" "$R2/test/busybox:v1" "$GT_TMP/auth"
gt_check "with the auth file: pulled by 3 threads, every digest right" \
    all [ "$RC" = 0 ] -- blobs_ok auth "$GT_TMP/auth"
printf '{"auth_file": "%s", "registries": {"%s": {"insecure": true}}}\n' "$GT_TMP/auth.json" \
    "$R2" >"$GT_TMP/withauth.json"
fetch authcfg --config "$GT_TMP/withauth.json" --resolve-only "$R2/test/busybox:v1"
gt_check "the registry config's auth_file is used" \
    all [ "$RC" = 0 ] -- [ "$(field authcfg resolved)" = "$SKOPEO_DIGEST" ]
gt_check "no password appears in any output" \
    bash -c "! grep -rl -e '$PASS' -e wrong-pw $GT_TMP/*.out $GT_TMP/*.log"

# ---------------------------------------------------------------------------------------
# A multi-arch index (arm64 first, then amd64), pushed with skopeo copy --all

index_layout() {
    python3 - "$OCI" <<'PY'
import hashlib, json, os, sys
oci = sys.argv[1]
index = json.load(open(os.path.join(oci, "index.json")))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
entries = []
for tag, arch in (("arm64", "arm64"), ("amd64", "amd64")):
    d = dict(by_tag[tag])
    d.pop("annotations", None)
    d["platform"] = {"os": "linux", "architecture": arch}
    entries.append(d)
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": entries}).encode()
digest = hashlib.sha256(body).hexdigest()
open(os.path.join(oci, "blobs", "sha256", digest), "wb").write(body)
index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                           "digest": "sha256:" + digest, "size": len(body),
                           "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(index, open(os.path.join(oci, "index.json"), "w"))
print(by_tag["amd64"]["digest"], by_tag["arm64"]["digest"])
PY
}
read -r AMD64 ARM64 < <(index_layout)
gt_check "skopeo copy --all pushes the index" \
    "${SKOPEO[@]}" copy -q --all --dest-tls-verify=false "oci:$OCI:multi" "docker://$R1/test/multi:latest"
INDEX_DIGEST=sha256:$("${SKOPEO[@]}" inspect --raw --tls-verify=false "docker://$R1/test/multi:latest" | sha256sum | cut -d' ' -f1)
fetch multi "${CFG[@]}" --platform linux/amd64 "$R1/test/multi:latest" "$GT_TMP/multi"
gt_check "the index resolves to its own digest" \
    all [ "$RC" = 0 ] -- [ "$(field multi resolved)" = "$INDEX_DIGEST" ] -- \
    [ "$(field multi index)" = "$INDEX_DIGEST" ]
gt_check "linux/amd64 picks the amd64 manifest ($AMD64)" \
    all out_has multi "^platform linux/amd64\$" -- [ "$(field multi manifest)" = "$AMD64" ]
gt_check "and every blob of it is pulled" blobs_ok multi "$GT_TMP/multi"
if [ "$(uname -m)" = x86_64 ]; then
    fetch multinode "${CFG[@]}" --resolve-only "$R1/test/multi:latest"
    gt_check "this node's platform (uname: x86_64) picks amd64 too" \
        all [ "$RC" = 0 ] -- [ "$(field multinode manifest)" = "$AMD64" ]
fi
fetch multiarm "${CFG[@]}" --platform linux/arm64/v8 --resolve-only "$R1/test/multi:latest"
gt_check "linux/arm64/v8 picks the arm64 manifest" \
    all [ "$RC" = 0 ] -- [ "$(field multiarm manifest)" = "$ARM64" ]
fetch multis390x "${CFG[@]}" --platform linux/s390x --resolve-only "$R1/test/multi:latest"
gt_check "a platform the index lacks: an error listing the ones it has" \
    all [ "$RC" = 1 ] -- err_has multis390x "has no image for linux/s390x; it has: linux/arm64, linux/amd64"

# ---------------------------------------------------------------------------------------
# Mirrors

cat >"$GT_TMP/mirrors.json" <<EOF
{"registries": {"$R1": {"insecure": true, "mirrors": ["http://127.0.0.1:$DEAD"]},
                "mirror-only.invalid": {"mirrors": ["http://$R1"]}}}
EOF
fetch mirrordown --config "$GT_TMP/mirrors.json" "$R1/test/busybox:v1" "$GT_TMP/mirrordown"
gt_check "a mirror that is down is skipped for the registry" \
    all [ "$RC" = 0 ] -- blobs_ok mirrordown "$GT_TMP/mirrordown"
gt_check "with a warning naming the mirror" \
    err_has mirrordown "registry mirror failed.*mirror=http://127.0.0.1:$DEAD"
fetch mirrorup --config "$GT_TMP/mirrors.json" "mirror-only.invalid/test/busybox:v1" "$GT_TMP/mirrorup"
gt_check "a working mirror serves a registry that does not exist" \
    all [ "$RC" = 0 ] -- blobs_ok mirrorup "$GT_TMP/mirrorup" -- \
    [ "$(field mirrorup resolved)" = "$SKOPEO_DIGEST" ]

# ---------------------------------------------------------------------------------------
# Bearer tokens, a redirect to another host, a server that ignores Range

cat >"$GT_TMP/front.py" <<'PY'
# A registry front: every request needs "Authorization: Bearer TOKEN" from /token (which
# wants alice's basic credentials); manifests are proxied to the real registry; blobs are
# redirected to a storage host on another address, which must get no credentials and
# ignores Range.
import base64, json, sys, threading, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
front_port, storage_port, upstream, logfile, password = sys.argv[1:6]
token = "tok-" + base64.b16encode(__import__("os").urandom(8)).decode()
expected_basic = "Basic " + base64.b64encode(("alice:" + password).encode()).decode()
lock = threading.Lock()

def log(line):
    with lock, open(logfile, "a") as f:
        f.write(line + "\n")

class Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def proxy(self, keep_range):
        req = urllib.request.Request("http://" + upstream + self.path)
        for h in ("Accept",) + (("Range",) if keep_range else ()):
            if self.headers.get(h):
                req.add_header(h, self.headers[h])
        try:
            r = urllib.request.urlopen(req, timeout=20)
        except urllib.error.HTTPError as e:
            r = e
        body = r.read()
        self.reply(r.status if hasattr(r, "status") else r.code, body,
                   [(k, v) for k, v in r.headers.items()
                    if k.lower() in ("content-type", "docker-content-digest", "content-range")])

class Front(Base):
    def do_GET(self):
        if self.path.startswith("/token"):
            ok = self.headers.get("Authorization") == expected_basic
            log("token %s %s" % ("basic" if ok else "refused", self.path))
            if not ok:
                return self.reply(401, b'{"details":"incorrect username or password"}')
            return self.reply(200, json.dumps({"token": token, "expires_in": 300}).encode(),
                              [("Content-Type", "application/json")])
        if self.headers.get("Authorization") != "Bearer " + token:
            log("401 " + self.path)
            scope = ""
            if self.path.startswith("/v2/") and "/" in self.path[4:]:
                scope = ',scope="repository:%s:pull"' % self.path[4:].rsplit("/", 2)[0]
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                              [("WWW-Authenticate", 'Bearer realm="http://127.0.0.1:%s/token",service="front"%s' % (front_port, scope)),
                               ("Content-Type", "application/json")])
        if "/blobs/" in self.path:
            log("redirect " + self.path)
            return self.reply(307, b"", [("Location", "http://127.0.0.2:%s%s" % (storage_port, self.path))])
        log("proxy " + self.path)
        self.proxy(True)

class Storage(Base):
    def do_GET(self):
        log("storage auth=%s range=%s %s" % ("yes" if self.headers.get("Authorization") else "no",
                                             self.headers.get("Range", "none"), self.path))
        if self.headers.get("Authorization"):
            return self.reply(403, b"credentials leaked to the storage host")
        self.proxy(False)

threading.Thread(target=ThreadingHTTPServer(("127.0.0.2", int(storage_port)), Storage).serve_forever,
                 daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", int(front_port)), Front).serve_forever()
PY
gt_spawn front python3 "$GT_TMP/front.py" "$P3" "$P4" "$R1" "$GT_TMP/front.events" "$PASS"
gt_check "the Bearer front answers" \
    gt_wait_for "the front" 20 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://$R3/v2/)\" = 401 ]"
printf '{"auths": {"%s": {"username": "alice", "password": "%s"}}}\n' "$R3" "$PASS" \
    >"$GT_TMP/front-auth.json"
: >"$GT_TMP/front.events"
mkdir -p "$GT_TMP/bearer/blobs/sha256"
head -c $((size1 / 2)) "$GT_TMP/pull/blobs/sha256/${L1#sha256:}" >"$GT_TMP/bearer/blobs/sha256/${L1#sha256:}"
fetch bearer "${CFG[@]}" --jobs 3 --auth "$GT_TMP/front-auth.json" "$R3/test/busybox:v1" "$GT_TMP/bearer"
gt_check "pulled through Bearer tokens and redirects, every digest right" \
    all [ "$RC" = 0 ] -- blobs_ok bearer "$GT_TMP/bearer" -- \
    [ "$(field bearer resolved)" = "$SKOPEO_DIGEST" ]
gt_check "one token, fetched with basic credentials and cached for every later request (3 threads)" \
    all [ "$(grep -c '^token basic .*scope=repository%3Atest%2Fbusybox%3Apull' "$GT_TMP/front.events")" = 1 ] -- \
    [ "$(grep -c '^token' "$GT_TMP/front.events")" = 1 ]
gt_check "the storage host got every blob and never the credentials" \
    all [ "$(grep -c '^storage auth=no' "$GT_TMP/front.events")" -ge 4 ] -- \
    not grep -q '^storage auth=yes' "$GT_TMP/front.events"
gt_check "a Range the storage host ignored: the layer was read again from byte 0" \
    all out_has bearer "^layer $L1 $size1 range-ignored\$" -- \
    grep -q "^storage auth=no range=bytes=$((size1 / 2))- /v2/test/busybox/blobs/$L1" "$GT_TMP/front.events"
fetch bearer-anon "${CFG[@]}" --resolve-only "$R3/test/busybox:v1"
gt_check "without credentials the token server is asked anonymously, and refuses" \
    all [ "$RC" = 1 ] -- err_has bearer-anon "token server http://127.0.0.1:$P3/token refused anonymous access for $R3: 401" -- \
    grep -q '^token refused' "$GT_TMP/front.events"

# ---------------------------------------------------------------------------------------
# The registry stopped

gt_stop "$REG1_PID"
fetch stopped "${CFG[@]}" --connect-timeout 2000 --resolve-only "$R1/test/busybox:v1"
gt_check "a stopped registry: a connection error naming its address" \
    all [ "$RC" = 1 ] -- err_has stopped "GET http://$R1/v2/: cannot connect: Failed to connect to 127.0.0.1 port $P1"
gt_finish
