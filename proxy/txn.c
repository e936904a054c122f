#include "proxy/txn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "http/http_write.h"
#include "proxy/access_log.h"
#include "proxy/client_conn.h"
#include "proxy/origin_conn.h"
#include "proxy/reply.h"
#include "proxy/resolver.h"
#include "proxy/tunnel.h"

#define TXN_MAGIC 0x54584e31u /* "TXN1" */
#define TXN_ARENA_BLOCK 8192

enum out_framing { OUT_NONE, OUT_LENGTH, OUT_CHUNKED, OUT_CLOSE };

struct txn {
    uint32_t magic;
    struct proxy_ctx *ctx;
    struct client_conn *cc;
    uint64_t id;
    struct arena arena;
    struct http_msg req;
    struct http_uri uri;
    char url[8192 + 300];    /* normalised absolute URI, for logs and (later) the cache key */
    char authority[300];     /* pool key */
    struct http_msg *resp;   /* current response from upstream (an interim one until the final) */
    struct origin_conn *oc;

    uint64_t start_ms;
    uint64_t bytes_out;
    int status;            /* final status sent to the client, 0 before */
    const char *result;    /* Squid result code */
    const char *hier;
    char peer[64];
    char content_type[128];

    int client_http10;
    int client_ka;       /* the connection may carry another request after this one */
    int req_complete;    /* the whole request was read from the client */
    int req_forwarding;  /* request bytes go upstream as they are parsed */
    int req_sent;        /* the whole request was queued upstream */
    int head_sent;       /* the final response head was queued to the client */
    int resp_complete;
    int local_reply;     /* larder answered itself */
    enum out_framing out;
    int retried;
    int is_head;
    int in_interim;
    int logged;
    int max_forwards;    /* -1 when absent */
};

static const struct origin_handler origin_cb;

static void check(const struct txn *t)
{
    if (t == NULL || t->magic != TXN_MAGIC)
        abort();
}

uint64_t txn_id(const struct txn *t)
{
    return t->id;
}

int txn_accepts_body(const struct txn *t)
{
    return t->req_forwarding && !t->req_complete && t->oc != NULL && !outq_over_high(&t->oc->out);
}

struct txn *txn_new(struct client_conn *cc)
{
    struct txn *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    struct proxy_ctx *ctx = cc->ctx;
    /* Room for a maximal request head and a large response head, both copied into the arena. */
    size_t limit = ctx->cfg->request_header_max_bytes * 2 + 512 * 1024;
    if (arena_init(&t->arena, TXN_ARENA_BLOCK, limit) != 0) {
        free(t);
        return NULL;
    }
    t->magic = TXN_MAGIC;
    t->ctx = ctx;
    t->cc = cc;
    t->id = ++ctx->next_txn_id;
    t->start_ms = uv_now(ctx->loop);
    t->result = "TCP_MISS";
    t->hier = "HIER_NONE";
    snprintf(t->peer, sizeof(t->peer), "-");
    t->max_forwards = -1;
    http_msg_init(&t->req, 1);
    return t;
}

void txn_free(struct txn *t)
{
    if (t == NULL)
        return;
    check(t);
    if (t->oc != NULL) {
        origin_close(t->oc);
        t->oc = NULL;
    }
    arena_free(&t->arena);
    t->magic = 0;
    free(t);
}

struct http_msg *txn_request_msg(struct txn *t, struct arena **arena)
{
    *arena = &t->arena;
    return &t->req;
}

static double wall_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void log_access(struct txn *t, const char *client)
{
    if (t->logged)
        return;
    t->logged = 1;
    char method[32];
    snprintf(method, sizeof(method), "%.*s", (int)(t->req.method_len < 31 ? t->req.method_len : 31),
             t->req.method_name ? t->req.method_name : "NONE");
    const char *url = t->url[0] ? t->url : (t->req.target ? t->req.target : "-");
    struct access_entry e = {
        .end_time = wall_now(),
        .elapsed_ms = uv_now(t->ctx->loop) - t->start_ms,
        .client = client,
        .result = t->result,
        .status = t->status,
        .bytes = t->bytes_out,
        .method = method,
        .url = url,
        .hierarchy = t->hier,
        .peer = t->peer,
        .type = t->content_type[0] ? t->content_type : "-",
    };
    access_log_write(t->ctx->access, &e);
}

