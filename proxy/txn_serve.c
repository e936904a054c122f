/* Answering from the store: a fresh hit, a response refreshed by a 304, a stale one (stale-if-error,
 * stale-while-revalidate), and responses that follow another transaction's fetch (single flight),
 * which are streamed from the store while the writer is still committing them. The client's own
 * conditionals (RFC 9110 s13) and Range (s14) are evaluated here; the body is read one stored chunk
 * per short read transaction, and only while the client's write queue is below its high-water mark. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_fmt.h"
#include "http/http_range.h"
#include "http/http_write.h"
#include "http/stored_head.h"
#include "proxy/txn_internal.h"

/* Bytes offered to the socket per writev straight from the map, and views (stored chunks) per writev. */
#define SERVE_BATCH ((size_t)1 << 20)
#define SERVE_MAX_VIEWS 8
/* When the socket is full, the part of the rest that is copied and queued to learn when it has room. */
#define SERVE_TAIL_COPY ((size_t)16 << 10)

/* Fields of a stored response never copied into a response from the store: Age is recomputed
 * (RFC 9111 s4.2.3, s5.1); framing is ours. */
static int skip_stored_field(const struct txn *t, const struct http_field *f)
{
    if (http_name_eq(f->name, f->name_len, "age") || http_name_eq(f->name, f->name_len, "content-length") ||
        http_name_eq(f->name, f->name_len, "content-range") || http_name_eq(f->name, f->name_len, "transfer-encoding"))
        return 1;
    /* RFC 9111 s5.2.2.4: no-cache="field" lets the response be reused without those fields. */
    if ((t->dec.flags & CP_F_STRIP) && http_cc_list_has(&t->dec.strip, f->name, f->name_len))
        return 1;
    return 0;
}

/* Status line, the stored fields that apply, then ours. Returns the bytes queued or -1. */
static long send_head(struct txn *t, int status, const struct http_msg *resp, const struct http_extra_field *extra,
                      size_t n_extra, int only_304_fields)
{
    struct http_msg view;
    if (http_msg_clone(&view, resp, &t->arena) != 0)
        return -1;
    for (size_t i = 0; i < view.n_fields; i++) {
        struct http_field *f = &view.fields[i];
        if (skip_stored_field(t, f) || (only_304_fields && !cp_304_keeps(resp, f)))
            f->flags |= HTTP_FIELD_REMOVED;
    }
    struct http_extra_field ex[12];
    size_t n = 0;
    for (size_t i = 0; i < n_extra && n < 6; i++)
        ex[n++] = extra[i];
    char age[FMT_U64_MAX + 2], via[TXN_VIA_MAX], cs[TXN_CACHE_STATUS_MAX];
    const struct cp_resp_summary *sum = t->serve_summary;
    int64_t a = sum != NULL ? cp_age_formula(sum->age_value, sum->date_value, t->serve_request_time, t->serve_response_time,
                                             ctx_now_s(t->ctx))
                            : cp_current_age(resp, t->serve_request_time, t->serve_response_time, ctx_now_s(t->ctx));
    *fmt_i64(age, a) = '\0';
    ex[n++] = (struct http_extra_field){"Age", age};
    if (!t->client_ka)
        ex[n++] = (struct http_extra_field){"Connection", "close"};
    else if (t->client_http10)
        ex[n++] = (struct http_extra_field){"Connection", "keep-alive"};
    txn__via_value(t, 1, 1, via);
    ex[n++] = (struct http_extra_field){"Via", via};
    txn__cache_status(t, cs);
    ex[n++] = (struct http_extra_field){"Cache-Status", cs};
    const char *reason = http_reason_phrase(status);
    char *start = txn__status_line(t, status, reason, strlen(reason));
    long len = start != NULL ? txn__queue_head(&t->cc->out, start, &view, ex, n) : -1;
    if (len < 0)
        return -1;
    t->status = status;
    t->head_sent = 1;
    t->bytes_out += len;
    return (long)len;
}

static void finish_serving(struct txn *t)
{
    t->serving = 0;
    t->resp_complete = 1;
    if (t->following)
        txn__follow_stop(t);
    if (t->cc != NULL)
        outq_flush(&t->cc->out);
    txn__maybe_finish(t);
}

