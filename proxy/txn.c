#include "proxy/txn.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "http/http_fmt.h"
#include "http/http_write.h"
#include "proxy/access_log.h"
#include "proxy/reply.h"
#include "proxy/tunnel.h"
#include "proxy/txn_internal.h"

#define TXN_ARENA_BLOCK 8192

void txn__check(const struct txn *t)
{
    if (t == NULL || t->magic != TXN_MAGIC)
        abort(); /* a stale pointer crossed a void* boundary: stopping beats corrupting memory */
}

uint64_t txn_id(const struct txn *t)
{
    return t->id;
}

int txn_accepts_body(const struct txn *t)
{
    return t->req_forwarding && !t->req_complete && t->oc != NULL && !outq_over_high(&t->oc->out);
}

const char *txn__via_name(const struct txn *t)
{
    return t->ctx->cfg->visible_hostname;
}

/* A function, not a constant: in sanitizer builds the cap is 0 and the comparison must stay quiet. */
static size_t txn_spare_max(void)
{
    return LARDER_POOL(64);
}

/* Transactions are recycled per loop with their arena's first block, so a steady stream of requests
 * does not malloc a transaction and an arena each (DESIGN.md (d): pool conn and txn structs). */
static struct txn *txn_alloc(struct proxy_ctx *ctx)
{
    struct txn *t;
    if (ctx->spare_txns != NULL) {
        t = ctx->spare_txns;
        ctx->spare_txns = *(void **)t;
        ctx->n_spare_txns--;
        struct arena keep = t->arena; /* already reset when it was put back */
        memset(t, 0, offsetof(struct txn, url));
        t->url[0] = '\0';
        t->authority[0] = '\0';
        t->arena = keep;
    } else {
        t = calloc(1, sizeof(*t));
        if (t == NULL)
            return NULL;
        /* Room for a maximal request head and a large response head, both copied into the arena. */
        size_t limit = ctx->cfg->request_header_max_bytes * 4 + 1024 * 1024;
        if (arena_init(&t->arena, TXN_ARENA_BLOCK, limit) != 0) {
            free(t);
            return NULL;
        }
    }
    t->magic = TXN_MAGIC;
    t->ctx = ctx;
    t->id = ++ctx->next_txn_id;
    t->start_ms = uv_now(ctx->loop);
    t->result = "TCP_MISS";
    t->hier = "HIER_NONE";
    t->peer[0] = '-';
    t->peer[1] = '\0';
    t->max_forwards = -1;
    list_init(&t->reval_link);
    list_init(&t->follow_link);
    list_init(&t->pause_link);
    http_msg_init(&t->req, 1);
    return t;
}

struct txn *txn_new(struct client_conn *cc)
{
    struct txn *t = txn_alloc(cc->ctx);
    if (t != NULL)
        t->cc = cc;
    return t;
}

void txn_free(struct txn *t)
{
    if (t == NULL)
        return;
    txn__check(t);
    txn__leader_unpark(t);
    txn__fill_abort(t);
    txn__follow_stop(t);
    txn__flight_end(t, FLIGHT_FAILED); /* a leader that never handed its flight to a fill */
    if (t->oc != NULL) {
        origin_close(t->oc);
        t->oc = NULL;
    }
    if (t->background)
        METRIC_DEC(&t->ctx->metrics, cache_background_active);
    list_remove(&t->reval_link);
    cache_entry_release(&t->entry);
    free(t->pend);
    t->magic = 0;
    struct proxy_ctx *ctx = t->ctx;
    if (ctx->n_spare_txns < txn_spare_max()) {
        arena_reset(&t->arena);
        *(void **)t = ctx->spare_txns;
        ctx->spare_txns = t;
        ctx->n_spare_txns++;
        return;
    }
    arena_free(&t->arena);
    free(t);
}

void txn_pool_drain(struct proxy_ctx *ctx)
{
    while (ctx->spare_txns != NULL) {
        struct txn *t = ctx->spare_txns;
        ctx->spare_txns = *(void **)t;
        arena_free(&t->arena);
        free(t);
    }
    ctx->n_spare_txns = 0;
}

void txn_abort_background(struct proxy_ctx *ctx)
{
    while (!list_empty(&ctx->detached))
        txn_free(container_of(ctx->detached.next, struct txn, reval_link));
}

void txn__detach(struct txn *t)
{
    if (list_empty(&t->reval_link))
        list_insert_tail(&t->ctx->detached, &t->reval_link);
}

