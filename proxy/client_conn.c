#include "proxy/client_conn.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/reply.h"
#include "proxy/send_buffer.h"
#include "proxy/tunnel.h"
#include "proxy/txn.h"

#define CLIENT_MAGIC 0x434c4e54u /* "CLNT" */
#define CLIENT_OUT_HIGH_WATER (256 * 1024)
/* After a response on a connection we close, keep reading (and discarding) for this long so that
 * unread request bytes do not turn our close into a reset that destroys the response at the client
 * (RFC 9112 s9.6, the "lingering close"). */
#define CLIENT_LINGER_MS 2000

enum timer_mode { CT_NONE, CT_IDLE, CT_HEAD, CT_BODY, CT_TUNNEL, CT_LINGER };

static void process_input(struct client_conn *cc);
static int can_parse(const struct client_conn *cc);
static void update_reading(struct client_conn *cc);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
static void on_timer(uv_timer_t *t);

static void check(const struct client_conn *cc)
{
    if (cc == NULL || cc->magic != CLIENT_MAGIC)
        abort();
}

static void on_handle_closed(uv_handle_t *h)
{
    struct client_conn *cc = h->data;
    if (--cc->handles_open > 0)
        return;
    http_parser_free(cc->parser);
    cc->magic = 0;
    free(cc);
}

/* The deadline moves with every request; moving libuv's timer each time (a heap removal and insertion)
 * was 5% of a small hit's instructions. So the libuv timer is only ever moved earlier: one that fires
 * before the deadline re-arms for the rest (on_timer), at most once per timeout period, and one that
 * fires with nothing armed does nothing. */
static void arm(struct client_conn *cc, enum timer_mode mode, uint64_t ms)
{
    cc->timer_mode = mode;
    cc->deadline = uv_now(cc->ctx->loop) + ms;
    if (uv_is_active((uv_handle_t *)&cc->timer) && cc->timer_due <= cc->deadline)
        return;
    cc->timer_due = cc->deadline;
    uv_timer_start(&cc->timer, on_timer, ms, 0);
}

static void disarm(struct client_conn *cc)
{
    cc->timer_mode = CT_NONE; /* the libuv timer may still fire: on_timer then finds nothing to do */
}

struct client_conn *client_conn_new(struct proxy_ctx *ctx)
{
    struct client_conn *cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        return NULL;
    cc->magic = CLIENT_MAGIC;
    cc->ctx = ctx;
    cc->state = CLIENT_IDLE;
    list_init(&cc->link);
    uv_tcp_init(ctx->loop, &cc->tcp);
    cc->tcp.data = cc;
    cc->handles_open = 1;
    return cc;
}

void client_conn_abandon(struct client_conn *cc)
{
    check(cc);
    cc->state = CLIENT_CLOSING;
    uv_close((uv_handle_t *)&cc->tcp, on_handle_closed);
}

/* --- parser callbacks: the request side of the current transaction ------------------------------- */

static struct http_msg *cb_begin(void *data, struct arena **arena)
{
    struct client_conn *cc = data;
    struct txn *t = txn_new(cc);
    if (t == NULL)
        return NULL;
    cc->txn = t;
    cc->state = CLIENT_HEAD;
    cc->requests++;
    /* Slowloris: the whole head must arrive within request_header_timeout of its first byte. */
    arm(cc, CT_HEAD, cc->ctx->cfg->request_header_timeout_ms);
    return txn_request_msg(t, arena);
}

static int cb_head(void *data, struct http_msg *msg)
{
    struct client_conn *cc = data;
    struct txn *t = cc->txn;
    cc->state = CLIENT_TXN;
    if (msg->framing != HTTP_BODY_NONE)
        arm(cc, CT_BODY, cc->ctx->cfg->client_idle_timeout_ms);
    else
        disarm(cc);
    /* Read before the call: the transaction (which owns msg) may finish and be freed inside it. */
    int bodyless = msg->framing == HTTP_BODY_NONE && msg->method != HTTP_METHOD_CONNECT;
    int rc = txn_on_request_head(t);
    /* A request without a body is complete right here: let the parser reach its end at once (it
     * pauses there, in cb_done). One with a body waits until the transaction can take it; CONNECT
     * waits forever, since what follows it belongs to the tunnel. */
    if (rc == HTTP_PARSE_CB_PAUSE && bodyless && cc->txn == t)
        return 0;
    return rc;
}

