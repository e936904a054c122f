/* The writer thread; the protocol is described in store_writer.h.
 *
 * Locks: w->lock guards the op queue, queued_bytes, the waiter list and the live-fill list; c->lock
 * guards one client's completion list. When both are taken, w->lock comes first. That order is what
 * makes "on_resume is never called after commit/abort" hold: the writer queues resume events while
 * holding w->lock, and commit/abort withdraw a fill from the waiters and from its client's list under
 * the same lock.
 *
 * Memory: a queued op (struct wop) owns its chunk and record buffers; the writer frees them as soon as
 * the batch is applied. An op with a done callback carries its completion event inside itself and is
 * freed by store_wclient_drain() after the callback; others are freed by the writer. A fill is freed
 * by the writer after its commit or abort was applied (all its chunks are ahead of it in the queue).
 */
#include "store/store_writer.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_QUEUE_LIMIT ((size_t)64 << 20)
#define DEFAULT_QUEUE_OPS 16384
#define DEFAULT_BATCH_OPS 4096
#define DEFAULT_BATCH_BYTES ((size_t)32 << 20)
#define DEFAULT_COMMIT_INTERVAL_US 100000
#define WOP_OVERHEAD 128 /* bytes accounted per queued op on top of its buffers */

#define container_of_(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

enum ev_kind { EV_DONE = 1, EV_RESUME };

struct wevent {
    struct wevent *next;
    store_wdone_fn fn;
    void *data;
    int status;
    int kind;
};

struct wop {
    struct wop *next;
    struct store_op op;
    void *chunk; /* owned chunk bytes (PUT_CHUNK, COMMIT's last chunk) */
    void *rec;   /* owned encoded record (COMMIT, UPDATE_META) */
    size_t bytes;
    struct store_fill *fill; /* PUT_CHUNK, COMMIT, ABORT of a fill */
    struct store_wclient *c;
    struct wevent ev; /* the completion; fn NULL: none */
    int skip;         /* writer thread: not applied, ev.status already set */
};

struct store_wclient {
    struct store_writer *w;
    store_wnotify_fn notify;
    void *arg;
    pthread_mutex_t lock;
    struct wevent *head, **tail;
    size_t n_events;
    /* writer thread only: this batch's completions, spliced into the list above in one go */
    int touched;
    struct store_wclient *touched_next;
    struct wevent *batch_head, **batch_tail;
    size_t batch_n;
    size_t batch_ops; /* ops of this client retired in this batch, with or without a completion */
    /* Ops queued for this client and not yet retired by the writer (under lock). store_wclient_free()
     * waits for it to reach zero, so the writer never touches a freed client. */
    size_t pending;
    int closing; /* store_wclient_free() began: completions are no longer announced */
    pthread_cond_t idle;
};

struct store_fill {
    struct store_writer *w;
    struct store_wclient *c;
    uint64_t body_id;
    int64_t now;
    uint8_t *stage;
    size_t stage_len;
    size_t stage_cap;   /* STORE_CHUNK_SIZE, or less for the last chunk of a body of known length */
    uint64_t expect;    /* store_fill_expect: the body's announced length; 0 unknown */
    uint32_t next_chunk;
    uint64_t appended;
    int err; /* sticky; written by either thread with __atomic */
    store_wdone_fn on_resume;
    void *data;
    /* Optional: told on the writer thread how many leading body bytes are committed (readable). */
    store_fill_progress_fn progress;
    void *progress_arg;
    uint64_t committed; /* writer thread */
    struct wop *final; /* preallocated, so commit and abort cannot fail to queue */
    /* under w->lock */
    int waiting;
    struct store_fill *wait_next;
    struct store_fill *live_prev, *live_next;
    /* under c->lock */
    int resume_queued;
    struct wevent resume_ev;
};

struct store_writer {
    struct store *s;
    pthread_t thread;
    size_t limit, limit_ops, batch_ops, batch_bytes;
    uint64_t interval_ns; /* group commit pacing; 0: none */
    uint64_t last_start;  /* writer thread: CLOCK_MONOTONIC ns when the last batch began */
    size_t queued_ops;
    struct store_op *ops; /* writer thread: the batch handed to store_apply */
    struct wop **batch;   /* writer thread */

    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct wop *head, **tail;
    size_t queued_bytes;
    int stop, paused, kick;
    int maintain; /* store_filter_step() has more to do */
    enum { SLEEP_NONE, SLEEP_IDLE, SLEEP_PACING } sleep; /* what the writer thread waits for */
    struct store_fill *waiters;
    struct store_fill *live;
    struct store_writer_stats st;
};

