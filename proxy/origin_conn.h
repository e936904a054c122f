/* Upstream connections: dialing (resolve, then each address in turn under a connect timeout), the
 * request/response exchange on one socket, and the keep-alive pool keyed by "host:port".
 *
 * FSM: DIALING -> OPEN (owned by one transaction or tunnel) -> IDLE (in the pool) -> OPEN ... -> CLOSING.
 *
 * A connection is owned by whoever holds it: the handler set at origin_dial()/origin_pool_take() is
 * told exactly once of either success (on_connected) or failure (on_fail), and afterwards of
 * response events until it calls origin_release() or origin_close(). After either of those calls the
 * handler is never called again, so a transaction may free itself right after.
 *
 * Memory: the struct and its socket are freed in the close callbacks of its two libuv handles.
 */
#ifndef LARDER_PROXY_ORIGIN_CONN_H
#define LARDER_PROXY_ORIGIN_CONN_H

#include <stdint.h>
#include <uv.h>

#include "http/http_parse.h"
#include "proxy/ctx.h"
#include "proxy/outq.h"

/* Why an upstream exchange failed; each maps to a status and a log text in txn.c. */
enum origin_error {
    ORIGIN_ERR_DNS = 1,      /* resolution failed; detail = resolver status */
    ORIGIN_ERR_CONNECT,      /* every address refused or unreachable; detail = last uv error */
    ORIGIN_ERR_CONNECT_TIMEOUT,
    ORIGIN_ERR_FIRST_BYTE_TIMEOUT,
    ORIGIN_ERR_IDLE_TIMEOUT, /* the body stalled */
    ORIGIN_ERR_RESET,        /* closed or reset before the response was complete; detail = uv error or UV_EOF */
    ORIGIN_ERR_PROTOCOL,     /* malformed response; reason from the parser */
    ORIGIN_ERR_WRITE,        /* sending the request failed */
};

struct origin_handler {
    void (*on_connected)(void *data);
    void (*on_fail)(void *data, enum origin_error err, int detail, const char *reason);
    /* Response mode (origin_expect_response): parser events. */
    struct http_parse_callbacks parse;
    /* Raw mode (tunnels): bytes as they arrive, then EOF. */
    void (*on_raw)(void *data, struct buf_block *blk, const char *p, size_t n);
    void (*on_raw_eof)(void *data);
    /* The request queue drained below its low-water mark (request bodies). Optional. */
    void (*on_drain)(void *data);
    /* Everything one read delivered has been parsed (response mode), told to whoever holds the
     * connection then. Lets the owner send what the parse produced as one write. Optional. */
    void (*on_parsed)(void *data);
};

enum origin_state { ORIGIN_DIALING, ORIGIN_OPEN, ORIGIN_IDLE, ORIGIN_CLOSING };

struct origin_sock;

struct origin_conn {
    uint32_t magic;
    struct proxy_ctx *ctx;
    enum origin_state state;
    const struct origin_handler *h;
    void *h_data;

    struct origin_sock *sock; /* the connected (or connecting) socket */
    uv_timer_t timer;
    struct outq out;
    struct http_parser *parser; /* created on the first response */
    struct buf_block *cur_blk;  /* the read block being parsed: body spans point into it */

    char key[300];  /* pool key: "host:port" as in the URI */
    char peer[64];  /* the address connected to, for logs ("127.0.0.1") */
    struct resolver_query *dnsq;
    struct resolver_addrs *addrs;
    size_t next_addr;
    int last_connect_error;

    struct list_node pool_link;  /* in ctx->origins_idle while idle */
    struct list_node key_link;   /* in pool->idle while idle */
    struct origin_pool *pool;    /* while idle */
    uint64_t requests; /* exchanges completed on this connection */
    int reused;        /* the current exchange runs on a connection taken from the pool */
    int response_bytes_seen;
    int raw;           /* tunnel mode */
    int reading;
    int read_paused;
    int done_pause;     /* the response completed; parser paused until the next exchange */
    int in_parse;       /* http_parser_execute() is on the stack */
    int interim;        /* the response being parsed is a 1xx */
    int resume_pending; /* the next exchange began inside a parser callback: resume after it returns */
    int extra_bytes;    /* bytes arrived after a complete response: never reusable */
    int eof_seen;
    int timer_mode;
    int deferred_err; /* DNS refusal delivered from the timer, never synchronously */
    unsigned handles_open;
};

/* Dials host:port: DNS through the loop's resolver, then each address with connect_timeout. The
 * handler hears on_connected or on_fail exactly once. NULL only when memory is exhausted. */
struct origin_conn *origin_dial(struct proxy_ctx *ctx, const char *host, uint16_t port, const char *key,
                                const struct origin_handler *h, void *data);
/* An idle pooled connection for key, now owned by the caller with handler h, or NULL. */
struct origin_conn *origin_pool_take(struct proxy_ctx *ctx, const char *key, const struct origin_handler *h,
                                     void *data);

/* Start reading a response with the handler's parse callbacks; expect_no_body for HEAD. Arms the
 * first-byte timeout. */
void origin_expect_response(struct origin_conn *oc, int expect_no_body);
/* Tunnel mode: deliver raw bytes. Disarms the timer (the tunnel keeps its own). */
void origin_start_raw(struct origin_conn *oc);

void origin_pause_read(struct origin_conn *oc);
void origin_resume_read(struct origin_conn *oc);

/* The exchange is over. If reusable (response complete, request fully sent, both sides keep-alive),
 * the connection goes to the pool; else it closes. The handler is forgotten. */
void origin_release(struct origin_conn *oc, int reusable);
/* Close now; the handler is forgotten. */
void origin_close(struct origin_conn *oc);
/* Half-close (tunnels): shutdown(SHUT_WR) once the queue is written. */
void origin_shutdown_write(struct origin_conn *oc);

/* Closes every idle pooled connection (shutdown). */
void origin_pool_close_all(struct proxy_ctx *ctx);

#endif
