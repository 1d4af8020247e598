/* Device access control for cgroup v2: v2 has no devices.allow file; instead an eBPF
 * program of type BPF_PROG_TYPE_CGROUP_DEVICE, attached to the cgroup, decides every
 * open and mknod of a device node (the approach of runc's and crun's device filters). */
#include "runtime/cgroup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/xalloc.h"

const char *const rt_default_device_rules[] = {
    "c *:* m",   "b *:* m",   "c 1:3 rwm", "c 1:5 rwm",   "c 1:7 rwm",    "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm", NULL,
};

int rt_device_rule_parse(const char *text, struct rt_device_rule *rule)
{
    char type = 0, access[8] = "";
    char major[16] = "", minor[16] = "";
    if (sscanf(text, "%c %15[0-9*]:%15[0-9*] %7s", &type, major, minor, access) != 4)
        return -1;
    memset(rule, 0, sizeof(*rule));
    rule->allow = true;
    if (type == 'c')
        rule->type = BPF_DEVCG_DEV_CHAR;
    else if (type == 'b')
        rule->type = BPF_DEVCG_DEV_BLOCK;
    else if (type != 'a')
        return -1;
    rule->major = strcmp(major, "*") == 0 ? -1 : atoi(major);
    rule->minor = strcmp(minor, "*") == 0 ? -1 : atoi(minor);
    for (const char *p = access; *p != '\0'; p++) {
        if (*p == 'r')
            rule->access |= BPF_DEVCG_ACC_READ;
        else if (*p == 'w')
            rule->access |= BPF_DEVCG_ACC_WRITE;
        else if (*p == 'm')
            rule->access |= BPF_DEVCG_ACC_MKNOD;
        else
            return -1;
    }
    return 0;
}

void rt_device_rule_format(const struct rt_device_rule *rule, char *buf, size_t size)
{
    char major[16] = "*", minor[16] = "*", access[4];
    if (rule->major >= 0)
        snprintf(major, sizeof(major), "%d", rule->major);
    if (rule->minor >= 0)
        snprintf(minor, sizeof(minor), "%d", rule->minor);
    size_t n = 0;
    if (rule->access & BPF_DEVCG_ACC_READ)
        access[n++] = 'r';
    if (rule->access & BPF_DEVCG_ACC_WRITE)
        access[n++] = 'w';
    if (rule->access & BPF_DEVCG_ACC_MKNOD)
        access[n++] = 'm';
    access[n] = '\0';
    char type = rule->type == BPF_DEVCG_DEV_CHAR    ? 'c'
                : rule->type == BPF_DEVCG_DEV_BLOCK ? 'b'
                                                    : 'a';
    snprintf(buf, size, "%c %s:%s %s", type, major, minor, access);
}

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    struct bpf_insn i = {.code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm};
    return i;
}

int rt_device_program(const struct rt_device_rule *rules, size_t n_rules, struct bpf_insn *out,
                      size_t max)
{
    size_t n = 0;
#define EMIT(...)                                                                                  \
    do {                                                                                           \
        if (n == max)                                                                              \
            return -1;                                                                             \
        out[n++] = insn(__VA_ARGS__);                                                              \
    } while (0)
    /* r2 = device type, r3 = requested access, r4 = major, r5 = minor (struct
     * bpf_cgroup_dev_ctx: access_type = access << 16 | type, major, minor). */
    EMIT(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_2, BPF_REG_1, 0, 0);
    EMIT(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
    EMIT(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_3, BPF_REG_1, 0, 0);
    EMIT(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
    EMIT(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_4, BPF_REG_1, 4, 0);
    EMIT(BPF_LDX | BPF_W | BPF_MEM, BPF_REG_5, BPF_REG_1, 8, 0);
    /* The last matching rule wins, so the program tests them from the end. */
    for (size_t i = n_rules; i-- > 0;) {
        const struct rt_device_rule *r = &rules[i];
        /* Each block ends with "r0 = 1; exit"; a failed test jumps past the block. */
        int len = 3 + 2 + (r->type != 0) + (r->major >= 0) + (r->minor >= 0);
        int left = len;
        if (r->type != 0) {
            left--;
            EMIT(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, (int16_t)left, (int32_t)r->type);
        }
        /* Every requested access bit must be allowed by the rule. */
        EMIT(BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
        EMIT(BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, (int32_t)~r->access);
        left -= 3;
        EMIT(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_1, 0, (int16_t)left, 0);
        if (r->major >= 0) {
            left--;
            EMIT(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, (int16_t)left, r->major);
        }
        if (r->minor >= 0) {
            left--;
            EMIT(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, (int16_t)left, r->minor);
        }
        EMIT(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, r->allow ? 1 : 0);
        EMIT(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
    EMIT(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, 0);
    EMIT(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
#undef EMIT
    return (int)n;
}

int rt_cgroup_v2_devices(const char *dir, const struct rt_resources *res, struct gy_error *err)
{
    size_t n_defaults = 0;
    while (rt_default_device_rules[n_defaults] != NULL)
        n_defaults++;
    size_t n_rules = res->n_devices + n_defaults;
    cleanup_free struct rt_device_rule *rules = gy_xcalloc(n_rules, sizeof(*rules));
    if (res->n_devices > 0)
        memcpy(rules, res->devices, res->n_devices * sizeof(*rules));
    for (size_t i = 0; i < n_defaults; i++)
        rt_device_rule_parse(rt_default_device_rules[i], &rules[res->n_devices + i]);
    /* Nine instructions per rule at most, plus the loads and the final deny. */
    size_t max = 9 * n_rules + 8;
    cleanup_free struct bpf_insn *prog = gy_xcalloc(max, sizeof(*prog));
    int n = rt_device_program(rules, n_rules, prog, max);
    if (n < 0)
        return gy_error_set(err, GY_EINTERNAL, "device filter: program too long");
    union bpf_attr load;
    memset(&load, 0, sizeof(load));
    load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
    load.insns = (uint64_t)(uintptr_t)prog;
    load.insn_cnt = (uint32_t)n;
    load.license = (uint64_t)(uintptr_t) "GPL";
    cleanup_close int prog_fd = (int)syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
    if (prog_fd < 0) {
        int saved = errno;
        /* Load again with the verifier's log, for a message that says what it disliked. */
        static char log[65536];
        log[0] = '\0';
        load.log_buf = (uint64_t)(uintptr_t)log;
        load.log_size = sizeof(log);
        load.log_level = 1;
        syscall(SYS_bpf, BPF_PROG_LOAD, &load, sizeof(load));
        size_t len = strlen(log);
        return gy_error_sys(err, saved, "load the device filter (verifier: %.300s)",
                            len > 300 ? log + len - 300 : log);
    }
    cleanup_close int cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (cg < 0)
        return gy_error_sys(err, errno, "open cgroup %s", dir);
    union bpf_attr attach;
    memset(&attach, 0, sizeof(attach));
    attach.target_fd = (uint32_t)cg;
    attach.attach_bpf_fd = (uint32_t)prog_fd;
    attach.attach_type = BPF_CGROUP_DEVICE;
    attach.attach_flags = BPF_F_ALLOW_MULTI;
    /* The attachment keeps the program alive as long as the cgroup exists. */
    if (syscall(SYS_bpf, BPF_PROG_ATTACH, &attach, sizeof(attach)) < 0)
        return gy_error_sys(err, errno, "attach the device filter to %s", dir);
    return 0;
}
