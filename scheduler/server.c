/* The gantry-scheduler process put together: the Raft node, the leader's fleet work, the
 * HTTP API and the signal handlers on one libuv loop, started and stopped in order. */
#include "scheduler/server.h"

#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "scheduler/fleet/fleet.h"

/* How often a follower checks that the state records its addresses. */
#define REGISTER_CHECK_MS 2000

static void server_node_closed(struct sch_node *node)
{
    struct sch_server *server =
        (struct sch_server *)((char *)node - offsetof(struct sch_server, node));
    if (node->exit_code != 0)
        server->exit_code = node->exit_code;
    uv_close((uv_handle_t *)&server->sigterm, NULL);
    uv_close((uv_handle_t *)&server->sigint, NULL);
    uv_close((uv_handle_t *)&server->join_timer, NULL);
    uv_close((uv_handle_t *)&server->register_timer, NULL);
    gy_log_info("stopped", "exit=%d", server->exit_code);
}

static void fleet_closed(void *arg)
{
    struct sch_server *server = arg;
    sch_node_stop(&server->node, server_node_closed);
}

static void http_closed(void *arg)
{
    struct sch_server *server = arg;
    struct sch_fleet *fleet = server->fleet;
    server->fleet = NULL;
    server->api.fleet = NULL;
    sch_fleet_close(fleet, fleet_closed, server);
}

void sch_server_stop(struct sch_server *server)
{
    if (server->stopping)
        return;
    server->stopping = true;
    sch_fleet_stop_leading(server->fleet);
    gy_log_info("stopping", "leader=%s", sch_node_is_leader(&server->node) ? "true" : "false");
    uv_timer_stop(&server->join_timer);
    uv_timer_stop(&server->register_timer);
    server->api.stopping = true;
    sch_api_release_parked(&server->api);
    /* Leadership moves first (inside sch_node_stop) while the API refuses new work with 503,
     * then Raft closes. */
    if (server->http != NULL) {
        struct sch_http_server *http = server->http;
        server->http = NULL;
        sch_http_server_close(http, http_closed, server);
    } else {
        http_closed(server);
    }
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct sch_server *server = sig->data;
    gy_log_info("signal received", "signal=%d", signum);
    sch_server_stop(server);
}

static void node_applied(void *data)
{
    struct sch_server *server = data;
    sch_api_applied(&server->api);
    sch_fleet_applied(server->fleet);
}

static void register_cb(uv_timer_t *timer)
{
    sch_join_register_check(timer->data);
}

static void node_fatal(void *data)
{
    struct sch_server *server = data;
    server->exit_code = 1;
    sch_server_stop(server);
}

static void node_restart(void *data)
{
    struct sch_server *server = data;
    server->restart = true;
    sch_server_stop(server);
}

int sch_server_start(struct sch_server *server, uv_loop_t *loop,
                     const struct sch_server_config *cfg, struct gy_error *err)
{
    memset(server, 0, sizeof(*server));
    server->loop = loop;
    server->cfg = *cfg;
    uv_timer_init(loop, &server->join_timer);
    server->join_timer.data = server;
    uv_timer_init(loop, &server->register_timer);
    server->register_timer.data = server;
    server->joined = cfg->join_url == NULL;
    uv_signal_init(loop, &server->sigterm);
    uv_signal_init(loop, &server->sigint);
    server->sigterm.data = server->sigint.data = server;

    int rc = sch_node_start(&server->node, loop, &cfg->node, err);
    if (rc < 0) {
        uv_close((uv_handle_t *)&server->sigterm, NULL);
        uv_close((uv_handle_t *)&server->sigint, NULL);
        uv_close((uv_handle_t *)&server->join_timer, NULL);
        uv_close((uv_handle_t *)&server->register_timer, NULL);
        return rc;
    }
    server->node.on_applied = node_applied;
    server->node.on_fatal = node_fatal;
    server->node.on_restart = node_restart;
    server->node.on_applied_data = server;

    struct sch_http_options opts = {
        .max_body = cfg->max_body,
        .max_header = 64 * 1024,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .max_connections = 1024,
        .forward_mark = SCH_API_FORWARD_MARK,
        .forward_fail_code = SCH_API_NO_LEADER,
    };
    server->api.loop = loop;
    server->api.node = &server->node;
    server->api.cfg.forward_timeout_ms = cfg->forward_timeout_ms;
    server->api.cfg.max_wait_s = cfg->max_wait_s;
    server->api.registries = cfg->registries;
    server->api.registry_auth = cfg->registry_auth;
    rc = sch_http_server_start(loop, cfg->node.api_addr, &opts, sch_api_handle, &server->api,
                               &server->http, err);
    if (rc < 0) {
        gy_error_wrap(err, "API address");
        server->stopping = true;
        sch_node_stop(&server->node, server_node_closed);
        return rc;
    }
    struct sch_fleet_config fleet_cfg = {
        .agent_addr = cfg->node.agent_addr,
        .node_down_ms = cfg->node_down_ms,
    };
    rc = sch_fleet_start(loop, &server->node, &fleet_cfg, &server->fleet, err);
    server->api.fleet = server->fleet;
    if (rc < 0) {
        server->stopping = true;
        struct sch_http_server *http = server->http;
        server->http = NULL;
        sch_http_server_close(http, http_closed, server);
        return rc;
    }
    uv_signal_start(&server->sigterm, on_signal, SIGTERM);
    uv_signal_start(&server->sigint, on_signal, SIGINT);
    gy_log_info("serving", "id=%" PRIu64 " api=%s raft=%s agent=%s", cfg->node.id,
                cfg->node.api_addr, cfg->node.raft_addr, cfg->node.agent_addr);
    if (cfg->join_url != NULL)
        sch_join_start(server);
    uv_timer_start(&server->register_timer, register_cb, REGISTER_CHECK_MS, REGISTER_CHECK_MS);
    return 0;
}
