/* CONNECT tunnels (RFC 9110 s9.3.6): after a 200, bytes flow both ways unchanged until both sides
 * have closed, with back-pressure each way (a side is read only while the other side's queue is
 * below its high-water mark), half-close passed on (EOF from one side becomes shutdown(SHUT_WR)
 * on the other) and an idle timeout (tunnel_idle_timeout) when neither side sends anything.
 *
 * Ownership: the tunnel owns the upstream connection and the transaction that asked for it (for
 * the access log); the client connection owns the tunnel and tells it when it goes away.
 */
#ifndef LARDER_PROXY_TUNNEL_H
#define LARDER_PROXY_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

struct client_conn;
struct txn;
struct tunnel;
struct buf_block;

/* Dials host:port; on success answers 200 and starts relaying (bytes the client sent after its
 * CONNECT head are relayed first), on failure hands the error back to the transaction. */
void tunnel_begin(struct client_conn *cc, struct txn *t, const char *host, uint16_t port, const char *authority);

/* Events from the client connection. */
void tunnel_client_data(struct tunnel *tn, struct buf_block *blk, const char *p, size_t n);
void tunnel_client_eof(struct tunnel *tn);
void tunnel_client_drained(struct tunnel *tn);
void tunnel_client_idle_timeout(struct tunnel *tn);
/* The client connection is closing: close upstream, log, free. */
void tunnel_client_gone(struct tunnel *tn);
/* Queued bytes towards the client, for the client's own empty-queue logic. */
int tunnel_established(const struct tunnel *tn);

#endif
