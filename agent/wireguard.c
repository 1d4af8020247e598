/* WireGuard tunnels through wireguard-go; see wireguard.h. */
#include "agent/wireguard.h"

#include "agent/netlink.h"
#include "common/cleanup.h"
#include "common/io.h"
#include "common/log.h"
#include "common/xalloc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define KEY_LEN 32
/* Where wireguard-go listens for UAPI; it watches the path and exits when the file goes. */
#define UAPI_DIR "/var/run/wireguard"
/* A daemon that does not answer within this is hung: a request never waits longer. */
#define UAPI_TIMEOUT_S 5
/* A `get` grows by some 250 bytes a peer. */
#define UAPI_REPLY_MAX (4 << 20)
/* How long a new wireguard-go may take to answer on its socket, and how often to look. */
#define START_TIMEOUT_MS 5000
#define START_POLL_MS    20
/* How long SIGTERM is given before SIGKILL, and SIGKILL before giving up. */
#define STOP_TIMEOUT_MS 5000
#define KILL_TIMEOUT_MS 1000
#define KEEPALIVE_S     25

struct agent_wg {
    char interface[IFNAMSIZ];
    char *key_path;
    uint8_t private_key[KEY_LEN];
    char public_key[AGENT_WG_KEY_B64];
    int ifindex;
};

/* ---------------------------------------------------------------------------------------
 * Keys: X25519 through libcrypto, in base64 as `wg` writes them and hex as UAPI wants them */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Decodes as wireguard-tools' key_from_base64: 43 characters and '=', whose last two
 * spare bits are zero, so that every key has one spelling. */
static bool key_from_b64(const char *text, size_t len, uint8_t key[KEY_LEN])
{
    if (len != AGENT_WG_KEY_B64 - 1 || text[len - 1] != '=')
        return false;
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < len - 1; i++) {
        int v = b64_value(text[i]);
        if (v < 0)
            return false;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            key[k++] = (uint8_t)(acc >> bits);
            acc &= (UINT32_C(1) << bits) - 1;
        }
    }
    return k == KEY_LEN && acc == 0;
}

static void key_to_b64(const uint8_t key[KEY_LEN], char out[AGENT_WG_KEY_B64])
{
    EVP_EncodeBlock((unsigned char *)out, key, KEY_LEN);
}

static void key_to_hex(const uint8_t key[KEY_LEN], char out[2 * KEY_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < KEY_LEN; i++) {
        out[2 * i] = digits[key[i] >> 4];
        out[2 * i + 1] = digits[key[i] & 0xf];
    }
    out[2 * KEY_LEN] = '\0';
}

static bool key_from_hex(const char *text, uint8_t key[KEY_LEN])
{
    if (strlen(text) != 2 * KEY_LEN)
        return false;
    for (size_t i = 0; i < 2 * KEY_LEN; i++) {
        char c = text[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return false;
        key[i / 2] = (uint8_t)(i % 2 == 0 ? v << 4 : key[i / 2] | v);
    }
    return true;
}

bool agent_wg_key_valid(const char *text)
{
    uint8_t key[KEY_LEN];
    return text != NULL && key_from_b64(text, strlen(text), key);
}

/* A new private key. libcrypto's X25519 keys are random scalars clamped as RFC 7748
 * section 5 says, which is what WireGuard expects of a private key; clamping again keeps
 * that true whatever the provider does. */
static int key_make(uint8_t key[KEY_LEN], struct gy_error *err)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, NULL);
    EVP_PKEY *pkey = NULL;
    size_t len = KEY_LEN;
    int ok = ctx != NULL && EVP_PKEY_keygen_init(ctx) == 1 && EVP_PKEY_keygen(ctx, &pkey) == 1 &&
             EVP_PKEY_get_raw_private_key(pkey, key, &len) == 1 && len == KEY_LEN;
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return gy_error_set(err, GY_EINTERNAL, "make an X25519 key pair with libcrypto");
    key[0] &= 248;
    key[31] &= 127;
    key[31] |= 64;
    return 0;
}

static int key_public(const uint8_t key[KEY_LEN], uint8_t pub[KEY_LEN], struct gy_error *err)
{
    EVP_PKEY *pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, key, KEY_LEN);
    size_t len = KEY_LEN;
    int ok = pkey != NULL && EVP_PKEY_get_raw_public_key(pkey, pub, &len) == 1 && len == KEY_LEN;
    EVP_PKEY_free(pkey);
    return ok ? 0 : gy_error_set(err, GY_EINTERNAL, "derive an X25519 public key with libcrypto");
}