static int fill_err(const struct store_fill *f)
{
    return __atomic_load_n(&f->err, __ATOMIC_ACQUIRE);
}

static void fill_set_err(struct store_fill *f, int err)
{
    int zero = 0;
    __atomic_compare_exchange_n(&f->err, &zero, err, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
}

/* c->lock held. */
static void ev_push(struct store_wclient *c, struct wevent *e)
{
    e->next = NULL;
    *c->tail = e;
    c->tail = &e->next;
    c->n_events++;
}

/* c->lock held. */
static void ev_unlink(struct store_wclient *c, struct wevent *e)
{
    for (struct wevent **pp = &c->head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            if (c->tail == &e->next) c->tail = pp;
            c->n_events--;
            return;
        }
    }
}

static void enqueue(struct store_writer *w, struct wop *op)
{
    op->next = NULL;
    if (op->c != NULL) {
        pthread_mutex_lock(&op->c->lock);
        op->c->pending++;
        pthread_mutex_unlock(&op->c->lock);
    }
    pthread_mutex_lock(&w->lock);
    *w->tail = op;
    w->tail = &op->next;
    w->queued_bytes += op->bytes;
    w->queued_ops++;
    /* Wake the writer only when it sleeps for want of work, or when its paced wait should end early
     * (a full batch is here). While it runs a batch or paces, it looks at the queue by itself; a wake-up
     * per op would be a futex call and, on a shared core, a context switch per op. */
    if (w->sleep == SLEEP_IDLE ||
        (w->sleep == SLEEP_PACING && (w->queued_ops >= w->batch_ops || w->queued_bytes >= w->batch_bytes)))
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static struct wop *wop_new(struct store_wclient *c, enum store_op_kind kind, store_wdone_fn done, void *data)
{
    struct wop *op = calloc(1, sizeof(*op));
    if (op == NULL) return NULL;
    op->op.kind = kind;
    op->c = c;
    op->ev = (struct wevent){.fn = done, .data = data, .kind = EV_DONE};
    op->bytes = WOP_OVERHEAD;
    return op;
}

static void wop_free(struct wop *op)
{
    free(op->chunk);
    free(op->rec);
    free(op);
}

/* ---- the writer thread ------------------------------------------------------------------------ */

static void touch(struct store_wclient *c, struct store_wclient **touched)
{
    if (!c->touched) {
        c->touched = 1;
        c->touched_next = *touched;
        c->batch_head = NULL;
        c->batch_tail = &c->batch_head;
        c->batch_n = 0;
        c->batch_ops = 0;
        *touched = c;
    }
}

/* w->lock held. Removes f from the waiter list. */
static void waiters_remove(struct store_writer *w, struct store_fill *f)
{
    if (!f->waiting) return;
    for (struct store_fill **pp = &w->waiters; *pp != NULL; pp = &(*pp)->wait_next) {
        if (*pp == f) {
            *pp = f->wait_next;
            break;
        }
    }
    f->waiting = 0;
}

/* w->lock held. */
static void live_remove(struct store_writer *w, struct store_fill *f)
{
    if (f->live_prev != NULL)
        f->live_prev->live_next = f->live_next;
    else
        w->live = f->live_next;
    if (f->live_next != NULL) f->live_next->live_prev = f->live_prev;
}

static int is_terminal(const struct wop *op)
{
    return op->fill != NULL && (op->op.kind == STORE_OP_COMMIT || op->op.kind == STORE_OP_ABORT);
}

/* Applies one batch (w->lock not held) and reports its results. */
static void run_batch(struct store_writer *w, size_t n, size_t bytes)
{
    size_t n_apply = 0;
    for (size_t i = 0; i < n; i++) {
        struct wop *op = w->batch[i];
        op->skip = 0;
        /* A fill that already failed writes nothing more; its chunks were reclaimed by the store. */
        if (op->fill != NULL && op->op.kind != STORE_OP_ABORT && fill_err(op->fill) != 0) {
            op->skip = 1;
            op->ev.status = fill_err(op->fill);
            continue;
        }
        w->ops[n_apply++] = op->op;
    }
    (void)store_apply(w->s, w->ops, n_apply);

    struct store_wclient *touched = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        struct wop *op = w->batch[i];
        if (!op->skip) op->ev.status = w->ops[k++].status;
        if (op->fill != NULL && op->op.kind != STORE_OP_ABORT && op->ev.status < 0) fill_set_err(op->fill, op->ev.status);
        if (op->fill != NULL && op->ev.status == 0 && op->op.data != NULL &&
            (op->op.kind == STORE_OP_PUT_CHUNK || op->op.kind == STORE_OP_COMMIT)) {
            /* The transaction is committed: these bytes are readable by any new read transaction. */
            op->fill->committed += op->op.len;
            if (op->fill->progress != NULL)
                op->fill->progress(op->fill->progress_arg, op->fill->committed);
        }
        free(op->chunk);
        free(op->rec);
        op->chunk = op->rec = NULL;
    }

    pthread_mutex_lock(&w->lock);
    w->queued_bytes -= bytes;
    w->queued_ops -= n;
    w->st.batches++;
    w->st.ops += n;
    if (n > w->st.max_batch_ops) w->st.max_batch_ops = n;
    /* Finished fills leave the waiter and live lists before any resume is queued below. */
    for (size_t i = 0; i < n; i++) {
        if (is_terminal(w->batch[i])) {
            waiters_remove(w, w->batch[i]->fill);
            live_remove(w, w->batch[i]->fill);
        }
    }
    if (w->queued_bytes < w->limit / 2) {
        while (w->waiters != NULL) {
            struct store_fill *f = w->waiters;
            w->waiters = f->wait_next;
            f->waiting = 0;
            pthread_mutex_lock(&f->c->lock);
            if (!f->resume_queued) {
                f->resume_queued = 1;
                f->resume_ev = (struct wevent){.fn = f->on_resume, .data = f->data, .status = fill_err(f), .kind = EV_RESUME};
                ev_push(f->c, &f->resume_ev);
                touch(f->c, &touched);
                w->st.resumes++;
            }
            pthread_mutex_unlock(&f->c->lock);
        }
    }
    pthread_mutex_unlock(&w->lock);

    for (size_t i = 0; i < n; i++) {
        struct wop *op = w->batch[i];
        struct store_fill *f = is_terminal(op) ? op->fill : NULL;
        struct store_wclient *c = op->c;
        if (c != NULL) {
            touch(c, &touched);
            c->batch_ops++;
        }
        if (op->ev.fn != NULL) {
            op->ev.next = NULL;
            *c->batch_tail = &op->ev;
            c->batch_tail = &op->ev.next;
            c->batch_n++;
        } else {
            wop_free(op);
        }
        if (f != NULL) {
            if (f->progress != NULL)
                f->progress(f->progress_arg, STORE_FILL_PROGRESS_END);
            free(f->stage);
            free(f);
        }
    }
    /* Publish each client's completions and notify it under its lock. After the unlock this thread
     * never looks at the client again: once its last completion has run, the loop may free it. */
    while (touched != NULL) {
        struct store_wclient *c = touched;
        pthread_mutex_lock(&c->lock);
        touched = c->touched_next;
        c->touched = 0;
        if (c->batch_head != NULL) {
            *c->tail = c->batch_head;
            c->tail = c->batch_tail;
            c->n_events += c->batch_n;
        }
        c->pending -= c->batch_ops;
        c->batch_ops = 0;
        if (!c->closing)
            c->notify(c->arg);
        if (c->pending == 0)
            pthread_cond_broadcast(&c->idle);
        pthread_mutex_unlock(&c->lock);
    }
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Group commit pacing (lock held): whether to wait before starting the next batch. A commit has a fixed
 * price whatever it holds (an fdatasync, the meta page, the B-tree branch pages every batch rewrites),
 * and a writer that starts a transaction the moment anything is queued pays it for a handful of objects
 * when it keeps up, which is most of the time. So under load a batch starts at most every interval
 * after the previous one began; when the writer has been idle longer than that (light load), or a full
 * batch is already waiting, or it is stopping, it starts at once. What waits is only visibility in the
 * store: clients are served while the fill streams, and a flight stays joinable until its commit. */
static int pace(struct store_writer *w, struct timespec *until)
{
    if (w->interval_ns == 0 || w->stop || w->queued_ops >= w->batch_ops || w->queued_bytes >= w->batch_bytes) return 0;
    uint64_t due = w->last_start + w->interval_ns, now = mono_ns();
    if (now >= due) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts); /* pthread_cond_timedwait's default clock */
    uint64_t t = (uint64_t)ts.tv_nsec + (due - now);
    until->tv_sec = ts.tv_sec + (time_t)(t / 1000000000u);
    until->tv_nsec = (long)(t % 1000000000u);
    return 1;
}

