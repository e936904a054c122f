/* Output queue of one stream: spans of reference-counted blocks, written with at most one uv_write
 * in flight (DESIGN.md habit 8: the producer sends more only after "proceed").
 *
 * Producers push spans and call outq_flush(); everything pending goes out in one writev. The owner
 * watches outq_bytes() against its high-water mark, stops reading its source above it and resumes
 * in on_drain, which fires once the queue falls to the low-water mark after having been above
 * the high-water mark. That is what bounds memory per connection whatever the peers' speeds.
 *
 * Small framing bytes (chunk-size lines, generated heads) are copied into a scratch block owned
 * by the queue.
 *
 * Ownership: embedded in its connection; outq_init() before use. The stream must outlive every
 * write: libuv calls write callbacks (with UV_ECANCELED if need be) before the stream's close
 * callback, and the connection frees itself only there.
 */
#ifndef LARDER_PROXY_OUTQ_H
#define LARDER_PROXY_OUTQ_H

#include <stddef.h>
#include <uv.h>

#include "proxy/buf.h"

#define OUTQ_MAX_IOV 64
#define OUTQ_SCRATCH_SIZE 4096

struct outq_span {
    struct buf_block *blk; /* referenced, or NULL for static bytes */
    const char *ptr;
    size_t len;
};

struct outq_write;

struct outq {
    uv_stream_t *stream;
    struct buf_pool *pool;
    struct outq_span *pending; /* ring-less vector: spans not yet handed to libuv */
    size_t n_pending, cap_pending;
    struct outq_write *inflight; /* at most one */
    struct buf_block *scratch;   /* for copied bytes */
    struct buf_block *reserved;  /* between outq_reserve and outq_commit */
    struct buf_pool *scratch_pool; /* OUTQ_SCRATCH_SIZE blocks for the scratch; NULL: malloc */
    size_t bytes;                /* pending + in flight */
    size_t high_water, low_water;
    int above_high;              /* went above high water: on_drain is due at low water */
    int want_empty;              /* the owner waits for on_empty: writes go through a callback */
    int failed;                  /* sticky: a write failed; later pushes are dropped */
    void *data;
    /* All queued bytes are written (or dropped after a failure) and the queue fell below low water. */
    void (*on_drain)(void *data);
    /* A write failed (peer reset, EPIPE). Called once. */
    void (*on_error)(void *data, int status);
    /* Everything queued so far has reached the kernel, after outq_want_empty(). Optional. */
    void (*on_empty)(void *data);
};

void outq_init(struct outq *q, uv_stream_t *stream, struct buf_pool *pool, size_t high_water, void *data);
/* Drops pending spans (references released). An in-flight write completes or is cancelled by libuv. */
void outq_discard(struct outq *q);

/* Queue a span of a block (takes a new reference). 0 or -ENOMEM. */
int outq_push_block(struct outq *q, struct buf_block *blk, const char *ptr, size_t len);
/* Queue bytes that live forever (string literals). */
int outq_push_static(struct outq *q, const char *ptr, size_t len);
/* Queue a copy of these bytes. */
int outq_push_copy(struct outq *q, const void *ptr, size_t len);
/* Room to build up to len bytes in place (a response head), queued by outq_commit(q, at, n) with
 * n <= len; nothing else may be pushed in between. NULL when out of memory. */
char *outq_reserve(struct outq *q, size_t len);
int outq_commit(struct outq *q, const char *at, size_t len);
/* Start a write of everything pending if none is in flight. */
void outq_flush(struct outq *q);

/* Zero-copy path for bytes that must not outlive the call (a read snapshot of the store's map): one
 * non-blocking writev (uv_try_write) of everything pending followed by the caller's n buffers. Only
 * when no write is in flight; the caller's bytes go only after all pending ones. Returns how many of
 * the caller's bytes the kernel took: 0 when a write is in flight or the socket is full, fewer than
 * offered when it filled up. What was not taken stays the caller's to queue (usually a copy of a
 * small part, whose write completing then signals room again: see outq_want_drain). A negative libuv
 * error when the peer is gone: the queue is failed, and on_error is not called, since the caller is in
 * the middle of its own work and handles the error itself. */
long outq_write_direct(struct outq *q, const uv_buf_t *bufs, size_t n);
/* Asks for on_drain once the queue falls to low water, even if it never went above high water. */
static inline void outq_want_drain(struct outq *q)
{
    q->above_high = 1;
}

/* Asks for on_empty when what is queued has been written. Without it, outq_flush may write everything
 * at once and no callback follows (the owner checks outq_idle() when it needs to know). */
static inline void outq_want_empty(struct outq *q)
{
    q->want_empty = 1;
}

static inline size_t outq_bytes(const struct outq *q)
{
    return q->bytes;
}
static inline int outq_over_high(const struct outq *q)
{
    return q->bytes > q->high_water;
}
static inline int outq_idle(const struct outq *q)
{
    return q->bytes == 0 && q->inflight == NULL;
}

#endif