void txn_flights_progressed(struct proxy_ctx *ctx)
{
    /* Leaders paused for their own slow client: if someone follows now, that client goes on from the
     * store and the fetch resumes for everyone (followers are handled below, once they are listed). */
    struct list_node *n = ctx->paused_leaders.next;
    while (n != &ctx->paused_leaders) {
        struct list_node *next = n->next;
        struct txn *t = container_of(n, struct txn, pause_link);
        if (t->flight == NULL || t->fill == NULL || t->oc == NULL) {
            txn__leader_unpark(t);
        } else if (flight_has_followers(t->flight) && txn__follow_own_fill(t) == 0) {
            txn__leader_unpark(t);
            if (!t->fill_paused)
                origin_resume_read(t->oc);
        }
        n = next;
    }
    /* A pump may finish (and free) its own transaction, never another: keep the next one first. */
    n = ctx->followers.next;
    while (n != &ctx->followers) {
        struct list_node *next = n->next;
        txn__follow_pump(container_of(n, struct txn, follow_link));
        n = next;
    }
}

struct http_msg *txn_request_msg(struct txn *t, struct arena **arena)
{
    *arena = &t->arena;
    return &t->req;
}

static uint64_t wall_now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static void log_access(struct txn *t, const char *client)
{
    if (t->logged)
        return;
    t->logged = 1;
    char method[32];
    if (t->req.method_name != NULL)
        fmt_copy_cut(method, sizeof(method), t->req.method_name, t->req.method_len);
    else
        fmt_copy_cut(method, sizeof(method), "NONE", 4);
    const char *url = t->url[0] ? t->url : (t->req.target ? t->req.target : "-");
    struct access_entry e = {
        .end_ms = wall_now_ms(),
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
    access_log_append(&t->ctx->access, &e);
}

void txn_log_rejected(struct client_conn *cc, struct txn *t, int status, uint64_t bytes)
{
    if (t == NULL) {
        struct access_entry e = {
            .end_ms = wall_now_ms(), .client = cc->peer, .result = "TAG_NONE", .status = status, .bytes = bytes,
            .method = "NONE", .url = "error:invalid-request", .hierarchy = "HIER_NONE", .peer = "-", .type = "-",
        };
        access_log_append(&cc->ctx->access, &e);
        return;
    }
    t->status = status;
    t->bytes_out += bytes;
    t->result = "TAG_NONE";
    if (t->url[0] == '\0')
        snprintf(t->url, sizeof(t->url), "error:invalid-request");
    log_access(t, cc->peer);
}

size_t txn__cache_status(const struct txn *t, char *buf)
{
    /* RFC 9211 s2: the cache's name, then either "hit" or "fwd=<why>", with parameters. */
    const char *name = txn__via_name(t);
    char *p = fmt_str(buf, name, strnlen(name, TXN_NAME_MAX));
    if (t->hit) {
        p = fmt_str(p, "; hit", 5);
        if (t->hit_ttl != INT64_MIN) {
            p = fmt_str(p, "; ttl=", 6);
            p = fmt_i64(p, t->hit_ttl);
        }
    } else {
        const char *fwd = t->fwd ? t->fwd : "miss";
        p = fmt_str(p, "; fwd=", 6);
        p = fmt_str(p, fwd, strnlen(fwd, 32));
        if (t->fwd_status) {
            p = fmt_str(p, "; fwd-status=", 13);
            p = fmt_u64(p, (uint64_t)(t->fwd_status & 0xffff));
        }
        if (t->stored)
            p = fmt_str(p, "; stored", 8);
        if (t->collapsed)
            p = fmt_str(p, "; collapsed", 11);
    }
    *p = '\0';
    return (size_t)(p - buf);
}

void txn__via_value(const struct txn *t, int major, int minor, char *out)
{
    const char *name = txn__via_name(t);
    char *p = fmt_u64(out, (uint64_t)(major & 0xff));
    *p++ = '.';
    p = fmt_u64(p, (uint64_t)(minor & 0xff));
    *p++ = ' ';
    p = fmt_str(p, name, strnlen(name, TXN_NAME_MAX));
    *p = '\0';
}

char *txn__status_line(struct txn *t, int status, const char *reason, size_t reason_len)
{
    char *line = arena_alloc(&t->arena, 16 + reason_len);
    if (line == NULL)
        return NULL;
    char *p = fmt_str(line, "HTTP/1.1 ", 9);
    p = fmt_u64_pad(p, (uint64_t)(status >= 0 && status < 1000 ? status : 0), 3, '0');
    *p++ = ' ';
    p = fmt_str(p, reason, reason_len);
    *p = '\0';
    return line;
}

int txn__push_chunk_size(struct outq *q, size_t len)
{
    char h[24];
    char *p = fmt_hex(h, len);
    p = fmt_str(p, "\r\n", 2);
    return outq_push_copy(q, h, (size_t)(p - h));
}

long txn__queue_head(struct outq *q, const char *start, const struct http_msg *m, const struct http_extra_field *extra,
                     size_t n_extra)
{
    size_t size = http_head_size(start, m, extra, n_extra);
    char *at = outq_reserve(q, size);
    if (at == NULL)
        return -1;
    size_t len = http_head_write(at, start, m, extra, n_extra);
    if (outq_commit(q, at, len) != 0)
        return -1;
    return (long)len;
}

/* The transaction is over once its response is queued, its request has been read (or will not be:
 * then the connection cannot carry another request) and what it stores has been handed to the
 * writer. */
void txn__maybe_finish(struct txn *t)
{
    if (!t->resp_complete)
        return;
    if (t->fill != NULL && (t->n_pend > 0 || t->commit_pending))
        return; /* the store still needs bytes this transaction holds */
    if (t->cc == NULL) {
        /* Background revalidation, or a client that left: nothing to tell anyone. */
        if (!t->logged && t->background)
            log_access(t, "-");
        txn_free(t);
        return;
    }
    if (!t->req_complete) {
        /* A body-less request answered from inside its own head callback: the parser is about to
         * reach its end, and on_done finishes it with keep-alive intact. */
        if (t->req.framing == HTTP_BODY_NONE && t->req.method != HTTP_METHOD_CONNECT)
            return;
        t->client_ka = 0; /* the rest of the request body is unread: the connection cannot be reused */
    }
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
void txn__reply_local(struct txn *t, int status, const char *body, size_t len, const char *ctype, const char *extra)
{
    if (t->cc == NULL) {
        t->resp_complete = 1;
        txn__maybe_finish(t);
        return;
    }
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
    if (!t->client_ka || t->req_complete) {
        t->req_complete = 1; /* nothing more will be read */
        txn__maybe_finish(t);
    }
    /* Otherwise the parser is about to reach the end of this body-less request; on_done finishes. */
}

void txn__reply_error(struct txn *t, int status, const char *reason)
{
    char body[600];
    int n = snprintf(body, sizeof(body), "larder: %s\n", reason);
    if (n < 0 || (size_t)n >= sizeof(body))
        n = (int)strlen(body);
    if (status == 400 || status == 505 || status == 501 || status == 413 || status == 414 || status == 431)
        t->client_ka = 0; /* a request we could not understand leaves the stream's framing in doubt */
    LOG_INFO(t->ctx->log, t->id, "%s %.200s from %s: %d %s", t->req.method_name ? t->req.method_name : "-",
             t->url[0] ? t->url : (t->req.target ? t->req.target : "-"), t->cc ? t->cc->peer : "-", status, reason);
    char cs[160];
    snprintf(cs, sizeof(cs), "Cache-Status: %s; fwd=%s\r\n", txn__via_name(t), t->fwd ? t->fwd : "bypass");
    txn__reply_local(t, status, body, (size_t)n, NULL, cs);
}

static void reply_metrics(struct txn *t)
{
    struct metrics sum = {0};
    struct proxy_shared *sh = t->ctx->shared;
    for (unsigned i = 0; i < sh->n_workers; i++)
        metrics_accumulate(&sum, &sh->workers[i]->metrics);
    char buf[12288];
    size_t n = metrics_format(&sum, buf, sizeof(buf));
    if (sh->cache != NULL && n < sizeof(buf)) {
        struct store_counters sc;
        store_counters_get(sh->cache->store, &sc);
        struct store_writer_stats ws;
        store_writer_stats_get(sh->cache->writer, &ws);
        int m = snprintf(buf + n, sizeof(buf) - n,
                         "store_meta_writes %" PRIu64 "\nstore_body_chunk_writes %" PRIu64
                         "\nstore_body_bytes_written %" PRIu64 "\nstore_body_bytes_read %" PRIu64
                         "\nstore_evictions %" PRIu64 "\nstore_reclaimed_bodies %" PRIu64 "\nstore_write_txns %" PRIu64
                         "\nstore_map_full %" PRIu64 "\nstore_collisions %" PRIu64 "\nstore_used_bytes %" PRIu64
                         "\nstore_entries %" PRIu64 "\nstore_pending_bodies %" PRIu64 "\nstore_promotions %" PRIu64
                         "\nstore_replacements %" PRIu64 "\nstore_writer_batches %" PRIu64
                         "\nstore_writer_eagain %" PRIu64 "\nstore_writer_begins_refused %" PRIu64
                         "\nstore_writer_queued_bytes %" PRIu64 "\nstore_discarded_at_open %" PRIu64
                         "\nstore_filter_negatives %" PRIu64 "\nstore_filter_builds %" PRIu64 "\nstore_filter_bytes %" PRIu64
                         "\nstore_room_limit %" PRIu64 "\n",
                         sc.meta_writes, sc.body_chunk_writes, sc.body_bytes_written, sc.body_bytes_read, sc.evictions,
                         sc.reclaimed_bodies, sc.write_txns, sc.map_full, sc.collisions, sc.used_bytes, sc.entries,
                         sc.pending_bodies, sc.promotions, sc.replacements, ws.batches, ws.eagain, ws.begins_refused,
                         ws.queued_bytes, sc.discarded_at_open, sc.filter_negatives, sc.filter_builds, sc.filter_bytes,
                         sc.room_limit);
        if (m > 0)
            n += (size_t)m;
    }
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    snprintf(t->url, sizeof(t->url), "larder:metrics");
    t->fwd = "bypass";
    txn__reply_local(t, 200, buf, n, "text/plain; charset=utf-8", NULL);
}

/* Test hook (test_hooks on): POST /larder/clock?advance=SECONDS moves the cache clock forward, so
 * integration tests make responses stale without sleeping. */
static void reply_clock(struct txn *t, const char *query, size_t qlen)
{
    int64_t adv = 0;
    const char *p = memmem(query, qlen, "advance=", 8);
    if (p != NULL) {
        p += 8;
        while (p < query + qlen && *p >= '0' && *p <= '9')
            adv = adv * 10 + (*p++ - '0');
    }
    int64_t now = __atomic_add_fetch(&t->ctx->shared->clock_offset_s, adv, __ATOMIC_RELAXED);
    char body[64];
    int n = snprintf(body, sizeof(body), "offset %" PRId64 "\n", now);
    snprintf(t->url, sizeof(t->url), "larder:clock");
    t->fwd = "bypass";
    txn__reply_local(t, 200, body, (size_t)n, NULL, NULL);
}

/* Test hook (test_hooks on): POST /larder/writer?pause=1 holds the store writer (ops queue, nothing
 * commits), pause=0 lets it go on, so integration tests can stand in the window between a download's
 * end and its commit without racing it. */
static void reply_writer(struct txn *t, const char *query, size_t qlen)
{
    struct cache *c = t->ctx->shared->cache;
    int pause = memmem(query, qlen, "pause=1", 7) != NULL;
    if (c == NULL || (!pause && memmem(query, qlen, "pause=0", 7) == NULL)) {
        txn__reply_error(t, 400, "POST /larder/writer?pause=1 or ?pause=0, with a cache");
        return;
    }
    store_writer_set_paused(c->writer, pause);
    snprintf(t->url, sizeof(t->url), "larder:writer");
    t->fwd = "bypass";
    txn__reply_local(t, 200, pause ? "paused\n" : "running\n", pause ? 7 : 8, NULL, NULL);
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
    if (t->ctx->cfg->test_hooks && t->req.method == HTTP_METHOD_POST && tl >= 13 && memcmp(tg, "/larder/clock", 13) == 0) {
        reply_clock(t, tg + 13, tl - 13);
        return;
    }
    if (t->ctx->cfg->test_hooks && t->req.method == HTTP_METHOD_POST && tl >= 14 && memcmp(tg, "/larder/writer", 14) == 0) {
        reply_writer(t, tg + 14, tl - 14);
        return;
    }
    METRIC_INC(&t->ctx->metrics, errors_bad_request);
    t->result = "TAG_NONE";
    txn__reply_error(t, 400,
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

static const char allow_methods[] = "Allow: GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH\r\n";

static void answer_max_forwards_zero(struct txn *t)
{
    if (t->req.method == HTTP_METHOD_OPTIONS) {
        txn__reply_local(t, 200, "", 0, NULL, allow_methods);
        return;
    }
    /* TRACE: reflect the request as received (RFC 9110 s9.3.8), minus fields that carry credentials. */
    size_t cap = 256 + t->req.target_len;
    for (size_t i = 0; i < t->req.n_fields; i++)
        cap += t->req.fields[i].name_len + t->req.fields[i].value_len + 4;
    char *body = arena_alloc(&t->arena, cap);
    if (body == NULL) {
        txn__reply_error(t, 500, "request too large to reflect");
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
    txn__reply_local(t, 200, body, n, "message/http", NULL);
}

/* CONNECT host:port (RFC 9110 s9.3.6): only to allowed ports, so larder is no relay for mail or
 * anything else; the tunnel itself lives in tunnel.c, which owns this transaction from now on. */
static void handle_connect(struct txn *t)
{
    const char *why = NULL;
    t->client_ka = 0; /* after a tunnel, or a refused one, nothing more is read from this connection */
    t->mode = MODE_TUNNEL;
    if (http_uri_parse(t->req.target, t->req.target_len, 1, &t->uri, &why) != 0) {
        METRIC_INC(&t->ctx->metrics, errors_bad_request);
        t->result = "TAG_NONE";
        txn__reply_error(t, 400, why ? why : "invalid CONNECT target");
        return;
    }
    http_uri_authority(&t->uri, t->authority, sizeof(t->authority));
    snprintf(t->url, sizeof(t->url), "%s", t->authority);
    if (!config_connect_port_allowed(t->ctx->cfg, t->uri.port)) {
        METRIC_INC(&t->ctx->metrics, errors_forbidden);
        t->result = "TCP_DENIED";
        char msg[128];
        snprintf(msg, sizeof(msg), "CONNECT to port %u is not allowed (connect_ports)", (unsigned)t->uri.port);
        txn__reply_error(t, 403, msg);
        return;
    }
    t->result = "TCP_TUNNEL";
    tunnel_begin(t->cc, t, t->uri.host, t->uri.port, t->authority);
}

void txn_tunnel_failed(struct txn *t, int status, const char *msg)
{
    txn__check(t);
    t->result = "TCP_TUNNEL";
    LOG_WARN(t->ctx->log, t->id, "CONNECT %s: %d %s", t->authority, status, msg);
    txn__reply_error(t, status, msg);
}

void txn_tunnel_closed(struct txn *t, const char *client, int status, uint64_t bytes, const char *peer, int via_parent)
{
    txn__check(t);
    t->hier = via_parent ? "FIRSTUP_PARENT" : "HIER_DIRECT";
    t->status = status;
    t->bytes_out = bytes;
    fmt_copy_cut(t->peer, sizeof(t->peer), peer, strlen(peer));
    log_access(t, client);
    t->cc = NULL;
    txn_free(t);
}

/* RFC 5861 s3: a stale response served at once; this fetches a fresh one behind it, without a client.
 * One background revalidation per stored response at a time. */
static void spawn_background_revalidation(struct txn *fg)
{
    struct proxy_ctx *ctx = fg->ctx;
    for (struct list_node *n = ctx->detached.next; n != &ctx->detached; n = n->next) {
        struct txn *b = container_of(n, struct txn, reval_link);
        if (b->background && b->mode == MODE_REVALIDATE && memcmp(&b->entry.vkey, &fg->entry.vkey, sizeof(b->entry.vkey)) == 0)
            return;
    }
    struct txn *t = txn_alloc(ctx);
    if (t == NULL)
        return;
    t->background = 1;
    t->entry.vkey = fg->entry.vkey;
    txn__detach(t);
    METRIC_INC(&ctx->metrics, cache_background_active);
    if (http_msg_clone_deep(&t->req, &fg->client_req, &t->arena) != 0 ||
        http_msg_clone(&t->client_req, &t->req, &t->arena) != 0) {
        txn_free(t);
        return;
    }
    t->uri = fg->uri;
    /* path_and_query points into the foreground's arena: re-parse from our own copy of the target. */
    const char *why;
    if (http_uri_parse(t->req.target, t->req.target_len, 0, &t->uri, &why) != 0) {
        txn_free(t);
        return;
    }
    memcpy(t->url, fg->url, sizeof(t->url));
    t->url_len = fg->url_len;
    memcpy(t->authority, fg->authority, sizeof(t->authority));
    t->is_head = 0;
    t->req_complete = 1;
    t->req.method = HTTP_METHOD_GET;
    t->req.method_name = "GET";
    t->req.method_len = 3;
    t->req.framing = HTTP_BODY_NONE;
    t->result = "TCP_REFRESH";
    int64_t now = ctx_now_s(ctx);
    if (cache_lookup(&ctx->cache, t->url, t->url_len, &t->req, &t->arena, &t->entry) != 0 || !t->entry.found) {
        txn_free(t);
        return;
    }
    struct cp_stored st = {&t->entry.resp, t->entry.meta.rec.request_time, t->entry.meta.rec.response_time,
                           t->entry.meta.rec.variant, t->entry.meta.rec.variant_len, 0, t->entry.summary};
    cp_decide(&t->req, &st, now, &ctx->shared->cache->limits, &t->dec);
    if (cp_conditional(&t->entry.resp, &t->req, &t->arena) <= 0) {
        txn_free(t);
        return;
    }
    t->mode = MODE_REVALIDATE;
    t->fwd = "stale";
    METRIC_INC(&ctx->metrics, cache_revalidations);
    txn__dial(t);
}

/* RFC 9110 s14: a Range on a request that misses. The client's range is served from the object
 * being filled, and the fetch upstream asks for the whole object (so it can be stored and shared):
 * it runs as a transaction of its own, without a client, and this one follows it. */
static int fetch_whole_for_range(struct txn *fg)
{
    struct proxy_ctx *ctx = fg->ctx;
    struct txn *t = txn_alloc(ctx);
    if (t == NULL)
        return -1;
    t->background = 1;
    METRIC_INC(&ctx->metrics, cache_background_active);
    txn__detach(t);
    const char *why;
    if (http_msg_clone_deep(&t->req, &fg->client_req, &t->arena) != 0 ||
        http_uri_parse(t->req.target, t->req.target_len, 0, &t->uri, &why) != 0) {
        txn_free(t);
        return -1;
    }
    http_msg_remove(&t->req, "range");
    http_msg_remove(&t->req, "if-range");
    http_msg_remove(&t->req, "if-none-match");
    http_msg_remove(&t->req, "if-modified-since");
    if (http_msg_clone(&t->client_req, &t->req, &t->arena) != 0) {
        txn_free(t);
        return -1;
    }
    memcpy(t->url, fg->url, sizeof(t->url));
    t->url_len = fg->url_len;
    memcpy(t->authority, fg->authority, sizeof(t->authority));
    t->entry.pkey = fg->entry.pkey;
    t->dec = fg->dec;
    t->req_complete = 1;
    t->mode = MODE_MISS;
    t->fwd = "uri-miss";
    t->result = "TCP_MISS";
    /* The leader's reference passes to the background fetch; the client's transaction follows. */
    t->flight = fg->flight;
    t->flight_leader = 1;
    fg->flight = NULL;
    txn__dial(t);
    return 0;
}

/* RFC 9111 s4 plus single flight: a request that must go upstream for a cacheable GET joins the fetch
 * already running for its URL, on any loop, or starts one. Returns 1 when it follows. */
static int join_flight(struct txn *t)
{
    struct proxy_shared *sh = t->ctx->shared;
    if (t->req.method != HTTP_METHOD_GET || (t->dec.flags & CP_F_NO_STORE))
        return 0;
    int leader = 0;
    /* A stored response found for this request is one it may not use (stale, no-cache, Vary: *), so a
     * flight carrying that same response is no help to it (flight_join). */
    int64_t unusable_rt = t->entry.found ? t->entry.meta.rec.response_time : 0;
    /* A flight whose response is complete is a stored response to us: this request's own limits on
     * reusing one are not checked against it, so a request with any of them takes only a live fetch. */
    int64_t reuse_at = t->dec.request_limits_reuse ? FLIGHT_NO_REUSE : ctx_now_s(t->ctx);
    struct flight *f = flight_join(&sh->flights, &t->entry.pkey, unusable_rt, reuse_at, &leader);
    if (f == NULL)
        return 0;
    if (leader && http_msg_find(&t->client_req, "range") != NULL && t->mode == MODE_MISS) {
        METRIC_INC(&t->ctx->metrics, flight_leaders);
        flight_ref(f); /* ours, as a follower */
        t->flight = f;
        if (fetch_whole_for_range(t) == 0) {
            t->collapsed = 1;
            txn__follow_start(t, f);
            return 1;
        }
        /* Could not detach: fetch the range ourselves, unshared. */
        t->flight = NULL;
        flight_not_shared(f);
        flight_release(f);
        flight_release(f);
        return 0;
    }
    if (leader) {
        METRIC_INC(&t->ctx->metrics, flight_leaders);
        t->flight = f;
        t->flight_leader = 1;
        return 0;
    }
    t->collapsed = 1;
    txn__follow_start(t, f);
    return 1;
}

/* RFC 9111 s4: look the request up and let the policy decide. Returns 1 when the request was
 * answered or is being answered from the store, 0 when it goes upstream (t->mode says how). */
static int consult_cache(struct txn *t)
{
    struct proxy_ctx *ctx = t->ctx;
    struct cache *cache = ctx->shared->cache;
    if (cache == NULL || (t->req.method != HTTP_METHOD_GET && t->req.method != HTTP_METHOD_HEAD)) {
        t->mode = MODE_PASS;
        t->fwd = t->req.method == HTTP_METHOD_GET || t->req.method == HTTP_METHOD_HEAD ? "bypass" : "method";
        return 0;
    }
    int64_t now = ctx_now_s(ctx);
    int rc = cache_lookup(&ctx->cache, t->url, t->url_len, &t->req, &t->arena, &t->entry);
    if (rc == 0 && t->entry.from_hot)
        METRIC_INC(&ctx->metrics, cache_hot_lookups);
    if (rc != 0) {
        LOG_WARN(ctx->log, t->id, "cache lookup of %s failed: %s (treated as a miss)", t->url, store_strerror(rc));
        cache_entry_release(&t->entry);
        memset(&t->entry, 0, sizeof(t->entry));
    }
    struct cp_stored st;
    if (t->entry.found) {
        st = (struct cp_stored){&t->entry.resp, t->entry.meta.rec.request_time, t->entry.meta.rec.response_time,
                                t->entry.meta.rec.variant, t->entry.meta.rec.variant_len, 0, t->entry.summary};
    }
    cp_decide(&t->req, t->entry.found ? &st : NULL, now, &cache->limits, &t->dec);
    LOG_DEBUG(ctx->log, t->id, "%s %s: %s (%s), age %" PRId64 " lifetime %" PRId64, t->req.method_name, t->url,
              cp_action_name(t->dec.action), t->dec.reason ? t->dec.reason : "-", t->dec.age, t->dec.lifetime);

    if (t->dec.flags & CP_F_ONLY_IF_CACHED) {
        /* RFC 9111 s5.2.1.7 */
        METRIC_INC(&ctx->metrics, cache_only_if_cached_fail);
        t->result = "TCP_MISS";
        t->fwd = "miss";
        txn__reply_error(t, 504, "only-if-cached: the response is not in the cache");
        return 1;
    }
    switch (t->dec.action) {
    case CP_HIT:
        METRIC_INC(&ctx->metrics, cache_hits);
        if (t->dec.flags & CP_F_STALE)
            METRIC_INC(&ctx->metrics, cache_stale_served);
        t->mode = MODE_HIT;
        t->hit = 1;
        t->result = (t->dec.flags & CP_F_STALE) ? "TCP_STALE_HIT" : "TCP_HIT";
        t->hit_ttl = t->dec.lifetime - t->dec.age;
        store_note_hit(cache->store, &t->entry.vkey);
        txn__serve_stored(t, &t->entry.resp, &t->entry.meta.rec);
        return 1;
    case CP_REVALIDATE:
        if ((t->dec.flags & CP_F_SWR) && t->req.method == HTTP_METHOD_GET) {
            /* RFC 5861 s3: answer with the stale response now, refresh it in the background. */
            METRIC_INC(&ctx->metrics, cache_hits);
            METRIC_INC(&ctx->metrics, cache_stale_served);
            t->mode = MODE_HIT;
            t->hit = 1;
            t->hit_ttl = t->dec.lifetime - t->dec.age;
            t->result = "TCP_STALE_HIT";
            spawn_background_revalidation(t);
            txn__serve_stored(t, &t->entry.resp, &t->entry.meta.rec);
            return 1;
        }
        if (t->req.method == HTTP_METHOD_GET && cp_conditional(&t->entry.resp, &t->req, &t->arena) > 0) {
            t->mode = MODE_REVALIDATE;
            t->fwd = (t->dec.reason && strstr(t->dec.reason, "request")) ? "request" : "stale";
            t->result = "TCP_REFRESH_MISS";
            /* RFC 9111 s4.3: concurrent stale hits share one conditional request. */
            if (join_flight(t))
                return 1;
            METRIC_INC(&ctx->metrics, cache_revalidations);
            return 0;
        }
        /* No validator to send (or HEAD): fetch in full; a 200 replaces the stored response. */
        METRIC_INC(&ctx->metrics, cache_misses);
        t->mode = MODE_MISS;
        t->fwd = "stale";
        t->result = "TCP_CLIENT_REFRESH_MISS";
        return 0;
    case CP_MISS:
        METRIC_INC(&ctx->metrics, cache_misses);
        t->mode = MODE_MISS;
        t->fwd = t->entry.vary_miss ? "vary-miss" : "uri-miss";
        return join_flight(t);
    case CP_PASS:
    default:
        METRIC_INC(&ctx->metrics, cache_passes);
        t->mode = MODE_PASS;
        t->fwd = (t->dec.flags & CP_F_NO_STORE) ? "request" : "bypass";
        return 0;
    }
}

int txn_on_request_head(struct txn *t)
{
    txn__check(t);
    struct proxy_ctx *ctx = t->ctx;
    METRIC_INC(&ctx->metrics, client_requests);
    t->client_http10 = t->req.version_minor == 0;
    t->client_ka = t->req.keep_alive && !ctx->shutting_down;
    t->is_head = t->req.method == HTTP_METHOD_HEAD;
    t->hit_ttl = INT64_MIN;

    /* Never an open proxy: only clients inside an allow rule are served, for any request. */
    if (!config_client_allowed(ctx->cfg, (const struct sockaddr *)&t->cc->peer_addr)) {
        METRIC_INC(&ctx->metrics, errors_forbidden);
        t->result = "TCP_DENIED";
        t->client_ka = 0;
        snprintf(t->url, sizeof(t->url), "%.*s", (int)(t->req.target_len < 4096 ? t->req.target_len : 4096),
                 t->req.target);
        char msg[128];
        snprintf(msg, sizeof(msg), "client address %s is not allowed to use this proxy", t->cc->peer);
        txn__reply_error(t, 403, msg);
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
        txn__reply_error(t, 400, why ? why : "invalid request-target");
        return HTTP_PARSE_CB_PAUSE;
    }
    if (t->uri.form == URI_FORM_ASTERISK) {
        /* "OPTIONS *" sent to the proxy is about the proxy itself (RFC 9110 s9.3.7). */
        if (t->req.method == HTTP_METHOD_OPTIONS)
            txn__reply_local(t, 200, "", 0, NULL, allow_methods);
        else
            txn__reply_error(t, 400, "'*' is a valid request-target only for OPTIONS");
        return HTTP_PARSE_CB_PAUSE;
    }
    int ul = http_uri_normalize(&t->uri, t->url, sizeof(t->url));
    if (ul < 0 || http_uri_authority(&t->uri, t->authority, sizeof(t->authority)) < 0) {
        txn__reply_error(t, 414, "URI too long");
        return HTTP_PARSE_CB_PAUSE;
    }
    t->url_len = (size_t)ul;
    if (ctx->cfg->request_body_max_bytes && t->req.framing == HTTP_BODY_LENGTH &&
        t->req.content_length > ctx->cfg->request_body_max_bytes) {
        txn__reply_error(t, 413, "request body larger than request_body_max_bytes");
        return HTTP_PARSE_CB_PAUSE;
    }
    if (t->req.method == HTTP_METHOD_OPTIONS || t->req.method == HTTP_METHOD_TRACE) {
        t->max_forwards = parse_max_forwards(&t->req);
        if (t->max_forwards == -2) {
            txn__reply_error(t, 400, "invalid Max-Forwards");
            return HTTP_PARSE_CB_PAUSE;
        }
        if (t->max_forwards == 0) {
            answer_max_forwards_zero(t);
            return HTTP_PARSE_CB_PAUSE;
        }
    }
    /* The client's request as sent, before validators are added: its own conditionals are evaluated
     * against whatever response it ends up with (RFC 9111 s4.3.2). */
    if (http_msg_clone(&t->client_req, &t->req, &t->arena) != 0) {
        txn__reply_error(t, 431, "request header fields too large");
        return HTTP_PARSE_CB_PAUSE;
    }
    /* One read snapshot for the lookup and, for a hit that fits the client's queue, its body: the
     * whole answer comes from one short read transaction, ended before we return to the loop. */
    struct store_rtxn *rtxn = ctx->shared->cache != NULL ? ctx->cache.rtxn : NULL;
    int snap = rtxn != NULL && cache_snapshot_begin(&ctx->cache) == 0;
    int answered = consult_cache(t);
    if (snap)
        store_rtxn_reset(rtxn);
    if (answered)
        return HTTP_PARSE_CB_PAUSE;
    txn__dial(t);
    return HTTP_PARSE_CB_PAUSE;
}

void txn_client_gone(struct txn *t)
{
    txn__check(t);
    if (t->cc != NULL && !t->logged) {
        if (!t->resp_complete) {
            METRIC_INC(&t->ctx->metrics, errors_client_aborted);
            t->result = t->hit ? "TCP_HIT_ABORTED" : "TCP_MISS_ABORTED";
        }
        log_access(t, t->cc->peer);
    }
    t->cc = NULL;
    /* A fetch that others wait for, or that is filling the store, goes on without its client: the
     * next clients get the object (issue: the fill continues when the client that started it leaves). */
    txn__follow_stop(t); /* a leader that was reading its own fill from the store */
    if (t->oc != NULL && t->req_complete && (t->fill != NULL || (t->flight != NULL && t->flight_leader))) {
        METRIC_INC(&t->ctx->metrics, flight_orphaned);
        t->client_discard = 1;
        txn__detach(t);
        /* Its reads may have been paused for the client that left: only the store paces it now. */
        txn__leader_unpark(t);
        if (t->oc->read_paused && !t->fill_paused)
            origin_resume_read(t->oc);
        return;
    }
    txn_free(t);
}

void txn_client_drained(struct txn *t)
{
    txn__check(t);
    if (t->following) {
        txn__follow_pump(t);
        return;
    }
    if (t->serving) {
        txn__serve_pump(t);
        return;
    }
    if (t->oc != NULL && t->oc->read_paused && !t->fill_paused) {
        txn__leader_unpark(t); /* its own client caught up */
        origin_resume_read(t->oc);
    }
}
