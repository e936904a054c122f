/* The store's writer thread: one pthread, one queue, group commit.
 *
 * Event-loop threads never write LMDB (a commit fsyncs). They queue operations here; the writer thread
 * takes everything queued (up to a batch limit) and applies it with one store_apply(), i.e. one write
 * transaction per wakeup, then reports each operation's status. After each batch, and in time no batch
 * wants (idle, or waiting out the commit pacing), it runs store_filter_step() while the store's key
 * filter needs building. store/ knows no event loop: completions
 * are delivered through a per-loop client:
 *
 *   store_wclient_new(w, notify, arg)  one per event loop. `notify(arg)` is called ON THE WRITER THREAD,
 *                                      at most once per batch, when completions for this client are
 *                                      waiting; the proxy passes a wrapper around uv_async_send(). It
 *                                      runs under the client's lock: it must not call into the store.
 *   store_wclient_drain(c)             called by that loop (in its async callback): runs the waiting
 *                                      completions, in order, on the loop's own thread.
 *
 * Every operation that returns 0 calls its `done(data, status)` exactly once, from drain, with 0 or a
 * negative code (done may be NULL: fire and forget). An operation that returns an error never calls it.
 *
 * FILLS. store_fill_begin() allocates a body_id at once (no I/O) and returns a fill handle owned by the
 * calling loop: append/commit/abort must come from one thread. store_fill_append() COPIES the bytes into
 * the fill's 256 KiB staging chunk; each full chunk is handed over (ownership transferred, no second
 * copy) to the queue as a PUT_CHUNK. store_fill_commit() hands over the last, partial chunk together
 * with the encoded meta record, so the final chunk and the meta are written in the same transaction and
 * the object appears whole or not at all. The record is encoded at the call, so it may point into the
 * caller's arena. After commit or abort the handle is gone: do not touch it again.
 *
 * BACK-PRESSURE. The queue is bounded in bytes (queue_limit, counting chunk data and records). When it is
 * at or over the limit, store_fill_append() consumes nothing and returns -EAGAIN: the proxy stops reading
 * the upstream, keeps the bytes it holds, and waits. Once the writer has drained the queue below half
 * the limit, it queues the fill's `on_resume(data, 0)` (or the fill's error, if it failed meanwhile); the
 * proxy then appends the same bytes again and reads on. Only appends are refused: commit, abort,
 * update_meta and deletes are always accepted (they are small and bounded by the number of requests),
 * so a transaction can always finish. One append may overshoot the limit by its own length plus a chunk.
 * on_resume is never called after the fill's commit or abort has been called.
 *
 * ERRORS of a fill are sticky: once a chunk write failed (STORE_EFULL, STORE_ETOOBIG, ...), every later
 * append returns that error, commit returns it (and aborts), and the store has already reclaimed the
 * chunks. The proxy keeps streaming to its clients and simply does not cache the object.
 */
#ifndef LARDER_STORE_WRITER_H
#define LARDER_STORE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct store_writer;
struct store_wclient;
struct store_fill;

typedef void (*store_wnotify_fn)(void *arg);
typedef void (*store_wdone_fn)(void *data, int status);

struct store_writer_config {
    size_t queue_limit;     /* bytes; 0: 64 MiB */
    size_t queue_max_ops;   /* operations; 0: 16384. Fills do not start beyond either limit */
    size_t batch_max_ops;   /* ops per write transaction; 0: 4096 */
    size_t batch_max_bytes; /* chunk and record bytes per write transaction; 0: 32 MiB */
    int commit_interval_us; /* under load, batches start at most this often; 0: 100000, < 0: no pacing */
    int start_paused;       /* tests: queue without writing until store_writer_set_paused(w, 0) */
};

/* Starts the writer thread for s; s must outlive the writer. 0 or a negative code. */
int store_writer_new(struct store_writer **out, struct store *s, const struct store_writer_config *cfg);
/* Writes everything still queued, stops and joins the thread, then aborts (synchronously) any fill
 * never committed nor aborted and frees it. Clients still need store_wclient_drain/free afterwards. */
void store_writer_free(struct store_writer *w);
/* Test hook: a paused writer finishes its current batch, then leaves the queue alone. */
void store_writer_set_paused(struct store_writer *w, int paused);