static int cb_body(void *data, const char *at, size_t len)
{
    struct client_conn *cc = data;
    if (cc->timer_mode == CT_BODY)
        arm(cc, CT_BODY, cc->ctx->cfg->client_idle_timeout_ms);
    return txn_on_request_body(cc->txn, cc->cur_blk, at, len);
}

static int cb_done(void *data, struct http_msg *trailers)
{
    struct client_conn *cc = data;
    if (cc->timer_mode == CT_BODY)
        disarm(cc);
    if (cc->txn == NULL)
        return HTTP_PARSE_CB_PAUSE;
    return txn_on_request_done(cc->txn, trailers);
}

static const struct http_parse_callbacks parse_cb = {cb_begin, cb_head, cb_body, cb_done};

/* --- output queue events ---------------------------------------------------------------------------- */

static void on_shutdown_linger(uv_shutdown_t *req, int status)
{
    struct client_conn *cc = req->data;
    (void)status;
    if (cc->state == CLIENT_CLOSING && !cc->lingering)
        return;
    /* Half-closed: read and discard until the client closes too, or the linger time ends. */
    update_reading(cc);
}

static void start_linger(struct client_conn *cc)
{
    if (cc->lingering)
        return;
    if (cc->eof) {
        /* The client has closed its side already: nothing unread can turn our close into a reset,
         * and no EOF is left to wait for. */
        client_conn_close(cc);
        return;
    }
    cc->lingering = 1;
    arm(cc, CT_LINGER, CLIENT_LINGER_MS);
    cc->sreq.data = cc;
    if (uv_shutdown(&cc->sreq, (uv_stream_t *)&cc->tcp, on_shutdown_linger) != 0)
        client_conn_close(cc);
}

static void on_out_error(void *data, int status)
{
    struct client_conn *cc = data;
    (void)status;
    client_conn_close(cc);
}

static void on_out_drain(void *data)
{
    struct client_conn *cc = data;
    if (cc->state == CLIENT_CLOSING)
        return;
    if (cc->tunnel != NULL && tunnel_established(cc->tunnel))
        tunnel_client_drained(cc->tunnel);
    else if (cc->txn != NULL)
        txn_client_drained(cc->txn);
}

static void on_shutdown_tunnel(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void on_out_empty(void *data)
{
    struct client_conn *cc = data;
    if (cc->close_after_write && !cc->lingering)
        start_linger(cc);
    else if (cc->shut_after_write) {
        cc->shut_after_write = 0;
        cc->sreq.data = cc;
        uv_shutdown(&cc->sreq, (uv_stream_t *)&cc->tcp, on_shutdown_tunnel);
    }
}

/* --- lifecycle -------------------------------------------------------------------------------------- */

/* The round-trip time the kernel measured in the handshake, in microseconds; 0 when unknown. */
static uint32_t handshake_rtt_us(struct client_conn *cc)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&cc->tcp, &fd) != 0)
        return 0;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 || len < offsetof(struct tcp_info, tcpi_rtt) + sizeof(ti.tcpi_rtt))
        return 0;
    return ti.tcpi_rtt;
}

/* client_send_buffer: a fixed SO_SNDBUF instead of autotuning where it is cheaper and caps nothing
 * (proxy/send_buffer.h). Only "auto" needs the RTT, so only it pays for the TCP_INFO call. */