static void *writer_main(void *arg)
{
    struct store_writer *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stop && (w->paused || (w->head == NULL && !w->kick && !w->maintain))) {
            w->sleep = SLEEP_IDLE;
            pthread_cond_wait(&w->cond, &w->lock);
        }
        w->sleep = SLEEP_NONE;
        if (w->stop && w->head == NULL) break;
        struct timespec until;
        int paced = pace(w, &until);
        if (w->maintain && (paced || (w->head == NULL && !w->kick))) {
            /* Time no batch wants goes to building the store's key filter (a slice at a time). */
            pthread_mutex_unlock(&w->lock);
            int more = store_filter_step(w->s);
            pthread_mutex_lock(&w->lock);
            w->maintain = more > 0; /* after an error, the next batch tries again */
            continue;
        }
        if (paced) {
            w->sleep = SLEEP_PACING;
            pthread_cond_timedwait(&w->cond, &w->lock, &until);
            w->sleep = SLEEP_NONE;
            continue; /* look again: more may have come, or a stop */
        }
        w->last_start = mono_ns();
        w->kick = 0;
        /* Group commit: everything queued, within the batch limits, goes into one transaction. */
        size_t n = 0, bytes = 0;
        while (w->head != NULL && n < w->batch_ops && (n == 0 || bytes + w->head->bytes <= w->batch_bytes)) {
            struct wop *op = w->head;
            w->head = op->next;
            if (w->head == NULL) w->tail = &w->head;
            w->batch[n++] = op;
            bytes += op->bytes;
        }
        pthread_mutex_unlock(&w->lock);
        run_batch(w, n, bytes);
        int more = store_filter_step(w->s);
        pthread_mutex_lock(&w->lock);
        w->maintain = more > 0;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