/* A 304 to the client made from a stored (or just received) response: RFC 9110 s15.4.5 says which
 * fields it carries. */
void txn__serve_not_modified(struct txn *t, const struct http_msg *resp)
{
    METRIC_INC(&t->ctx->metrics, cache_client_304);
    if (t->hit)
        t->result = "TCP_IMS_HIT";
    send_head(t, 304, resp, NULL, 0, 1);
    if (t->mode == MODE_HIT || t->following)
        finish_serving(t);
    else
        outq_flush(&t->cc->out);
}

/* A stored body chunk that could not be read: the response is under way, so the only honest signal
 * is to close (RFC 9112 s8: an incomplete message is not passed off as complete). Frees t. */
static void serve_read_failed(struct txn *t, uint64_t off, int rc)
{
    /* STORE_EGONE: replaced or evicted under us. */
    LOG_WARN(t->ctx->log, t->id, "%s: stored body unreadable at %" PRIu64 ": %s", t->url, off,
             rc ? store_strerror(rc) : "short read");
    METRIC_INC(&t->ctx->metrics, cache_read_errors);
    t->result = "TCP_HIT_ABORTED";
    client_conn_close(t->cc);
}

/* Queues a copy of len bytes of the views starting at byte `from` of the batch (the part the socket
 * did not take). 0, or -1 when out of memory. */
static int queue_copy(struct txn *t, struct outq *q, const uv_buf_t *iov, size_t from, size_t len)
{
    size_t i = 0;
    while (from >= iov[i].len) {
        from -= iov[i].len;
        i++;
    }
    while (len > 0) {
        struct buf_block *b = buf_pool_get(&t->ctx->big_bufs);
        if (b == NULL)
            return -1;
        size_t n = 0;
        while (len > 0 && n < b->size) {
            size_t take = iov[i].len - from;
            if (take > len)
                take = len;
            if (take > b->size - n)
                take = b->size - n;
            memcpy(b->data + n, iov[i].base + from, take);
            n += take;
            from += take;
            len -= take;
            if (from == iov[i].len) {
                from = 0;
                i++;
            }
        }
        outq_push_block(q, b, b->data, n);
        buf_unref(b);
    }
    return 0;
}

/* Writes the planned segments while the client's socket takes them. Stored bytes go from the LMDB map
 * straight into the socket (one writev of up to SERVE_BATCH bytes, under a read snapshot held only for
 * this call): no copy in larder for a client that keeps up. When the socket fills, a copy of at most
 * SERVE_TAIL_COPY bytes is queued and the pump resumes on drain. */