static void set_send_buffer(struct client_conn *cc)
{
    uint64_t configured = cc->ctx->cfg->client_send_buffer;
    uint32_t rtt = configured == SEND_BUFFER_AUTO ? handshake_rtt_us(cc) : 0;
    uint64_t size = send_buffer_for_client(configured, rtt);
    if (size > 0) {
        int v = (int)size; /* at most 64 MiB (config range) */
        uv_send_buffer_size((uv_handle_t *)&cc->tcp, &v);
    }
}

void client_conn_start(struct client_conn *cc)
{
    check(cc);
    struct proxy_ctx *ctx = cc->ctx;
    int len = sizeof(cc->peer_addr);
    uv_tcp_getpeername(&cc->tcp, (struct sockaddr *)&cc->peer_addr, &len);
    if (cc->peer_addr.ss_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)&cc->peer_addr, cc->peer, sizeof(cc->peer));
    else
        uv_ip4_name((struct sockaddr_in *)&cc->peer_addr, cc->peer, sizeof(cc->peer));
    struct proxy_shared *sh = ctx->shared;
    if (!client_limit_acquire(&sh->per_client, (struct sockaddr *)&cc->peer_addr, ctx->cfg->max_connections_per_client)) {
        /* One address may not hold every connection slot (slowloris from one host). */
        METRIC_INC(&ctx->metrics, client_connections_refused);
        LOG_WARN(ctx->log, 0, "connection from %s refused: max_connections_per_client (%llu) reached", cc->peer,
                 (unsigned long long)ctx->cfg->max_connections_per_client);
        client_conn_abandon(cc);
        return;
    }
    __atomic_add_fetch(&sh->n_clients, 1, __ATOMIC_RELAXED);
    cc->counted = 1;
    uv_timer_init(ctx->loop, &cc->timer);
    cc->timer.data = cc;
    cc->handles_open++;
    list_insert_tail(&ctx->clients, &cc->link);
    ctx->n_clients++;
    METRIC_INC(&ctx->metrics, client_connections_accepted);
    METRIC_INC(&ctx->metrics, client_connections_active);

    struct http_parse_limits lim = {
        .max_head_bytes = ctx->cfg->request_header_max_bytes,
        .max_fields = ctx->cfg->request_header_max_count,
        .max_target = ctx->cfg->max_uri_length,
    };
    cc->parser = http_parser_new(HTTP_PARSE_REQUEST, &lim, &parse_cb, cc);
    outq_init(&cc->out, (uv_stream_t *)&cc->tcp, &ctx->bufs, CLIENT_OUT_HIGH_WATER, cc);
    cc->out.scratch_pool = &ctx->scratch_bufs;
    cc->out.on_error = on_out_error;
    cc->out.on_drain = on_out_drain;
    cc->out.on_empty = on_out_empty;
    if (cc->parser == NULL) {
        client_conn_close(cc);
        return;
    }
    uv_tcp_nodelay(&cc->tcp, 1);
    set_send_buffer(cc);
    arm(cc, CT_IDLE, ctx->cfg->client_idle_timeout_ms);
    update_reading(cc);
}

static void drop_held(struct client_conn *cc)
{
    if (cc->held_blk != NULL)
        buf_unref(cc->held_blk);
    cc->held_blk = NULL;
    cc->held_ptr = NULL;
    cc->held_len = 0;
}

void client_conn_close(struct client_conn *cc)
{
    check(cc);
    if (uv_is_closing((uv_handle_t *)&cc->tcp))
        return; /* closed once already: the handles' callbacks will free it */
    struct proxy_ctx *ctx = cc->ctx;
    cc->state = CLIENT_CLOSING;
    if (cc->tunnel != NULL)
        tunnel_client_gone(cc->tunnel); /* frees the transaction if the tunnel owns it */
    if (cc->txn != NULL) {
        struct txn *t = cc->txn;
        cc->txn = NULL;
        txn_client_gone(t);
    }
    drop_held(cc);
    outq_discard(&cc->out);
    if (cc->counted) {
        cc->counted = 0;
        client_limit_release(&ctx->shared->per_client, (struct sockaddr *)&cc->peer_addr);
        __atomic_sub_fetch(&ctx->shared->n_clients, 1, __ATOMIC_RELAXED);
    }
    list_remove(&cc->link);
    ctx->n_clients--;
    METRIC_DEC(&ctx->metrics, client_connections_active);
    uv_close((uv_handle_t *)&cc->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&cc->timer, on_handle_closed);
}

