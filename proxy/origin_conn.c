#include "proxy/origin_conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/resolver.h"

#define ORIGIN_MAGIC 0x4f524947u /* "ORIG" */
#define ORIGIN_OUT_HIGH_WATER (256 * 1024)
#define ORIGIN_POOL_MAX_TOTAL 1024

struct origin_sock {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    struct origin_conn *oc;
};

enum timer_mode { T_NONE, T_CONNECT, T_FIRST_BYTE, T_BODY_IDLE, T_POOL_IDLE, T_DEFERRED_FAIL };

static void try_next_addr(struct origin_conn *oc);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void check(const struct origin_conn *oc)
{
    if (oc == NULL || oc->magic != ORIGIN_MAGIC)
        abort(); /* a stale pointer crossed a void* boundary: stopping beats corrupting memory */
}

static void maybe_free(struct origin_conn *oc)
{
    if (oc->handles_open > 0)
        return;
    outq_discard(&oc->out);
    http_parser_free(oc->parser);
    free(oc->addrs);
    oc->magic = 0;
    free(oc);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct origin_conn *oc = h->data;
    oc->handles_open--;
    maybe_free(oc);
}

static void on_sock_closed(uv_handle_t *h)
{
    struct origin_sock *s = h->data;
    struct origin_conn *oc = s->oc;
    free(s);
    oc->handles_open--;
    maybe_free(oc);
}

static void close_sock(struct origin_conn *oc)
{
    struct origin_sock *s = oc->sock;
    if (s == NULL)
        return;
    oc->sock = NULL;
    oc->reading = 0;
    uv_close((uv_handle_t *)&s->tcp, on_sock_closed);
}

static void arm_timer(struct origin_conn *oc, enum timer_mode mode, uint64_t ms);

/* Tells the owner once, then forgets it: after on_fail the owner closes or drops the connection. */
static void fail(struct origin_conn *oc, enum origin_error err, int detail, const char *reason)
{
    const struct origin_handler *h = oc->h;
    void *data = oc->h_data;
    oc->h = NULL;
    if (h != NULL && h->on_fail != NULL)
        h->on_fail(data, err, detail, reason);
    else
        origin_close(oc);
}

static void on_timer(uv_timer_t *t)
{
    struct origin_conn *oc = t->data;
    check(oc);
    enum timer_mode mode = (enum timer_mode)oc->timer_mode;
    oc->timer_mode = T_NONE;
    switch (mode) {
    case T_CONNECT:
        /* This address did not answer in time; its connect callback will see UV_ECANCELED. */
        oc->last_connect_error = UV_ETIMEDOUT;
        close_sock(oc);
        if (oc->addrs != NULL && oc->next_addr < oc->addrs->n)
            try_next_addr(oc);
        else
            fail(oc, ORIGIN_ERR_CONNECT_TIMEOUT, UV_ETIMEDOUT, "connect timeout");
        break;
    case T_FIRST_BYTE:
        fail(oc, ORIGIN_ERR_FIRST_BYTE_TIMEOUT, UV_ETIMEDOUT, "no response from upstream in time");
        break;
    case T_BODY_IDLE:
        fail(oc, ORIGIN_ERR_IDLE_TIMEOUT, UV_ETIMEDOUT, "upstream stalled");
        break;
    case T_POOL_IDLE:
        METRIC_INC(&oc->ctx->metrics, upstream_connections_closed_idle);
        origin_close(oc);
        break;
    case T_DEFERRED_FAIL:
        fail(oc, ORIGIN_ERR_DNS, oc->deferred_err, resolver_strerror(oc->deferred_err));
        break;
    case T_NONE:
        break;
    }
}

static void arm_timer(struct origin_conn *oc, enum timer_mode mode, uint64_t ms)
{
    oc->timer_mode = mode;
    uv_timer_start(&oc->timer, on_timer, ms, 0);
}

static void disarm_timer(struct origin_conn *oc)
{
    oc->timer_mode = T_NONE;
    uv_timer_stop(&oc->timer);
}

