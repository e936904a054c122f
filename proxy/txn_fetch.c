/* The upstream side of a transaction: dial, send the request (head re-serialised, body streamed with
 * back-pressure), read the response and stream it to the client and, when storable, to the store. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_fmt.h"
#include "http/http_range.h"
#include "http/http_write.h"
#include "http/stored_head.h"
#include "proxy/resolver.h"
#include "proxy/txn_internal.h"

static const struct origin_handler origin_cb;

/* The next hop, for messages and as its pool key: the origin's "host:port", or "parent proxy
 * proxy.example:3128", a key no authority can spell (spaces), so that a connection to the parent is
 * reused for any origin behind it. */
static const char *upstream_name(const struct txn *t, char *buf, size_t len)
{
    return t->via_parent ? config_parent_name(t->ctx->cfg, buf, len) : t->authority;
}

/* A new connection to the next hop: the origin, or the parent proxy (no DNS for the origin then). */
static struct origin_conn *dial_next_hop(struct txn *t)
{
    const struct proxy_config *cfg = t->ctx->cfg;
    char key[CONFIG_PARENT_NAME_MAX];
    const char *k = upstream_name(t, key, sizeof(key));
    if (t->via_parent)
        return origin_dial(t->ctx, cfg->parent_host, cfg->parent_port, k, &origin_cb, t);
    return origin_dial(t->ctx, t->uri.host, t->uri.port, k, &origin_cb, t);
}

void txn__dial(struct txn *t)
{
    t->request_time = ctx_now_s(t->ctx);
    t->via_parent = !config_goes_direct(t->ctx->cfg, t->uri.host);
    char key[CONFIG_PARENT_NAME_MAX];
    struct origin_conn *oc = origin_pool_take(t->ctx, upstream_name(t, key, sizeof(key)), &origin_cb, t);
    if (oc != NULL) {
        t->oc = oc;
        fmt_copy_cut(t->peer, sizeof(t->peer), oc->peer, strlen(oc->peer));
        origin_cb.on_connected(t);
        return;
    }
    t->oc = dial_next_hop(t);
    if (t->oc == NULL) {
        METRIC_INC(&t->ctx->metrics, errors_internal);
        txn__reply_error(t, 500, "out of memory");
    }
}

/* Builds the request head for upstream from the parsed request: never the bytes received
 * (RFC 9112 s11.2), origin-form target (absolute-form to a parent proxy, s3.2.2), Host from the URI
 * authority (RFC 9110 s7.2: the URI wins over a Host field that disagrees), hop-by-hop fields gone
 * (our client's Proxy-Authorization among them: it was for us), Via appended (RFC 9110 s7.6.3). */
