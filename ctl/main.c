/* gantry: the command-line client of the control plane (docs/cli.md). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl/ctl.h"

int main(int argc, char **argv)
{
    /* A reader that goes away (gantry get ... | head) ends the output, not the program
     * with a signal in the middle of a transfer. */
    signal(SIGPIPE, SIG_IGN);
    struct ctl_invocation inv;
    struct gy_error err;
    if (ctl_args_parse(argc, argv, &inv, &err) < 0) {
        fprintf(stderr, "gantry: %s\nRun 'gantry %s%s--help' for usage.\n", err.msg,
                inv.command ? inv.command->name : "", inv.command ? " " : "");
        return CTL_EXIT_USAGE;
    }
    if (inv.help) {
        if (inv.command != NULL)
            ctl_command_help_print(inv.command, stdout);
        else
            ctl_usage_print(stdout);
        return CTL_EXIT_OK;
    }
    if (inv.command == NULL) {
        if (inv.version) {
            printf("gantry %s\n", GANTRY_VERSION);
            return CTL_EXIT_OK;
        }
        ctl_usage_print(stderr);
        return CTL_EXIT_USAGE;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "gantry: cannot start the HTTP client\n");
        return CTL_EXIT_FAILED;
    }
    struct ctl_context ctx = {.out = stdout, .err = stderr};
    int rc;
    if (ctl_client_init(&ctx.client, inv.server, &err) < 0) {
        fprintf(stderr, "gantry: %s\n", err.msg);
        rc = CTL_EXIT_USAGE;
    } else {
        rc = inv.command->run(&ctx, &inv);
        ctl_client_free(&ctx.client);
    }
    curl_global_cleanup();
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
        rc = CTL_EXIT_FAILED;
    return rc;
}