/* The node's key as `wg genkey` writes it: base64 and a newline, readable by root alone. */
static int key_save(const char *path, const uint8_t key[KEY_LEN], struct gy_error *err)
{
    char text[AGENT_WG_KEY_B64 + 1];
    key_to_b64(key, text);
    text[AGENT_WG_KEY_B64 - 1] = '\n';
    text[AGENT_WG_KEY_B64] = '\0';
    int rc = gy_write_file_atomic(path, text, AGENT_WG_KEY_B64, 0600, err);
    OPENSSL_cleanse(text, sizeof(text));
    return rc < 0 ? gy_error_wrap(err, "save the WireGuard key") : 0;
}

static int key_load_or_make(const char *path, uint8_t key[KEY_LEN], struct gy_error *err)
{
    char *text = NULL;
    size_t len = 0;
    struct gy_error e;
    int rc = gy_read_file(path, 256, &text, &len, &e);
    if (rc == -GY_ENOTFOUND) {
        if ((rc = key_make(key, err)) < 0)
            return rc;
        gy_log_info("made a WireGuard key", "path=%s", path);
        return key_save(path, key, err);
    }
    if (rc < 0) {
        if (err != NULL)
            *err = e;
        return gy_error_wrap(err, "WireGuard key");
    }
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        len--;
    bool ok = key_from_b64(text, len, key);
    OPENSSL_cleanse(text, len);
    free(text);
    if (!ok)
        return gy_error_set(err, GY_EINVAL,
                            "WireGuard key %s: not a base64 key as `wg genkey` writes it (remove "
                            "the file to make a new key; peers must then learn it)",
                            path);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * UAPI: one request and its reply on the daemon's socket */

static void uapi_path(const char *interface, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/%s.sock", UAPI_DIR, interface);
}

/* Sends request (operation, lines, empty line) to the daemon of interface and reads its
 * reply up to the empty line that ends it. *reply (the caller frees it) holds the lines
 * before "errno=N"; a non-zero N is an error. *server, when not NULL, is the pid of the
 * process that listens on the socket. GY_EUNAVAILABLE: nothing listens there. */
static int uapi_call(const char *interface, const char *request, char **reply, pid_t *server,
                     struct gy_error *err)
{
    struct sockaddr_un sa;
    uapi_path(interface, &sa);
    const char *op = strncmp(request, "get=1", 5) == 0 ? "get" : "set";
    *reply = NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return gy_error_sys(err, errno, "WireGuard %s: socket", interface);
    struct timeval tv = {.tv_sec = UAPI_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        if (e == ENOENT || e == ECONNREFUSED)
            return gy_error_set(err, GY_EUNAVAILABLE, "WireGuard %s: no wireguard-go on %s: %s",
                                interface, sa.sun_path, strerror(e));
        return gy_error_sys(err, e, "WireGuard %s: connect to %s", interface, sa.sun_path);
    }
    if (server != NULL) {
        struct ucred cred;
        socklen_t cred_len = sizeof(cred);
        *server = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) == 0 ? cred.pid : 0;
    }
    size_t len = strlen(request), off = 0;
    while (off < len) {
        ssize_t w = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            int e = errno;
            close(fd);
            if (e == EAGAIN)
                return gy_error_set(err, GY_ETIMEOUT, "WireGuard %s: %s: no answer in %d s",
                                    interface, op, UAPI_TIMEOUT_S);
            return gy_error_sys(err, e, "WireGuard %s: %s: send", interface, op);
        }
        off += (size_t)w;
    }
    size_t cap = 4096, n = 0;
    char *buf = gy_xmalloc(cap);
    char *end = NULL;
    int rc = 0;
    while (end == NULL) {
        if (n + 1 >= cap) {
            if (cap >= UAPI_REPLY_MAX) {
                rc = gy_error_set(err, GY_ETOOBIG, "WireGuard %s: %s: a reply over %d bytes",
                                  interface, op, UAPI_REPLY_MAX);
                break;
            }
            cap *= 2;
            buf = gy_xrealloc(buf, cap);
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN) {
            rc = gy_error_set(err, GY_ETIMEOUT, "WireGuard %s: %s: no answer in %d s", interface,
                              op, UAPI_TIMEOUT_S);
            break;
        }
        if (r < 0) {
            rc = gy_error_sys(err, errno, "WireGuard %s: %s: receive", interface, op);
            break;
        }
        if (r == 0) {
            rc = gy_error_set(err, GY_EPROTO, "WireGuard %s: %s: the reply ends early", interface,
                              op);
            break;
        }
        /* Look again from just before what arrived: the "\n\n" may straddle reads. */
        size_t from = n > 0 ? n - 1 : 0;
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf + from, "\n\n");
    }
    close(fd);
    if (rc < 0) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        return rc;
    }
    /* The last line before the empty one is errno=N; the lines before it are the answer. */
    end[1] = '\0';
    end[0] = '\0';
    char *status = strrchr(buf, '\n');
    status = status != NULL ? status + 1 : buf;
    long code = 0;
    if (sscanf(status, "errno=%ld", &code) != 1) {
        rc =
            gy_error_set(err, GY_EPROTO, "WireGuard %s: %s: no errno= in the reply", interface, op);
    } else if (code != 0) {
        /* wireguard-go sends negative errno values (-EINVAL); the protocol allows either. */
        int e = (int)(code < 0 ? -code : code);
        rc = gy_error_set(err, GY_EIO, "WireGuard %s: wireguard-go refused the %s: %s (errno %ld)",
                          interface, op, strerror(e), code);
    }
    if (rc < 0) {
        OPENSSL_cleanse(buf, n);
        free(buf);
        return rc;
    }
    *status = '\0';
    *reply = buf;
    return 0;
}