void txn_log_rejected(struct client_conn *cc, struct txn *t, int status, uint64_t bytes)
{
    if (t == NULL) {
        struct access_entry e = {
            .end_time = wall_now(), .client = cc->peer, .result = "TAG_NONE", .status = status, .bytes = bytes,
            .method = "NONE", .url = "error:invalid-request", .hierarchy = "HIER_NONE", .peer = "-", .type = "-",
        };
        access_log_write(cc->ctx->access, &e);
        return;
    }
    t->status = status;
    t->bytes_out += bytes;
    t->result = "TAG_NONE";
    if (t->url[0] == '\0')
        snprintf(t->url, sizeof(t->url), "error:invalid-request");
    log_access(t, cc->peer);
}

/* The transaction is over once its response is queued and its request has been read (or will not
 * be: then the connection cannot carry another request). */
static void maybe_finish(struct txn *t)
{
    if (!t->resp_complete || t->cc == NULL)
        return;
    if (!t->req_complete)
        t->client_ka = 0; /* the rest of the request body is unread: the connection cannot be reused */
    if (t->oc != NULL) {
        origin_close(t->oc);
        t->oc = NULL;
    }
    log_access(t, t->cc->peer);
    struct client_conn *cc = t->cc;
    t->cc = NULL;
    client_conn_txn_done(cc, t->client_ka);
}

static struct reply_opts reply_opts_for(struct txn *t)
{
    struct reply_opts o = {
        .keep_alive = t->client_ka,
        .client_http10 = t->client_http10,
        .head_only = t->is_head,
        .via_name = t->ctx->cfg->visible_hostname,
    };
    return o;
}

/* larder answers the request itself. A request whose body has not been read cannot be followed by
 * another on the same connection, so such a connection closes after the reply. */
static void reply_local(struct txn *t, int status, const char *body, size_t len, const char *ctype, const char *extra)
{
    if (t->req.framing != HTTP_BODY_NONE && !t->req_complete)
        t->client_ka = 0;
    struct reply_opts o = reply_opts_for(t);
    o.content_type = ctype;
    o.extra = extra;
    long n = reply_send(&t->cc->out, status, body, len, &o);
    t->status = status;
    t->bytes_out += n > 0 ? (uint64_t)n : 0;
    t->head_sent = 1;
    t->resp_complete = 1;
    t->local_reply = 1;
    if (!t->client_ka || t->req_complete) {
        t->req_complete = 1; /* nothing more will be read */
        maybe_finish(t);
    }
    /* Otherwise the parser is about to reach the end of this body-less request; on_done finishes. */
}

static void reply_error_local(struct txn *t, int status, const char *reason)
{
    char body[600];
    int n = snprintf(body, sizeof(body), "larder: %s\n", reason);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)strlen(body);
    if (status == 400 || status == 505 || status == 501 || status == 413 || status == 414 || status == 431)
        t->client_ka = 0; /* a request we could not understand leaves the stream's framing in doubt */
    LOG_INFO(t->ctx->log, t->id, "%s %.200s from %s: %d %s", t->req.method_name ? t->req.method_name : "-",
             t->url[0] ? t->url : (t->req.target ? t->req.target : "-"), t->cc ? t->cc->peer : "-", status, reason);
    reply_local(t, status, body, (size_t)n, NULL, NULL);
}

static void reply_metrics(struct txn *t)
{
    struct metrics sum = {0};
    struct proxy_shared *sh = t->ctx->shared;
    for (unsigned i = 0; i < sh->n_workers; i++)
        metrics_accumulate(&sum, &sh->workers[i]->metrics);
    char buf[8192];
    size_t n = metrics_format(&sum, buf, sizeof(buf));
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    t->result = "TCP_MISS";
    snprintf(t->url, sizeof(t->url), "larder:metrics");
    reply_local(t, 200, buf, n, "text/plain; charset=utf-8", NULL);
}

/* Requests addressed to larder itself (origin-form). */
static void handle_origin_form(struct txn *t)
{
    const char *tg = t->req.target;
    size_t tl = t->req.target_len;
    if ((t->req.method == HTTP_METHOD_GET || t->req.method == HTTP_METHOD_HEAD) && tl == 15 &&
        memcmp(tg, "/larder/metrics", 15) == 0) {
        reply_metrics(t);
        return;
    }
    METRIC_INC(&t->ctx->metrics, errors_bad_request);
    t->result = "TAG_NONE";
    reply_error_local(t, 400,
                      "this is a forward proxy: requests must use an absolute URI (GET http://host/path HTTP/1.1), "
                      "or CONNECT host:port");
}