/* ---- writer and clients ------------------------------------------------------------------------ */

int store_writer_new(struct store_writer **out, struct store *s, const struct store_writer_config *cfg)
{
    *out = NULL;
    struct store_writer *w = calloc(1, sizeof(*w));
    if (w == NULL) return -ENOMEM;
    w->s = s;
    w->limit = cfg && cfg->queue_limit ? cfg->queue_limit : DEFAULT_QUEUE_LIMIT;
    w->limit_ops = cfg && cfg->queue_max_ops ? cfg->queue_max_ops : DEFAULT_QUEUE_OPS;
    w->batch_ops = cfg && cfg->batch_max_ops ? cfg->batch_max_ops : DEFAULT_BATCH_OPS;
    w->batch_bytes = cfg && cfg->batch_max_bytes ? cfg->batch_max_bytes : DEFAULT_BATCH_BYTES;
    int iv = cfg ? cfg->commit_interval_us : 0;
    w->interval_ns = iv < 0 ? 0 : (uint64_t)(iv ? iv : DEFAULT_COMMIT_INTERVAL_US) * 1000u;
    w->paused = cfg ? cfg->start_paused : 0;
    w->maintain = 1; /* the store wants its key filter built after open */
    w->tail = &w->head;
    w->ops = calloc(w->batch_ops, sizeof(*w->ops));
    w->batch = calloc(w->batch_ops, sizeof(*w->batch));
    if (w->ops == NULL || w->batch == NULL) {
        free(w->ops);
        free(w->batch);
        free(w);
        return -ENOMEM;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc != 0) {
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cond);
        free(w->ops);
        free(w->batch);
        free(w);
        return -rc;
    }
    *out = w;
    return 0;
}