void txn__serve_pump(struct txn *t)
{
    struct proxy_ctx *ctx = t->ctx;
    if (t->cc == NULL) {
        t->serving = 0;
        return;
    }
    struct outq *q = &t->cc->out;
    struct store_rtxn *r = ctx->cache.rtxn;
    int own_snapshot = 0;
    while (t->seg_i < t->n_segs) {
        struct serve_seg *s = &t->segs[t->seg_i];
        if (s->bytes != NULL) {
            outq_push_copy(q, s->bytes, s->len);
            t->bytes_out += s->len;
            t->seg_i++;
            continue;
        }
        if (t->seg_done == s->len) { /* an empty body */
            t->seg_i++;
            t->seg_done = 0;
            continue;
        }
        uint64_t off = s->off + t->seg_done;
        if (off >= t->serve_limit)
            break; /* not in the store yet: the flight wakes us when the writer has committed more */
        if (q->inflight != NULL || outq_bytes(q) >= SERVE_BATCH) {
            outq_want_drain(q); /* resumed by txn_client_drained */
            break;
        }
        /* A snapshot already open (the request's lookup) is used and left to its owner. */
        if (r != NULL && !store_rtxn_active(r)) {
            if (store_rtxn_renew(r) != 0)
                r = NULL;
            else
                own_snapshot = 1;
        }
        if (r == NULL) {
            serve_read_failed(t, off, STORE_EGONE);
            return;
        }
        /* Views of consecutive chunks of this segment, in one snapshot. */
        uv_buf_t iov[SERVE_MAX_VIEWS];
        size_t n_iov = 0, viewed = 0;
        uint64_t left = s->len - t->seg_done;
        if (left > t->serve_limit - off)
            left = t->serve_limit - off;
        int rc = 0;
        while (n_iov < SERVE_MAX_VIEWS && viewed < left && viewed < SERVE_BATCH) {
            const void *p;
            size_t got;
            uint64_t want = left - viewed;
            if (want > SERVE_BATCH - viewed)
                want = SERVE_BATCH - viewed;
            rc = store_body_view(r, t->serve_body_id, off + viewed, (size_t)want, &p, &got);
            if (rc != 0 || got == 0)
                break;
            iov[n_iov++] = uv_buf_init((char *)p, (unsigned)got);
            viewed += got;
        }
        if (viewed == 0) {
            if (own_snapshot)
                store_rtxn_reset(r);
            serve_read_failed(t, off, rc);
            return;
        }
        if (t->serve_chunked)
            txn__push_chunk_size(q, viewed);
        long wrote = outq_write_direct(q, iov, n_iov);
        if (wrote < 0) {
            if (own_snapshot)
                store_rtxn_reset(r);
            client_conn_close(t->cc); /* the client is gone; frees t */
            return;
        }
        size_t sent = (size_t)wrote;
        if (sent < viewed) {
            /* The socket is full. Queue a copy of a little of the rest: its write completing says there
             * is room again, and the pump goes on from the map. A chunk whose size line is out must be
             * completed, so chunked bodies queue the whole rest of the batch. */
            size_t copy = viewed - sent;
            if (!t->serve_chunked && copy > SERVE_TAIL_COPY)
                copy = SERVE_TAIL_COPY;
            if (queue_copy(t, q, iov, sent, copy) != 0) {
                if (own_snapshot)
                    store_rtxn_reset(r);
                client_conn_close(t->cc); /* out of memory; frees t */
                return;
            }
            sent += copy;
            METRIC_ADD(&ctx->metrics, cache_body_bytes_copied, copy);
            outq_flush(q);
        }
        if (t->serve_chunked)
            outq_push_static(q, "\r\n", 2);
        store_body_view_used(r, sent);
        METRIC_ADD(&ctx->metrics, cache_body_bytes_served, sent);
        t->bytes_out += sent;
        t->seg_done += sent;
        if (t->seg_done == s->len) {
            t->seg_i++;
            t->seg_done = 0;
        }
    }
    if (own_snapshot)
        store_rtxn_reset(r);
    if (t->seg_i == t->n_segs && t->serve_chunked) {
        outq_push_static(q, "0\r\n\r\n", 5);
        t->serve_chunked = 0;
    }
    outq_flush(q);
    if (t->seg_i == t->n_segs)
        finish_serving(t);
}

static int add_seg(struct txn *t, const char *bytes, uint64_t off, uint64_t len)
{
    if (t->n_segs % 8 == 0) {
        struct serve_seg *n = arena_alloc(&t->arena, (t->n_segs + 8) * sizeof(*n));
        if (n == NULL)
            return -1;
        if (t->n_segs)
            memcpy(n, t->segs, t->n_segs * sizeof(*n));
        t->segs = n;
    }
    t->segs[t->n_segs++] = (struct serve_seg){bytes, off, len};
    return 0;
}

/* Sends the head for a response from the store and lays out the body as segments.
 * length_known 0: the object is still arriving and its length is unknown; the body goes out chunked
 * (HTTP/1.1) or close-delimited (HTTP/1.0), and Range is not evaluated (RFC 9110 s14.2: MAY ignore). */