/* RFC 9110 s7.6.2: Max-Forwards on OPTIONS and TRACE. 0 means this hop answers. */
static int parse_max_forwards(const struct http_msg *m)
{
    const struct http_field *f = http_msg_find(m, "max-forwards");
    if (f == NULL || f->value_len == 0 || f->value_len > 9)
        return f == NULL ? -1 : -2;
    int v = 0;
    for (size_t i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9')
            return -2;
        v = v * 10 + (f->value[i] - '0');
    }
    return v;
}

static void answer_max_forwards_zero(struct txn *t)
{
    if (t->req.method == HTTP_METHOD_OPTIONS) {
        reply_local(t, 200, "", 0, NULL, "Allow: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH\r\n");
        return;
    }
    /* TRACE: reflect the request as received (RFC 9110 s9.3.8), minus fields that carry credentials. */
    size_t cap = 256 + t->req.target_len;
    for (size_t i = 0; i < t->req.n_fields; i++)
        cap += t->req.fields[i].name_len + t->req.fields[i].value_len + 4;
    char *body = arena_alloc(&t->arena, cap);
    if (body == NULL) {
        reply_error_local(t, 500, "request too large to reflect");
        return;
    }
    size_t n = (size_t)snprintf(body, cap, "TRACE %s HTTP/%d.%d\r\n", t->req.target, t->req.version_major,
                                t->req.version_minor);
    for (size_t i = 0; i < t->req.n_fields; i++) {
        const struct http_field *f = &t->req.fields[i];
        if (http_name_eq(f->name, f->name_len, "authorization") ||
            http_name_eq(f->name, f->name_len, "proxy-authorization") || http_name_eq(f->name, f->name_len, "cookie"))
            continue;
        n += (size_t)snprintf(body + n, cap - n, "%s: %s\r\n", f->name, f->value);
    }
    n += (size_t)snprintf(body + n, cap - n, "\r\n");
    reply_local(t, 200, body, n, "message/http", NULL);
}

/* CONNECT host:port (RFC 9110 s9.3.6): only to allowed ports, so larder is no relay for mail or
 * anything else; the tunnel itself lives in tunnel.c, which owns this transaction from now on. */
static void handle_connect(struct txn *t)
{
    const char *why = NULL;
    t->client_ka = 0; /* after a tunnel, or a refused one, nothing more is read from this connection */
    if (http_uri_parse(t->req.target, t->req.target_len, 1, &t->uri, &why) != 0) {
        METRIC_INC(&t->ctx->metrics, errors_bad_request);
        t->result = "TAG_NONE";
        reply_error_local(t, 400, why ? why : "invalid CONNECT target");
        return;
    }
    http_uri_authority(&t->uri, t->authority, sizeof(t->authority));
    snprintf(t->url, sizeof(t->url), "%s", t->authority);
    if (!config_connect_port_allowed(t->ctx->cfg, t->uri.port)) {
        METRIC_INC(&t->ctx->metrics, errors_forbidden);
        t->result = "TCP_DENIED";
        char msg[128];
        snprintf(msg, sizeof(msg), "CONNECT to port %u is not allowed (connect_ports)", (unsigned)t->uri.port);
        reply_error_local(t, 403, msg);
        return;
    }
    t->result = "TCP_TUNNEL";
    tunnel_begin(t->cc, t, t->uri.host, t->uri.port, t->authority);
}

void txn_tunnel_failed(struct txn *t, int status, const char *msg)
{
    check(t);
    t->result = "TCP_TUNNEL";
    LOG_WARN(t->ctx->log, t->id, "CONNECT %s: %d %s", t->authority, status, msg);
    reply_error_local(t, status, msg);
}

void txn_tunnel_closed(struct txn *t, const char *client, int status, uint64_t bytes, const char *peer)
{
    check(t);
    t->hier = "HIER_DIRECT";
    t->status = status;
    t->bytes_out = bytes;
    snprintf(t->peer, sizeof(t->peer), "%s", peer);
    log_access(t, client);
    t->cc = NULL;
    txn_free(t);
}