int store_wclient_new(struct store_writer *w, store_wnotify_fn notify, void *arg, struct store_wclient **out);
/* Runs waiting completions on the calling thread; returns how many ran. */
size_t store_wclient_drain(struct store_wclient *c);
/* Drops completions not yet drained without running them. Only when none of this client's operations
 * is still queued and none of its fills is open: after store_writer_free(), or once every done callback
 * has run. */
void store_wclient_free(struct store_wclient *c);

/* ---- fills -------------------------------------------------------------------------------------- */

/* now: the fill's start time (kept in the `pending` table). on_resume may be NULL if the caller never
 * waits on -EAGAIN. 0, -ENOMEM, or -EAGAIN when the queue is at its limit in bytes or in operations
 * (queue_max_ops): the writer is behind and the object is not to be stored. */
int store_fill_begin(struct store_wclient *c, int64_t now, store_wdone_fn on_resume, void *data, struct store_fill **out);
/* The body's announced length (Content-Length), if known: the staging chunk is then sized for it. A
 * hint only: more or fewer bytes are still handled (commit checks the length it is given). */
void store_fill_expect(struct store_fill *f, uint64_t length);
uint64_t store_fill_body_id(const struct store_fill *f);

/* Optional, right after store_fill_begin() and before the first append: fn(arg, n) is called ON THE
 * WRITER THREAD after each write transaction that committed chunks of this fill, with n the number of
 * leading body bytes now readable with store_body_read() (the object itself stays invisible until its
 * commit). Lets other clients stream an object while it is being filled. Once the fill's commit or
 * abort has been applied (whatever the path, including a commit refused for a sticky error, or the
 * writer shutting down), fn is called one last time with STORE_FILL_PROGRESS_END and never again: the
 * place to drop whatever arg holds. fn must be thread-safe and must not call into the store. */
#define STORE_FILL_PROGRESS_END UINT64_MAX
typedef void (*store_fill_progress_fn)(void *arg, uint64_t readable_bytes);
void store_fill_set_progress(struct store_fill *f, store_fill_progress_fn fn, void *arg);
/* Bytes appended so far. */
uint64_t store_fill_length(const struct store_fill *f);
/* 0 (all len bytes copied), -EAGAIN (nothing consumed: wait for on_resume), STORE_ETOOBIG, or the fill's
 * sticky error. */
int store_fill_append(struct store_fill *f, const void *data, size_t len);
/* Publishes the object under (pkey, vkey) with rec (its body_len must equal the bytes appended; body_id,
 * n_chunks and complete are filled in by the store). Consumes f. 0: done will report the outcome;
 * otherwise (sticky error, STORE_ESHORT on a length mismatch, -EINVAL for a record that cannot be
 * encoded) the fill has been aborted and done will not be called. */
int store_fill_commit(struct store_fill *f, const struct store_key *pkey, const struct store_key *vkey,
                      const struct store_record *rec, store_wdone_fn done, void *data);
/* Abandons the fill and deletes what it wrote. Consumes f. Always 0. */
int store_fill_abort(struct store_fill *f, store_wdone_fn done, void *data);

/* ---- other writes ------------------------------------------------------------------------------- */

/* 304 refresh: rewrite the meta record of vkey only (RFC 9111 s4.3.4); see STORE_OP_UPDATE_META. */
int store_writer_update_meta(struct store_wclient *c, const struct store_key *vkey, const struct store_record *rec,
                             store_wdone_fn done, void *data);
int store_writer_delete_variant(struct store_wclient *c, const struct store_key *vkey, store_wdone_fn done, void *data);
/* Every variant of a URL: RFC 9111 s4.4 invalidation. */
int store_writer_delete_primary(struct store_wclient *c, const struct store_key *pkey, store_wdone_fn done, void *data);
/* store_note_hit(), and a wake-up of the writer when the hit table is half full (no write queued). */
void store_writer_note_hit(struct store_writer *w, const struct store_key *vkey);

struct store_writer_stats {
    uint64_t batches;       /* store_apply() calls, i.e. group commits */
    uint64_t ops;           /* operations applied */
    uint64_t max_batch_ops; /* largest batch */
    uint64_t eagain;        /* appends refused for back-pressure */
    uint64_t begins_refused; /* fills not started: the queue was at its limit */
    uint64_t resumes;       /* on_resume callbacks queued */
    uint64_t queued_bytes;  /* now */
};
void store_writer_stats_get(struct store_writer *w, struct store_writer_stats *out);

#endif
