/* The server side of the HTTP benchmark: gantry_http on loopback answering GET /healthz with
 * a small JSON body, the way the control plane answers its cheapest endpoint. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler/http/http.h"

static void handle(struct sch_http_request *req, void *data)
{
    (void)data;
    if (strcmp(req->path, "/healthz") != 0) {
        sch_http_respond_error(req, 404, "not_found", NULL, "no route for %s", req->path);
        return;
    }
    static const char body[] = "{\"status\":\"ok\"}";
    sch_http_respond(req, 200, "application/json", NULL, body, sizeof(body) - 1);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    uv_stop(sig->loop);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_server HOST:PORT\n");
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    struct sch_http_server *server;
    struct gy_error err;
    if (sch_http_server_start(loop, argv[1], NULL, handle, NULL, &server, &err) < 0) {
        fprintf(stderr, "bench_server: %s\n", err.msg);
        return 1;
    }
    uv_signal_t sig;
    uv_signal_init(loop, &sig);
    uv_signal_start(&sig, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