static void on_out_error(void *data, int status)
{
    struct origin_conn *oc = data;
    fail(oc, ORIGIN_ERR_WRITE, status, uv_strerror(status));
}

static void on_out_drain(void *data)
{
    struct origin_conn *oc = data;
    if (oc->h != NULL && oc->h->on_drain != NULL)
        oc->h->on_drain(oc->h_data);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct origin_sock *s = req->data;
    struct origin_conn *oc = s->oc;
    if (status == UV_ECANCELED || s != oc->sock)
        return; /* closed on timeout or by the owner */
    if (status != 0) {
        oc->last_connect_error = status;
        disarm_timer(oc);
        close_sock(oc);
        try_next_addr(oc);
        return;
    }
    disarm_timer(oc);
    oc->state = ORIGIN_OPEN;
    outq_init(&oc->out, (uv_stream_t *)&s->tcp, &oc->ctx->bufs, ORIGIN_OUT_HIGH_WATER, oc);
    oc->out.scratch_pool = &oc->ctx->scratch_bufs;
    oc->out.on_error = on_out_error;
    oc->out.on_drain = on_out_drain;
    METRIC_INC(&oc->ctx->metrics, upstream_connections_opened);
    const struct origin_handler *h = oc->h;
    if (h != NULL && h->on_connected != NULL)
        h->on_connected(oc->h_data);
}

static void try_next_addr(struct origin_conn *oc)
{
    if (oc->addrs == NULL || oc->next_addr >= oc->addrs->n) {
        int e = oc->last_connect_error ? oc->last_connect_error : UV_ECONNREFUSED;
        fail(oc, ORIGIN_ERR_CONNECT, e, uv_strerror(e));
        return;
    }
    size_t i = oc->next_addr++;
    const struct sockaddr *sa = (const struct sockaddr *)&oc->addrs->addr[i];
    struct origin_sock *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        fail(oc, ORIGIN_ERR_CONNECT, UV_ENOMEM, "out of memory");
        return;
    }
    s->oc = oc;
    uv_tcp_init(oc->ctx->loop, &s->tcp);
    s->tcp.data = s;
    s->creq.data = s;
    oc->handles_open++;
    oc->sock = s;
    if (sa->sa_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)sa, oc->peer, sizeof(oc->peer));
    else
        uv_ip4_name((const struct sockaddr_in *)sa, oc->peer, sizeof(oc->peer));
    int rc = uv_tcp_connect(&s->creq, &s->tcp, sa, on_connect);
    if (rc != 0) {
        oc->last_connect_error = rc;
        close_sock(oc);
        try_next_addr(oc);
        return;
    }
    uv_tcp_nodelay(&s->tcp, 1);
    arm_timer(oc, T_CONNECT, oc->ctx->cfg->connect_timeout_ms);
}

static void on_resolved(void *data, int status, const struct resolver_addrs *addrs)
{
    struct origin_conn *oc = data;
    check(oc);
    oc->dnsq = NULL;
    /* Mirror the resolver's counters into this loop's metrics, where a scrape from any loop sees them. */
    struct resolver_stats rs;
    resolver_get_stats(oc->ctx->resolver, &rs);
    __atomic_store_n(&oc->ctx->metrics.dns_queries, rs.queries, __ATOMIC_RELAXED);
    __atomic_store_n(&oc->ctx->metrics.dns_cache_hits, rs.cache_hits, __ATOMIC_RELAXED);
    if (status != 0) {
        fail(oc, ORIGIN_ERR_DNS, status, resolver_strerror(status));
        return;
    }
    oc->addrs = malloc(sizeof(*oc->addrs));
    if (oc->addrs == NULL) {
        fail(oc, ORIGIN_ERR_DNS, RESOLVER_EFAIL, "out of memory");
        return;
    }
    memcpy(oc->addrs, addrs, sizeof(*addrs));
    oc->next_addr = 0;
    try_next_addr(oc);
}