static void dial(struct txn *t)
{
    struct origin_conn *oc = origin_pool_take(t->ctx, t->authority, &origin_cb, t);
    if (oc != NULL) {
        t->oc = oc;
        snprintf(t->peer, sizeof(t->peer), "%s", oc->peer);
        origin_cb.on_connected(t);
        return;
    }
    t->oc = origin_dial(t->ctx, t->uri.host, t->uri.port, t->authority, &origin_cb, t);
    if (t->oc == NULL) {
        METRIC_INC(&t->ctx->metrics, errors_internal);
        reply_error_local(t, 500, "out of memory");
    }
}

int txn_on_request_head(struct txn *t)
{
    check(t);
    struct proxy_ctx *ctx = t->ctx;
    METRIC_INC(&ctx->metrics, client_requests);
    t->client_http10 = t->req.version_minor == 0;
    t->client_ka = t->req.keep_alive && !ctx->shutting_down;
    t->is_head = t->req.method == HTTP_METHOD_HEAD;

    /* Never an open proxy: only clients inside an allow rule are served, for any request. */
    if (!config_client_allowed(ctx->cfg, (const struct sockaddr *)&t->cc->peer_addr)) {
        METRIC_INC(&ctx->metrics, errors_forbidden);
        t->result = "TCP_DENIED";
        t->client_ka = 0;
        snprintf(t->url, sizeof(t->url), "%.*s", (int)(t->req.target_len < 4096 ? t->req.target_len : 4096),
                 t->req.target);
        char msg[128];
        snprintf(msg, sizeof(msg), "client address %s is not allowed to use this proxy", t->cc->peer);
        reply_error_local(t, 403, msg);
        return HTTP_PARSE_CB_PAUSE;
    }
    if (t->req.method == HTTP_METHOD_CONNECT) {
        handle_connect(t);
        return HTTP_PARSE_CB_PAUSE;
    }
    if (http_uri_is_origin_form(t->req.target, t->req.target_len)) {
        handle_origin_form(t);
        return HTTP_PARSE_CB_PAUSE;
    }
    const char *why = NULL;
    if (http_uri_parse(t->req.target, t->req.target_len, 0, &t->uri, &why) != 0) {
        METRIC_INC(&ctx->metrics, errors_bad_request);
        reply_error_local(t, 400, why ? why : "invalid request-target");
        return HTTP_PARSE_CB_PAUSE;
    }
    if (t->uri.form == URI_FORM_ASTERISK) {
        /* "OPTIONS *" sent to the proxy is about the proxy itself (RFC 9110 s9.3.7). */
        if (t->req.method == HTTP_METHOD_OPTIONS)
            reply_local(t, 200, "", 0, NULL, "Allow: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH\r\n");
        else
            reply_error_local(t, 400, "'*' is a valid request-target only for OPTIONS");
        return HTTP_PARSE_CB_PAUSE;
    }
    if (http_uri_normalize(&t->uri, t->url, sizeof(t->url)) < 0 ||
        http_uri_authority(&t->uri, t->authority, sizeof(t->authority)) < 0) {
        reply_error_local(t, 414, "URI too long");
        return HTTP_PARSE_CB_PAUSE;
    }
    if (ctx->cfg->request_body_max_bytes && t->req.framing == HTTP_BODY_LENGTH &&
        t->req.content_length > ctx->cfg->request_body_max_bytes) {
        reply_error_local(t, 413, "request body larger than request_body_max_bytes");
        return HTTP_PARSE_CB_PAUSE;
    }
    if (t->req.method == HTTP_METHOD_OPTIONS || t->req.method == HTTP_METHOD_TRACE) {
        t->max_forwards = parse_max_forwards(&t->req);
        if (t->max_forwards == -2) {
            reply_error_local(t, 400, "invalid Max-Forwards");
            return HTTP_PARSE_CB_PAUSE;
        }
        if (t->max_forwards == 0) {
            answer_max_forwards_zero(t);
            return HTTP_PARSE_CB_PAUSE;
        }
    }
    dial(t);
    return HTTP_PARSE_CB_PAUSE;
}

/* Builds the request head for upstream from the parsed request: never the bytes received
 * (RFC 9112 s11.2), origin-form target, Host from the URI authority (RFC 9110 s7.2: the URI wins
 * over a Host field that disagrees), hop-by-hop fields gone, Via appended (RFC 9110 s7.6.3). */