void store_writer_set_paused(struct store_writer *w, int paused)
{
    pthread_mutex_lock(&w->lock);
    w->paused = paused;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void store_writer_free(struct store_writer *w)
{
    if (w == NULL) return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    w->paused = 0;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);

    /* Fills nobody finished: withdraw their resume events, delete what they wrote, free them. */
    while (w->live != NULL) {
        struct store_fill *f = w->live;
        w->live = f->live_next;
        pthread_mutex_lock(&f->c->lock);
        if (f->resume_queued) ev_unlink(f->c, &f->resume_ev);
        pthread_mutex_unlock(&f->c->lock);
        struct store_op op = {.kind = STORE_OP_ABORT, .body_id = f->body_id};
        (void)store_apply(w->s, &op, 1);
        if (f->progress != NULL)
            f->progress(f->progress_arg, STORE_FILL_PROGRESS_END);
        free(f->stage);
        free(f->final);
        free(f);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    free(w->ops);
    free(w->batch);
    free(w);
}

int store_wclient_new(struct store_writer *w, store_wnotify_fn notify, void *arg, struct store_wclient **out)
{
    *out = NULL;
    if (notify == NULL) return -EINVAL;
    struct store_wclient *c = calloc(1, sizeof(*c));
    if (c == NULL) return -ENOMEM;
    c->w = w;
    c->notify = notify;
    c->arg = arg;
    c->tail = &c->head;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->idle, NULL);
    *out = c;
    return 0;
}

size_t store_wclient_drain(struct store_wclient *c)
{
    /* One event at a time: a resume event lives inside its fill and may be queued again by the
     * writer as soon as it is popped, so it is copied out under the lock. Only the events present at
     * the start run, so a busy writer cannot keep this loop going. */
    pthread_mutex_lock(&c->lock);
    size_t budget = c->n_events, ran = 0;
    pthread_mutex_unlock(&c->lock);
    while (ran < budget) {
        pthread_mutex_lock(&c->lock);
        struct wevent *e = c->head;
        if (e == NULL) {
            pthread_mutex_unlock(&c->lock);
            break;
        }
        c->head = e->next;
        if (c->head == NULL) c->tail = &c->head;
        c->n_events--;
        struct wevent copy = *e;
        if (e->kind == EV_RESUME) container_of_(e, struct store_fill, resume_ev)->resume_queued = 0;
        pthread_mutex_unlock(&c->lock);
        if (copy.fn != NULL) copy.fn(copy.data, copy.status);
        if (copy.kind == EV_DONE) wop_free(container_of_(e, struct wop, ev));
        ran++;
    }
    return ran;
}

void store_wclient_free(struct store_wclient *c)
{
    if (c == NULL) return;
    /* Wait until the writer has retired every op of this client (it does not stop before the loops
     * are gone), so it never touches the client after this. Shutdown only: the wait is one batch. */
    pthread_mutex_lock(&c->lock);
    c->closing = 1;
    while (c->pending > 0)
        pthread_cond_wait(&c->idle, &c->lock);
    pthread_mutex_unlock(&c->lock);
    /* Completions that arrived after the loop's last drain still run: their owners (tickets that
     * hold references) rely on being told exactly once. Resume events are not run: their fills were
     * committed or aborted, which withdraws them. */
    struct wevent *e = c->head;
    c->head = NULL;
    while (e != NULL) {
        struct wevent *next = e->next;
        if (e->kind == EV_DONE) {
            if (e->fn != NULL) e->fn(e->data, e->status);
            wop_free(container_of_(e, struct wop, ev));
        }
        e = next;
    }
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->idle);
    free(c);
}

/* ---- fills -------------------------------------------------------------------------------------- */

void store_fill_set_progress(struct store_fill *f, store_fill_progress_fn fn, void *arg)
{
    f->progress = fn;
    f->progress_arg = arg;
}

