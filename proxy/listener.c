#include "proxy/listener.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy/client_conn.h"

static void on_listener_closed(uv_handle_t *h)
{
    free(h->data);
}

void listener_format(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(s6, ip, sizeof(ip));
        snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        uv_ip4_name(s4, ip, sizeof(ip));
        snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(s4->sin_port));
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct listener *l = server->data;
    struct proxy_ctx *ctx = l->ctx;
    if (status != 0) {
        LOG_WARN(ctx->log, 0, "accept failed: %s", uv_strerror(status));
        return;
    }
    struct client_conn *cc = client_conn_new(ctx);
    if (cc == NULL) {
        LOG_ERROR(ctx->log, 0, "out of memory accepting a connection");
        return;
    }
    int rc = uv_accept(server, (uv_stream_t *)&cc->tcp);
    if (rc != 0) {
        if (rc == UV_EMFILE || rc == UV_ENFILE)
            LOG_ERROR(ctx->log, 0, "out of file descriptors: shedding a connection");
        client_conn_abandon(cc);
        return;
    }
    if (ctx->shutting_down ||
        __atomic_load_n(&ctx->shared->n_clients, __ATOMIC_RELAXED) >= ctx->cfg->max_client_connections) {
        /* Over the limit: close at once. The kernel's backlog is not ours to grow without bound. */
        METRIC_INC(&ctx->metrics, client_connections_refused);
        if (!ctx->shutting_down)
            LOG_WARN(ctx->log, 0, "connection refused: max_client_connections (%llu) reached",
                     (unsigned long long)ctx->cfg->max_client_connections);
        client_conn_abandon(cc);
        return;
    }
    client_conn_start(cc);
}

int listener_open(struct proxy_ctx *ctx, const struct config_addr *addr, int port_override, struct listener **out)
{
    struct sockaddr_storage ss;
    memcpy(&ss, &addr->sa, sizeof(ss));
    if (port_override) {
        if (ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port_override);
        else
            ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port_override);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        close(fd);
        return uv_translate_sys_error(e);
    }
    struct listener *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        close(fd);
        return UV_ENOMEM;
    }
    l->ctx = ctx;
    uv_tcp_init(ctx->loop, &l->tcp);
    l->tcp.data = l;
    int rc = uv_tcp_open(&l->tcp, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->tcp, 1024, on_connection);
    if (rc != 0) {
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        return rc;
    }
    int len = sizeof(l->bound);
    uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&l->bound, &len);
    l->next = ctx->listeners;
    ctx->listeners = l;
    *out = l;
    return 0;
}

void listener_close_all(struct proxy_ctx *ctx)
{
    struct listener *l = ctx->listeners;
    ctx->listeners = NULL;
    while (l != NULL) {
        struct listener *next = l->next;
        uv_close((uv_handle_t *)&l->tcp, on_listener_closed);
        l = next;
    }
}
