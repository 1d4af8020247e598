/* Helper programs; see tool.h. */
#include "agent/tool.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int agent_tool_run(const char *const argv[], struct gy_error *err)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return gy_error_sys(err, errno, "pipe");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return gy_error_sys(err, rc, "run %s", argv[0]);
    }
    /* Keep the start of stderr and drain the rest, so the tool never blocks on a full
     * pipe. */
    char out[1024];
    size_t used = 0;
    for (;;) {
        char chunk[512];
        ssize_t n = read(pipefd[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t take = (size_t)n < sizeof(out) - 1 - used ? (size_t)n : sizeof(out) - 1 - used;
        memcpy(out + used, chunk, take);
        used += take;
    }
    close(pipefd[0]);
    out[used] = '\0';
    while (used > 0 && (out[used - 1] == '\n' || out[used - 1] == ' '))
        out[--used] = '\0';
    for (size_t i = 0; i < used; i++)
        if (out[i] == '\n')
            out[i] = ' ';
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return gy_error_sys(err, errno, "wait for %s", argv[0]);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    char cmd[512] = "";
    for (size_t i = 0; argv[i] != NULL; i++) {
        size_t len = strlen(cmd);
        snprintf(cmd + len, sizeof(cmd) - len, "%s%s", i > 0 ? " " : "", argv[i]);
    }
    if (WIFEXITED(status))
        return gy_error_set(err, GY_EIO, "%s: exit %d%s%s", cmd, WEXITSTATUS(status),
                            used > 0 ? ": " : "", out);
    return gy_error_set(err, GY_EIO, "%s: killed by signal %d", cmd, WTERMSIG(status));
}