static void serve_plan(struct txn *t, struct http_msg *resp, uint64_t body_id, int length_known, uint64_t length,
                       int64_t response_time)
{
    int64_t now = ctx_now_s(t->ctx);
    const struct http_field *ct = http_msg_find(resp, "content-type");
    if (ct != NULL)
        fmt_copy_cut(t->content_type, sizeof(t->content_type), ct->value, ct->value_len);
    /* RFC 9110 s13.2.2: preconditions first (only for 200, RFC 9111 s4.3.2), then Range. */
    if (resp->status == 200 && cp_eval_conditionals(&t->client_req, resp, response_time, now) == CP_COND_NOT_MODIFIED) {
        txn__serve_not_modified(t, resp);
        return;
    }
    t->serve_body_id = body_id;
    t->n_segs = t->seg_i = 0;
    t->seg_done = 0;
    struct http_range_set set;
    enum http_range_status rs = (resp->status == 200 && length_known)
                                    ? http_range_for_request(&t->client_req, resp, length, now, &set)
                                    : HTTP_RANGE_FULL;
    struct http_extra_field ex[4];
    size_t n = 0;
    char clen[32], crange[96];
    int status = resp->status;
    uint64_t body_bytes = 0;
    if (rs == HTTP_RANGE_UNSATISFIABLE) {
        status = 416;
        http_content_range_format_unsatisfied(crange, sizeof(crange), length);
        ex[n++] = (struct http_extra_field){"Content-Range", crange};
        ex[n++] = (struct http_extra_field){"Content-Length", "0"};
    } else if (rs == HTTP_RANGE_PARTIAL && set.n == 1) {
        status = 206;
        METRIC_INC(&t->ctx->metrics, cache_range_hits);
        http_content_range_format(crange, sizeof(crange), &set.r[0], length);
        body_bytes = set.r[0].last - set.r[0].first + 1;
        *fmt_u64(clen, body_bytes) = '\0';
        ex[n++] = (struct http_extra_field){"Content-Range", crange};
        ex[n++] = (struct http_extra_field){"Content-Length", clen};
        add_seg(t, NULL, set.r[0].first, body_bytes);
    } else if (rs == HTTP_RANGE_PARTIAL) {
        /* RFC 9110 s14.6: several ranges as multipart/byteranges. */
        status = 206;
        METRIC_INC(&t->ctx->metrics, cache_range_hits);
        char *boundary = arena_printf(&t->arena, "larder-%016" PRIx64, t->id ^ (uint64_t)now);
        char *ctype = arena_printf(&t->arena, "multipart/byteranges; boundary=%s", boundary ? boundary : "x");
        if (boundary == NULL || ctype == NULL) {
            txn__reply_error(t, 500, "out of memory");
            return;
        }
        for (size_t i = 0; i < set.n; i++) {
            char cr[96];
            http_content_range_format(cr, sizeof(cr), &set.r[i], length);
            char *part = arena_printf(&t->arena, "%s--%s\r\n%s%.*s%sContent-Range: %s\r\n\r\n", i ? "\r\n" : "",
                                      boundary, ct ? "Content-Type: " : "", ct ? (int)ct->value_len : 0,
                                      ct ? ct->value : "", ct ? "\r\n" : "", cr);
            uint64_t len = set.r[i].last - set.r[i].first + 1;
            if (part == NULL || add_seg(t, part, 0, strlen(part)) != 0 || add_seg(t, NULL, set.r[i].first, len) != 0) {
                txn__reply_error(t, 500, "out of memory");
                return;
            }
            body_bytes += strlen(part) + len;
        }
        char *end = arena_printf(&t->arena, "\r\n--%s--\r\n", boundary);
        if (end == NULL || add_seg(t, end, 0, strlen(end)) != 0) {
            txn__reply_error(t, 500, "out of memory");
            return;
        }
        body_bytes += strlen(end);
        *fmt_u64(clen, body_bytes) = '\0';
        ex[n++] = (struct http_extra_field){"Content-Type", ctype};
        ex[n++] = (struct http_extra_field){"Content-Length", clen};
        /* The stored Content-Type describes the parts, not the multipart body. */
        for (size_t i = 0; i < resp->n_fields; i++)
            if (http_name_eq(resp->fields[i].name, resp->fields[i].name_len, "content-type"))
                resp->fields[i].flags |= HTTP_FIELD_REMOVED;
    } else if (length_known) {
        if (status != 204 && status != 304) {
            *fmt_u64(clen, length) = '\0';
            ex[n++] = (struct http_extra_field){"Content-Length", clen};
        }
        add_seg(t, NULL, 0, length);
    } else {
        /* Still arriving, length unknown: RFC 9112 s6.1 chunked for HTTP/1.1, close-delimited for 1.0. */
        if (t->client_http10) {
            t->client_ka = 0;
        } else {
            ex[n++] = (struct http_extra_field){"Transfer-Encoding", "chunked"};
            t->serve_chunked = 1;
        }
        t->serve_open = 1;
        add_seg(t, NULL, 0, UINT64_MAX);
    }
    if (send_head(t, status, resp, ex, n, 0) < 0) {
        client_conn_close(t->cc);
        return;
    }
    if (t->is_head || status == 416) {
        t->n_segs = 0;
        t->serve_chunked = 0;
        finish_serving(t);
        return;
    }
    t->serving = 1;
    txn__serve_pump(t);
}