void client_conn_close_after_write(struct client_conn *cc)
{
    check(cc);
    if (cc->state == CLIENT_CLOSING)
        return;
    cc->close_after_write = 1;
    cc->parse_paused = 1; /* nothing more is interpreted as a request */
    drop_held(cc);
    update_reading(cc);
    if (outq_idle(&cc->out))
        start_linger(cc);
    else
        outq_want_empty(&cc->out);
}

void client_conn_txn_done(struct client_conn *cc, int keep_alive)
{
    check(cc);
    struct txn *t = cc->txn;
    cc->txn = NULL;
    txn_free(t);
    if (cc->state == CLIENT_CLOSING)
        return;
    if (!keep_alive || cc->ctx->shutting_down || cc->eof) {
        client_conn_close_after_write(cc);
        return;
    }
    cc->state = CLIENT_IDLE;
    arm(cc, CT_IDLE, cc->ctx->cfg->client_idle_timeout_ms);
    client_conn_resume(cc);
}

void client_conn_resume(struct client_conn *cc)
{
    check(cc);
    if (cc->state == CLIENT_CLOSING || cc->close_after_write)
        return;
    /* Inside process_input the loop re-evaluates can_parse() after every parser return. */
    if (!cc->in_process)
        process_input(cc);
}

/* May the parser go on? Between transactions always; during one only while the transaction takes
 * request body bytes (connected upstream, body not complete, upstream queue below high water). */
static int can_parse(const struct client_conn *cc)
{
    if (cc->state == CLIENT_CLOSING || cc->state == CLIENT_TUNNEL || cc->close_after_write)
        return 0;
    /* Between transactions, and while a head is still arriving (the transaction exists from its
     * first byte), the parser always goes on. */
    if (cc->txn == NULL || cc->state == CLIENT_HEAD)
        return 1;
    return txn_accepts_body(cc->txn);
}

void client_conn_shutdown(struct client_conn *cc)
{
    check(cc);
    if (cc->state == CLIENT_IDLE && cc->held_len == 0)
        client_conn_close(cc);
    /* Otherwise the transaction finishes and client_conn_txn_done() sees shutting_down. */
}

/* A request the parser refused: answer it (when no transaction has started talking upstream) and
 * close; nothing after it on this connection is read (RFC 9112 s2.2, s11). */
static void reject(struct client_conn *cc)
{
    struct proxy_ctx *ctx = cc->ctx;
    int status = http_parser_error_status(cc->parser);
    const char *reason = http_parser_error_reason(cc->parser);
    METRIC_INC(&ctx->metrics, client_requests_rejected);
    METRIC_INC(&ctx->metrics, errors_bad_request);
    struct txn *t = cc->txn;
    LOG_INFO(ctx->log, t ? txn_id(t) : 0, "bad request from %s: %d %s", cc->peer, status, reason);
    if (cc->state == CLIENT_TXN) {
        /* The head was accepted and perhaps forwarded; the body is broken. Abort the exchange. */
        client_conn_close(cc);
        return;
    }
    struct reply_opts o = {.keep_alive = 0, .via_name = ctx->cfg->visible_hostname};
    long n = reply_error(&cc->out, status, reason, &o);
    txn_log_rejected(cc, t, status, n > 0 ? (uint64_t)n : 0);
    cc->txn = NULL;
    txn_free(t);
    client_conn_close_after_write(cc);
}

