#include "proxy/tunnel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "proxy/client_conn.h"
#include "proxy/config.h"
#include "proxy/origin_conn.h"
#include "proxy/txn.h"

#define TUNNEL_MAGIC 0x54554e4eu /* "TUNN" */

struct tunnel {
    uint32_t magic;
    struct client_conn *cc;
    struct txn *txn;
    struct origin_conn *oc;
    uint64_t bytes_up, bytes_down;
    char peer[64];
    int established;
    int client_eof, origin_eof;
    /* Through parent_proxy: our CONNECT to it, and its answer (parsed into the arena). */
    int via_parent;
    char connect_req[2304]; /* authority (at most 300, twice) and credentials (1024 bytes: 1374 as base64) */
    struct arena arena;
    struct http_msg parent_resp;
    int parent_status;     /* a non-2xx answer to our CONNECT, for the error text */
    char parent_reason[64];
};

static const struct origin_handler tunnel_origin_cb;

static void check(const struct tunnel *tn)
{
    if (tn == NULL || tn->magic != TUNNEL_MAGIC)
        abort();
}

int tunnel_established(const struct tunnel *tn)
{
    return tn != NULL && tn->established;
}

void tunnel_begin(struct client_conn *cc, struct txn *t, const char *host, uint16_t port, const char *authority)
{
    struct tunnel *tn = calloc(1, sizeof(*tn));
    if (tn == NULL) {
        txn_tunnel_failed(t, 500, "out of memory");
        return;
    }
    tn->magic = TUNNEL_MAGIC;
    tn->cc = cc;
    tn->txn = t;
    snprintf(tn->peer, sizeof(tn->peer), "-");
    const struct proxy_config *cfg = cc->ctx->cfg;
    tn->via_parent = !config_goes_direct(cfg, host);
    if (tn->via_parent) {
        /* RFC 9110 s9.3.6: the same authority-form request, one hop further; Host as s7.2 asks. */
        int n = snprintf(tn->connect_req, sizeof(tn->connect_req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s%s%s\r\n",
                         authority, authority, cfg->parent_auth ? "Proxy-Authorization: " : "",
                         cfg->parent_auth ? cfg->parent_auth : "", cfg->parent_auth ? "\r\n" : "");
        if (n < 0 || (size_t)n >= sizeof(tn->connect_req) || arena_init(&tn->arena, 4096, 256 * 1024) != 0) {
            free(tn);
            txn_tunnel_failed(t, 500, "out of memory");
            return;
        }
        tn->oc = origin_dial(cc->ctx, cfg->parent_host, cfg->parent_port, "parent tunnel", &tunnel_origin_cb, tn);
    } else {
        tn->oc = origin_dial(cc->ctx, host, port, authority, &tunnel_origin_cb, tn);
    }
    if (tn->oc == NULL) {
        if (tn->via_parent)
            arena_free(&tn->arena);
        free(tn);
        txn_tunnel_failed(t, 500, "out of memory");
        return;
    }
    cc->tunnel = tn;
}

static void tunnel_free(struct tunnel *tn)
{
    if (tn->via_parent)
        arena_free(&tn->arena);
    tn->magic = 0;
    free(tn);
}

static void finish(struct tunnel *tn)
{
    /* Both directions are done: closing the client connection ends the tunnel (tunnel_client_gone). */
    client_conn_close_after_write(tn->cc);
}

/* The byte pipe is open end to end: tell the client, and from now on copy both ways. */
static void establish(struct tunnel *tn)
{
    struct client_conn *cc = tn->cc;
    struct proxy_ctx *ctx = cc->ctx;
    tn->established = 1;
    METRIC_INC(&ctx->metrics, tunnels_opened);
    METRIC_INC(&ctx->metrics, tunnels_active);
    static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
    outq_push_static(&cc->out, ok, sizeof(ok) - 1);
    outq_flush(&cc->out);
    tn->bytes_down += sizeof(ok) - 1;
    origin_start_raw(tn->oc);
    /* From here the client connection is a byte pipe; what it already holds goes first. */
    client_conn__start_raw(cc);
}

static void on_connected(void *data)
{
    struct tunnel *tn = data;
    check(tn);
    snprintf(tn->peer, sizeof(tn->peer), "%s", tn->oc->peer);
    if (!tn->via_parent) {
        establish(tn);
        return;
    }
    /* Ask the parent for the tunnel; its answer decides (on_parent_head). */
    outq_push_static(&tn->oc->out, tn->connect_req, strlen(tn->connect_req));
    outq_flush(&tn->oc->out);
    origin_expect_response(tn->oc, 1);
}

static struct http_msg *on_parent_begin(void *data, struct arena **arena)
{
    struct tunnel *tn = data;
    check(tn);
    *arena = &tn->arena;
    return &tn->parent_resp;
}

/* RFC 9110 s9.3.6: any 2xx means the parent's tunnel is open and the bytes after its head are the
 * target's; anything else is a refusal (with a body we do not need). */
static int on_parent_head(void *data, struct http_msg *resp)
{
    struct tunnel *tn = data;
    check(tn);
    if (resp->status < 200)
        return 0; /* an interim response; the final one follows */
    if (resp->status >= 300) {
        tn->parent_status = resp->status;
        snprintf(tn->parent_reason, sizeof(tn->parent_reason), "%.*s", (int)resp->reason_len, resp->reason);
        return -1;
    }
    return HTTP_PARSE_CB_NO_BODY;
}

static int on_parent_body(void *data, const char *at, size_t len)
{
    (void)data, (void)at, (void)len;
    return -1; /* a 2xx to CONNECT has no body, and a refusal stopped at its head */
}

static int on_parent_done(void *data, struct http_msg *trailers)
{
    struct tunnel *tn = data;
    check(tn);
    (void)trailers;
    if (tn->parent_resp.status < 200)
        return 0;
    establish(tn); /* switches the connection to raw: bytes after this head go to the client */
    return 0;
}

static void on_fail(void *data, enum origin_error err, int detail, const char *reason)
{
    struct tunnel *tn = data;
    check(tn);
    (void)detail;
    struct client_conn *cc = tn->cc;
    if (tn->oc != NULL) {
        origin_close(tn->oc);
        tn->oc = NULL;
    }
    if (!tn->established) {
        /* Answer on the transaction's behalf: it still owns the client's request. */
        struct txn *t = tn->txn;
        const struct proxy_config *cfg = cc->ctx->cfg;
        char msg[640];
        int status = (err == ORIGIN_ERR_CONNECT_TIMEOUT || (err == ORIGIN_ERR_DNS && detail == -9002)) ? 504 : 502;
        if (err == ORIGIN_ERR_DNS)
            METRIC_INC(&cc->ctx->metrics, errors_dns);
        else
            METRIC_INC(&cc->ctx->metrics, errors_connect);
        char parent[CONFIG_PARENT_NAME_MAX];
        config_parent_name(cfg, parent, sizeof(parent));
        if (tn->parent_status == 407)
            snprintf(msg, sizeof(msg), "%s refused the tunnel: 407 %s (parent_proxy_auth %s)", parent, tn->parent_reason,
                     cfg->parent_auth != NULL ? "was not accepted" : "is not set");
        else if (tn->parent_status != 0)
            snprintf(msg, sizeof(msg), "%s refused the tunnel: %d %s", parent, tn->parent_status, tn->parent_reason);
        else if (tn->via_parent)
            snprintf(msg, sizeof(msg), "cannot open tunnel through %s: %s", parent, reason);
        else
            snprintf(msg, sizeof(msg), "cannot open tunnel: %s", reason);
        cc->tunnel = NULL;
        tunnel_free(tn);
        txn_tunnel_failed(t, status, msg);
        return;
    }
    /* An established tunnel whose upstream reset: nothing to say in HTTP any more; close. */
    client_conn_close(cc);
}

static void on_raw(void *data, struct buf_block *blk, const char *p, size_t n)
{
    struct tunnel *tn = data;
    check(tn);
    struct client_conn *cc = tn->cc;
    tn->bytes_down += n;
    METRIC_ADD(&cc->ctx->metrics, tunnel_bytes, n);
    outq_push_block(&cc->out, blk, p, n);
    outq_flush(&cc->out);
    if (outq_over_high(&cc->out))
        origin_pause_read(tn->oc);
    client_conn__resume_read(cc); /* re-arms the idle timer too */
}

static void on_raw_eof(void *data)
{
    struct tunnel *tn = data;
    check(tn);
    tn->origin_eof = 1;
    /* Half-close passes through: the client sees EOF once what came before it is written. */
    client_conn__shutdown_write(tn->cc);
    if (tn->client_eof)
        finish(tn);
}

static void on_origin_drain(void *data)
{
    struct tunnel *tn = data;
    check(tn);
    client_conn__resume_read(tn->cc);
}

static const struct origin_handler tunnel_origin_cb = {
    .on_connected = on_connected,
    .on_fail = on_fail,
    .parse = {on_parent_begin, on_parent_head, on_parent_body, on_parent_done},
    .on_raw = on_raw,
    .on_raw_eof = on_raw_eof,
    .on_drain = on_origin_drain,
};

void tunnel_client_data(struct tunnel *tn, struct buf_block *blk, const char *p, size_t n)
{
    check(tn);
    if (tn->oc == NULL)
        return;
    tn->bytes_up += n;
    METRIC_ADD(&tn->cc->ctx->metrics, tunnel_bytes, n);
    outq_push_block(&tn->oc->out, blk, p, n);
    outq_flush(&tn->oc->out);
    if (outq_over_high(&tn->oc->out))
        client_conn__pause_read(tn->cc);
}

void tunnel_client_eof(struct tunnel *tn)
{
    check(tn);
    tn->client_eof = 1;
    if (tn->oc != NULL)
        origin_shutdown_write(tn->oc);
    if (tn->origin_eof)
        finish(tn);
}

void tunnel_client_drained(struct tunnel *tn)
{
    check(tn);
    if (tn->oc != NULL && !tn->origin_eof)
        origin_resume_read(tn->oc);
}

void tunnel_client_idle_timeout(struct tunnel *tn)
{
    check(tn);
    LOG_INFO(tn->cc->ctx->log, txn_id(tn->txn), "tunnel idle for tunnel_idle_timeout: closing");
    client_conn_close(tn->cc);
}

void tunnel_client_gone(struct tunnel *tn)
{
    check(tn);
    struct client_conn *cc = tn->cc;
    if (tn->oc != NULL) {
        origin_close(tn->oc);
        tn->oc = NULL;
    }
    if (tn->established) {
        METRIC_DEC(&cc->ctx->metrics, tunnels_active);
        txn_tunnel_closed(tn->txn, cc->peer, 200, tn->bytes_up + tn->bytes_down, tn->peer, tn->via_parent);
    }
    /* Not established: the transaction is still the client connection's and goes with it. */
    cc->tunnel = NULL;
    tunnel_free(tn);
}
