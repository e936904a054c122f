#include "proxy/outq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH_SIZE OUTQ_SCRATCH_SIZE

struct outq_write {
    uv_write_t req;
    struct outq *q;
    size_t n;
    size_t bytes;
    uv_buf_t bufs[OUTQ_MAX_IOV];
    struct buf_block *blks[OUTQ_MAX_IOV];
};

void outq_init(struct outq *q, uv_stream_t *stream, struct buf_pool *pool, size_t high_water, void *data)
{
    memset(q, 0, sizeof(*q));
    q->stream = stream;
    q->pool = pool;
    q->high_water = high_water;
    q->low_water = high_water / 4;
    q->data = data;
}

static void release_pending(struct outq *q)
{
    for (size_t i = 0; i < q->n_pending; i++) {
        q->bytes -= q->pending[i].len;
        if (q->pending[i].blk)
            buf_unref(q->pending[i].blk);
    }
    q->n_pending = 0;
}

void outq_discard(struct outq *q)
{
    release_pending(q);
    free(q->pending);
    q->pending = NULL;
    q->cap_pending = 0;
    if (q->scratch) {
        buf_unref(q->scratch);
        q->scratch = NULL;
    }
    q->failed = 1;
}

static int push(struct outq *q, struct buf_block *blk, const char *ptr, size_t len)
{
    if (q->failed)
        return 0; /* the peer is gone: the bytes have nowhere to go */
    if (len == 0)
        return 0;
    /* Extend the previous span when this one continues it in the same block (common for framing). */
    if (q->n_pending > 0) {
        struct outq_span *last = &q->pending[q->n_pending - 1];
        if (last->blk == blk && blk != NULL && last->ptr + last->len == ptr) {
            last->len += len;
            q->bytes += len;
            return 0;
        }
    }
    if (q->n_pending == q->cap_pending) {
        size_t cap = q->cap_pending ? q->cap_pending * 2 : 16;
        struct outq_span *n = realloc(q->pending, cap * sizeof(*n));
        if (n == NULL)
            return -ENOMEM;
        q->pending = n;
        q->cap_pending = cap;
    }
    if (blk)
        buf_ref(blk);
    q->pending[q->n_pending++] = (struct outq_span){blk, ptr, len};
    q->bytes += len;
    if (q->bytes > q->high_water)
        q->above_high = 1;
    return 0;
}

int outq_push_block(struct outq *q, struct buf_block *blk, const char *ptr, size_t len)
{
    return push(q, blk, ptr, len);
}

int outq_push_static(struct outq *q, const char *ptr, size_t len)
{
    return push(q, NULL, ptr, len);
}

/* Room for len bytes: at the end of the scratch block when they fit in half of one, else in a block of
 * their own (generated heads with many fields). Returns the block (a reference the caller releases
 * through outq_commit) and where to write, or NULL. */
static struct buf_block *room(struct outq *q, size_t len, char **at)
{
    if (len > SCRATCH_SIZE / 2) {
        struct buf_block *b = buf_new(len);
        if (b != NULL)
            *at = b->data;
        return b;
    }
    struct buf_block *s = q->scratch;
    if (s == NULL || SCRATCH_SIZE - s->used < len) {
        if (s)
            buf_unref(s);
        s = q->scratch = q->scratch_pool != NULL ? buf_pool_get(q->scratch_pool) : buf_new(SCRATCH_SIZE);
        if (s == NULL)
            return NULL;
        s->used = 0;
    }
    *at = s->data + s->used;
    buf_ref(s);
    return s;
}

char *outq_reserve(struct outq *q, size_t len)
{
    char *at = NULL;
    q->reserved = room(q, len, &at);
    return q->reserved != NULL ? at : NULL;
}

int outq_commit(struct outq *q, const char *at, size_t len)
{
    struct buf_block *b = q->reserved;
    q->reserved = NULL;
    if (b == q->scratch)
        b->used = (uint32_t)(at + len - b->data);
    int rc = q->failed ? 0 : push(q, b, at, len);
    buf_unref(b);
    return rc;
}

int outq_push_copy(struct outq *q, const void *ptr, size_t len)
{
    if (q->failed)
        return 0;
    char *at = outq_reserve(q, len);
    if (at == NULL)
        return -ENOMEM;
    memcpy(at, ptr, len);
    return outq_commit(q, at, len);
}

/* Nothing is queued or in flight: the scratch block goes back to its pool. Kept, it would hold 4 KiB
 * per idle keep-alive connection (40 MiB for 10,000 of them). */
static void release_scratch_if_idle(struct outq *q)
{
    if (q->scratch != NULL && q->inflight == NULL && q->n_pending == 0 && q->reserved == NULL) {
        buf_unref(q->scratch);
        q->scratch = NULL;
    }
}

static void on_write(uv_write_t *req, int status);

/* A function, not a constant: in sanitizer builds the cap is 0 and the comparison must stay quiet. */
static size_t spare_writes_max(void)
{
    return LARDER_POOL(64);
}

static struct outq_write *write_get(struct buf_pool *p)
{
    if (p->spare_writes == NULL)
        return malloc(sizeof(struct outq_write));
    struct outq_write *w = p->spare_writes;
    p->spare_writes = *(void **)w;
    p->n_spare_writes--;
    return w;
}

static void write_put(struct buf_pool *p, struct outq_write *w)
{
    if (p->n_spare_writes >= spare_writes_max()) {
        free(w);
        return;
    }
    *(void **)w = p->spare_writes;
    p->spare_writes = w;
    p->n_spare_writes++;
}