static int send_request_head(struct txn *t)
{
    struct http_msg *r = &t->req;
    char target[8192 + 16];
    if (t->req.method == HTTP_METHOD_OPTIONS && t->uri.path_empty) {
        snprintf(target, sizeof(target), "*"); /* RFC 9112 s3.2.4 */
    } else if (http_uri_origin_form(&t->uri, target, sizeof(target)) < 0) {
        return -ENOSPC;
    }
    char host[300];
    if (http_uri_host_header(&t->uri, host, sizeof(host)) < 0)
        return -ENOSPC;
    http_mark_hop_by_hop(r);
    http_msg_remove(r, "host");
    http_msg_remove(r, "content-length");
    char *start = arena_printf(&t->arena, "%.*s %s HTTP/1.1", (int)r->method_len, r->method_name, target);
    char via[300], clen[32], mf[16];
    snprintf(via, sizeof(via), "%d.%d %s", r->version_major, r->version_minor, t->ctx->cfg->visible_hostname);
    struct http_extra_field extra[5];
    size_t n = 0;
    extra[n++] = (struct http_extra_field){"Host", host};
    if (r->framing == HTTP_BODY_LENGTH) {
        snprintf(clen, sizeof(clen), "%" PRIu64, r->content_length);
        extra[n++] = (struct http_extra_field){"Content-Length", clen};
    } else if (r->framing == HTTP_BODY_CHUNKED) {
        extra[n++] = (struct http_extra_field){"Transfer-Encoding", "chunked"};
    }
    if (t->max_forwards > 0) {
        http_msg_remove(r, "max-forwards");
        snprintf(mf, sizeof(mf), "%d", t->max_forwards - 1);
        extra[n++] = (struct http_extra_field){"Max-Forwards", mf};
    }
    extra[n++] = (struct http_extra_field){"Via", via};
    if (start == NULL)
        return -ENOMEM;
    size_t size = http_head_size(start, r, extra, n);
    struct buf_block *b = buf_new(size);
    if (b == NULL)
        return -ENOMEM;
    size_t len = http_head_write(b->data, start, r, extra, n);
    int rc = outq_push_block(&t->oc->out, b, b->data, len);
    buf_unref(b);
    if (rc != 0)
        return rc;
    outq_flush(&t->oc->out);
    METRIC_INC(&t->ctx->metrics, upstream_requests);
    return 0;
}

static void on_origin_connected(void *data)
{
    struct txn *t = data;
    check(t);
    snprintf(t->peer, sizeof(t->peer), "%s", t->oc->peer);
    t->hier = "HIER_DIRECT";
    if (send_request_head(t) != 0) {
        METRIC_INC(&t->ctx->metrics, errors_internal);
        origin_close(t->oc);
        t->oc = NULL;
        reply_error_local(t, 500, "cannot build the upstream request");
        return;
    }
    t->req_forwarding = 1;
    origin_expect_response(t->oc, t->is_head);
    if (t->req.framing == HTTP_BODY_NONE && t->req_complete)
        t->req_sent = 1;
    /* Now the body (if any) may flow; the parser also reaches the end of a body-less request. */
    if (t->cc != NULL)
        client_conn_resume(t->cc);
}

static int push_chunk_header(struct outq *q, size_t len)
{
    char h[24];
    int n = snprintf(h, sizeof(h), "%zx\r\n", len);
    return outq_push_copy(q, h, (size_t)n);
}

/* Writes "0" CRLF, the trailer fields that may travel (not hop-by-hop), and the final CRLF. */
static int push_last_chunk(struct outq *q, struct http_msg *trailers)
{
    if (trailers == NULL || trailers->n_fields == 0)
        return outq_push_static(q, "0\r\n\r\n", 5);
    http_mark_hop_by_hop(trailers);
    /* RFC 9110 s6.5.1: framing and routing fields are never valid as trailers. */
    http_msg_remove(trailers, "content-length");
    http_msg_remove(trailers, "host");
    size_t size = http_head_size("0", trailers, NULL, 0);
    struct buf_block *b = buf_new(size);
    if (b == NULL)
        return -ENOMEM;
    size_t len = http_head_write(b->data, "0", trailers, NULL, 0);
    int rc = outq_push_block(q, b, b->data, len);
    buf_unref(b);
    return rc;
}