static void process_input(struct client_conn *cc)
{
    if (cc->in_process)
        return;
    cc->in_process = 1;
    int zero_tried = 0;
    while (can_parse(cc)) {
        int resumed = 0;
        if (cc->parse_paused) {
            cc->parse_paused = 0;
            http_parser_resume(cc->parser);
            resumed = 1;
        }
        /* After a resume with nothing held, one empty execute lets the parser finish a message whose
         * last bytes it had already seen (a body that ended just as we paused). */
        if (cc->held_len == 0 && (!resumed || zero_tried))
            break;
        if (cc->held_len == 0)
            zero_tried = 1;
        size_t consumed = 0;
        cc->cur_blk = cc->held_blk;
        enum http_parse_status st =
            http_parser_execute(cc->parser, cc->held_len ? cc->held_ptr : "", cc->held_len, &consumed);
        cc->cur_blk = NULL;
        if (cc->state == CLIENT_CLOSING)
            break;
        if (consumed > 0) {
            cc->held_ptr += consumed;
            cc->held_len -= consumed;
        }
        if (st == HTTP_PARSE_ERROR) {
            reject(cc);
            break;
        }
        if (st == HTTP_PARSE_PAUSED || st == HTTP_PARSE_UPGRADE)
            cc->parse_paused = 1;
    }
    cc->in_process = 0;
    if (cc->held_len == 0 && cc->held_blk != NULL && cc->state != CLIENT_TUNNEL)
        drop_held(cc);
    update_reading(cc);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct client_conn *cc = h->data;
    struct buf_block *b = buf_pool_get(&cc->ctx->bufs);
    *buf = b ? uv_buf_init(b->data, b->size) : uv_buf_init(NULL, 0);
}

static void update_reading(struct client_conn *cc)
{
    if (cc->state == CLIENT_CLOSING || uv_is_closing((uv_handle_t *)&cc->tcp))
        return;
    int want;
    if (cc->lingering)
        want = !cc->eof;
    else if (cc->state == CLIENT_TUNNEL)
        want = !cc->raw_paused && !cc->eof;
    else
        /* During a transaction the socket stays readable even while the parser waits: the next
         * request's bytes (or the client's EOF or reset) are taken into `held`, at most one read,
         * which then stops reading until they are parsed. Stopping and restarting reads around every
         * request cost two or three epoll_ctl calls per request. */
        want = (can_parse(cc) || (cc->state == CLIENT_TXN && !cc->close_after_write)) && cc->held_len == 0 && !cc->eof;
    if (want && !cc->reading) {
        if (uv_read_start((uv_stream_t *)&cc->tcp, on_alloc, on_read) == 0)
            cc->reading = 1;
    } else if (!want && cc->reading) {
        uv_read_stop((uv_stream_t *)&cc->tcp);
        cc->reading = 0;
    }
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct client_conn *cc = stream->data;
    check(cc);
    struct buf_block *blk = buf->base ? container_of(buf->base, struct buf_block, data) : NULL;
    if (nread <= 0 || cc->lingering || cc->state == CLIENT_CLOSING) {
        if (blk)
            buf_unref(blk);
        if (nread == 0)
            return;
        if (nread > 0)
            return; /* lingering: discard */
        cc->eof = 1;
        if (cc->reading) {
            uv_read_stop(stream);
            cc->reading = 0;
        }
        if (cc->lingering || cc->state == CLIENT_CLOSING) {
            client_conn_close(cc);
            return;
        }
        if (cc->state == CLIENT_TUNNEL && nread == UV_EOF) {
            tunnel_client_eof(cc->tunnel);
            return;
        }
        /* A client that half-closes after a complete request still gets its response (RFC 9112
         * s9.6); otherwise the request is abandoned. */
        if (cc->state == CLIENT_TXN && cc->parse_paused && nread == UV_EOF && cc->tunnel == NULL)
            return;
        client_conn_close(cc);
        return;
    }
    if (cc->state == CLIENT_TUNNEL) {
        if (cc->tunnel != NULL)
            tunnel_client_data(cc->tunnel, blk, buf->base, (size_t)nread);
        buf_unref(blk);
        arm(cc, CT_TUNNEL, cc->ctx->cfg->tunnel_idle_timeout_ms);
        return;
    }
    if (cc->state == CLIENT_IDLE)
        disarm(cc);
    /* We read only when everything earlier was parsed, so nothing is held. */
    drop_held(cc);
    cc->held_blk = blk;
    cc->held_ptr = buf->base;
    cc->held_len = (size_t)nread;
    process_input(cc);
}