static struct origin_conn *origin_new(struct proxy_ctx *ctx, const char *key, const struct origin_handler *h,
                                      void *data)
{
    struct origin_conn *oc = calloc(1, sizeof(*oc));
    if (oc == NULL)
        return NULL;
    oc->magic = ORIGIN_MAGIC;
    oc->ctx = ctx;
    oc->h = h;
    oc->h_data = data;
    snprintf(oc->key, sizeof(oc->key), "%s", key);
    snprintf(oc->peer, sizeof(oc->peer), "-");
    list_init(&oc->pool_link);
    uv_timer_init(ctx->loop, &oc->timer);
    oc->timer.data = oc;
    oc->handles_open = 1;
    oc->out.failed = 1; /* nothing can be queued before the socket is connected */
    return oc;
}

struct origin_conn *origin_dial(struct proxy_ctx *ctx, const char *host, uint16_t port, const char *key,
                                const struct origin_handler *h, void *data)
{
    struct origin_conn *oc = origin_new(ctx, key, h, data);
    if (oc == NULL)
        return NULL;
    oc->state = ORIGIN_DIALING;
    int rc = resolver_lookup(ctx->resolver, host, port, on_resolved, oc, &oc->dnsq);
    if (rc != 0) {
        /* Refused before any query (a malformed name): report it from the loop, as for any failure. */
        oc->dnsq = NULL;
        oc->deferred_err = rc == -EINVAL ? RESOLVER_ENOTFOUND : RESOLVER_EFAIL;
        arm_timer(oc, T_DEFERRED_FAIL, 0);
    }
    return oc;
}

/* The idle connections of one pool key. Exists while it has any: a proxy that has talked to
 * thousands of origins keeps no record of those it holds no connection to. */
struct origin_pool {
    struct origin_pool *next; /* bucket chain */
    struct list_node idle;    /* origin_conn.key_link, oldest first */
    size_t n_idle;
    char key[]; /* NUL-terminated */
};

static struct origin_pool **pool_slot(struct proxy_ctx *ctx, const char *key)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a: keys are short and not attacker-chosen in bulk */
    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211u;
    struct origin_pool **pp = &ctx->origin_pools[h % ORIGIN_POOL_BUCKETS];
    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

/* The pool for key; with create, a new empty one if none (NULL when out of memory). */
static struct origin_pool *pool_find(struct proxy_ctx *ctx, const char *key, int create)
{
    struct origin_pool **pp = pool_slot(ctx, key);
    if (*pp != NULL || !create)
        return *pp;
    size_t len = strlen(key);
    struct origin_pool *p = malloc(sizeof(*p) + len + 1);
    if (p == NULL)
        return NULL;
    p->next = NULL;
    list_init(&p->idle);
    p->n_idle = 0;
    memcpy(p->key, key, len + 1);
    *pp = p;
    return p;
}

static void pool_forget_if_empty(struct proxy_ctx *ctx, struct origin_pool *p)
{
    if (p->n_idle > 0)
        return;
    struct origin_pool **pp = pool_slot(ctx, p->key);
    *pp = p->next;
    free(p);
}

/* Takes an idle connection out of both lists (take or close). */
static void pool_remove(struct origin_conn *oc)
{
    struct proxy_ctx *ctx = oc->ctx;
    list_remove(&oc->pool_link);
    ctx->n_origins_idle--;
    list_remove(&oc->key_link);
    oc->pool->n_idle--;
    pool_forget_if_empty(ctx, oc->pool);
    oc->pool = NULL;
}

struct origin_conn *origin_pool_take(struct proxy_ctx *ctx, const char *key, const struct origin_handler *h,
                                     void *data)
{
    struct origin_pool *p = pool_find(ctx, key, 0);
    if (p == NULL)
        return NULL;
    /* Newest first: the connection used last is the one most likely still open at the origin. */
    for (struct list_node *n = p->idle.prev; n != &p->idle; n = n->prev) {
        struct origin_conn *oc = container_of(n, struct origin_conn, key_link);
        if (oc->eof_seen)
            continue;
        pool_remove(oc);
        disarm_timer(oc);
        oc->state = ORIGIN_OPEN;
        oc->h = h;
        oc->h_data = data;
        oc->reused = 1;
        oc->response_bytes_seen = 0;
        METRIC_INC(&ctx->metrics, upstream_connections_reused);
        return oc;
    }
    return NULL;
}