int txn_on_request_body(struct txn *t, struct buf_block *blk, const char *at, size_t len)
{
    check(t);
    if (!t->req_forwarding || t->oc == NULL)
        return 0; /* answered locally or upstream failed: the body is read and dropped */
    struct outq *q = &t->oc->out;
    int rc = 0;
    if (t->req.framing == HTTP_BODY_CHUNKED)
        rc = push_chunk_header(q, len);
    if (rc == 0)
        rc = outq_push_block(q, blk, at, len);
    if (rc == 0 && t->req.framing == HTTP_BODY_CHUNKED)
        rc = outq_push_static(q, "\r\n", 2);
    if (rc != 0)
        return -1;
    outq_flush(q);
    /* Back-pressure: the client is not read faster than the origin takes the body. */
    return outq_over_high(q) ? HTTP_PARSE_CB_PAUSE : 0;
}

int txn_on_request_done(struct txn *t, struct http_msg *trailers)
{
    check(t);
    t->req_complete = 1;
    if (t->req_forwarding && t->oc != NULL) {
        if (t->req.framing == HTTP_BODY_CHUNKED && push_last_chunk(&t->oc->out, trailers) != 0)
            return -1;
        outq_flush(&t->oc->out);
        t->req_sent = 1;
    }
    maybe_finish(t);
    return HTTP_PARSE_CB_PAUSE; /* stop before a pipelined next request: it waits its turn */
}

static struct http_msg *on_resp_begin(void *data, struct arena **arena)
{
    struct txn *t = data;
    check(t);
    t->resp = arena_alloc(&t->arena, sizeof(*t->resp));
    *arena = &t->arena;
    return t->resp;
}

/* The client-facing head of an upstream response: hop-by-hop fields out, framing decided for this
 * client (RFC 9112 s6.1: chunked only to HTTP/1.1; an HTTP/1.0 client gets a close-delimited body),
 * Via added. */
static int send_response_head(struct txn *t, struct http_msg *resp)
{
    http_mark_hop_by_hop(resp);
    struct http_extra_field extra[4];
    size_t n = 0;
    char clen[32], via[300];
    switch (resp->framing) {
    case HTTP_BODY_NONE:
        /* HEAD and 304 keep the Content-Length that describes the representation (RFC 9110 s8.6);
         * 1xx and 204 must not have one. */
        if (resp->status < 200 || resp->status == 204)
            http_msg_remove(resp, "content-length");
        t->out = OUT_NONE;
        break;
    case HTTP_BODY_LENGTH:
        http_msg_remove(resp, "content-length");
        snprintf(clen, sizeof(clen), "%" PRIu64, resp->content_length);
        extra[n++] = (struct http_extra_field){"Content-Length", clen};
        t->out = OUT_LENGTH;
        break;
    case HTTP_BODY_CHUNKED:
    case HTTP_BODY_EOF:
        http_msg_remove(resp, "content-length");
        if (!t->client_http10) {
            extra[n++] = (struct http_extra_field){"Transfer-Encoding", "chunked"};
            t->out = OUT_CHUNKED;
        } else {
            t->out = OUT_CLOSE;
            t->client_ka = 0;
        }
        break;
    }
    if (!t->client_ka)
        extra[n++] = (struct http_extra_field){"Connection", "close"};
    else if (t->client_http10)
        extra[n++] = (struct http_extra_field){"Connection", "keep-alive"};
    snprintf(via, sizeof(via), "1.%d %s", resp->version_minor, t->ctx->cfg->visible_hostname);
    extra[n++] = (struct http_extra_field){"Via", via};

    char *start = arena_printf(&t->arena, "HTTP/1.1 %d %.*s", resp->status, (int)resp->reason_len, resp->reason);
    if (start == NULL)
        return -ENOMEM;
    size_t size = http_head_size(start, resp, extra, n);
    struct buf_block *b = buf_new(size);
    if (b == NULL)
        return -ENOMEM;
    size_t len = http_head_write(b->data, start, resp, extra, n);
    int rc = outq_push_block(&t->cc->out, b, b->data, len);
    buf_unref(b);
    if (rc != 0)
        return rc;
    outq_flush(&t->cc->out);
    t->bytes_out += len;
    return 0;
}

