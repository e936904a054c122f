/* One request and its response (a transaction), in the style of Varnish's request FSM.
 *
 * RECV (head parsed, validated) -> DIAL (resolve, connect or take a pooled connection) -> SEND (head
 * then body, streamed with back-pressure) -> RESPONSE (head and body streamed to the client) -> DONE.
 * Locally answered requests (errors, metrics, Max-Forwards: 0) go straight to DONE. CONNECT hands
 * the connection to a tunnel.
 *
 * Ownership: created by the client connection when a request head begins; owns its arena (the
 * request and response heads live there) and its upstream connection while it uses it. Freed in
 * txn_free() by the client connection, or by itself when the client has gone.
 */
#ifndef LARDER_PROXY_TXN_H
#define LARDER_PROXY_TXN_H

#include <stdint.h>

#include "http/arena.h"
#include "http/http_msg.h"
#include "http/http_uri.h"

struct client_conn;
struct origin_conn;
struct buf_block;

struct txn *txn_new(struct client_conn *cc);
void txn_free(struct txn *t);
/* Parser events from the client side. Return values as for struct http_parse_callbacks. */
struct http_msg *txn_request_msg(struct txn *t, struct arena **arena);
int txn_on_request_head(struct txn *t);
int txn_on_request_body(struct txn *t, struct buf_block *blk, const char *at, size_t len);
int txn_on_request_done(struct txn *t, struct http_msg *trailers);
/* The client connection is closing (reset, EOF mid-request, shutdown deadline). The transaction
 * drops its pointer and finishes or aborts on its own. */
void txn_client_gone(struct txn *t);
/* The client's output queue drained below its low-water mark: upstream reads may resume. */
void txn_client_drained(struct txn *t);
/* A request the client connection refused before any transaction could take it (malformed head):
 * logged here so every request has its access-log line. */
void txn_log_rejected(struct client_conn *cc, struct txn *t, int status, uint64_t bytes);
uint64_t txn_id(const struct txn *t);
/* Shutdown: drop every background revalidation of this loop. */
struct proxy_ctx;
void txn_abort_background(struct proxy_ctx *ctx);
/* Loop shutdown: free the recycled transaction structs. */
void txn_pool_drain(struct proxy_ctx *ctx);
/* A flight this loop follows may have progressed: pump every follower of the loop. */
void txn_flights_progressed(struct proxy_ctx *ctx);
/* Does the transaction take request body bytes now? */
int txn_accepts_body(const struct txn *t);

/* Tunnels (tunnel.c): the upstream could not be reached, answer with an error and close. */
void txn_tunnel_failed(struct txn *t, int status, const char *msg);
/* The tunnel ended: write the access-log line (TCP_TUNNEL/status, bytes both ways) and free t. */
void txn_tunnel_closed(struct txn *t, const char *client, int status, uint64_t bytes, const char *peer, int via_parent);

#endif
