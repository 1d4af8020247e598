# OCI hooks: each point runs where the runtime-spec says, with the state on stdin; a
# failing or hanging creation hook fails create and leaves nothing behind.
source "$(dirname "$0")/lib.sh"
gt_require_root
source "$(dirname "$0")/runtime/common.sh"
rt_rootfs
B=$GT_TMP/bundle
P=$RT_PREFIX
H=$GT_TMP/hooks
mkdir -p "$H"

# A host hook that stores its stdin and the namespaces it runs in under $H/NAME.
for name in prestart createRuntime createContainer poststart poststop; do
    cat >"$H/$name" <<HOOK
#!/bin/sh
cat > "$H/$name.state"
readlink /proc/self/ns/mnt > "$H/$name.mnt"
HOOK
    chmod +x "$H/$name"
done
# startContainer resolves inside the container.
cat >"$RT_ROOTFS/bin/start-hook" <<'HOOK'
#!/bin/sh
cat > /tmp/start-hook.state
HOOK
chmod +x "$RT_ROOTFS/bin/start-hook"
hook() { echo "[{\"path\": \"$1\", \"args\": [\"$(basename "$1")\", \"x\"], \"env\": [\"A=1\"], \"timeout\": 10}]"; }
RT_HOOKS="{\"prestart\": $(hook $H/prestart), \"createRuntime\": $(hook $H/createRuntime),
  \"createContainer\": $(hook $H/createContainer), \"startContainer\": $(hook /bin/start-hook),
  \"poststart\": $(hook $H/poststart), \"poststop\": $(hook $H/poststop)}" \
    rt_config "$B" '["sh", "-c", "cat /tmp/start-hook.state; exec sleep 30"]'
rt create -b "$B" "$P-hooks"
pid=$(rt_field $P-hooks pid)
host_mnt=$(readlink /proc/self/ns/mnt)
ctr_mnt=$(readlink /proc/$pid/ns/mnt)
gt_check "prestart ran at create with the state (creating, the init's pid)" \
    bash -c "grep -q '\"status\":\"creating\"' '$H/prestart.state' && grep -q '\"pid\":$pid' '$H/prestart.state'"
gt_check "prestart ran in the runtime's mount namespace" [ "$(cat "$H/prestart.mnt")" = "$host_mnt" ]
gt_check "createRuntime ran too" grep -q "\"id\":\"$P-hooks\"" "$H/createRuntime.state"
gt_check "createContainer ran in the container's mount namespace" \
    [ "$(cat "$H/createContainer.mnt")" = "$ctr_mnt" ]
gt_check "poststart has not run before start" [ ! -e "$H/poststart.state" ]
rt start "$P-hooks"
gt_check "poststart ran by the time start returned" grep -q '"status":"running"' "$H/poststart.state"
gt_wait_for "log written" 5 grep -q created "$RT_ROOT/$P-hooks/container.log"
gt_check "startContainer ran inside the container before the program" \
    grep -q "\"id\":\"$P-hooks\"" "$RT_ROOT/$P-hooks/container.log"
rt delete --force "$P-hooks"
gt_check "poststop ran at delete" grep -q '"status":"stopped"' "$H/poststop.state"

# Failing and hanging hooks fail create and leave nothing behind.
printf '#!/bin/sh\nexit 3\n' >"$H/fail"
printf '#!/bin/sh\nexec sleep 30\n' >"$H/hang"
chmod +x "$H/fail" "$H/hang"
RT_HOOKS="{\"prestart\": [{\"path\": \"$H/fail\"}]}" rt_config "$B" '["true"]'
out=$(rt create -b "$B" "$P-fail" 2>&1)
gt_check "a failing prestart hook fails create, naming it" \
    grep -q "hooks.prestart\[0\] ($H/fail): exited with status 3" <<<"$out"
gt_check "and leaves no state or cgroup" \
    bash -c "[ ! -e '$RT_ROOT/$P-fail' ] && [ -z \"\$(find /sys/fs/cgroup -maxdepth 3 -path '*/gantry/$P-fail')\" ]"
RT_HOOKS="{\"createContainer\": [{\"path\": \"$H/hang\", \"timeout\": 1}]}" rt_config "$B" '["true"]'
out=$(rt create -b "$B" "$P-hang" 2>&1)
gt_check "a hook past its timeout is killed and fails create" \
    grep -q "hooks.createContainer\[0\] ($H/hang): timed out after 1 s" <<<"$out"
gt_check "and leaves no state" [ ! -e "$RT_ROOT/$P-hang" ]
RT_HOOKS='{"poststart": [{"path": "relative"}]}' rt_config "$B" '["true"]'
gt_check "a relative hook path is refused naming the field" \
    bash -c "'$RT_BIN' --root '$RT_ROOT' create -b '$B' $P-rel 2>&1 | grep -q 'hooks.poststart\[0\].path'"
gt_finish