static struct http_msg *p_on_begin(void *data, struct arena **arena)
{
    struct origin_conn *oc = data;
    if (oc->h == NULL)
        return NULL;
    return oc->h->parse.on_begin(oc->h_data, arena);
}

static int p_on_head(void *data, struct http_msg *msg)
{
    struct origin_conn *oc = data;
    if (oc->h == NULL)
        return -1;
    oc->interim = msg->status < 200;
    return oc->h->parse.on_head(oc->h_data, msg);
}

static int p_on_body(void *data, const char *at, size_t len)
{
    struct origin_conn *oc = data;
    if (oc->h == NULL)
        return -1;
    return oc->h->parse.on_body(oc->h_data, at, len);
}

static int p_on_done(void *data, struct http_msg *trailers)
{
    struct origin_conn *oc = data;
    if (oc->interim) {
        /* RFC 9110 s15.2: a 1xx is followed by the final response, maybe in the same read: go on. */
        oc->interim = 0;
        return oc->h != NULL ? oc->h->parse.on_done(oc->h_data, trailers) : -1;
    }
    /* Pause after every final response: whatever follows in the same read is not part of it (RFC 9112
     * s9.3: a response the client did not ask for is an error), and the next exchange resumes. */
    oc->done_pause = 1;
    if (oc->h == NULL)
        return HTTP_PARSE_CB_PAUSE;
    int rc = oc->h->parse.on_done(oc->h_data, trailers);
    if (rc < 0)
        return rc;
    return HTTP_PARSE_CB_PAUSE;
}

static const struct http_parse_callbacks parse_cb = {p_on_begin, p_on_head, p_on_body, p_on_done};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct origin_sock *s = h->data;
    struct buf_block *b = buf_pool_get(&s->oc->ctx->bufs);
    if (b == NULL) {
        *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init(b->data, b->size);
}

static void start_reading(struct origin_conn *oc)
{
    if (oc->sock == NULL || oc->reading || oc->read_paused)
        return;
    if (uv_read_start((uv_stream_t *)&oc->sock->tcp, on_alloc, on_read) == 0)
        oc->reading = 1;
}

void origin_expect_response(struct origin_conn *oc, int expect_no_body)
{
    check(oc);
    (void)expect_no_body; /* the owner's on_head answers HTTP_PARSE_CB_NO_BODY for HEAD */
    if (oc->parser == NULL) {
        struct http_parse_limits lim = {
            .max_head_bytes = 256 * 1024, .max_fields = 1000, .max_target = 1,
        };
        oc->parser = http_parser_new(HTTP_PARSE_RESPONSE, &lim, &parse_cb, oc);
        if (oc->parser == NULL) {
            fail(oc, ORIGIN_ERR_PROTOCOL, UV_ENOMEM, "out of memory");
            return;
        }
    } else if (oc->done_pause) {
        if (oc->in_parse) {
            /* Reused from inside the previous response's on_done: llhttp is still on the stack and
             * will pause when it returns; resume then (on_read). */
            oc->resume_pending = 1;
        } else {
            http_parser_resume(oc->parser);
            oc->done_pause = 0;
        }
    }
    oc->response_bytes_seen = 0;
    arm_timer(oc, T_FIRST_BYTE, oc->ctx->cfg->first_byte_timeout_ms);
    start_reading(oc);
}

void origin_start_raw(struct origin_conn *oc)
{
    check(oc);
    oc->raw = 1;
    disarm_timer(oc);
    start_reading(oc);
}

void origin_pause_read(struct origin_conn *oc)
{
    oc->read_paused = 1;
    if (oc->reading && oc->sock != NULL) {
        uv_read_stop((uv_stream_t *)&oc->sock->tcp);
        oc->reading = 0;
    }
    /* A paused body is our client's doing, not a stall upstream: stop the idle clock meanwhile. */
    if (oc->timer_mode == T_BODY_IDLE)
        disarm_timer(oc);
}

