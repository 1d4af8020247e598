/* The runtime-spec "features" document (features.md): what this runtime implements, for
 * tools that ask before they build a config. Generated from the same tables the parser
 * uses, so it cannot claim more than the runtime does. */
#include "runtime/config.h"
#include "runtime/runtime.h"

#include <ctype.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>

#include <jansson.h>

#include "common/xalloc.h"

char *rt_features_json(void)
{
    static const char *const mount_options[] = {
        "async",      "atime",         "bind",    "defaults", "dev",         "diratime", "dirsync",
        "exec",       "mand",          "noatime", "nodev",    "nodiratime",  "noexec",   "nomand",
        "norelatime", "nostrictatime", "nosuid",  "private",  "rbind",       "relatime", "remount",
        "ro",         "rprivate",      "rshared", "rslave",   "runbindable", "rw",       "shared",
        "slave",      "strictatime",   "suid",    "sync",     "unbindable",  NULL,
    };
    static const char *const actions[] = {
        "SCMP_ACT_ALLOW",        "SCMP_ACT_ERRNO",       "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG",
        "SCMP_ACT_TRACE",        "SCMP_ACT_TRAP",        NULL};
    static const char *const operators[] = {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
                                            "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
                                            "SCMP_CMP_NE", NULL};
    static const char *const archs[] = {"SCMP_ARCH_X86_64",  "SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                        "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", NULL};
    json_t *hooks = json_array();
    for (int k = 0; k < RT_HOOK_COUNT; k++)
        json_array_append_new(hooks, json_string(rt_hook_kind_name((enum rt_hook_kind)k)));
    json_t *opts = json_array();
    for (size_t i = 0; mount_options[i] != NULL; i++)
        json_array_append_new(opts, json_string(mount_options[i]));
    json_t *ns = json_array();
    for (int k = 0; k < RT_NS_COUNT; k++)
        json_array_append_new(ns, json_string(rt_ns_name((enum rt_ns_kind)k)));
    json_t *caps = json_array();
    for (int cap = 0; cap <= CAP_LAST_CAP; cap++) {
        char *name = cap_to_name(cap);
        if (name == NULL)
            continue;
        char upper[64];
        size_t n = 0;
        for (; name[n] != '\0' && n + 1 < sizeof(upper); n++)
            upper[n] = (char)toupper((unsigned char)name[n]);
        upper[n] = '\0';
        cap_free(name);
        json_array_append_new(caps, json_string(upper));
    }
    json_t *sc_actions = json_array(), *sc_ops = json_array(), *sc_archs = json_array();
    for (size_t i = 0; actions[i] != NULL; i++)
        json_array_append_new(sc_actions, json_string(actions[i]));
    for (size_t i = 0; operators[i] != NULL; i++)
        json_array_append_new(sc_ops, json_string(operators[i]));
    for (size_t i = 0; archs[i] != NULL; i++)
        json_array_append_new(sc_archs, json_string(archs[i]));
    json_t *doc = json_pack(
        "{s:s, s:s, s:o, s:o, s:{s:o, s:o, s:{s:b, s:b, s:b, s:b}, s:{s:b, s:o, s:o, s:o},"
        " s:{s:b}, s:{s:b}}, s:{s:s}}",
        "ociVersionMin", "1.0.0", "ociVersionMax", "1.1.0", "hooks", hooks, "mountOptions", opts,
        "linux", "namespaces", ns, "capabilities", caps, "cgroup", "v1", 1, "v2", 1, "systemd", 0,
        "systemdUser", 0, "seccomp", "enabled", 1, "actions", sc_actions, "operators", sc_ops,
        "archs", sc_archs, "apparmor", "enabled", 0, "selinux", "enabled", 0, "annotations",
        "org.gantry.runtime.version", GANTRY_VERSION);
    char *text = doc != NULL ? json_dumps(doc, JSON_INDENT(2)) : NULL;
    json_decref(doc);
    char *copy = gy_xstrdup(text != NULL ? text : "{}");
    free(text);
    return copy;
}
