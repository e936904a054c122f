/* Listening sockets of one event loop. Every loop binds its own socket to each configured address
 * with SO_REUSEPORT, so the kernel spreads new connections across loops without a shared accept
 * lock. Port 0 is resolved by the first loop; the others bind the port it got.
 *
 * Accept errors: EMFILE/ENFILE (out of descriptors) would make libuv's accept loop spin, so one
 * spare descriptor is kept open; when the table is full it is released, the pending connection is
 * accepted and closed at once, and the spare is taken again (libuv's uv__emfile_trick, done here
 * because max_client_connections is ours to enforce anyway).
 */
#ifndef LARDER_PROXY_LISTENER_H
#define LARDER_PROXY_LISTENER_H

#include <uv.h>

#include "proxy/config.h"
#include "proxy/ctx.h"

struct listener {
    uv_tcp_t tcp;
    struct proxy_ctx *ctx;
    struct listener *next;
    struct sockaddr_storage bound; /* the address actually bound (port filled in) */
    int closing;
};

/* Creates, binds and listens on addr (port taken from `port_override` when nonzero). 0 or a
 * negative uv error; on success *out is linked into ctx->listeners. */
int listener_open(struct proxy_ctx *ctx, const struct config_addr *addr, int port_override, struct listener **out);
/* Closes every listener of the loop (shutdown). */
void listener_close_all(struct proxy_ctx *ctx);
/* "127.0.0.1:3128" or "[::1]:3128". */
void listener_format(const struct sockaddr_storage *ss, char *buf, size_t len);

#endif