/* Frees a reply, which may hold the private key. */
static void reply_free(char *reply)
{
    if (reply != NULL) {
        OPENSSL_cleanse(reply, strlen(reply));
        free(reply);
    }
}

/* One peer as `get` describes it. */
struct device_peer {
    uint8_t key[KEY_LEN];
    char endpoint[64];
    uint32_t allowed; /* the first allowed IPv4 network */
    int allowed_len;
    int n_allowed; /* allowed networks of any family */
    unsigned keepalive;
};

/* The device as `get` describes it. */
struct device_state {
    bool has_private_key;
    uint8_t private_key[KEY_LEN];
    unsigned listen_port;
    struct device_peer *peers;
    size_t n_peers, cap;
    uint64_t rx, tx;
};

/* Frees what st holds and empties it, so that freeing it again is harmless. */
static void device_state_free(struct device_state *st)
{
    free(st->peers);
    OPENSSL_cleanse(st, sizeof(*st));
}

/* Parses the key=value lines of a `get` reply, in which a public_key line starts a peer
 * and the lines after it describe that peer. Keys it does not use are skipped. */
static void device_state_parse(char *reply, struct device_state *st)
{
    memset(st, 0, sizeof(*st));
    struct device_peer *peer = NULL;
    char *save = NULL;
    for (char *line = strtok_r(reply, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char *value = strchr(line, '=');
        if (value == NULL)
            continue;
        *value++ = '\0';
        if (strcmp(line, "public_key") == 0) {
            if (st->n_peers == st->cap) {
                st->cap = st->cap ? 2 * st->cap : 8;
                st->peers = gy_xrealloc(st->peers, st->cap * sizeof(*st->peers));
            }
            peer = &st->peers[st->n_peers++];
            memset(peer, 0, sizeof(*peer));
            key_from_hex(value, peer->key);
        } else if (peer == NULL) {
            if (strcmp(line, "private_key") == 0)
                st->has_private_key = key_from_hex(value, st->private_key);
            else if (strcmp(line, "listen_port") == 0)
                st->listen_port = (unsigned)strtoul(value, NULL, 10);
        } else if (strcmp(line, "endpoint") == 0) {
            snprintf(peer->endpoint, sizeof(peer->endpoint), "%s", value);
        } else if (strcmp(line, "allowed_ip") == 0) {
            char *slash = strchr(value, '/');
            struct in_addr in;
            if (peer->n_allowed++ == 0 && slash != NULL) {
                *slash = '\0';
                if (inet_pton(AF_INET, value, &in) == 1) {
                    peer->allowed = ntohl(in.s_addr);
                    peer->allowed_len = atoi(slash + 1);
                } else {
                    peer->allowed_len = -1;
                }
            }
        } else if (strcmp(line, "persistent_keepalive_interval") == 0) {
            peer->keepalive = (unsigned)strtoul(value, NULL, 10);
        } else if (strcmp(line, "rx_bytes") == 0) {
            st->rx += strtoull(value, NULL, 10);
        } else if (strcmp(line, "tx_bytes") == 0) {
            st->tx += strtoull(value, NULL, 10);
        }
    }
}

static int device_get(const char *interface, struct device_state *st, pid_t *server,
                      struct gy_error *err)
{
    char *reply;
    int rc = uapi_call(interface, "get=1\n\n", &reply, server, err);
    if (rc < 0)
        return rc;
    /* Parsing cuts the reply into lines: cleanse all of it, not up to the first. */
    size_t len = strlen(reply);
    device_state_parse(reply, st);
    OPENSSL_cleanse(reply, len);
    free(reply);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The wireguard-go process */

struct wg_paths {
    char *pid;
    char *log;
    char *key;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The pid recorded in the pid file; 0 when there is none or it is not a number. */
static pid_t pid_read(const char *path)
{
    char *text = NULL;
    size_t len = 0;
    if (gy_read_file(path, 64, &text, &len, NULL) < 0)
        return 0;
    char *end;
    long pid = strtol(text, &end, 10);
    bool ok = end != text && (*end == '\0' || *end == '\n') && pid > 1 && pid < INT32_MAX;
    free(text);
    return ok ? (pid_t)pid : 0;
}

/* The state letter of pid ('Z' for a zombie) and its parent, from /proc/PID/stat; 0 when
 * there is no such process. */
static char proc_state(pid_t pid, pid_t *ppid)
{
    char path[64], text[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    *ppid = 0;
    /* /proc files report a size of 0: read as much as there is. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = gy_read_full(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    text[n] = '\0';
    /* The command name, in parentheses, may hold any character: skip to the last ')'. */
    char *p = strrchr(text, ')');
    char state = 0;
    int parent = 0;
    if (p == NULL || sscanf(p + 1, " %c %d", &state, &parent) != 2)
        return 0;
    *ppid = parent;
    return state;
}

/* Reaps pid when it is a zombie child of this process: a wireguard-go the agent started
 * that has since died would otherwise keep its pid (kill(pid, 0) succeeds on a zombie). */
static void reap_if_dead_child(pid_t pid)
{
    pid_t ppid;
    if (proc_state(pid, &ppid) == 'Z' && ppid == getpid())
        waitpid(pid, NULL, WNOHANG);
}

/* Whether pid is a live wireguard-go for interface: its command line ends in "-f INTERFACE"
 * as the agent starts it. A pid taken since by another process, or a zombie, is not. */
static bool daemon_is(pid_t pid, const char *interface)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t n = gy_read_full(fd, buf, sizeof(buf));
    close(fd);
    char want[IFNAMSIZ + 8];
    int wlen = snprintf(want, sizeof(want), "-f%c%s%c", '\0', interface, '\0');
    return n > wlen && buf[n - wlen - 1] == '\0' && memcmp(buf + n - wlen, want, (size_t)wlen) == 0;
}

/* Whether pid is gone, or a zombie, which no longer serves anything; a zombie child of this
 * process is reaped, so that its pid is free again as for any other. */
static bool process_gone(pid_t pid)
{
    if (waitpid(pid, NULL, WNOHANG) == pid)
        return true;
    pid_t ppid;
    char state = proc_state(pid, &ppid);
    if (state == 0)
        return kill(pid, 0) < 0 && errno == ESRCH;
    if (state != 'Z')
        return false;
    if (ppid == getpid())
        waitpid(pid, NULL, 0);
    return true;
}

/* Stops the wireguard-go pid of interface: SIGTERM, and SIGKILL if it still runs after
 * STOP_TIMEOUT_MS. */
static int daemon_kill(pid_t pid, const char *interface, struct gy_error *err)
{
    kill(pid, SIGTERM);
    for (int64_t deadline = now_ms() + STOP_TIMEOUT_MS; now_ms() < deadline;) {
        if (process_gone(pid))
            return 0;
        sleep_ms(START_POLL_MS);
    }
    /* Still the same process: a live one keeps its pid, so its command line says so. */
    if (daemon_is(pid, interface)) {
        gy_log_warn("wireguard-go ignored SIGTERM; killing it", "interface=%s pid=%d", interface,
                    (int)pid);
        kill(pid, SIGKILL);
    }
    for (int64_t deadline = now_ms() + KILL_TIMEOUT_MS; now_ms() < deadline;) {
        if (process_gone(pid))
            return 0;
        sleep_ms(START_POLL_MS);
    }
    return gy_error_set(err, GY_ETIMEOUT, "WireGuard %s: wireguard-go (pid %d) does not stop",
                        interface, (int)pid);
}

/* The last line wireguard-go logged: why it exited, when it did. */
static void log_last_line(const char *path, char *out, size_t len)
{
    snprintf(out, len, "no output");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    char buf[1024];
    off_t size = lseek(fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        n--;
    if (n == 0)
        return;
    buf[n] = '\0';
    const char *line = strrchr(buf, '\n');
    line = line != NULL ? line + 1 : buf;
    size_t k = strlen(line) < len - 1 ? strlen(line) : len - 1;
    memcpy(out, line, k);
    out[k] = '\0';
}

/* Starts wireguard-go for interface in the calling thread's network namespace, detached
 * from the agent: a process group of its own, no descriptor of the agent's but its log on
 * stdout and stderr, default signal dispositions and an empty signal mask whatever the
 * calling thread has. */
static int daemon_spawn(const char *program, const char *interface, const char *log_path,
                        pid_t *pid, struct gy_error *err)
{
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0)
        return gy_error_sys(err, errno, "WireGuard %s: open %s", interface, log_path);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                        POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    /* Descriptors handed over by a parent wireguard-go would be taken for its own. */
    size_t n_env = 0;
    while (environ[n_env] != NULL)
        n_env++;
    char **envp = gy_xcalloc(n_env + 1, sizeof(char *));
    for (size_t i = 0, k = 0; i < n_env; i++)
        if (strncmp(environ[i], "WG_TUN_FD=", 10) != 0 &&
            strncmp(environ[i], "WG_UAPI_FD=", 11) != 0)
            envp[k++] = environ[i];
    char *argv[] = {(char *)program, "-f", (char *)interface, NULL};
    int sp = posix_spawnp(pid, program, &fa, &attr, argv, envp);
    free(envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    close(log_fd);
    if (sp != 0)
        return gy_error_set(err, sp == ENOENT ? GY_ENOTFOUND : GY_ESYS,
                            "WireGuard %s: cannot run %s: %s", interface, program, strerror(sp));
    return 0;
}

/* Waits until the wireguard-go just started as pid answers on its socket, and reads the
 * device into st; a daemon that exits first is an error saying why. */
static int daemon_wait(pid_t pid, const char *interface, const char *log_path,
                       struct device_state *st, struct gy_error *err)
{
    int64_t deadline = now_ms() + START_TIMEOUT_MS;
    for (;;) {
        pid_t server = 0;
        struct gy_error e;
        int rc = device_get(interface, st, &server, &e);
        if (rc == 0 && server == pid)
            return 0;
        if (rc == 0)
            device_state_free(st);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            char last[256];
            log_last_line(log_path, last, sizeof(last));
            return gy_error_set(err, GY_EIO, "WireGuard %s: wireguard-go exited (%s %d): %s",
                                interface, WIFSIGNALED(status) ? "signal" : "status",
                                WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), last);
        }
        if (now_ms() >= deadline)
            return gy_error_set(err, GY_ETIMEOUT,
                                "WireGuard %s: wireguard-go (pid %d) did not answer in %d s: %s",
                                interface, (int)pid, START_TIMEOUT_MS / 1000,
                                rc < 0 ? e.msg : "another process serves its socket");
        sleep_ms(START_POLL_MS);
    }
}

/* Makes sure a wireguard-go recorded in the pid file serves interface, starting one if
 * needed, and reads the device into st. *started is the pid of one started here. */
static int daemon_ensure(const struct agent_wg_config *cfg, const struct wg_paths *paths,
                         struct device_state *st, pid_t *started, struct gy_error *err)
{
    const char *interface = cfg->interface;
    *started = 0;
    pid_t pid = pid_read(paths->pid);
    if (pid > 0) {
        reap_if_dead_child(pid);
        if (daemon_is(pid, interface)) {
            pid_t server = 0;
            if (device_get(interface, st, &server, NULL) == 0) {
                if (server == pid)
                    return 0;
                device_state_free(st);
            }
            /* Running but not serving its socket: hung, or its socket was taken. */
            gy_log_warn("wireguard-go does not answer; restarting it", "interface=%s pid=%d",
                        interface, (int)pid);
            int rc = daemon_kill(pid, interface, err);
            if (rc < 0)
                return rc;
        }
    }
    /* A daemon the agent did not start would refuse a second one the socket: say whose. */
    pid_t server = 0;
    if (device_get(interface, st, &server, NULL) == 0) {
        device_state_free(st);
        return gy_error_set(err, GY_EEXISTS,
                            "WireGuard %s: process %d, not the one in %s, serves %s/%s.sock; "
                            "stop it first",
                            interface, (int)server, paths->pid, UAPI_DIR, interface);
    }
    const char *program = cfg->program != NULL ? cfg->program : "wireguard-go";
    int rc = daemon_spawn(program, interface, paths->log, &pid, err);
    if (rc < 0)
        return rc;
    *started = pid;
    char text[32];
    int len = snprintf(text, sizeof(text), "%d\n", (int)pid);
    if ((rc = gy_write_file_atomic(paths->pid, text, (size_t)len, 0644, err)) < 0)
        return gy_error_wrap(err, "WireGuard %s: record the pid of wireguard-go", interface);
    gy_log_info("started wireguard-go", "interface=%s pid=%d", interface, (int)pid);
    return daemon_wait(pid, interface, paths->log, st, err);
}

/* ---------------------------------------------------------------------------------------
 * The device */

static bool interface_valid(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n >= IFNAMSIZ || name[0] == '.' || name[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return true;
}

static void paths_make(const char *data_dir, struct wg_paths *p)
{
    p->pid = gy_xasprintf("%s/wireguard.pid", data_dir);
    p->log = gy_xasprintf("%s/wireguard.log", data_dir);
    p->key = gy_xasprintf("%s/wireguard.key", data_dir);
}

static void paths_free(struct wg_paths *p)
{
    free(p->pid);
    free(p->log);
    free(p->key);
}

/* Sets the private key unless key is NULL, and the port unless it is 0. */
static int device_identity_set(const char *interface, const uint8_t *key, uint16_t port,
                               struct gy_error *err)
{
    char hex[2 * KEY_LEN + 1], request[160];
    int len = snprintf(request, sizeof(request), "set=1\n");
    if (key != NULL) {
        key_to_hex(key, hex);
        len += snprintf(request + len, sizeof(request) - (size_t)len, "private_key=%s\n", hex);
        OPENSSL_cleanse(hex, sizeof(hex));
    }
    if (port != 0)
        len += snprintf(request + len, sizeof(request) - (size_t)len, "listen_port=%u\n",
                        (unsigned)port);
    snprintf(request + len, sizeof(request) - (size_t)len, "\n");
    char *reply;
    int rc = uapi_call(interface, request, &reply, NULL, err);
    OPENSSL_cleanse(request, sizeof(request));
    if (rc < 0)
        return rc;
    reply_free(reply);
    return 0;
}

static int link_up(const char *interface, int *index, struct gy_error *err)
{
    struct agent_nl nl;
    int rc = agent_nl_open(&nl, err);
    if (rc == 0 && (rc = agent_nl_link_index(&nl, interface, index, err)) == 0)
        rc = agent_nl_link_set(&nl, *index, true, NULL, err);
    agent_nl_close(&nl);
    return rc < 0 ? gy_error_wrap(err, "WireGuard %s", interface) : 0;
}

int agent_wg_open(struct agent_wg **out, const struct agent_wg_config *cfg, struct gy_error *err)
{
    *out = NULL;
    if (!interface_valid(cfg->interface))
        return gy_error_set(err, GY_EINVAL,
                            "WireGuard interface \"%.32s\": 1 to %d letters, digits, '-', '_' "
                            "or '.'",
                            cfg->interface != NULL ? cfg->interface : "", IFNAMSIZ - 1);
    if (cfg->data_dir == NULL || cfg->data_dir[0] == '\0')
        return gy_error_set(err, GY_EINVAL, "WireGuard %s: no data directory", cfg->interface);
    if (mkdir(cfg->data_dir, 0700) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "WireGuard %s: mkdir %s", cfg->interface, cfg->data_dir);
    uint16_t port = cfg->listen_port != 0 ? cfg->listen_port : AGENT_WG_PORT;
    struct wg_paths paths;
    paths_make(cfg->data_dir, &paths);
    struct agent_wg *wg = gy_xcalloc(1, sizeof(*wg));
    snprintf(wg->interface, sizeof(wg->interface), "%s", cfg->interface);
    wg->key_path = gy_steal_ptr(&paths.key);
    uint8_t pub[KEY_LEN];
    struct device_state st = {0};
    pid_t started = 0;
    int rc = key_load_or_make(wg->key_path, wg->private_key, err);
    if (rc < 0 || (rc = key_public(wg->private_key, pub, err)) < 0)
        goto err_free;
    key_to_b64(pub, wg->public_key);
    if ((rc = daemon_ensure(cfg, &paths, &st, &started, err)) < 0)
        goto err_stop;
    /* A daemon kept from before the restart usually has both already: leave it alone. */
    bool same_key = st.has_private_key && memcmp(st.private_key, wg->private_key, KEY_LEN) == 0;
    if ((!same_key || st.listen_port != port) &&
        (rc = device_identity_set(wg->interface, same_key ? NULL : wg->private_key,
                                  st.listen_port != port ? port : 0, err)) < 0)
        goto err_stop;
    if ((rc = link_up(wg->interface, &wg->ifindex, err)) < 0)
        goto err_stop;
    device_state_free(&st);
    paths_free(&paths);
    *out = wg;
    return 0;
err_stop:
    device_state_free(&st);
    if (started > 0) {
        daemon_kill(started, wg->interface, NULL);
        unlink(paths.pid);
    }
err_free:
    paths_free(&paths);
    agent_wg_close(wg);
    return rc;
}

void agent_wg_close(struct agent_wg *wg)
{
    if (wg == NULL)
        return;
    OPENSSL_cleanse(wg->private_key, sizeof(wg->private_key));
    free(wg->key_path);
    free(wg);
}

int agent_wg_stop(const struct agent_wg_config *cfg, struct gy_error *err)
{
    if (!interface_valid(cfg->interface) || cfg->data_dir == NULL)
        return gy_error_set(err, GY_EINVAL, "WireGuard interface \"%.32s\": invalid",
                            cfg->interface != NULL ? cfg->interface : "");
    struct wg_paths paths;
    paths_make(cfg->data_dir, &paths);
    int rc = 0;
    pid_t pid = pid_read(paths.pid);
    if (pid > 0) {
        reap_if_dead_child(pid);
        if (daemon_is(pid, cfg->interface)) {
            rc = daemon_kill(pid, cfg->interface, err);
            if (rc == 0)
                gy_log_info("stopped wireguard-go", "interface=%s pid=%d", cfg->interface,
                            (int)pid);
        }
    }
    if (rc == 0 && unlink(paths.pid) < 0 && errno != ENOENT)
        rc = gy_error_sys(err, errno, "WireGuard %s: remove %s", cfg->interface, paths.pid);
    paths_free(&paths);
    return rc;
}

const char *agent_wg_public_key(const struct agent_wg *wg)
{
    return wg->public_key;
}

int agent_wg_ifindex(const struct agent_wg *wg)
{
    return wg->ifindex;
}

int agent_wg_rotate(struct agent_wg *wg, struct gy_error *err)
{
    uint8_t key[KEY_LEN], pub[KEY_LEN];
    /* The file first: should the device refuse the key, the next open sets it from there,
     * and until then the handle keeps the key the device still has. */
    int rc = key_make(key, err);
    if (rc == 0 && (rc = key_public(key, pub, err)) == 0 &&
        (rc = key_save(wg->key_path, key, err)) == 0)
        rc = device_identity_set(wg->interface, key, 0, err);
    if (rc == 0) {
        memcpy(wg->private_key, key, KEY_LEN);
        key_to_b64(pub, wg->public_key);
        gy_log_info("rotated the WireGuard key", "interface=%s public_key=%s", wg->interface,
                    wg->public_key);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return rc < 0 ? gy_error_wrap(err, "rotate the key of WireGuard %s", wg->interface) : 0;
}

int agent_wg_key_public(const char *data_dir, char out[AGENT_WG_KEY_B64], struct gy_error *err)
{
    if (mkdir(data_dir, 0700) < 0 && errno != EEXIST)
        return gy_error_sys(err, errno, "WireGuard key: mkdir %s", data_dir);
    char *path = gy_xasprintf("%s/wireguard.key", data_dir);
    uint8_t key[KEY_LEN], pub[KEY_LEN];
    int rc = key_load_or_make(path, key, err);
    if (rc == 0 && (rc = key_public(key, pub, err)) == 0)
        key_to_b64(pub, out);
    OPENSSL_cleanse(key, sizeof(key));
    free(path);
    return rc;
}

int agent_wg_key_rotate(const char *data_dir, char out[AGENT_WG_KEY_B64], struct gy_error *err)
{
    char *path = gy_xasprintf("%s/wireguard.key", data_dir);
    uint8_t key[KEY_LEN], pub[KEY_LEN];
    int rc = key_make(key, err);
    if (rc == 0 && (rc = key_public(key, pub, err)) == 0 && (rc = key_save(path, key, err)) == 0)
        key_to_b64(pub, out);
    OPENSSL_cleanse(key, sizeof(key));
    free(path);
    return rc;
}

/* ---------------------------------------------------------------------------------------
 * Peers */

/* text (at most max bytes, maybe not NUL-terminated: it came from the network) for an error
 * message, with what is not printable as '?'. */
static const char *printable(const char *text, size_t max, char *out, size_t len)
{
    size_t n = strnlen(text, max), k = 0;
    for (size_t i = 0; i < n && k + 1 < len; i++)
        out[k++] = text[i] >= 0x20 && text[i] < 0x7f ? text[i] : '?';
    out[k] = '\0';
    return out;
}

/* Checks an endpoint "A.B.C.D:PORT" (a unicast address and a port from 1) and writes it
 * back as wireguard-go prints it. */
static bool endpoint_parse(const char *text, size_t max, char out[64])
{
    size_t len = strnlen(text, max);
    if (len == max)
        return false;
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text || colon - text >= INET_ADDRSTRLEN)
        return false;
    char host[INET_ADDRSTRLEN];
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    struct in_addr in;
    if (inet_pton(AF_INET, host, &in) != 1)
        return false;
    uint32_t addr = ntohl(in.s_addr);
    if (addr == 0 || addr == UINT32_MAX || (addr >> 28) == 0xe)
        return false;
    const char *p = colon + 1;
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || digits > 5 || p[digits] != '\0')
        return false;
    unsigned long port = strtoul(p, NULL, 10);
    if (port == 0 || port > 65535)
        return false;
    inet_ntop(AF_INET, &in, host, sizeof(host));
    snprintf(out, 64, "%s:%lu", host, port);
    return true;
}

/* A peer as it is sent: the decoded key and the endpoint's one spelling. */
struct peer_wanted {
    uint8_t key[KEY_LEN];
    char endpoint[64];
};

static int peers_check(const struct agent_wg *wg, const struct agent_wg_peer *peers, size_t n,
                       struct peer_wanted *out, struct gy_error *err)
{
    uint8_t own[KEY_LEN];
    key_from_b64(wg->public_key, strlen(wg->public_key), own);
    char text[80], key[AGENT_WG_KEY_B64];
    for (size_t i = 0; i < n; i++) {
        const struct agent_wg_peer *p = &peers[i];
        if (!key_from_b64(p->public_key, strnlen(p->public_key, sizeof(p->public_key)), out[i].key))
            return gy_error_set(err, GY_EINVAL,
                                "WireGuard peer %zu: public key \"%s\" is not the base64 of a "
                                "32-byte key",
                                i, printable(p->public_key, sizeof(p->public_key), text, 64));
        snprintf(key, sizeof(key), "%s", p->public_key);
        if (memcmp(out[i].key, own, KEY_LEN) == 0)
            return gy_error_set(err, GY_EINVAL, "WireGuard peer %zu: %s is this node's own key", i,
                                key);
        for (size_t j = 0; j < i; j++)
            if (memcmp(out[i].key, out[j].key, KEY_LEN) == 0)
                return gy_error_set(err, GY_EINVAL,
                                    "WireGuard peer %zu: %s is also the key of peer %zu", i, key,
                                    j);
        if (!endpoint_parse(p->endpoint, sizeof(p->endpoint), out[i].endpoint))
            return gy_error_set(err, GY_EINVAL,
                                "WireGuard peer %zu (%s): endpoint \"%s\" is not A.B.C.D:PORT", i,
                                key, printable(p->endpoint, sizeof(p->endpoint), text, 64));
        uint32_t host_mask =
            p->allowed_len >= 0 && p->allowed_len <= 32
                ? (p->allowed_len == 0 ? UINT32_MAX : (UINT32_C(1) << (32 - p->allowed_len)) - 1)
                : 0;
        if (p->allowed_len < 0 || p->allowed_len > 32 || (p->allowed & host_mask) != 0) {
            struct in_addr in = {.s_addr = htonl(p->allowed)};
            char addr[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &in, addr, sizeof(addr));
            return gy_error_set(err, GY_EINVAL,
                                "WireGuard peer %zu (%s): allowed network %s/%d: a prefix of 0 "
                                "to 32 bits with host bits zero is required",
                                i, key, addr, p->allowed_len);
        }
    }
    return 0;
}

/* Whether the device's peers are already exactly those wanted. */
static bool peers_same(const struct device_state *st, const struct agent_wg_peer *peers,
                       const struct peer_wanted *wanted, size_t n)
{
    if (st->n_peers != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        const struct device_peer *have = NULL;
        for (size_t j = 0; j < st->n_peers && have == NULL; j++)
            if (memcmp(st->peers[j].key, wanted[i].key, KEY_LEN) == 0)
                have = &st->peers[j];
        if (have == NULL || strcmp(have->endpoint, wanted[i].endpoint) != 0 ||
            have->n_allowed != 1 || have->allowed != peers[i].allowed ||
            have->allowed_len != peers[i].allowed_len || have->keepalive != KEEPALIVE_S)
            return false;
    }
    return true;
}

int agent_wg_peers_set(struct agent_wg *wg, const struct agent_wg_peer *peers, size_t n,
                       struct gy_error *err)
{
    struct peer_wanted *wanted = gy_xcalloc(n > 0 ? n : 1, sizeof(*wanted));
    int rc = peers_check(wg, peers, n, wanted, err);
    if (rc < 0) {
        free(wanted);
        return rc;
    }
    /* replace_peers drops every session, and each peer then waits for a new handshake:
     * only when something changed. */
    struct device_state st;
    if (device_get(wg->interface, &st, NULL, NULL) == 0) {
        bool same = peers_same(&st, peers, wanted, n);
        device_state_free(&st);
        if (same) {
            free(wanted);
            return 0;
        }
    }
    size_t cap = 64 + n * 320, len = 0;
    char *request = gy_xmalloc(cap);
    len += (size_t)snprintf(request, cap, "set=1\nreplace_peers=true\n");
    for (size_t i = 0; i < n; i++) {
        char hex[2 * KEY_LEN + 1], net[INET_ADDRSTRLEN];
        struct in_addr in = {.s_addr = htonl(peers[i].allowed)};
        key_to_hex(wanted[i].key, hex);
        inet_ntop(AF_INET, &in, net, sizeof(net));
        len += (size_t)snprintf(request + len, cap - len,
                                "public_key=%s\nendpoint=%s\nreplace_allowed_ips=true\n"
                                "allowed_ip=%s/%d\npersistent_keepalive_interval=%d\n",
                                hex, wanted[i].endpoint, net, peers[i].allowed_len, KEEPALIVE_S);
    }
    snprintf(request + len, cap - len, "\n");
    char *reply;
    rc = uapi_call(wg->interface, request, &reply, NULL, err);
    free(request);
    free(wanted);
    if (rc < 0)
        return gy_error_wrap(err, "set %zu WireGuard peers", n);
    reply_free(reply);
    gy_log_info("set WireGuard peers", "interface=%s peers=%zu", wg->interface, n);
    return 0;
}

int agent_wg_transfer(struct agent_wg *wg, uint64_t *rx, uint64_t *tx, struct gy_error *err)
{
    struct device_state st;
    int rc = device_get(wg->interface, &st, NULL, err);
    if (rc < 0)
        return rc;
    *rx = st.rx;
    *tx = st.tx;
    device_state_free(&st);
    return 0;
}