/* The kernel took `done` bytes from the front of the pending spans: release what is fully written and
 * trim the first span that is not. Returns the bytes beyond the pending ones (the caller's own). */
static size_t consume_pending(struct outq *q, size_t done)
{
    size_t used = 0;
    while (used < q->n_pending && done >= q->pending[used].len) {
        struct outq_span *sp = &q->pending[used++];
        done -= sp->len;
        q->bytes -= sp->len;
        if (sp->blk)
            buf_unref(sp->blk);
    }
    if (used < q->n_pending && done > 0) {
        struct outq_span *sp = &q->pending[used];
        sp->ptr += done;
        sp->len -= done;
        q->bytes -= done;
        done = 0;
    }
    memmove(q->pending, q->pending + used, (q->n_pending - used) * sizeof(*q->pending));
    q->n_pending -= used;
    return done;
}

/* Pending spans as an iovec, up to OUTQ_MAX_IOV; returns the count. */
static size_t pending_iov(const struct outq *q, uv_buf_t *iov)
{
    size_t k = 0;
    while (k < q->n_pending && k < OUTQ_MAX_IOV) {
        iov[k] = uv_buf_init((char *)q->pending[k].ptr, (unsigned)q->pending[k].len);
        k++;
    }
    return k;
}

void outq_flush(struct outq *q)
{
    if (q->inflight != NULL || q->n_pending == 0 || q->failed)
        return;
    if (!q->above_high && !q->want_empty) {
        /* Most responses fit in the socket buffer: one writev now, without a write request. Besides the
         * request, that saves libuv's completion step, which re-arms the socket in epoll (an epoll_ctl
         * per response). Not when on_drain or on_empty is due: they must come from a callback, never
         * from inside the producer's push. Errors go the uv_write way below, which reports them asynchronously
         * too, for the same reason. */
        uv_buf_t iov[OUTQ_MAX_IOV];
        size_t k = pending_iov(q, iov);
        int rc = uv_try_write(q->stream, iov, (unsigned)k);
        if (rc > 0)
            consume_pending(q, (size_t)rc);
        if (q->n_pending == 0) {
            release_scratch_if_idle(q);
            return;
        }
    }
    struct outq_write *w = write_get(q->pool);
    if (w == NULL) {
        q->failed = 1;
        if (q->on_error)
            q->on_error(q->data, UV_ENOMEM);
        return;
    }
    w->q = q;
    size_t n = q->n_pending < OUTQ_MAX_IOV ? q->n_pending : OUTQ_MAX_IOV;
    w->n = n;
    w->bytes = 0;
    for (size_t i = 0; i < n; i++) {
        w->bufs[i] = uv_buf_init((char *)q->pending[i].ptr, (unsigned)q->pending[i].len);
        w->blks[i] = q->pending[i].blk;
        w->bytes += q->pending[i].len;
    }
    memmove(q->pending, q->pending + n, (q->n_pending - n) * sizeof(*q->pending));
    q->n_pending -= n;
    q->inflight = w;
    int rc = uv_write(&w->req, q->stream, w->bufs, (unsigned)n, on_write);
    if (rc != 0) {
        /* The request never started: no callback will come. Report through the error path on the
         * next turn is not needed; do it now, the caller is prepared for on_error at any push. */
        q->inflight = NULL;
        for (size_t i = 0; i < n; i++)
            if (w->blks[i])
                buf_unref(w->blks[i]);
        q->bytes -= w->bytes;
        write_put(q->pool, w);
        q->failed = 1;
        release_pending(q);
        if (q->on_error)
            q->on_error(q->data, rc);
    }
}

long outq_write_direct(struct outq *q, const uv_buf_t *bufs, size_t n)
{
    if (q->failed)
        return UV_EPIPE;
    if (q->inflight != NULL)
        return 0;
    uv_buf_t iov[OUTQ_MAX_IOV];
    size_t k = pending_iov(q, iov);
    /* The caller's bytes may only follow every pending one. */
    size_t mine = 0;
    if (k == q->n_pending)
        for (size_t i = 0; i < n && k < OUTQ_MAX_IOV; i++)
            iov[k++] = bufs[mine++];
    if (k == 0)
        return 0;
    int rc = uv_try_write(q->stream, iov, (unsigned)k);
    if (rc == UV_EAGAIN)
        return 0;
    if (rc < 0) {
        q->failed = 1;
        release_pending(q);
        return rc;
    }
    size_t done = consume_pending(q, (size_t)rc);
    release_scratch_if_idle(q);
    return mine > 0 ? (long)done : 0;
}

static void on_write(uv_write_t *req, int status)
{
    struct outq_write *w = (struct outq_write *)req;
    struct outq *q = w->q;
    for (size_t i = 0; i < w->n; i++)
        if (w->blks[i])
            buf_unref(w->blks[i]);
    q->bytes -= w->bytes;
    q->inflight = NULL;
    write_put(q->pool, w);
    if (status != 0) {
        if (!q->failed) {
            q->failed = 1;
            release_pending(q);
            if (q->on_error)
                q->on_error(q->data, status);
        }
        return;
    }
    if (q->failed)
        return;
    if (q->n_pending > 0)
        outq_flush(q);
    if (q->above_high && q->bytes <= q->low_water) {
        q->above_high = 0;
        if (q->on_drain)
            q->on_drain(q->data);
    }
    /* on_drain may have pushed more and flushed; report empty only when truly nothing is left. */
    if (q->inflight == NULL && q->n_pending == 0 && !q->failed) {
        release_scratch_if_idle(q);
        if (q->on_empty)
            q->on_empty(q->data);
    }
}