int store_fill_begin(struct store_wclient *c, int64_t now, store_wdone_fn on_resume, void *data, struct store_fill **out)
{
    *out = NULL;
    struct store_writer *w = c->w;
    /* A writer that is this far behind would only fall further behind (and hold the memory): the
     * object is not stored. Appends wait instead (back-pressure); a fill that never starts has
     * nothing to wait for, and small objects commit without any append reaching the queue. */
    pthread_mutex_lock(&w->lock);
    int busy = w->queued_bytes >= w->limit || w->queued_ops >= w->limit_ops;
    if (busy) w->st.begins_refused++;
    pthread_mutex_unlock(&w->lock);
    if (busy) return -EAGAIN;
    struct store_fill *f = calloc(1, sizeof(*f));
    struct wop *final = f != NULL ? wop_new(c, STORE_OP_ABORT, NULL, NULL) : NULL;
    if (final == NULL) {
        free(f);
        return -ENOMEM;
    }
    f->w = w;
    f->c = c;
    f->now = now;
    f->on_resume = on_resume;
    f->data = data;
    f->final = final;
    f->body_id = store_body_id_alloc(w->s);
    final->fill = f;
    pthread_mutex_lock(&w->lock);
    f->live_next = w->live;
    if (w->live != NULL) w->live->live_prev = f;
    w->live = f;
    pthread_mutex_unlock(&w->lock);
    *out = f;
    return 0;
}

void store_fill_expect(struct store_fill *f, uint64_t length)
{
    f->expect = length;
}

uint64_t store_fill_body_id(const struct store_fill *f)
{
    return f->body_id;
}

uint64_t store_fill_length(const struct store_fill *f)
{
    return f->appended;
}

/* Hands the full staging chunk to the writer. */
static int stage_flush(struct store_fill *f)
{
    struct wop *op = wop_new(f->c, STORE_OP_PUT_CHUNK, NULL, NULL);
    if (op == NULL) return -ENOMEM;
    op->fill = f;
    op->chunk = f->stage;
    op->op.body_id = f->body_id;
    op->op.chunk_no = f->next_chunk++;
    op->op.now = f->now;
    op->op.data = f->stage;
    op->op.len = f->stage_len;
    op->bytes += f->stage_len;
    f->stage = NULL;
    f->stage_len = 0;
    enqueue(f->w, op);
    return 0;
}

int store_fill_append(struct store_fill *f, const void *data, size_t len)
{
    struct store_writer *w = f->w;
    int err = fill_err(f);
    if (err != 0) return err;
    if (len == 0) return 0;
    if (f->appended + len > store_max_object_size(w->s) || f->appended + len < len) {
        fill_set_err(f, STORE_ETOOBIG);
        return STORE_ETOOBIG;
    }
    pthread_mutex_lock(&w->lock);
    if (w->queued_bytes >= w->limit) {
        if (!f->waiting && f->on_resume != NULL) {
            f->waiting = 1;
            f->wait_next = w->waiters;
            w->waiters = f;
        }
        w->st.eagain++;
        pthread_mutex_unlock(&w->lock);
        return -EAGAIN;
    }
    pthread_mutex_unlock(&w->lock);

    const uint8_t *p = data;
    while (len > 0) {
        if (f->stage == NULL || (f->stage_len == f->stage_cap && f->stage_cap < STORE_CHUNK_SIZE)) {
            /* A staging chunk sized for what is announced to come: a 1 KiB body takes 1 KiB, not
             * 256 KiB, while it waits in the queue. More than announced grows it to a full chunk. */
            size_t cap = STORE_CHUNK_SIZE;
            uint64_t left = f->expect > f->appended ? f->expect - f->appended : 0;
            if (f->stage == NULL && left >= len && left < cap) cap = (size_t)left;
            uint8_t *st = realloc(f->stage, cap);
            if (st == NULL) {
                fill_set_err(f, -ENOMEM);
                return -ENOMEM;
            }
            f->stage = st;
            f->stage_cap = cap;
        }
        size_t n = f->stage_cap - f->stage_len;
        if (n > len) n = len;
        memcpy(f->stage + f->stage_len, p, n);
        f->stage_len += n;
        f->appended += n;
        p += n;
        len -= n;
        if (f->stage_len == STORE_CHUNK_SIZE && stage_flush(f) != 0) {
            fill_set_err(f, -ENOMEM);
            return -ENOMEM;
        }
    }
    return 0;
}

/* Withdraws f from the waiters and its queued resume event: after this, on_resume never runs. */
static void fill_close(struct store_fill *f)
{
    struct store_writer *w = f->w;
    pthread_mutex_lock(&w->lock);
    waiters_remove(w, f);
    pthread_mutex_lock(&f->c->lock);
    if (f->resume_queued) {
        ev_unlink(f->c, &f->resume_ev);
        f->resume_queued = 0;
    }
    pthread_mutex_unlock(&f->c->lock);
    pthread_mutex_unlock(&w->lock);
}