void origin_resume_read(struct origin_conn *oc)
{
    oc->read_paused = 0;
    if (oc->state == ORIGIN_CLOSING)
        return;
    if (!oc->raw && oc->h != NULL && oc->response_bytes_seen && oc->timer_mode == T_NONE)
        arm_timer(oc, T_BODY_IDLE, oc->ctx->cfg->upstream_idle_timeout_ms);
    start_reading(oc);
}

static void on_read_idle(struct origin_conn *oc, ssize_t nread)
{
    /* An idle pooled connection: EOF means the origin closed it; data is a protocol error. Either way
     * it is no longer usable. */
    (void)nread;
    METRIC_INC(&oc->ctx->metrics, upstream_connections_closed_idle);
    origin_close(oc);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct origin_sock *s = stream->data;
    struct origin_conn *oc = s->oc;
    struct buf_block *blk = buf->base ? container_of(buf->base, struct buf_block, data) : NULL;
    check(oc);
    if (nread == 0) {
        if (blk)
            buf_unref(blk);
        return;
    }
    if (oc->state == ORIGIN_IDLE || oc->state == ORIGIN_CLOSING) {
        if (blk)
            buf_unref(blk);
        if (oc->state == ORIGIN_IDLE)
            on_read_idle(oc, nread);
        return;
    }
    if (nread < 0) {
        if (blk)
            buf_unref(blk);
        oc->eof_seen = 1;
        if (oc->raw) {
            if (nread == UV_EOF && oc->h != NULL && oc->h->on_raw_eof != NULL) {
                if (oc->reading) {
                    uv_read_stop(stream);
                    oc->reading = 0;
                }
                oc->h->on_raw_eof(oc->h_data);
            } else {
                fail(oc, ORIGIN_ERR_RESET, (int)nread, uv_strerror((int)nread));
            }
            return;
        }
        if (oc->reading) {
            uv_read_stop(stream);
            oc->reading = 0;
        }
        if (oc->parser != NULL && http_parser_in_message(oc->parser)) {
            /* A close-delimited body ends here (RFC 9112 s6.3 item 8); anything else was cut short. */
            if (http_parser_finish(oc->parser) == HTTP_PARSE_OK && !http_parser_in_message(oc->parser))
                return;
            fail(oc, ORIGIN_ERR_RESET, (int)nread, "upstream closed the connection before the response was complete");
            return;
        }
        fail(oc, ORIGIN_ERR_RESET, (int)nread,
             nread == UV_EOF ? "upstream closed the connection without a response" : uv_strerror((int)nread));
        return;
    }

    METRIC_ADD(&oc->ctx->metrics, upstream_bytes_in, (uint64_t)nread);
    if (oc->raw) {
        if (oc->h != NULL && oc->h->on_raw != NULL)
            oc->h->on_raw(oc->h_data, blk, buf->base, (size_t)nread);
        buf_unref(blk);
        return;
    }
    if (oc->parser == NULL || oc->done_pause) {
        /* Bytes nobody asked for: after a complete response, or before a request was sent. */
        oc->extra_bytes = 1;
        buf_unref(blk);
        return;
    }
    oc->response_bytes_seen = 1;
    if (!oc->read_paused)
        arm_timer(oc, T_BODY_IDLE, oc->ctx->cfg->upstream_idle_timeout_ms);
    oc->cur_blk = blk;
    size_t consumed = 0;
    oc->in_parse = 1;
    enum http_parse_status st = http_parser_execute(oc->parser, buf->base, (size_t)nread, &consumed);
    oc->in_parse = 0;
    oc->cur_blk = NULL;
    if (oc->raw && oc->state != ORIGIN_CLOSING && st == HTTP_PARSE_PAUSED && consumed < (size_t)nread && oc->h != NULL &&
        oc->h->on_raw != NULL) {
        /* The response switched the connection to raw bytes (a parent proxy's 2xx to CONNECT): what
         * followed its head in this read is the tunnel's first bytes, not a protocol error. */
        oc->h->on_raw(oc->h_data, blk, buf->base + consumed, (size_t)nread - consumed);
        buf_unref(blk);
        return;
    }
    buf_unref(blk);
    if (oc->state == ORIGIN_CLOSING)
        return;
    if (oc->h != NULL && oc->h->on_parsed != NULL)
        oc->h->on_parsed(oc->h_data);
    if (oc->state == ORIGIN_CLOSING)
        return;
    if (st == HTTP_PARSE_ERROR) {
        fail(oc, ORIGIN_ERR_PROTOCOL, 0, http_parser_error_reason(oc->parser));
        return;
    }
    if (st == HTTP_PARSE_PAUSED && oc->done_pause) {
        if (consumed < (size_t)nread) {
            /* RFC 9112 s9.3: bytes after a complete response answer nothing we asked: never deliver
             * them, never reuse the connection. A new exchange already started on it fails as a
             * reset (retried, since no byte of its response was seen). */
            oc->extra_bytes = 1;
            oc->resume_pending = 0;
            if (oc->state == ORIGIN_IDLE) {
                origin_close(oc);
            } else {
                oc->response_bytes_seen = 0;
                fail(oc, ORIGIN_ERR_RESET, UV_EPROTO, "unexpected bytes after the previous response");
            }
            return;
        }
        if (oc->resume_pending) {
            oc->resume_pending = 0;
            oc->done_pause = 0;
            http_parser_resume(oc->parser);
        }
    }
}