void txn__serve_stored(struct txn *t, struct http_msg *resp, const struct store_record *rec)
{
    if (t->cc == NULL) {
        t->resp_complete = 1;
        txn__maybe_finish(t);
        return;
    }
    t->serve_limit = UINT64_MAX;
    t->serve_request_time = rec->request_time;
    t->serve_response_time = rec->response_time;
    /* The summary describes the stored head as stored; a merged or other head gets none. */
    t->serve_summary = resp == &t->entry.resp && rec == &t->entry.meta.rec ? t->entry.summary : NULL;
    serve_plan(t, resp, rec->body_id, 1, rec->body_len, rec->response_time);
}

/* ---- single flight: following another transaction's fetch ------------------------------------- */

void txn__flight_wake(void *arg)
{
    uv_async_send(arg); /* any thread: only wake the loop */
}


void txn__leader_park(struct txn *t)
{
    if (!list_empty(&t->pause_link) || t->flight == NULL || !t->flight_leader || t->fill == NULL)
        return;
    list_insert_tail(&t->ctx->paused_leaders, &t->pause_link);
    flight_set_leader_wake(t->flight, txn__flight_wake, &t->ctx->flight_wakeup);
}

void txn__leader_unpark(struct txn *t)
{
    if (list_empty(&t->pause_link))
        return;
    list_remove(&t->pause_link);
    if (t->flight != NULL)
        flight_set_leader_wake(t->flight, NULL, NULL);
}

void txn__follow_start(struct txn *t, struct flight *f)
{
    struct proxy_ctx *ctx = t->ctx;
    t->follow_flight = f;
    t->following = 1;
    t->mode = MODE_HIT;
    list_insert_tail(&ctx->followers, &t->follow_link);
    METRIC_INC(&ctx->metrics, flight_followers);
    if (flight_watch(f, txn__flight_wake, &ctx->flight_wakeup) != 0) {
        txn__follow_stop(t);
        txn__reply_error(t, 500, "out of memory");
        return;
    }
    txn__follow_pump(t);
}

void txn__follow_stop(struct txn *t)
{
    if (!t->following)
        return;
    t->following = 0;
    list_remove(&t->follow_link);
    flight_unwatch(t->follow_flight, &t->ctx->flight_wakeup);
    flight_release(t->follow_flight);
    t->follow_flight = NULL;
}

int txn__follow_own_fill(struct txn *t)
{
    /* Only for an object of known length, which fits the store (the fill began): one whose size
     * turns out too large mid-way would be aborted with this client's next bytes only in the store. */
    if (t->cc == NULL || t->fill == NULL || t->flight == NULL || !t->flight_leader || t->following || t->is_head ||
        t->resp->framing != HTTP_BODY_LENGTH)
        return -1;
    struct proxy_ctx *ctx = t->ctx;
    /* From now on the upstream body goes only to the store; the client continues from where it is,
     * reading what the writer has committed, as any follower does. */
    t->client_discard = 1;
    t->serve_body_id = store_fill_body_id(t->fill);
    t->serve_limit = 0;
    t->n_segs = t->seg_i = 0;
    t->seg_done = 0;
    uint64_t off = t->client_body_sent;
    add_seg(t, NULL, off, t->resp->content_length - off);
    t->serve_chunked = 0;
    t->serving = 1;
    flight_ref(t->flight);
    t->follow_flight = t->flight;
    t->following = 1;
    t->self_following = 1;
    list_insert_tail(&ctx->followers, &t->follow_link);
    METRIC_INC(&ctx->metrics, flight_self_follow);
    if (flight_watch(t->follow_flight, txn__flight_wake, &ctx->flight_wakeup) != 0) {
        txn__follow_stop(t);
        return -1;
    }
    return 0;
}

/* The flight cannot serve us (its response is not shared, selects another variant, or it failed
 * before we sent anything): fetch on our own, as if no one else had asked. */