static void on_timer(uv_timer_t *timer)
{
    struct client_conn *cc = timer->data;
    check(cc);
    if (cc->timer_mode == CT_NONE)
        return;
    uint64_t now = uv_now(timer->loop);
    if (now < cc->deadline) {
        cc->timer_due = cc->deadline; /* moved later since it was armed */
        uv_timer_start(&cc->timer, on_timer, cc->deadline - now, 0);
        return;
    }
    enum timer_mode mode = (enum timer_mode)cc->timer_mode;
    cc->timer_mode = CT_NONE;
    switch (mode) {
    case CT_IDLE:
    case CT_LINGER:
        client_conn_close(cc);
        break;
    case CT_HEAD: {
        /* RFC 9110 s15.5.9: 408 tells the client why its connection is going away. */
        struct proxy_ctx *ctx = cc->ctx;
        METRIC_INC(&ctx->metrics, errors_timeout);
        LOG_INFO(ctx->log, cc->txn ? txn_id(cc->txn) : 0, "request header timeout from %s", cc->peer);
        struct reply_opts o = {.keep_alive = 0, .via_name = ctx->cfg->visible_hostname};
        long n = reply_error(&cc->out, 408, "request header timeout", &o);
        struct txn *t = cc->txn;
        txn_log_rejected(cc, t, 408, n > 0 ? (uint64_t)n : 0);
        cc->txn = NULL;
        txn_free(t);
        client_conn_close_after_write(cc);
        break;
    }
    case CT_BODY:
        METRIC_INC(&cc->ctx->metrics, errors_timeout);
        LOG_INFO(cc->ctx->log, cc->txn ? txn_id(cc->txn) : 0, "client %s stalled while sending the request body",
                 cc->peer);
        client_conn_close(cc);
        break;
    case CT_TUNNEL:
        if (cc->tunnel != NULL)
            tunnel_client_idle_timeout(cc->tunnel);
        else
            client_conn_close(cc);
        break;
    case CT_NONE:
        break;
    }
}

/* --- raw mode, for tunnels -------------------------------------------------------------------------- */

void client_conn__start_raw(struct client_conn *cc)
{
    check(cc);
    cc->txn = NULL; /* the tunnel owns the transaction from now on */
    cc->state = CLIENT_TUNNEL;
    arm(cc, CT_TUNNEL, cc->ctx->cfg->tunnel_idle_timeout_ms);
    if (cc->held_len > 0 && cc->tunnel != NULL)
        tunnel_client_data(cc->tunnel, cc->held_blk, cc->held_ptr, cc->held_len);
    drop_held(cc);
    update_reading(cc);
}

void client_conn__pause_read(struct client_conn *cc)
{
    cc->raw_paused = 1;
    update_reading(cc);
}

void client_conn__resume_read(struct client_conn *cc)
{
    if (cc->state == CLIENT_CLOSING)
        return;
    cc->raw_paused = 0;
    if (cc->state == CLIENT_TUNNEL)
        arm(cc, CT_TUNNEL, cc->ctx->cfg->tunnel_idle_timeout_ms);
    update_reading(cc);
}

void client_conn__shutdown_write(struct client_conn *cc)
{
    if (cc->state == CLIENT_CLOSING)
        return;
    if (outq_idle(&cc->out)) {
        cc->sreq.data = cc;
        uv_shutdown(&cc->sreq, (uv_stream_t *)&cc->tcp, on_shutdown_tunnel);
    } else {
        cc->shut_after_write = 1;
        outq_want_empty(&cc->out);
    }
}