static int on_resp_head(void *data, struct http_msg *resp)
{
    struct txn *t = data;
    check(t);
    if (t->cc == NULL)
        return -1;
    if (resp->status < 200) {
        if (resp->status == 101)
            return -1; /* larder never forwards Upgrade, so a switch is a protocol error */
        t->in_interim = 1;
        /* RFC 9110 s15.2: a proxy forwards 1xx responses, except to an HTTP/1.0 client. */
        if (!t->client_http10) {
            http_mark_hop_by_hop(resp);
            char *start = arena_printf(&t->arena, "HTTP/1.1 %d %.*s", resp->status, (int)resp->reason_len, resp->reason);
            if (start == NULL)
                return -1;
            size_t size = http_head_size(start, resp, NULL, 0);
            struct buf_block *b = buf_new(size);
            if (b == NULL)
                return -1;
            size_t len = http_head_write(b->data, start, resp, NULL, 0);
            outq_push_block(&t->cc->out, b, b->data, len);
            buf_unref(b);
            outq_flush(&t->cc->out);
            t->bytes_out += len;
        }
        return 0;
    }
    t->in_interim = 0;
    t->status = resp->status;
    const struct http_field *ct = http_msg_find(resp, "content-type");
    if (ct != NULL)
        snprintf(t->content_type, sizeof(t->content_type), "%.*s", (int)ct->value_len, ct->value);
    if (t->is_head)
        resp->framing = HTTP_BODY_NONE;
    if (send_response_head(t, resp) != 0)
        return -1;
    t->head_sent = 1;
    return t->is_head ? HTTP_PARSE_CB_NO_BODY : 0;
}

static int on_resp_body(void *data, const char *at, size_t len)
{
    struct txn *t = data;
    check(t);
    if (t->cc == NULL)
        return -1;
    struct outq *q = &t->cc->out;
    int rc = 0;
    if (t->out == OUT_CHUNKED)
        rc = push_chunk_header(q, len);
    if (rc == 0)
        rc = outq_push_block(q, t->oc->cur_blk, at, len);
    if (rc == 0 && t->out == OUT_CHUNKED)
        rc = outq_push_static(q, "\r\n", 2);
    if (rc != 0)
        return -1;
    t->bytes_out += len;
    outq_flush(q);
    /* Back-pressure (DESIGN.md habit 8): never read the origin faster than this client drains. */
    if (outq_over_high(q))
        origin_pause_read(t->oc);
    return 0;
}

static int on_resp_done(void *data, struct http_msg *trailers)
{
    struct txn *t = data;
    check(t);
    if (t->in_interim) {
        t->in_interim = 0;
        /* Resume: the final response follows on the same connection. */
        origin_expect_response(t->oc, t->is_head);
        return 0;
    }
    if (t->cc == NULL)
        return -1;
    if (t->out == OUT_CHUNKED) {
        if (push_last_chunk(&t->cc->out, trailers) != 0)
            return -1;
        t->bytes_out += 5;
        outq_flush(&t->cc->out);
    }
    t->resp_complete = 1;
    int reusable = t->resp->keep_alive && t->resp->framing != HTTP_BODY_EOF && t->req_sent;
    struct origin_conn *oc = t->oc;
    t->oc = NULL;
    origin_release(oc, reusable);
    if (t->out == OUT_CLOSE)
        t->client_ka = 0;
    maybe_finish(t);
    return 0;
}

static int idempotent(enum http_method m)
{
    /* RFC 9110 s9.2.2 */
    return m == HTTP_METHOD_GET || m == HTTP_METHOD_HEAD || m == HTTP_METHOD_OPTIONS || m == HTTP_METHOD_TRACE ||
           m == HTTP_METHOD_PUT || m == HTTP_METHOD_DELETE;
}