int store_fill_abort(struct store_fill *f, store_wdone_fn done, void *data)
{
    fill_close(f);
    struct wop *op = f->final;
    op->op.kind = STORE_OP_ABORT;
    op->op.body_id = f->body_id;
    op->ev.fn = done;
    op->ev.data = data;
    free(f->stage);
    f->stage = NULL;
    f->stage_len = 0;
    enqueue(f->w, op);
    return 0;
}

int store_fill_commit(struct store_fill *f, const struct store_key *pkey, const struct store_key *vkey,
                      const struct store_record *rec, store_wdone_fn done, void *data)
{
    int err = fill_err(f);
    size_t rec_len = 0;
    void *buf = NULL;
    if (err == 0 && rec->body_len != f->appended) err = STORE_ESHORT;
    if (err == 0 && (rec_len = store_record_encoded_len(rec)) == 0) err = -EINVAL;
    if (err == 0 && (buf = malloc(rec_len)) == NULL) err = -ENOMEM;
    if (err == 0 && (err = store_record_encode(rec, buf, rec_len, &rec_len)) != 0) free(buf);
    if (err != 0) {
        store_fill_abort(f, NULL, NULL);
        return err;
    }
    fill_close(f);
    struct wop *op = f->final;
    op->op.kind = STORE_OP_COMMIT;
    op->op.body_id = f->body_id;
    op->op.now = f->now;
    op->op.pkey = *pkey;
    op->op.vkey = *vkey;
    op->op.rec = op->rec = buf;
    op->op.rec_len = rec_len;
    if (f->stage_len > 0) {
        op->op.chunk_no = f->next_chunk;
        op->op.data = op->chunk = f->stage;
        op->op.len = f->stage_len;
        f->stage = NULL;
        f->stage_len = 0;
    }
    op->bytes += op->op.len + rec_len;
    op->ev.fn = done;
    op->ev.data = data;
    enqueue(f->w, op);
    return 0;
}

/* ---- other writes --------------------------------------------------------------------------------- */

static int queue_simple(struct store_wclient *c, enum store_op_kind kind, const struct store_key *pkey,
                        const struct store_key *vkey, const struct store_record *rec, store_wdone_fn done, void *data)
{
    struct wop *op = wop_new(c, kind, done, data);
    if (op == NULL) return -ENOMEM;
    if (pkey != NULL) op->op.pkey = *pkey;
    if (vkey != NULL) op->op.vkey = *vkey;
    if (rec != NULL) {
        size_t len = store_record_encoded_len(rec);
        if (len == 0 || (op->rec = malloc(len)) == NULL || store_record_encode(rec, op->rec, len, &len) != 0) {
            int rc = len == 0 ? -EINVAL : -ENOMEM;
            wop_free(op);
            return rc;
        }
        op->op.rec = op->rec;
        op->op.rec_len = len;
        op->bytes += len;
    }
    enqueue(c->w, op);
    return 0;
}

int store_writer_update_meta(struct store_wclient *c, const struct store_key *vkey, const struct store_record *rec,
                             store_wdone_fn done, void *data)
{
    return queue_simple(c, STORE_OP_UPDATE_META, NULL, vkey, rec, done, data);
}

int store_writer_delete_variant(struct store_wclient *c, const struct store_key *vkey, store_wdone_fn done, void *data)
{
    return queue_simple(c, STORE_OP_DELETE_VARIANT, NULL, vkey, NULL, done, data);
}

int store_writer_delete_primary(struct store_wclient *c, const struct store_key *pkey, store_wdone_fn done, void *data)
{
    return queue_simple(c, STORE_OP_DELETE_PRIMARY, pkey, NULL, NULL, done, data);
}

void store_writer_note_hit(struct store_writer *w, const struct store_key *vkey)
{
    if (store_note_hit(w->s, vkey)) {
        pthread_mutex_lock(&w->lock);
        w->kick = 1;
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
}

void store_writer_stats_get(struct store_writer *w, struct store_writer_stats *out)
{
    pthread_mutex_lock(&w->lock);
    *out = w->st;
    out->queued_bytes = w->queued_bytes;
    pthread_mutex_unlock(&w->lock);
}
