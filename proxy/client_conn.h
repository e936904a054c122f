/* A downstream (client) connection.
 *
 * FSM: IDLE (waiting for a request) -> HEAD (a request head is arriving) -> TXN (a transaction owns
 * the request and its response) -> IDLE again on keep-alive, or CLOSING; CONNECT turns it into a
 * TUNNEL. Requests are handled one at a time in arrival order (RFC 9112 s9.3.2: pipelined responses
 * go out in request order): once a request is complete the parser pauses and the socket is not read
 * until its response has been queued, so bytes of the next pipelined request wait in `held`.
 *
 * Ownership: the connection owns its uv_tcp_t, timer, parser, held read block and output queue; it
 * is freed only in the last close callback (DESIGN.md habit 1). A transaction holds a plain pointer
 * to it and is told through txn_client_gone() before the connection goes away.
 */
#ifndef LARDER_PROXY_CLIENT_CONN_H
#define LARDER_PROXY_CLIENT_CONN_H

#include <stdint.h>
#include <uv.h>

#include "http/http_parse.h"
#include "proxy/ctx.h"
#include "proxy/outq.h"

struct txn;
struct tunnel;

enum client_state { CLIENT_IDLE, CLIENT_HEAD, CLIENT_TXN, CLIENT_TUNNEL, CLIENT_CLOSING };

struct client_conn {
    uint32_t magic;
    struct proxy_ctx *ctx;
    enum client_state state;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t sreq;
    struct outq out;
    struct http_parser *parser;

    /* Received bytes not parsed yet (the parser is paused), inside `held_blk`. */
    struct buf_block *held_blk;
    const char *held_ptr;
    size_t held_len;
    struct buf_block *cur_blk; /* the block being parsed: request body spans point into it */

    struct txn *txn;
    struct tunnel *tunnel;
    struct list_node link;
    char peer[64];
    struct sockaddr_storage peer_addr;

    int reading;
    int parse_paused;     /* the parser returned PAUSED; resumed when can_parse() says so */
    int in_process;       /* process_input() is on the stack */
    int raw_paused;       /* tunnel back-pressure */
    int lingering;        /* response written, half-closed, discarding input until EOF or timeout */
    int counted;          /* holds a slot in shared n_clients and the per-client table */
    int close_after_write;
    int shut_after_write; /* tunnels: half-close once the queue is written */
    int eof;            /* the client closed its side */
    int timer_mode;
    uint64_t deadline;  /* loop time (ms) at which timer_mode's timeout expires */
    uint64_t timer_due; /* loop time at which the libuv timer fires, while it is active */
    unsigned handles_open;
    uint64_t requests;
};

/* Takes an accepted socket from the listener (already uv_accept()ed into cc->tcp). */
void client_conn_start(struct client_conn *cc);
/* Allocates a client connection whose tcp handle the listener initialises and accepts into. */
struct client_conn *client_conn_new(struct proxy_ctx *ctx);
/* The listener could not accept into it: close and free. */
void client_conn_abandon(struct client_conn *cc);

/* Something changed that may let the parser go on (the transaction now takes body bytes, or its
 * upstream queue drained): re-evaluate and continue parsing if allowed. */
void client_conn_resume(struct client_conn *cc);
/* The current transaction is finished; keep_alive says whether the connection may carry another. */
void client_conn_txn_done(struct client_conn *cc, int keep_alive);
/* Flush and close (the response, if any, is queued). */
void client_conn_close_after_write(struct client_conn *cc);
/* Close now, dropping whatever is queued. */
void client_conn_close(struct client_conn *cc);
/* Shutdown: close if idle, else let the current transaction finish without keep-alive. */
void client_conn_shutdown(struct client_conn *cc);

/* Raw-mode helpers for tunnels. */
void client_conn__start_raw(struct client_conn *cc);
void client_conn__pause_read(struct client_conn *cc);
void client_conn__resume_read(struct client_conn *cc);
void client_conn__shutdown_write(struct client_conn *cc);

#endif