void origin_release(struct origin_conn *oc, int reusable)
{
    check(oc);
    struct proxy_ctx *ctx = oc->ctx;
    oc->h = NULL;
    oc->h_data = NULL;
    if (oc->state != ORIGIN_OPEN || !reusable || oc->extra_bytes || oc->eof_seen || ctx->shutting_down ||
        ctx->n_origins_idle >= ORIGIN_POOL_MAX_TOTAL || !outq_idle(&oc->out) || oc->parser == NULL ||
        http_parser_in_message(oc->parser)) {
        origin_close(oc);
        return;
    }
    struct origin_pool *p = pool_find(ctx, oc->key, 1);
    if (p == NULL || p->n_idle >= ctx->cfg->upstream_max_idle_per_origin) {
        if (p != NULL)
            pool_forget_if_empty(ctx, p);
        origin_close(oc);
        return;
    }
    oc->requests++;
    oc->reused = 0;
    oc->state = ORIGIN_IDLE;
    list_insert_tail(&ctx->origins_idle, &oc->pool_link);
    ctx->n_origins_idle++;
    list_insert_tail(&p->idle, &oc->key_link);
    p->n_idle++;
    oc->pool = p;
    arm_timer(oc, T_POOL_IDLE, ctx->cfg->upstream_idle_timeout_ms);
    /* Keep reading while idle so an origin's close is noticed before the connection is reused. */
    oc->read_paused = 0;
    start_reading(oc);
}

void origin_close(struct origin_conn *oc)
{
    check(oc);
    if (oc->state == ORIGIN_CLOSING)
        return;
    if (oc->state == ORIGIN_IDLE)
        pool_remove(oc);
    oc->state = ORIGIN_CLOSING;
    oc->h = NULL;
    oc->h_data = NULL;
    if (oc->dnsq != NULL) {
        resolver_cancel(oc->dnsq);
        oc->dnsq = NULL;
    }
    outq_discard(&oc->out);
    close_sock(oc);
    oc->timer_mode = T_NONE;
    uv_close((uv_handle_t *)&oc->timer, on_timer_closed);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status; /* a failed half-close shows up as an error on the next read */
}

void origin_shutdown_write(struct origin_conn *oc)
{
    check(oc);
    if (oc->sock == NULL || oc->state == ORIGIN_CLOSING)
        return;
    oc->sock->sreq.data = oc->sock;
    uv_shutdown(&oc->sock->sreq, (uv_stream_t *)&oc->sock->tcp, on_shutdown);
}

void origin_pool_close_all(struct proxy_ctx *ctx)
{
    while (!list_empty(&ctx->origins_idle))
        origin_close(container_of(ctx->origins_idle.next, struct origin_conn, pool_link));
}