static void follow_fallback(struct txn *t, const char *why)
{
    LOG_DEBUG(t->ctx->log, t->id, "%s: not following the shared fetch: %s", t->url, why);
    METRIC_INC(&t->ctx->metrics, flight_fallbacks);
    txn__follow_stop(t);
    t->mode = MODE_MISS;
    t->hit = 0;
    t->collapsed = 0;
    t->fwd = "uri-miss";
    txn__dial(t);
}

void txn__follow_pump(struct txn *t)
{
    /* The flight's readable count comes from commits that may be newer than a read snapshot still
     * open from the request's lookup: read with fresh transactions from here on. */
    if (t->ctx->cache.rtxn != NULL)
        store_rtxn_reset(t->ctx->cache.rtxn);
    struct flight_view v;
    flight_view(t->follow_flight, &v);
    if (t->cc == NULL)
        return;
    switch (v.state) {
    case FLIGHT_FETCHING:
        return;
    case FLIGHT_FAILED:
        if (!t->head_sent && v.upstream_done) {
            /* The origin answered in full; it was the store that could not keep the response. */
            follow_fallback(t, "the shared response could not be stored");
            return;
        }
        if (!t->head_sent) {
            if (t->entry.found && (t->dec.flags & CP_F_STALE_IF_ERROR) && ctx_now_s(t->ctx) <= t->dec.stale_if_error_until) {
                txn__follow_stop(t);
                METRIC_INC(&t->ctx->metrics, cache_stale_served);
                t->hit = 1;
                t->result = "TCP_REFRESH_FAIL_OLD";
                txn__serve_stored(t, &t->entry.resp, &t->entry.meta.rec);
                return;
            }
            txn__follow_stop(t);
            t->fwd = "uri-miss";
            txn__reply_error(t, 502, "the shared upstream fetch for this URL failed");
            return;
        }
        /* The origin answered in full but the store lost it: the rest can still come from the origin.
         * An upstream that failed mid-body has failed every client of the flight alike. */
        if (v.upstream_done && txn__follow_resume(t) == 0)
            return;
        LOG_WARN(t->ctx->log, t->id, "%s: shared fetch failed mid-body: closing", t->url);
        t->result = "TCP_MISS_ABORTED";
        client_conn_close(t->cc);
        return;
    case FLIGHT_NOT_SHARED:
        if (!t->head_sent) {
            follow_fallback(t, "the response is not shareable");
            return;
        }
        /* The response turned out not to be storable after the client had part of it (larger than
         * max_object_size, or the store failed): the origin is still there for the rest. */
        if (txn__follow_resume(t) == 0)
            return;
        t->result = "TCP_MISS_ABORTED";
        client_conn_close(t->cc);
        return;
    case FLIGHT_STREAMING:
        /* Arriving after the download: wait the moment until the commit (flight_upstream_done). */
        if (!t->head_sent && !t->serving && v.upstream_done)
            return;
        break;
    case FLIGHT_DONE:
        break;
    }
    if (!t->head_sent && !t->serving) {
        if (stored_head_parse(v.head, v.head_len, v.status, &t->arena, &t->follow_resp) != 0) {
            follow_fallback(t, "unreadable head");
            return;
        }
        if (!cp_vary_matches(&t->follow_resp, v.variant, v.variant_len, &t->client_req)) {
            follow_fallback(t, "another variant (Vary)");
            return;
        }
        t->serve_limit = v.readable;
        t->serve_request_time = v.request_time;
        t->serve_response_time = v.response_time;
        t->serve_summary = NULL;
        t->fwd_status = v.status;
        /* A refresh that kept the stored body was a 304; a new body means the entry was modified. */
        if (t->entry.found)
            t->result = v.body_id == t->entry.meta.rec.body_id ? "TCP_REFRESH_UNMODIFIED" : "TCP_REFRESH_MODIFIED";
        else
            t->result = "TCP_MISS";
        serve_plan(t, &t->follow_resp, v.body_id, v.length_known, v.length, v.response_time);
        return; /* serve_plan pumped once; further progress comes through wake-ups */
    }
    if (!t->serving)
        return;
    t->serve_limit = v.readable;
    if (t->serve_open && v.state == FLIGHT_DONE && v.length_known) {
        /* The object is whole: the open segment now has an end. */
        struct serve_seg *s = &t->segs[t->n_segs - 1];
        s->len = v.length - s->off;
        t->serve_open = 0;
    }
    txn__serve_pump(t);
}