static int send_request_head(struct txn *t)
{
    struct http_msg *r = &t->req;
    char target[8192 + 16];
    /* RFC 9112 s3.2.4: OPTIONS for an absolute URI with neither path nor query goes out as "*"
     * to the origin; a proxy forwards it in absolute-form as it came. */
    int has_query = t->uri.path_and_query_len > 0 && t->uri.path_and_query[0] == '?';
    if (t->via_parent) {
        size_t ulen = strlen(t->url);
        if (ulen >= sizeof(target))
            return -ENOSPC;
        memcpy(target, t->url, ulen + 1);
    } else if (r->method == HTTP_METHOD_OPTIONS && t->uri.path_empty && !has_query) {
        snprintf(target, sizeof(target), "*");
    } else if (http_uri_origin_form(&t->uri, target, sizeof(target)) < 0) {
        return -ENOSPC;
    }
    char host[300];
    if (http_uri_host_header(&t->uri, host, sizeof(host)) < 0)
        return -ENOSPC;
    http_mark_hop_by_hop(r);
    http_msg_remove(r, "host");
    http_msg_remove(r, "content-length");
    /* The request line, built by hand: a printf here was 2k instructions per miss. */
    size_t tlen = strlen(target);
    char *start = arena_alloc(&t->arena, r->method_len + tlen + 11);
    if (start != NULL) {
        char *p = fmt_str(start, r->method_name, r->method_len);
        *p++ = ' ';
        p = fmt_str(p, target, tlen);
        p = fmt_str(p, " HTTP/1.1", 9);
        *p = '\0';
    }
    char via[TXN_VIA_MAX], clen[FMT_U64_MAX + 1], mf[16];
    txn__via_value(t, r->version_major, r->version_minor, via);
    struct http_extra_field extra[6];
    size_t n = 0;
    extra[n++] = (struct http_extra_field){"Host", host};
    if (t->via_parent && t->ctx->cfg->parent_auth != NULL) /* RFC 9110 s11.7.2: for the parent alone */
        extra[n++] = (struct http_extra_field){"Proxy-Authorization", t->ctx->cfg->parent_auth};
    if (r->framing == HTTP_BODY_LENGTH) {
        *fmt_u64(clen, r->content_length) = '\0';
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
    if (start == NULL || txn__queue_head(&t->oc->out, start, r, extra, n) < 0)
        return -ENOMEM;
    outq_flush(&t->oc->out);
    METRIC_INC(&t->ctx->metrics, upstream_requests);
    return 0;
}

static void on_origin_connected(void *data)
{
    struct txn *t = data;
    txn__check(t);
    fmt_copy_cut(t->peer, sizeof(t->peer), t->oc->peer, strlen(t->oc->peer));
    t->hier = t->via_parent ? "FIRSTUP_PARENT" : "HIER_DIRECT"; /* Squid's names */
    if (send_request_head(t) != 0) {
        METRIC_INC(&t->ctx->metrics, errors_internal);
        origin_close(t->oc);
        t->oc = NULL;
        txn__reply_error(t, 500, "cannot build the upstream request");
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
    txn__check(t);
    if (!t->req_forwarding || t->oc == NULL)
        return 0; /* answered locally or upstream failed: the body is read and dropped */
    t->req_body_bytes += len;
    uint64_t max = t->ctx->cfg->request_body_max_bytes;
    if (max && t->req_body_bytes > max) {
        /* A chunked body has no length up front: it is cut here. The origin sees an unfinished
         * request (never a complete one) and the client a 413 if nothing was answered yet. */
        LOG_INFO(t->ctx->log, t->id, "%s: request body over request_body_max_bytes", t->url);
        struct origin_conn *oc = t->oc;
        t->oc = NULL;
        origin_close(oc);
        t->req_forwarding = 0;
        t->client_ka = 0;
        if (!t->head_sent) {
            t->req_complete = 1;
            txn__reply_error(t, 413, "request body larger than request_body_max_bytes");
        } else if (t->cc != NULL) {
            client_conn_close(t->cc);
        }
        return HTTP_PARSE_CB_PAUSE;
    }
    struct outq *q = &t->oc->out;
    int rc = 0;
    if (t->req.framing == HTTP_BODY_CHUNKED)
        rc = txn__push_chunk_size(q, len);
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
    txn__check(t);
    t->req_complete = 1;
    if (t->req_forwarding && t->oc != NULL) {
        if (t->req.framing == HTTP_BODY_CHUNKED && push_last_chunk(&t->oc->out, trailers) != 0)
            return -1;
        outq_flush(&t->oc->out);
        t->req_sent = 1;
    }
    txn__maybe_finish(t);
    return HTTP_PARSE_CB_PAUSE; /* stop before a pipelined next request: it waits its turn */
}

/* ---- storing the response ---------------------------------------------------------------------- */

static void on_store_done(void *data, int status)
{
    struct proxy_ctx *ctx = data;
    if (status != 0) {
        METRIC_INC(&ctx->metrics, cache_store_failures);
        LOG_WARN(ctx->log, 0, "store write failed: %s", store_strerror(status));
    }
}

/* s4.4 invalidation done: counted when something was stored; nothing stored is not a failure. */
static void on_invalidated(void *data, int status)
{
    struct proxy_ctx *ctx = data;
    if (status == 0)
        METRIC_INC(&ctx->metrics, cache_invalidations);
    else if (status != STORE_ENOTFOUND)
        on_store_done(ctx, status);
}

/* A 304's metadata update, applied: the refreshed entry is now what the store shows. */
struct meta_ticket {
    struct proxy_ctx *ctx;
    struct flight *flight; /* registered until now; NULL when no flight waited on this */
};

static void on_meta_updated(void *data, int status)
{
    struct meta_ticket *tk = data;
    on_store_done(tk->ctx, status);
    if (tk->flight != NULL) {
        flight_unregister(tk->flight);
        flight_release(tk->flight);
    }
    free(tk);
}

/* The end of a fill, reported by the writer on the leader's loop: only then is the object readable
 * by new requests (commit) or known lost (abort), so only then does the flight end. The ticket holds
 * its own flight reference: the transaction that started the fill may be long gone. */
struct fill_ticket {
    struct proxy_ctx *ctx;
    struct flight *flight;
    int commit;
};

static void on_fill_end(void *data, int status)
{
    struct fill_ticket *tk = data;
    on_store_done(tk->ctx, status);
    if (tk->flight != NULL) {
        if (tk->commit && status == 0)
            flight_done(tk->flight);
        else
            flight_fail(tk->flight);
        flight_release(tk->flight);
    }
    free(tk);
}

static struct fill_ticket *ticket_new(struct txn *t, int commit)
{
    struct fill_ticket *tk = calloc(1, sizeof(*tk));
    if (tk == NULL)
        return NULL;
    tk->ctx = t->ctx;
    tk->commit = commit;
    if (t->flight != NULL && t->flight_leader) {
        flight_ref(t->flight);
        tk->flight = t->flight;
    }
    return tk;
}

void txn__flight_end(struct txn *t, enum flight_state how)
{
    txn__leader_unpark(t);
    if (t->flight == NULL || !t->flight_leader)
        return;
    if (how == FLIGHT_FAILED)
        flight_fail(t->flight);
    else if (how == FLIGHT_NOT_SHARED)
        flight_not_shared(t->flight);
    else if (how == FLIGHT_DONE)
        flight_done(t->flight);
    flight_release(t->flight);
    t->flight = NULL;
    t->flight_leader = 0;
}

/* The leader hands the flight's ending to the fill (its commit or abort ends it): the transaction
 * only drops its own reference. */
static void flight_hand_over(struct txn *t)
{
    txn__leader_unpark(t);
    if (t->flight != NULL && t->flight_leader) {
        flight_release(t->flight);
        t->flight = NULL;
        t->flight_leader = 0;
    }
}

void txn__fill_abort(struct txn *t)
{
    txn__fill_abort_as(t, FLIGHT_FAILED);
}

void txn__fill_abort_as(struct txn *t, enum flight_state how)
{
    for (size_t i = 0; i < t->n_pend; i++)
        buf_unref(t->pend[i].blk);
    t->n_pend = 0;
    t->commit_pending = 0;
    t->fill_paused = 0;
    /* End the flight now, not when the writer has applied the abort: until then a new request could
     * join it and start reading chunks that are about to be deleted. */
    txn__flight_end(t, how);
    if (t->fill != NULL) {
        struct fill_ticket *tk = ticket_new(t, 0);
        if (tk == NULL || store_fill_abort(t->fill, on_fill_end, tk) != 0) {
            if (tk != NULL && tk->flight != NULL) {
                flight_fail(tk->flight);
                flight_release(tk->flight);
            }
            free(tk);
        }
        t->fill = NULL;
        t->stored = 0;
        METRIC_INC(&t->ctx->metrics, cache_store_aborts);
    }
}

static void fill_commit(struct txn *t)
{
    struct store_record rec;
    int rc = cache_record_build(&rec, t->url, t->url_len, t->store_resp, t->variant, t->variant_len, t->request_time,
                                t->response_time, ctx_now_s(t->ctx), &t->arena);
    if (rc != 0) {
        txn__fill_abort(t);
        return;
    }
    rec.body_len = t->fill_len;
    struct store_key vkey;
    store_key_variant(t->ctx->cache.hasher, &vkey, &t->entry.pkey, t->variant, t->variant_len);
    struct fill_ticket *tk = ticket_new(t, 1);
    if (tk == NULL) {
        txn__fill_abort(t);
        return;
    }
    if (tk->flight != NULL)
        flight_upstream_done(tk->flight);
    rc = store_fill_commit(t->fill, &t->entry.pkey, &vkey, &rec, on_fill_end, tk);
    t->fill = NULL;
    t->commit_pending = 0;
    flight_hand_over(t);
    if (rc != 0) {
        /* The fill failed earlier (sticky); the writer already reclaimed its chunks. */
        if (tk->flight != NULL) {
            flight_fail(tk->flight);
            flight_release(tk->flight);
        }
        free(tk);
        METRIC_INC(&t->ctx->metrics, cache_store_failures);
        LOG_INFO(t->ctx->log, t->id, "%s not stored: %s", t->url, store_strerror(rc));
        t->stored = 0;
        return;
    }
    METRIC_INC(&t->ctx->metrics, cache_stores);
}

/* Appends a span to the fill. On back-pressure the span is kept (referenced) and the upstream paused
 * until the writer calls on_fill_resume. */
static void fill_append(struct txn *t, struct buf_block *blk, const char *at, size_t len)
{
    if (t->fill == NULL)
        return;
    if (t->fill_len + len > t->ctx->shared->cache->max_object_size) {
        LOG_INFO(t->ctx->log, t->id, "%s not stored: larger than max_object_size", t->url);
        /* Not a failure of the fetch: whoever waits fetches for itself (never a partial object). */
        txn__fill_abort_as(t, FLIGHT_NOT_SHARED);
        return;
    }
    t->fill_len += len;
    if (t->n_pend == 0) {
        int rc = store_fill_append(t->fill, at, len);
        if (rc == 0)
            return;
        if (rc != -EAGAIN) {
            /* The store failed, not the origin: followers fetch (or resume) on their own. */
            LOG_INFO(t->ctx->log, t->id, "%s not stored: %s", t->url, store_strerror(rc));
            txn__fill_abort_as(t, FLIGHT_NOT_SHARED);
            return;
        }
    }
    if (t->n_pend == t->cap_pend) {
        size_t cap = t->cap_pend ? t->cap_pend * 2 : 8;
        struct pending_span *p = realloc(t->pend, cap * sizeof(*p));
        if (p == NULL) {
            txn__fill_abort(t);
            return;
        }
        t->pend = p;
        t->cap_pend = cap;
    }
    t->pend[t->n_pend++] = (struct pending_span){buf_ref(blk), at, len};
    t->fill_paused = 1;
    if (t->oc != NULL)
        origin_pause_read(t->oc);
}

static void on_fill_resume(void *data, int status)
{
    struct txn *t = data;
    txn__check(t);
    if (status != 0) {
        LOG_INFO(t->ctx->log, t->id, "%s not stored: %s", t->url, store_strerror(status));
        txn__fill_abort_as(t, FLIGHT_NOT_SHARED);
    }
    size_t i = 0;
    while (t->fill != NULL && i < t->n_pend) {
        int rc = store_fill_append(t->fill, t->pend[i].ptr, t->pend[i].len);
        if (rc == -EAGAIN)
            break;
        buf_unref(t->pend[i].blk);
        i++;
        if (rc != 0) {
            txn__fill_abort_as(t, FLIGHT_NOT_SHARED);
            break;
        }
    }
    if (t->fill != NULL && i < t->n_pend) {
        memmove(t->pend, t->pend + i, (t->n_pend - i) * sizeof(*t->pend));
        t->n_pend -= i;
        return; /* still refused: the writer will resume us again */
    }
    t->n_pend = 0;
    t->fill_paused = 0;
    if (t->fill != NULL && t->commit_pending)
        fill_commit(t);
    if (t->oc != NULL && (t->cc == NULL || !outq_over_high(&t->cc->out)))
        origin_resume_read(t->oc);
    txn__maybe_finish(t);
}

/* Until when a flight's response, once complete, may serve requests that join it (flight_join):
 * requests joining earlier are combined into the forward request and take it whatever its freshness
 * (RFC 9111 s4, collapsed requests); later ones reuse it, which needs it fresh (s4.2). */
static int64_t reusable_until(const struct txn *t, const struct http_msg *resp, int64_t request_time,
                              int64_t response_time)
{
    const struct cache *cache = t->ctx->shared->cache;
    return cache != NULL ? cp_reusable_until(resp, request_time, response_time, ctx_now_s(t->ctx), &cache->limits) : 0;
}

/* RFC 9111 s3: decide at the response head whether it goes to the store, and open the fill. */
static void maybe_begin_fill(struct txn *t, struct http_msg *resp)
{
    struct proxy_ctx *ctx = t->ctx;
    struct cache *cache = ctx->shared->cache;
    if (cache == NULL || (t->mode != MODE_MISS && t->mode != MODE_REVALIDATE) || t->req.method != HTTP_METHOD_GET ||
        (t->dec.flags & CP_F_NO_STORE))
        return;
    enum cp_store_verdict v = cp_storable(&t->client_req, resp, 0);
    const char *why = v == CP_STORE_OK ? NULL : cp_store_reason(v);
    if (why == NULL && resp->framing == HTTP_BODY_LENGTH && resp->content_length > cache->max_object_size)
        why = "larger than max_object_size";
    /* Set-Cookie belongs to one user: a shared cache must not hand it to others. The response is
     * stored only when the origin says which fields to leave out (private="set-cookie" or
     * no-cache="set-cookie", RFC 9111 s5.2.2.4 and s5.2.2.7). */
    if (why == NULL && http_msg_find(resp, "set-cookie") != NULL) {
        struct http_cc cc;
        http_cc_parse(resp, &cc);
        if (!http_cc_list_has(&cc.private_fields, "set-cookie", 10) &&
            !http_cc_list_has(&cc.no_cache_fields, "set-cookie", 10))
            why = "Set-Cookie on a shared response";
    }
    const char *vk = NULL;
    size_t vk_len = 0;
    if (why == NULL) {
        int rc = cp_variant_key(resp, &t->client_req, &t->arena, &vk, &vk_len);
        if (rc != 0)
            why = rc == CP_VARY_STAR ? "Vary: *" : "Vary cannot be keyed";
    }
    /* What is stored is a copy: fields only the store drops (private="...", s3.1) still reach this
     * client. */
    struct http_msg *stored = why == NULL ? arena_alloc(&t->arena, sizeof(*stored)) : NULL;
    if (why == NULL && (stored == NULL || http_msg_clone(stored, resp, &t->arena) != 0 ||
                        cp_prepare_for_storage(stored, t->response_time, &t->arena) != 0))
        why = "response head too large";
    if (why != NULL) {
        METRIC_INC(&ctx->metrics, cache_not_storable);
        LOG_DEBUG(ctx->log, t->id, "%s not stored: %s", t->url, why);
        return;
    }
    t->variant = vk;
    t->variant_len = vk_len;
    t->store_resp = stored;
    int rc = store_fill_begin(ctx->cache.wc, t->response_time, on_fill_resume, t, &t->fill);
    if (rc != 0) {
        t->fill = NULL;
        METRIC_INC(&ctx->metrics, cache_store_failures);
        LOG_DEBUG(ctx->log, t->id, "%s not stored: %s", t->url,
                  rc == -EAGAIN ? "the store's writer is behind (queue at its limit)" : "out of memory");
        return;
    }
    if (resp->framing == HTTP_BODY_LENGTH)
        store_fill_expect(t->fill, resp->content_length);
    t->fill_len = 0;
    t->stored = 1;
    if (t->flight != NULL && t->flight_leader) {
        /* Publish the head to the followers and let the writer tell them, chunk by chunk, how much of
         * the body they can read from the store. The progress hook holds its own reference, dropped
         * by the writer's last call (STORE_FILL_PROGRESS_END). */
        size_t hlen = stored_head_size(stored);
        char *head = arena_alloc(&t->arena, hlen ? hlen : 1);
        if (head != NULL) {
            stored_head_write(stored, head);
            if (flight_set_head(t->flight, resp->status, head, hlen, vk, vk_len, t->request_time, t->response_time,
                                reusable_until(t, resp, t->request_time, t->response_time),
                                store_fill_body_id(t->fill), resp->framing == HTTP_BODY_LENGTH,
                                resp->content_length) == 0) {
                flight_ref(t->flight); /* the hook's own: dropped by its final call */
                store_fill_set_progress(t->fill, flight_progress, t->flight);
            }
        }
    }
}

/* ---- the response --------------------------------------------------------------------------- */

static struct http_msg *on_resp_begin(void *data, struct arena **arena)
{
    struct txn *t = data;
    txn__check(t);
    t->resp = arena_alloc(&t->arena, sizeof(*t->resp));
    *arena = &t->arena;
    return t->resp;
}

/* A response head usually arrives with its body (or all of it) in one read: written at once, the
 * head would leave as a segment of its own, one more write and one more wake-up of the client per
 * response. While the upstream parse is on the stack the head waits in the queue; the body's flush
 * or on_origin_parsed (the end of that read) sends it. */
static void flush_client_after_parse(struct txn *t)
{
    if (t->oc != NULL && t->oc->in_parse) {
        t->client_flush_due = 1;
        return;
    }
    t->client_flush_due = 0;
    outq_flush(&t->cc->out);
}

static void on_origin_parsed(void *data)
{
    struct txn *t = data;
    txn__check(t);
    if (!t->client_flush_due)
        return;
    t->client_flush_due = 0;
    if (t->cc != NULL)
        outq_flush(&t->cc->out);
}

/* The client-facing head of an upstream response: hop-by-hop fields out, framing decided for this
 * client (RFC 9112 s6.1: chunked only to HTTP/1.1; an HTTP/1.0 client gets a close-delimited body),
 * Via and Cache-Status added. */
static int send_response_head(struct txn *t, struct http_msg *resp)
{
    http_mark_hop_by_hop(resp);
    struct http_extra_field extra[5];
    size_t n = 0;
    char clen[FMT_U64_MAX + 1], via[TXN_VIA_MAX], cs[TXN_CACHE_STATUS_MAX];
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
        *fmt_u64(clen, resp->content_length) = '\0';
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
    txn__via_value(t, 1, resp->version_minor, via);
    extra[n++] = (struct http_extra_field){"Via", via};
    txn__cache_status(t, cs);
    extra[n++] = (struct http_extra_field){"Cache-Status", cs};

    char *start = txn__status_line(t, resp->status, resp->reason, resp->reason_len);
    long len = start != NULL ? txn__queue_head(&t->cc->out, start, resp, extra, n) : -1;
    if (len < 0)
        return -ENOMEM;
    flush_client_after_parse(t);
    t->bytes_out += (uint64_t)len;
    return 0;
}

static int send_interim(struct txn *t, struct http_msg *resp)
{
    /* RFC 9110 s15.2: a proxy forwards 1xx responses, except to an HTTP/1.0 client. */
    if (t->client_http10 || t->cc == NULL || t->head_sent)
        return 0;
    http_mark_hop_by_hop(resp);
    char *start = txn__status_line(t, resp->status, resp->reason, resp->reason_len);
    long len = start != NULL ? txn__queue_head(&t->cc->out, start, resp, NULL, 0) : -1;
    if (len < 0)
        return -1;
    outq_flush(&t->cc->out);
    t->bytes_out += (uint64_t)len;
    return 0;
}

/* RFC 9111 s4.3.4: a 304 refreshes the stored response it matches: merged header fields go into the
 * meta record (one small write; the body is not touched) and the client is served from the store. */
static int refresh_from_304(struct txn *t, struct http_msg *upd)
{
    struct cp_stored st = {&t->entry.resp, t->entry.meta.rec.request_time, t->entry.meta.rec.response_time,
                           t->entry.meta.rec.variant, t->entry.meta.rec.variant_len, 0, NULL};
    size_t sel;
    if (cp_select_304(upd, &st, 1, &sel) != 1)
        return 0;
    struct http_msg *merged = arena_alloc(&t->arena, sizeof(*merged));
    if (merged == NULL || cp_merge_304(&t->entry.resp, upd, t->response_time, merged, &t->arena) != 0)
        return 0;
    METRIC_INC(&t->ctx->metrics, cache_revalidated_304);
    struct meta_ticket *tk = NULL;
    if (!(t->dec.flags & CP_F_NO_STORE) && cp_storable(&t->client_req, merged, 0) == CP_STORE_OK) {
        struct store_record rec;
        tk = calloc(1, sizeof(*tk));
        if (tk != NULL) {
            tk->ctx = t->ctx;
            if (cache_record_build(&rec, t->url, t->url_len, merged, t->entry.meta.rec.variant,
                                   t->entry.meta.rec.variant_len, t->request_time, t->response_time,
                                   ctx_now_s(t->ctx), &t->arena) == 0 &&
                store_writer_update_meta(t->ctx->cache.wc, &t->entry.vkey, &rec, on_meta_updated, tk) == 0) {
                METRIC_INC(&t->ctx->metrics, cache_meta_updates);
                /* What is served now counts from this validation (RFC 9111 s4.2.3). */
                t->entry.meta.rec.request_time = t->request_time;
                t->entry.meta.rec.response_time = t->response_time;
                t->stored = 1;
            } else {
                free(tk);
                tk = NULL;
            }
        }
    }
    t->entry.resp = *merged;
    t->result = "TCP_REFRESH_UNMODIFIED";
    if (t->flight != NULL && t->flight_leader) {
        /* Followers get the refreshed head and the stored body, which is whole already. */
        size_t hlen = stored_head_size(merged);
        char *head = arena_alloc(&t->arena, hlen ? hlen : 1);
        if (head != NULL) {
            stored_head_write(merged, head);
            const struct store_record *r = &t->entry.meta.rec;
            if (flight_set_head(t->flight, r->status, head, hlen, r->variant, r->variant_len, r->request_time,
                                r->response_time, reusable_until(t, merged, r->request_time, r->response_time),
                                r->body_id, 1, r->body_len) == 0)
                flight_progress(t->flight, r->body_len);
        }
        if (tk != NULL) {
            /* Until the writer has applied the update, the store still holds the stale metadata: the
             * flight stays joinable (DONE) so that requests arriving meanwhile take this refresh while
             * it is fresh instead of revalidating again. The ticket unregisters it. */
            flight_complete(t->flight);
            tk->flight = t->flight;
            t->flight = NULL;
            t->flight_leader = 0;
        } else {
            txn__flight_end(t, FLIGHT_DONE);
        }
    }
    return 1;
}

static int stale_if_error_allows(const struct txn *t)
{
    return t->entry.found && (t->dec.flags & CP_F_STALE_IF_ERROR) && ctx_now_s(t->ctx) <= t->dec.stale_if_error_until &&
           t->cc != NULL && !t->head_sent;
}

static void serve_stale_on_error(struct txn *t, const char *why)
{
    LOG_INFO(t->ctx->log, t->id, "%s: serving the stored response (stale-if-error): %s", t->url, why);
    METRIC_INC(&t->ctx->metrics, cache_stale_served);
    t->mode = MODE_HIT;
    t->hit = 1;
    t->result = "TCP_REFRESH_FAIL_OLD";
    t->hit_ttl = t->dec.lifetime - t->dec.age;
    txn__serve_stored(t, &t->entry.resp, &t->entry.meta.rec);
}

/* RFC 9111 s4.4: a non-error response to an unsafe method invalidates the target URI and the
 * same-origin Location and Content-Location. */
static void invalidate_after_unsafe(struct txn *t, const struct http_msg *resp)
{
    struct cache *cache = t->ctx->shared->cache;
    if (cache == NULL)
        return;
    char origin[320];
    int on = snprintf(origin, sizeof(origin), "http://%s", t->authority);
    /* Our normalised URIs omit the default port: compare origins in the same form. */
    if (t->uri.port == 80)
        on = snprintf(origin, sizeof(origin), "http://%s", t->uri.host_is_ipv6 ? "" : t->uri.host);
    if (t->uri.port == 80 && t->uri.host_is_ipv6)
        on = snprintf(origin, sizeof(origin), "http://[%s]", t->uri.host);
    struct cp_uri target = {t->url, t->url_len, origin, (size_t)on};
    struct cp_uri loc[2];
    char buf[2][8192 + 300];
    const char *names[2] = {"location", "content-location"};
    int have[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        const struct http_field *f = http_msg_find(resp, names[i]);
        if (f == NULL || f->value_len == 0)
            continue;
        struct http_uri u;
        const char *why;
        int len = -1;
        if (f->value[0] == '/' && (f->value_len < 2 || f->value[1] != '/')) {
            len = snprintf(buf[i], sizeof(buf[i]), "%s%.*s", origin, (int)f->value_len, f->value);
        } else if (http_uri_parse(f->value, f->value_len, 0, &u, &why) == 0 && u.form == URI_FORM_ABSOLUTE) {
            len = http_uri_normalize(&u, buf[i], sizeof(buf[i]));
        }
        if (len <= 0 || (size_t)len >= sizeof(buf[i]))
            continue;
        const char *slash = strchr(buf[i] + 7, '/');
        size_t olen = slash ? (size_t)(slash - buf[i]) : (size_t)len;
        loc[i] = (struct cp_uri){buf[i], (size_t)len, buf[i], olen};
        have[i] = 1;
    }
    struct cp_uri out[3];
    size_t n = cp_invalidation_targets(&t->client_req, resp->status, &target, have[0] ? &loc[0] : NULL,
                                       have[1] ? &loc[1] : NULL, out);
    for (size_t i = 0; i < n; i++) {
        struct store_key pkey;
        cache_primary_key(&t->ctx->cache, out[i].uri, out[i].uri_len, &pkey);
        store_writer_delete_primary(t->ctx->cache.wc, &pkey, on_invalidated, t->ctx);
    }
}

/* RFC 9111 s4.3.5: a 200 to HEAD freshens the stored GET response whose validators it matches, or
 * makes it stale when they disagree. */
static void freshen_from_head(struct txn *t, struct http_msg *resp)
{
    if (!t->entry.found || t->ctx->shared->cache == NULL)
        return;
    enum cp_head_verdict v = cp_head_freshen(&t->entry.resp, t->entry.meta.rec.body_len, resp);
    if (v == CP_HEAD_STALE) {
        store_writer_delete_variant(t->ctx->cache.wc, &t->entry.vkey, on_store_done, t->ctx);
        return;
    }
    if (v != CP_HEAD_UPDATE)
        return;
    struct http_msg merged;
    struct store_record rec;
    if (cp_merge_304(&t->entry.resp, resp, t->response_time, &merged, &t->arena) == 0 &&
        cp_storable(&t->client_req, &merged, 0) == CP_STORE_OK &&
        cache_record_build(&rec, t->url, t->url_len, &merged, t->entry.meta.rec.variant, t->entry.meta.rec.variant_len,
                           t->request_time, t->response_time, ctx_now_s(t->ctx), &t->arena) == 0 &&
        store_writer_update_meta(t->ctx->cache.wc, &t->entry.vkey, &rec, on_store_done, t->ctx) == 0)
        METRIC_INC(&t->ctx->metrics, cache_meta_updates);
}

/* ---- a follower fetching the rest of its body ------------------------------------------------- */

/* The preconditions the client's request carried were answered by the response it is getting; the
 * Range it asked for is already laid out in its segments. None of them may travel with the resume. */
static const char *const resume_dropped[] = {"range", "if-range", "if-match", "if-none-match", "if-modified-since",
                                             "if-unmodified-since"};

/* Puts into t->req an If-Range that the response the client is getting satisfies by strong comparison:
 * its ETag, else its Last-Modified when s8.8.2.2 makes that strong (RFC 9110 s13.1.5 forbids a weak
 * validator there, and so would our own http_if_range_eval). 0, or -1 when it has no strong validator. */
static int add_strong_if_range(struct txn *t)
{
    static const char *const names[] = {"etag", "last-modified"};
    /* A leader reading its own fill got the upstream response itself; a follower, the flight's. */
    const struct http_msg *got = t->self_following ? t->resp : &t->follow_resp;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const struct http_field *f = http_msg_find(got, names[i]);
        if (f == NULL)
            continue;
        if (http_msg_add(&t->req, &t->arena, "If-Range", 8, f->value, f->value_len) != 0)
            return -1;
        if (http_if_range_eval(&t->req, got, ctx_now_s(t->ctx)) == 1)
            return 0;
        http_msg_remove(&t->req, "if-range");
    }
    return -1;
}

int txn__follow_resume(struct txn *t)
{
    const char *why = NULL;
    const struct serve_seg *s = t->seg_i < t->n_segs ? &t->segs[t->seg_i] : NULL;
    if (t->cc == NULL)
        return -1;
    if (t->oc != NULL && !t->self_following)
        why = "an upstream exchange is still running";
    else if (t->client_req.method != HTTP_METHOD_GET || t->is_head)
        why = "not a GET";
    else if (!t->serving || s == NULL || s->bytes != NULL || t->seg_i + 1 != t->n_segs)
        why = "several ranges (multipart/byteranges) are not resumed";
    if (why == NULL) {
        t->resume_first = s->off + t->seg_done;
        t->resume_last = t->serve_open ? UINT64_MAX : s->off + s->len - 1;
        if (http_msg_clone(&t->req, &t->client_req, &t->arena) != 0) {
            why = "out of memory";
        } else {
            for (size_t i = 0; i < sizeof(resume_dropped) / sizeof(resume_dropped[0]); i++)
                http_msg_remove(&t->req, resume_dropped[i]);
            char range[2 * FMT_U64_MAX + 16], *p = fmt_str(range, "bytes=", 6);
            p = fmt_u64(p, t->resume_first);
            *p++ = '-';
            if (t->resume_last != UINT64_MAX)
                p = fmt_u64(p, t->resume_last);
            *p = '\0';
            if (add_strong_if_range(t) != 0)
                why = "the response has no strong validator (RFC 9110 s13.1.5)";
            else if (http_msg_add(&t->req, &t->arena, "Range", 5, range, (size_t)(p - range)) != 0)
                why = "out of memory";
        }
    }
    if (why != NULL) {
        LOG_WARN(t->ctx->log, t->id, "%s: shared fetch ended mid-body and the rest cannot be fetched: %s", t->url, why);
        return -1;
    }
    LOG_INFO(t->ctx->log, t->id, "%s: shared fetch ended mid-body: fetching bytes from %" PRIu64 " ourselves", t->url,
             t->resume_first);
    METRIC_INC(&t->ctx->metrics, flight_resumes);
    if (t->oc != NULL) {
        /* A leader reading its own fill while the rest still arrives: that stream only fed the fill
         * that has just been given up, and the bytes its client needs next went by already. */
        struct origin_conn *oc = t->oc;
        t->oc = NULL;
        origin_close(oc);
    }
    txn__follow_stop(t);
    t->self_following = 0;
    t->client_discard = 0; /* a leader that read its own fill: the upstream body is the client's again */
    t->serving = 0;
    t->resuming = 1;
    t->resume_got = 0;
    t->mode = MODE_PASS;
    t->collapsed = 0;
    t->req_forwarding = 0;
    t->req_sent = 0;
    t->retried = 0;
    t->fwd_status = 0;
    t->out = t->serve_chunked ? OUT_CHUNKED : t->serve_open ? OUT_CLOSE : OUT_LENGTH;
    txn__dial(t);
    return 0;
}

/* The head of the answer to a resume: only a 206 for exactly the bytes asked for continues the
 * client's response (RFC 9110 s14.4: a Content-Range that does not fit must not be recombined).
 * Anything else (a 200 says the representation changed: If-Range) ends the client's connection. */
static int resume_head(struct txn *t, struct http_msg *resp)
{
    const char *why = NULL;
    struct http_content_range cr;
    const struct http_field *f = http_msg_find(resp, "content-range");
    if (resp->status != 206)
        why = resp->status == 200 ? "the representation changed (200 to If-Range)" : "the upstream did not answer 206";
    else if (f == NULL || http_content_range_parse(f->value, f->value_len, &cr) != 0 || cr.unsatisfied)
        why = "206 without a usable Content-Range";
    else if (cr.first != t->resume_first || (t->resume_last != UINT64_MAX && cr.last != t->resume_last))
        why = "206 for other bytes than asked";
    else if (resp->framing == HTTP_BODY_LENGTH && resp->content_length != cr.last - cr.first + 1)
        why = "206 whose length contradicts its Content-Range";
    if (why != NULL) {
        LOG_WARN(t->ctx->log, t->id, "%s: resuming from byte %" PRIu64 " failed: %s", t->url, t->resume_first, why);
        t->result = "TCP_MISS_ABORTED";
        return -1; /* on_origin_fail closes the client: it has part of the response */
    }
    if (t->resume_last == UINT64_MAX)
        t->resume_last = cr.last; /* the object's end, as the origin knows it now */
    t->head_sent = 1;
    return 0;
}

static int on_resp_head(void *data, struct http_msg *resp)
{
    struct txn *t = data;
    txn__check(t);
    if (resp->status < 200) {
        if (resp->status == 101)
            return -1; /* larder never forwards Upgrade, so a switch is a protocol error */
        t->in_interim = 1;
        return send_interim(t, resp);
    }
    t->in_interim = 0;
    t->response_time = ctx_now_s(t->ctx);
    t->fwd_status = resp->status;
    if (t->via_parent && resp->status == 407) {
        /* RFC 9110 s15.5.8: the parent wants credentials from us, its client. Passing the 407 on
         * would ask our client for them (and its Proxy-Authenticate is hop-by-hop): a 502 says what
         * is wrong, through on_origin_fail like any unusable upstream answer. */
        t->parent_refused = 1;
        return -1;
    }
    if (t->resuming)
        return resume_head(t, resp);
    if (t->cc == NULL)
        t->status = resp->status; /* a background exchange logs what the origin said */

    if (t->mode == MODE_REVALIDATE) {
        if (resp->status == 304) {
            if (!refresh_from_304(t, resp))
                t->refetch = 1; /* it matched nothing we hold: ask again without validators */
            return 0;           /* a 304 has no body; on_resp_done serves the client */
        }
        if (resp->status >= 500 && stale_if_error_allows(t)) {
            /* RFC 5861 s4: the error is not passed on; the stored response is. */
            char why[64];
            snprintf(why, sizeof(why), "upstream answered %d", resp->status);
            struct origin_conn *oc = t->oc;
            t->oc = NULL;
            origin_close(oc);
            txn__flight_end(t, FLIGHT_FAILED);
            serve_stale_on_error(t, why);
            return -1;
        }
        METRIC_INC(&t->ctx->metrics, cache_refresh_modified);
        t->result = "TCP_REFRESH_MODIFIED";
    }
    if (t->req.method != HTTP_METHOD_GET && t->req.method != HTTP_METHOD_HEAD)
        invalidate_after_unsafe(t, resp);
    if (t->is_head && resp->status == 200)
        freshen_from_head(t, resp);
    const struct http_field *ct = http_msg_find(resp, "content-type");
    if (ct != NULL)
        fmt_copy_cut(t->content_type, sizeof(t->content_type), ct->value, ct->value_len);
    if (t->is_head)
        resp->framing = HTTP_BODY_NONE;
    maybe_begin_fill(t, resp);
    if (t->fill == NULL)
        txn__flight_end(t, FLIGHT_NOT_SHARED); /* followers fetch for themselves */
    if (t->cc != NULL) {
        t->status = resp->status;
        /* The client's own preconditions, against the response it is getting (RFC 9111 s4.3.2). */
        if ((t->mode == MODE_REVALIDATE || t->mode == MODE_MISS) && resp->status == 200 && t->stored &&
            cp_eval_conditionals(&t->client_req, resp, t->response_time, t->response_time) == CP_COND_NOT_MODIFIED) {
            t->client_discard = 1;
            txn__serve_not_modified(t, resp);
        } else if (send_response_head(t, resp) != 0) {
            return -1;
        }
    }
    t->head_sent = 1;
    return t->is_head ? HTTP_PARSE_CB_NO_BODY : 0;
}

static int on_resp_body(void *data, const char *at, size_t len)
{
    struct txn *t = data;
    txn__check(t);
    struct buf_block *blk = t->oc->cur_blk;
    fill_append(t, blk, at, len);
    if (t->cc == NULL || t->client_discard)
        return 0;
    if (t->resuming) {
        /* Never more than the Content-Range said (a chunked 206 is not bounded by its framing). */
        if (len > t->resume_last - t->resume_first + 1 - t->resume_got)
            return -1;
        t->resume_got += len;
    }
    struct outq *q = &t->cc->out;
    int rc = 0;
    if (t->out == OUT_CHUNKED)
        rc = txn__push_chunk_size(q, len);
    if (rc == 0)
        rc = outq_push_block(q, blk, at, len);
    if (rc == 0 && t->out == OUT_CHUNKED)
        rc = outq_push_static(q, "\r\n", 2);
    if (rc != 0)
        return -1;
    t->bytes_out += len;
    t->client_body_sent += len;
    t->client_flush_due = 0;
    outq_flush(q);
    /* Back-pressure (DESIGN.md habit 8): never read the origin faster than this client drains. When
     * others follow this fetch, a slow client must not hold them back: it goes on from the store at its
     * own pace instead, and only the writer paces the origin. Without followers it is simply paused:
     * reading from the store would tie this client to the fill, and a fill can fail (disk full) where
     * a direct stream would not. */
    if (outq_over_high(q) &&
        !(t->flight != NULL && flight_has_followers(t->flight) && txn__follow_own_fill(t) == 0)) {
        origin_pause_read(t->oc);
        txn__leader_park(t); /* a follower arriving later switches it then */
    }
    return 0;
}

static int on_resp_done(void *data, struct http_msg *trailers)
{
    struct txn *t = data;
    txn__check(t);
    if (t->in_interim) {
        t->in_interim = 0; /* the final response follows on the same connection */
        return 0;
    }
    if (t->resuming && t->resume_got != t->resume_last - t->resume_first + 1)
        return -1; /* a 206 that ended short: the client's response cannot end well */
    int reusable = t->resp->keep_alive && t->resp->framing != HTTP_BODY_EOF && t->req_sent;
    struct origin_conn *oc = t->oc;
    t->oc = NULL;
    origin_release(oc, reusable);

    if (t->mode == MODE_REVALIDATE && t->fwd_status == 304) {
        if (t->refetch) {
            /* RFC 9111 s4.3.4: a 304 that selects nothing cannot be used; fetch the full response. */
            t->refetch = 0;
            t->mode = MODE_MISS;
            t->req_forwarding = 0;
            if (http_msg_clone(&t->req, &t->client_req, &t->arena) != 0) {
                txn__reply_error(t, 500, "out of memory");
                return 0;
            }
            http_msg_remove(&t->req, "if-none-match");
            http_msg_remove(&t->req, "if-modified-since");
            t->fwd_status = 0;
            txn__dial(t);
            return 0;
        }
        if (t->cc == NULL) {
            t->resp_complete = 1;
            txn__maybe_finish(t);
            return 0;
        }
        t->mode = MODE_HIT;
        txn__serve_stored(t, &t->entry.resp, &t->entry.meta.rec);
        return 0;
    }
    if (t->fill != NULL) {
        if (t->n_pend > 0)
            t->commit_pending = 1;
        else
            fill_commit(t);
    }
    if (t->cc != NULL && !t->client_discard && t->out == OUT_CHUNKED) {
        if (push_last_chunk(&t->cc->out, trailers) != 0)
            return -1;
        t->bytes_out += 5;
        t->client_flush_due = 1;
    }
    if (t->client_flush_due && t->cc != NULL) /* the head, or the last chunk, of this read */
        flush_client_after_parse(t);
    if (t->out == OUT_CLOSE)
        t->client_ka = 0;
    if (t->following) {
        /* The client reads the rest from the store; serving it ends the transaction. */
        txn__follow_pump(t);
        return 0;
    }
    t->resp_complete = 1;
    txn__maybe_finish(t);
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
    txn__check(t);
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
        idempotent(t->req.method) && t->req.framing == HTTP_BODY_NONE && (!t->head_sent || t->resuming)) {
        t->retried = 1;
        t->req_forwarding = 0;
        METRIC_INC(&ctx->metrics, upstream_retries);
        LOG_DEBUG(ctx->log, t->id, "retrying %s on a fresh connection: reused connection failed (%s)", t->url, reason);
        t->oc = dial_next_hop(t);
        if (t->oc != NULL)
            return;
    }
    /* A body that did not arrive whole is never stored (RFC 9111 s3.3). */
    txn__fill_abort(t);
    txn__flight_end(t, FLIGHT_FAILED);
    int status = 502;
    char msg[640], name_buf[CONFIG_PARENT_NAME_MAX];
    const char *name = upstream_name(t, name_buf, sizeof(name_buf));
    switch (err) {
    case ORIGIN_ERR_DNS:
        METRIC_INC(&ctx->metrics, errors_dns);
        status = detail == RESOLVER_ETIMEOUT ? 504 : 502;
        snprintf(msg, sizeof(msg), "%s for %s%s", reason, t->via_parent ? "parent proxy " : "",
                 t->via_parent ? ctx->cfg->parent_host : t->uri.host);
        break;
    case ORIGIN_ERR_CONNECT:
        METRIC_INC(&ctx->metrics, errors_connect);
        snprintf(msg, sizeof(msg), "cannot connect to %s: %s", name, detail == UV_ECONNREFUSED ? "connection refused" : reason);
        break;
    case ORIGIN_ERR_CONNECT_TIMEOUT:
        METRIC_INC(&ctx->metrics, errors_timeout);
        status = 504;
        snprintf(msg, sizeof(msg), "connect timeout to %s", name);
        break;
    case ORIGIN_ERR_FIRST_BYTE_TIMEOUT:
    case ORIGIN_ERR_IDLE_TIMEOUT:
        METRIC_INC(&ctx->metrics, errors_timeout);
        status = 504;
        snprintf(msg, sizeof(msg), "upstream timeout from %s (%s)", name, reason);
        break;
    case ORIGIN_ERR_PROTOCOL:
        METRIC_INC(&ctx->metrics, errors_upstream_response);
        if (t->parent_refused)
            snprintf(msg, sizeof(msg), "%s refused the request: 407 Proxy Authentication Required (parent_proxy_auth %s)",
                     name, ctx->cfg->parent_auth != NULL ? "was not accepted" : "is not set");
        else
            snprintf(msg, sizeof(msg), "invalid upstream response from %s: %s", name, reason);
        break;
    case ORIGIN_ERR_RESET:
    case ORIGIN_ERR_WRITE:
    default:
        METRIC_INC(&ctx->metrics, errors_upstream_response);
        snprintf(msg, sizeof(msg), "upstream %s failed: %s", name, reason);
        break;
    }
    if (t->cc == NULL) {
        LOG_INFO(ctx->log, t->id, "%s %s (no client): %s", t->req.method_name, t->url, msg);
        txn_free(t);
        return;
    }
    if (t->mode == MODE_REVALIDATE && stale_if_error_allows(t)) {
        serve_stale_on_error(t, msg);
        return;
    }
    if (t->head_sent) {
        /* The client has part of the response: closing is the only honest signal (RFC 9112 s8). */
        LOG_WARN(ctx->log, t->id, "%s: response cut short: %s", t->url, msg);
        t->result = "TCP_MISS_ABORTED";
        client_conn_close(t->cc); /* calls txn_client_gone, which logs and frees t */
        return;
    }
    LOG_WARN(ctx->log, t->id, "%s %s: %d %s", t->req.method_name, t->url, status, msg);
    t->req_forwarding = 0;
    t->fwd_status = 0;
    txn__reply_error(t, status, msg);
}

static void on_origin_drain(void *data)
{
    struct txn *t = data;
    txn__check(t);
    if (t->cc != NULL && !t->req_complete)
        client_conn_resume(t->cc);
}

static const struct origin_handler origin_cb = {
    .on_connected = on_origin_connected,
    .on_fail = on_origin_fail,
    .parse = {on_resp_begin, on_resp_head, on_resp_body, on_resp_done},
    .on_drain = on_origin_drain,
    .on_parsed = on_origin_parsed,
};