static void on_origin_fail(void *data, enum origin_error err, int detail, const char *reason)
{
    struct txn *t = data;
    check(t);
    struct proxy_ctx *ctx = t->ctx;
    int was_reused = t->oc != NULL && t->oc->reused;
    int saw_bytes = t->oc != NULL && t->oc->response_bytes_seen;
    if (t->oc != NULL) {
        origin_close(t->oc);
        t->oc = NULL;
    }
    /* RFC 9112 s9.3.1: a request on a reused connection may meet the origin's close of that
     * connection; an idempotent request without a body is retried once on a fresh one. */
    if (was_reused && !saw_bytes && !t->retried && (err == ORIGIN_ERR_RESET || err == ORIGIN_ERR_WRITE) &&
        idempotent(t->req.method) && t->req.framing == HTTP_BODY_NONE && !t->head_sent && t->cc != NULL) {
        t->retried = 1;
        t->req_forwarding = 0;
        METRIC_INC(&ctx->metrics, upstream_retries);
        LOG_DEBUG(ctx->log, t->id, "retrying %s on a fresh connection: reused connection failed (%s)", t->url, reason);
        t->oc = origin_dial(ctx, t->uri.host, t->uri.port, t->authority, &origin_cb, t);
        if (t->oc != NULL)
            return;
    }
    int status = 502;
    char msg[400];
    switch (err) {
    case ORIGIN_ERR_DNS:
        METRIC_INC(&ctx->metrics, errors_dns);
        status = detail == RESOLVER_ETIMEOUT ? 504 : 502;
        snprintf(msg, sizeof(msg), "%s for %s", reason, t->uri.host);
        break;
    case ORIGIN_ERR_CONNECT:
        METRIC_INC(&ctx->metrics, errors_connect);
        snprintf(msg, sizeof(msg), "cannot connect to %s: %s", t->authority,
                 detail == UV_ECONNREFUSED ? "connection refused" : reason);
        break;
    case ORIGIN_ERR_CONNECT_TIMEOUT:
        METRIC_INC(&ctx->metrics, errors_timeout);
        status = 504;
        snprintf(msg, sizeof(msg), "connect timeout to %s", t->authority);
        break;
    case ORIGIN_ERR_FIRST_BYTE_TIMEOUT:
    case ORIGIN_ERR_IDLE_TIMEOUT:
        METRIC_INC(&ctx->metrics, errors_timeout);
        status = 504;
        snprintf(msg, sizeof(msg), "upstream timeout from %s (%s)", t->authority, reason);
        break;
    case ORIGIN_ERR_PROTOCOL:
        METRIC_INC(&ctx->metrics, errors_upstream_response);
        snprintf(msg, sizeof(msg), "invalid upstream response from %s: %s", t->authority, reason);
        break;
    case ORIGIN_ERR_RESET:
    case ORIGIN_ERR_WRITE:
    default:
        METRIC_INC(&ctx->metrics, errors_upstream_response);
        snprintf(msg, sizeof(msg), "upstream %s failed: %s", t->authority, reason);
        break;
    }
    if (t->cc == NULL) {
        txn_free(t);
        return;
    }
    if (t->head_sent) {
        /* The client has part of the response: closing is the only honest signal (RFC 9112 s8). */
        LOG_WARN(ctx->log, t->id, "%s: response cut short: %s", t->url, msg);
        t->result = "TCP_MISS_ABORTED";
        struct client_conn *cc = t->cc;
        log_access(t, cc->peer);
        client_conn_close(cc); /* calls txn_client_gone, which frees t */
        return;
    }
    LOG_WARN(ctx->log, t->id, "%s %s: %d %s", t->req.method_name, t->url, status, msg);
    t->req_forwarding = 0;
    reply_error_local(t, status, msg);
}

static void on_origin_drain(void *data)
{
    struct txn *t = data;
    check(t);
    if (t->cc != NULL && !t->req_complete)
        client_conn_resume(t->cc);
}

static const struct origin_handler origin_cb = {
    .on_connected = on_origin_connected,
    .on_fail = on_origin_fail,
    .parse = {on_resp_begin, on_resp_head, on_resp_body, on_resp_done},
    .on_drain = on_origin_drain,
};

void txn_client_gone(struct txn *t)
{
    check(t);
    if (t->cc != NULL && !t->logged) {
        if (!t->resp_complete) {
            METRIC_INC(&t->ctx->metrics, errors_client_aborted);
            t->result = t->status ? "TCP_MISS_ABORTED" : "TCP_MISS_ABORTED";
        }
        log_access(t, t->cc->peer);
    }
    t->cc = NULL;
    txn_free(t);
}

void txn_client_drained(struct txn *t)
{
    check(t);
    if (t->oc != NULL && t->oc->read_paused)
        origin_resume_read(t->oc);
}
