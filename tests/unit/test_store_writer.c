/* Unit tests for the writer thread (store/store_writer.c): group commit, back-pressure, completion
 * delivery, sticky fill errors. The test thread plays an event loop: the writer's notify callback
 * signals a condition variable (where the proxy would call uv_async_send), and the test drains the
 * client. Synchronisation is by those notifications and by FIFO barriers, never by sleeping. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_writer.h"
#include "test_util.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define NOW 1700000000

/* ---- a pretend event loop ------------------------------------------------------------------- */

struct loop {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int notified;
};

static void loop_init(struct loop *l)
{
    pthread_mutex_init(&l->m, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->notified = 0;
}

static void loop_destroy(struct loop *l)
{
    pthread_mutex_destroy(&l->m);
    pthread_cond_destroy(&l->cv);
}

/* The notify callback: runs on the writer thread. */
static void loop_notify(void *arg)
{
    struct loop *l = arg;
    pthread_mutex_lock(&l->m);
    l->notified++;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->m);
}

/* Blocks until the writer notified at least once since the last wait. */
static void loop_wait(struct loop *l)
{
    pthread_mutex_lock(&l->m);
    while (l->notified == 0)
        pthread_cond_wait(&l->cv, &l->m);
    l->notified = 0;
    pthread_mutex_unlock(&l->m);
}

struct done {
    int called;
    int status;
};

static void done_cb(void *data, int status)
{
    struct done *d = data;
    d->called++;
    d->status = status;
}

/* Runs the loop until *flag becomes non-zero. */
static void run_until(struct loop *l, struct store_wclient *c, const int *flag)
{
    store_wclient_drain(c);
    while (!*flag) {
        loop_wait(l);
        store_wclient_drain(c);
    }
}

/* A FIFO barrier: an op queued after everything else; when its completion ran, all earlier ops have
 * been applied. */
static void barrier(struct loop *l, struct store_wclient *c)
{
    struct store_key k;
    memset(&k, 0xee, sizeof(k));
    struct done d = {0};
    ASSERT_EQ(store_writer_delete_variant(c, &k, done_cb, &d), 0);
    run_until(l, c, &d.called);
    ASSERT_EQ(d.status, STORE_ENOTFOUND);
}

/* ---- fixtures ------------------------------------------------------------------------------- */

static char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/larder-writer-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    ASSERT(d != NULL);
    return strdup(d);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void tmpdir_free(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

struct fixture {
    char *dir;
    struct store *s;
    struct store_writer *w;
    struct store_wclient *c;
    struct loop loop;
};

static void fx_open(struct fixture *fx, uint64_t cache_size, uint64_t max_object, const struct store_writer_config *wcfg)
{
    memset(fx, 0, sizeof(*fx));
    fx->dir = tmpdir_new();
    struct store_config cfg = {.dir = fx->dir, .cache_size = cache_size, .max_object_size = max_object, .flags = STORE_F_NOSYNC};
    char err[256];
    int rc = store_open(&fx->s, &cfg, err, sizeof(err));
    if (rc != 0) TEST_FAIL_("store_open: %s", err);
    ASSERT_EQ(store_writer_new(&fx->w, fx->s, wcfg), 0);
    loop_init(&fx->loop);
    ASSERT_EQ(store_wclient_new(fx->w, loop_notify, &fx->loop, &fx->c), 0);
}

static void fx_close(struct fixture *fx)
{
    store_writer_free(fx->w);
    store_wclient_drain(fx->c);
    store_wclient_free(fx->c);
    loop_destroy(&fx->loop);
    store_close(fx->s);
    tmpdir_free(fx->dir);
}

static struct store_counters counters(struct store *s)
{
    struct store_counters c;
    store_counters_get(s, &c);
    return c;
}

static struct store_writer_stats wstats(struct store_writer *w)
{
    struct store_writer_stats st;
    store_writer_stats_get(w, &st);
    return st;
}

static uint8_t pat(uint64_t i, unsigned seed)
{
    return (uint8_t)(i * 131u + seed * 17u + (i >> 11));
}

struct obj {
    char uri[96];
    struct store_key pkey, vkey;
    size_t len;
    unsigned seed;
    uint64_t body_id;
};

static struct obj obj_make(const char *uri, unsigned seed, size_t len)
{
    struct obj o;
    memset(&o, 0, sizeof(o));
    snprintf(o.uri, sizeof(o.uri), "%s", uri);
    o.seed = seed;
    o.len = len;
    ASSERT_EQ(store_key_primary(NULL, &o.pkey, "GET", 3, o.uri, strlen(o.uri)), 0);
    ASSERT_EQ(store_key_variant(NULL, &o.vkey, &o.pkey, NULL, 0), 0);
    return o;
}

static struct store_record rec_of(const struct obj *o, const char *headers)
{
    return (struct store_record){
        .status = 200,
        .request_time = NOW,
        .response_time = NOW,
        .stored_at = NOW,
        .body_len = o->len,
        .method = "GET",
        .method_len = 3,
        .uri = o->uri,
        .uri_len = strlen(o->uri),
        .headers = headers,
        .headers_len = strlen(headers),
    };
}

/* Appends o's body in pieces of `piece` bytes (an upstream's reads). */
static void append_all(struct store_fill *f, const struct obj *o, size_t piece)
{
    uint8_t *buf = malloc(piece);
    for (size_t off = 0; off < o->len; off += piece) {
        size_t n = o->len - off < piece ? o->len - off : piece;
        for (size_t i = 0; i < n; i++)
            buf[i] = pat(off + i, o->seed);
        ASSERT_EQ(store_fill_append(f, buf, n), 0);
    }
    free(buf);
}

static void assert_stored(struct store *s, const struct obj *o)
{
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct store_meta m;
    int rc = store_meta_get(r, &o->vkey, "GET", 3, o->uri, strlen(o->uri), &m);
    if (rc != 0) TEST_FAIL_("%s: %s", o->uri, store_strerror(rc));
    ASSERT_UEQ(m.rec.body_len, o->len);
    uint64_t body_id = m.rec.body_id;
    store_meta_release(&m);
    uint8_t *buf = malloc(STORE_CHUNK_SIZE);
    uint64_t off = 0;
    while (off < o->len) {
        size_t n;
        ASSERT_EQ(store_body_read(r, body_id, off, buf, STORE_CHUNK_SIZE, &n), 0);
        ASSERT(n > 0);
        for (size_t i = 0; i < n; i++)
            if (buf[i] != pat(off + i, o->seed)) TEST_FAIL_("%s: byte %ju differs", o->uri, (uintmax_t)(off + i));
        off += n;
    }
    free(buf);
    store_rtxn_end(r);
}

static int body_gone(struct store *s, uint64_t body_id)
{
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    uint8_t b[8];
    size_t n;
    int rc = store_body_read(r, body_id, 0, b, sizeof(b), &n);
    store_rtxn_end(r);
    return rc == STORE_EGONE;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_fill_commit_streams_chunks(void)
{
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, NULL);
    struct obj o = obj_make("http://example.com/stream", 1, 3 * STORE_CHUNK_SIZE + STORE_CHUNK_SIZE / 2);
    struct store_fill *f;
    ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &f), 0);
    o.body_id = store_fill_body_id(f);
    append_all(f, &o, 10000); /* reads that do not line up with chunks */
    ASSERT_UEQ(store_fill_length(f), o.len);
    struct store_record rec = rec_of(&o, "HTTP/1.1 200 OK\r\n\r\n");
    struct done d = {0};
    ASSERT_EQ(store_fill_commit(f, &o.pkey, &o.vkey, &rec, done_cb, &d), 0);
    run_until(&fx.loop, fx.c, &d.called);
    ASSERT_EQ(d.called, 1);
    ASSERT_EQ(d.status, 0);
    assert_stored(fx.s, &o);
    struct store_counters c = counters(fx.s);
    ASSERT_UEQ(c.body_chunk_writes, 4); /* fixed-size chunks, whatever the read sizes */
    ASSERT_UEQ(c.body_bytes_written, o.len);
    ASSERT_UEQ(c.meta_writes, 1);
    ASSERT_UEQ(c.pending_bodies, 0);
    ASSERT_UEQ(wstats(fx.w).queued_bytes, 0);
    fx_close(&fx);
}

/* Everything queued while the writer is busy goes into one transaction. */
static void group_commit_run(size_t batch_max_ops, uint64_t *batches, uint64_t *txns)
{
    struct store_writer_config wcfg = {.start_paused = 1, .batch_max_ops = batch_max_ops};
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, &wcfg);
    enum { N = 100 };
    struct done d[N];
    struct obj o[N];
    memset(d, 0, sizeof(d));
    uint64_t txns0 = counters(fx.s).write_txns;
    for (int i = 0; i < N; i++) {
        char uri[64];
        snprintf(uri, sizeof(uri), "http://example.com/batch/%d", i);
        o[i] = obj_make(uri, (unsigned)i, 1000 + (size_t)i);
        struct store_fill *f;
        ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &f), 0);
        append_all(f, &o[i], 300);
        struct store_record rec = rec_of(&o[i], "H");
        ASSERT_EQ(store_fill_commit(f, &o[i].pkey, &o[i].vkey, &rec, done_cb, &d[i]), 0);
    }
    ASSERT_UEQ(wstats(fx.w).batches, 0); /* paused: nothing written yet */
    store_writer_set_paused(fx.w, 0);
    run_until(&fx.loop, fx.c, &d[N - 1].called);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(d[i].called, 1);
        ASSERT_EQ(d[i].status, 0);
    }
    assert_stored(fx.s, &o[0]);
    assert_stored(fx.s, &o[N - 1]);
    ASSERT_UEQ(counters(fx.s).entries, N);
    *batches = wstats(fx.w).batches;
    *txns = counters(fx.s).write_txns - txns0;
    ASSERT_UEQ(wstats(fx.w).ops, N);
    fx_close(&fx);
}

static void test_group_commit(void)
{
    uint64_t batches, txns;
    group_commit_run(0, &batches, &txns);
    ASSERT_UEQ(batches, 1); /* 100 commits, one wakeup */
    ASSERT_UEQ(txns, 1);    /* ... one write transaction */
    group_commit_run(10, &batches, &txns);
    ASSERT_UEQ(batches, 10); /* the batch limit splits them */
    ASSERT_UEQ(txns, 10);
}

/* Group commit pacing. An idle writer starts a batch at once; one that has just begun a batch waits out
 * commit_interval before the next, gathering what is queued meanwhile into one transaction; a full
 * batch, or a stop, does not wait. The interval here (120 s) is longer than ctest's timeout for this
 * test, so a wait that should not happen fails the test instead of passing slowly. */
static void test_commit_pacing(void)
{
    struct store_writer_config wcfg = {.batch_max_ops = 4, .commit_interval_us = 120 * 1000 * 1000};
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, &wcfg);
    struct store_key k;
    memset(&k, 0xee, sizeof(k));
    struct done d[6];
    memset(d, 0, sizeof(d));
    /* Idle: at once. */
    ASSERT_EQ(store_writer_delete_variant(fx.c, &k, done_cb, &d[0]), 0);
    run_until(&fx.loop, fx.c, &d[0].called);
    ASSERT_UEQ(wstats(fx.w).batches, 1);
    /* Three ops within the interval wait; the fourth fills the batch, and all four go together. */
    for (int i = 1; i <= 4; i++)
        ASSERT_EQ(store_writer_delete_variant(fx.c, &k, done_cb, &d[i]), 0);
    run_until(&fx.loop, fx.c, &d[4].called);
    for (int i = 1; i <= 4; i++)
        ASSERT_EQ(d[i].status, STORE_ENOTFOUND);
    struct store_writer_stats st = wstats(fx.w);
    ASSERT_UEQ(st.batches, 2);
    ASSERT_UEQ(st.max_batch_ops, 4);
    /* A lone op now waits for the interval, but stopping the writer applies it at once. */
    ASSERT_EQ(store_writer_delete_variant(fx.c, &k, done_cb, &d[5]), 0);
    store_writer_free(fx.w);
    fx.w = NULL;
    store_wclient_drain(fx.c);
    ASSERT_EQ(d[5].called, 1);
    ASSERT_EQ(d[5].status, STORE_ENOTFOUND);
    fx_close(&fx);
}

/* Small objects commit without an append ever reaching the queue, so append back-pressure cannot hold
 * them: past queue_max_ops a fill does not start (-EAGAIN) and the response goes unstored, instead of
 * the queue (and memory) growing with every miss while the writer is behind. Once it has caught up,
 * fills start again. Announced lengths (store_fill_expect) that are right, short or long all store the
 * bytes actually appended. */
static void test_fills_refused_when_behind(void)
{
    struct store_writer_config wcfg = {.start_paused = 1, .queue_max_ops = 9};
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, &wcfg);
    enum { N = 8 };
    struct done d[N];
    struct obj o[N];
    memset(d, 0, sizeof(d));
    static const uint64_t announced[3] = {0, 1, 1 << 20}; /* as long as the body, shorter, longer */
    for (int i = 0; i < N; i++) {
        char uri[64];
        snprintf(uri, sizeof(uri), "http://example.com/behind/%d", i);
        o[i] = obj_make(uri, (unsigned)i, i == 3 ? STORE_CHUNK_SIZE + 5000 : 700 + (size_t)i);
        struct store_fill *f;
        ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &f), 0);
        store_fill_expect(f, i % 3 == 0 ? o[i].len : announced[i % 3]);
        append_all(f, &o[i], i % 2 ? 100 : 4096);
        struct store_record rec = rec_of(&o[i], "H");
        ASSERT_EQ(store_fill_commit(f, &o[i].pkey, &o[i].vkey, &rec, done_cb, &d[i]), 0);
    }
    /* Eight commits and one full chunk queued, writer paused: the ninth fill is refused. */
    struct store_fill *f = NULL;
    ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &f), -EAGAIN);
    ASSERT(f == NULL);
    ASSERT_UEQ(wstats(fx.w).begins_refused, 1);
    store_writer_set_paused(fx.w, 0);
    run_until(&fx.loop, fx.c, &d[N - 1].called);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(d[i].status, 0);
        assert_stored(fx.s, &o[i]);
    }
    ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &f), 0);
    ASSERT_EQ(store_fill_abort(f, NULL, NULL), 0);
    fx_close(&fx);
}

struct resume {
    int called;
    int status;
};

static void resume_cb(void *data, int status)
{
    struct resume *r = data;
    r->called++;
    r->status = status;
}

/* A fast upstream cannot grow the queue without limit: append says -EAGAIN, consumes nothing, and
 * on_resume comes once the writer has drained the queue. */
static void test_backpressure(void)
{
    struct store_writer_config wcfg = {.start_paused = 1, .queue_limit = 1 * MIB};
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, &wcfg);
    struct obj o = obj_make("http://example.com/fast-upstream", 3, 8 * STORE_CHUNK_SIZE);
    struct resume res = {0};
    struct store_fill *f;
    ASSERT_EQ(store_fill_begin(fx.c, NOW, resume_cb, &res, &f), 0);
    uint8_t *body = malloc(o.len);
    for (size_t i = 0; i < o.len; i++)
        body[i] = pat(i, o.seed);

    size_t off = 0, piece = 100 * KIB;
    int rc = 0;
    while (off < o.len) {
        size_t n = o.len - off < piece ? o.len - off : piece;
        rc = store_fill_append(f, body + off, n);
        if (rc == -EAGAIN) break;
        ASSERT_EQ(rc, 0);
        off += n;
    }
    ASSERT_EQ(rc, -EAGAIN);
    ASSERT_UEQ(store_fill_length(f), off); /* the refused piece was not consumed */
    struct store_writer_stats st = wstats(fx.w);
    ASSERT(st.queued_bytes >= 1 * MIB);
    ASSERT(st.queued_bytes < 1 * MIB + piece + STORE_CHUNK_SIZE + 1024); /* bounded overshoot */
    ASSERT_UEQ(st.eagain, 1);
    ASSERT_EQ(store_fill_append(f, body + off, 1), -EAGAIN); /* still full; one wait is enough */
    ASSERT_EQ(res.called, 0);

    store_writer_set_paused(fx.w, 0);
    run_until(&fx.loop, fx.c, &res.called);
    ASSERT_EQ(res.called, 1);
    ASSERT_EQ(res.status, 0);
    ASSERT(wstats(fx.w).queued_bytes < 1 * MIB / 2);

    /* Proceed: the same bytes again, then the rest (more pauses are handled the same way). */
    while (off < o.len) {
        size_t n = o.len - off < piece ? o.len - off : piece;
        rc = store_fill_append(f, body + off, n);
        if (rc == -EAGAIN) {
            int before = res.called;
            while (res.called == before) {
                loop_wait(&fx.loop);
                store_wclient_drain(fx.c);
            }
            continue;
        }
        ASSERT_EQ(rc, 0);
        off += n;
    }
    struct store_record rec = rec_of(&o, "H");
    struct done d = {0};
    ASSERT_EQ(store_fill_commit(f, &o.pkey, &o.vkey, &rec, done_cb, &d), 0);
    run_until(&fx.loop, fx.c, &d.called);
    ASSERT_EQ(d.status, 0);
    assert_stored(fx.s, &o); /* every byte once, in order */
    ASSERT_UEQ(counters(fx.s).body_bytes_written, o.len);
    ASSERT(wstats(fx.w).resumes >= 1);
    free(body);
    fx_close(&fx);
}

/* A resume already queued for a fill is withdrawn when the fill is aborted: on_resume never runs
 * after commit/abort, so the proxy can free its state at the done callback. */
static void test_no_resume_after_abort(void)
{
    struct store_writer_config wcfg = {.start_paused = 1, .queue_limit = STORE_CHUNK_SIZE};
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, &wcfg);
    struct obj o = obj_make("http://example.com/aborted", 4, STORE_CHUNK_SIZE + 1);
    struct resume res = {0};
    struct store_fill *f;
    ASSERT_EQ(store_fill_begin(fx.c, NOW, resume_cb, &res, &f), 0);
    uint64_t body_id = store_fill_body_id(f);
    uint8_t *body = calloc(1, o.len);
    ASSERT_EQ(store_fill_append(f, body, STORE_CHUNK_SIZE), 0); /* one chunk queued: at the limit */
    ASSERT_EQ(store_fill_append(f, body, 1), -EAGAIN);
    store_writer_set_paused(fx.w, 0);
    loop_wait(&fx.loop); /* the writer queued the resume (and notified), but the loop has not drained */
    struct done d = {0};
    ASSERT_EQ(store_fill_abort(f, done_cb, &d), 0);
    run_until(&fx.loop, fx.c, &d.called);
    ASSERT_EQ(d.status, 0);
    ASSERT_EQ(res.called, 0);
    ASSERT(body_gone(fx.s, body_id));
    ASSERT_UEQ(counters(fx.s).pending_bodies, 0);
    free(body);
    fx_close(&fx);
}

/* Writer-side failures are sticky and reach the proxy at its next append or commit. */
static void test_sticky_fill_error(void)
{
    struct fixture fx;
    fx_open(&fx, 1 * MIB, 1 * MIB, NULL);
    /* A pending fill holds 768 KiB of the 1 MiB cache (and stages 200 KiB more); a second fill's first
     * chunk still fits, its second cannot, and nothing is evictable (pending bodies are not). */
    struct obj big = obj_make("http://example.com/holds-the-cache", 5, 3 * STORE_CHUNK_SIZE + 200 * KIB);
    struct store_fill *fa, *fb;
    ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &fa), 0);
    append_all(fa, &big, 64 * KIB);
    struct obj small = obj_make("http://example.com/no-room", 6, 2 * STORE_CHUNK_SIZE);
    ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &fb), 0);
    uint64_t b_id = store_fill_body_id(fb);
    append_all(fb, &small, 64 * KIB); /* queues chunks 0 and 1 */
    barrier(&fx.loop, fx.c);
    ASSERT_UEQ(counters(fx.s).body_chunk_writes, 4); /* big's three, small's first; then EFULL */
    uint8_t x = 0;
    ASSERT_EQ(store_fill_append(fb, &x, 1), STORE_EFULL);
    struct store_record rec = rec_of(&small, "H");
    struct done d = {0};
    ASSERT_EQ(store_fill_commit(fb, &small.pkey, &small.vkey, &rec, done_cb, &d), STORE_EFULL);
    ASSERT(body_gone(fx.s, b_id));

    /* The first fill is unaffected. */
    struct store_record rec_a = rec_of(&big, "H");
    struct done da = {0};
    ASSERT_EQ(store_fill_commit(fa, &big.pkey, &big.vkey, &rec_a, done_cb, &da), 0);
    run_until(&fx.loop, fx.c, &da.called);
    ASSERT_EQ(da.status, 0);
    assert_stored(fx.s, &big);
    barrier(&fx.loop, fx.c);
    ASSERT_EQ(d.called, 0); /* a synchronous error never calls done */
    ASSERT_UEQ(counters(fx.s).pending_bodies, 0);

    /* Length checks at commit, and max_object_size at append. */
    struct store_fill *fc;
    ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &fc), 0);
    ASSERT_EQ(store_fill_append(fc, "abc", 3), 0);
    struct obj three = obj_make("http://example.com/three", 7, 4); /* claims 4 bytes, has 3 */
    struct store_record rec_c = rec_of(&three, "H");
    ASSERT_EQ(store_fill_commit(fc, &three.pkey, &three.vkey, &rec_c, done_cb, &d), STORE_ESHORT);
    ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &fc), 0);
    uint8_t *mb = calloc(1, 1 * MIB + 1);
    ASSERT_EQ(store_fill_append(fc, mb, 1 * MIB + 1), STORE_ETOOBIG);
    ASSERT_EQ(store_fill_append(fc, mb, 1), STORE_ETOOBIG);
    ASSERT_EQ(store_fill_abort(fc, NULL, NULL), 0);
    barrier(&fx.loop, fx.c);
    ASSERT_EQ(d.called, 0);
    free(mb);
    fx_close(&fx);
}

static void test_update_meta_and_deletes(void)
{
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, NULL);
    struct obj o = obj_make("http://example.com/304", 8, STORE_CHUNK_SIZE + 5);
    struct store_fill *f;
    ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &f), 0);
    append_all(f, &o, 4096);
    struct store_record rec = rec_of(&o, "HTTP/1.1 200 OK\r\n\r\n");
    struct done d = {0};
    ASSERT_EQ(store_fill_commit(f, &o.pkey, &o.vkey, &rec, done_cb, &d), 0);
    run_until(&fx.loop, fx.c, &d.called);
    ASSERT_EQ(d.status, 0);
    struct store_counters c0 = counters(fx.s);

    struct store_record fresh = rec_of(&o, "HTTP/1.1 200 OK\r\nX-New: 1\r\n\r\n");
    fresh.response_time = NOW + 60;
    struct done du = {0};
    ASSERT_EQ(store_writer_update_meta(fx.c, &o.vkey, &fresh, done_cb, &du), 0);
    run_until(&fx.loop, fx.c, &du.called);
    ASSERT_EQ(du.status, 0);
    struct store_counters c1 = counters(fx.s);
    ASSERT_UEQ(c1.meta_writes, c0.meta_writes + 1);
    ASSERT_UEQ(c1.body_bytes_written, c0.body_bytes_written);
    ASSERT_UEQ(c1.body_chunk_writes, c0.body_chunk_writes);
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(fx.s, &r), 0);
    struct store_meta m;
    ASSERT_EQ(store_meta_get(r, &o.vkey, "GET", 3, o.uri, strlen(o.uri), &m), 0);
    ASSERT_EQ(m.rec.response_time, NOW + 60);
    ASSERT(strstr(m.rec.headers, "X-New: 1") != NULL);
    store_meta_release(&m);
    store_rtxn_end(r);
    assert_stored(fx.s, &o);

    /* The hit path: noted in memory, folded by the writer's next batch. */
    store_writer_note_hit(fx.w, &o.vkey);
    barrier(&fx.loop, fx.c);
    ASSERT_UEQ(counters(fx.s).promotions, 1);

    struct done dd = {0}, dp = {0};
    ASSERT_EQ(store_writer_delete_variant(fx.c, &o.vkey, done_cb, &dd), 0);
    ASSERT_EQ(store_writer_delete_primary(fx.c, &o.pkey, done_cb, &dp), 0);
    run_until(&fx.loop, fx.c, &dp.called);
    ASSERT_EQ(dd.called, 1); /* completions arrive in order */
    ASSERT_EQ(dd.status, 0);
    ASSERT_EQ(dp.status, STORE_ENOTFOUND);
    ASSERT_UEQ(counters(fx.s).entries, 0);
    /* An update whose record cannot be encoded is refused at once. */
    struct store_record bad = fresh;
    bad.uri_len = 0;
    ASSERT_EQ(store_writer_update_meta(fx.c, &o.vkey, &bad, done_cb, &du), -EINVAL);
    fx_close(&fx);
}

/* Shutting down with a fill open: the writer aborts it, so nothing is left pending. */
static void test_free_aborts_open_fills(void)
{
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, NULL);
    struct obj o = obj_make("http://example.com/unfinished", 9, 3 * STORE_CHUNK_SIZE);
    struct store_fill *f;
    struct resume res = {0};
    ASSERT_EQ(store_fill_begin(fx.c, NOW, resume_cb, &res, &f), 0);
    uint64_t body_id = store_fill_body_id(f);
    append_all(f, &o, 50000);
    barrier(&fx.loop, fx.c);
    ASSERT_UEQ(counters(fx.s).pending_bodies, 1);
    store_writer_free(fx.w);
    fx.w = NULL;
    ASSERT_UEQ(counters(fx.s).pending_bodies, 0);
    ASSERT(body_gone(fx.s, body_id));
    ASSERT_EQ(res.called, 0);
    store_wclient_free(fx.c);
    loop_destroy(&fx.loop);
    store_close(fx.s);
    tmpdir_free(fx.dir);
}

/* Two loops (threads) share the writer; each gets only its own completions. */
struct worker_arg {
    struct store_writer *w;
    struct store *s;
    int id;
    int ok;
};

static void *worker_main(void *p)
{
    struct worker_arg *a = p;
    struct loop l;
    loop_init(&l);
    struct store_wclient *c;
    ASSERT_EQ(store_wclient_new(a->w, loop_notify, &l, &c), 0);
    enum { N = 20 };
    struct done d[N];
    memset(d, 0, sizeof(d));
    for (int i = 0; i < N; i++) {
        char uri[64];
        snprintf(uri, sizeof(uri), "http://example.com/w%d/%d", a->id, i);
        struct obj o = obj_make(uri, (unsigned)(a->id * 100 + i), (size_t)(i + 1) * 30000);
        struct store_fill *f;
        ASSERT_EQ(store_fill_begin(c, NOW, NULL, NULL, &f), 0);
        append_all(f, &o, 8192);
        struct store_record rec = rec_of(&o, "H");
        ASSERT_EQ(store_fill_commit(f, &o.pkey, &o.vkey, &rec, done_cb, &d[i]), 0);
    }
    run_until(&l, c, &d[N - 1].called);
    int ok = 1;
    for (int i = 0; i < N; i++)
        ok &= d[i].called == 1 && d[i].status == 0;
    ASSERT_EQ(store_wclient_drain(c), 0);
    store_wclient_free(c);
    loop_destroy(&l);
    a->ok = ok;
    return NULL;
}

static void test_two_loops(void)
{
    struct fixture fx;
    fx_open(&fx, 256 * MIB, 0, NULL);
    pthread_t t[2];
    struct worker_arg a[2] = {{fx.w, fx.s, 1, 0}, {fx.w, fx.s, 2, 0}};
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, worker_main, &a[i]), 0);
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
    ASSERT(a[0].ok && a[1].ok);
    ASSERT_UEQ(counters(fx.s).entries, 40);
    struct obj o = obj_make("http://example.com/w2/19", 219, 20 * 30000);
    assert_stored(fx.s, &o);
    fx_close(&fx);
}

/* Readers on another thread while the writer replaces the same object again and again: every read
 * returns a whole, correct version or STORE_EGONE / STORE_ENOTFOUND, never bytes of another version. */
struct reader_arg {
    struct store *s;
    struct obj o;
    const int *stop; /* __atomic */
    int whole, gone, bad;
};

static void *reader_main(void *p)
{
    struct reader_arg *a = p;
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(a->s, &r), 0);
    uint8_t *buf = malloc(STORE_CHUNK_SIZE);
    while (!__atomic_load_n(a->stop, __ATOMIC_ACQUIRE)) {
        struct store_meta m;
        int rc = store_meta_get(r, &a->o.vkey, "GET", 3, a->o.uri, strlen(a->o.uri), &m);
        if (rc == STORE_ENOTFOUND) continue;
        ASSERT_EQ(rc, 0);
        unsigned seed = 0;
        ASSERT_EQ(sscanf(m.rec.headers, "seed=%u", &seed), 1); /* the version this record describes */
        uint64_t body_id = m.rec.body_id, len = m.rec.body_len, off = 0;
        store_meta_release(&m);
        while (off < len) { /* one short read transaction per chunk, as a client connection would */
            size_t n;
            rc = store_body_read(r, body_id, off, buf, STORE_CHUNK_SIZE, &n);
            if (rc == STORE_EGONE) break;
            ASSERT_EQ(rc, 0);
            for (size_t i = 0; i < n; i++)
                if (buf[i] != pat(off + i, seed)) a->bad++;
            off += n;
        }
        if (off == len)
            a->whole++;
        else
            a->gone++;
    }
    free(buf);
    store_rtxn_end(r);
    return NULL;
}

static void test_readers_see_whole_versions(void)
{
    struct fixture fx;
    fx_open(&fx, 64 * MIB, 0, NULL);
    int stop = 0;
    struct obj base = obj_make("http://example.com/hot-and-changing", 0, 3 * STORE_CHUNK_SIZE + 999);
    struct reader_arg a[2] = {{.s = fx.s, .o = base, .stop = &stop}, {.s = fx.s, .o = base, .stop = &stop}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        ASSERT_EQ(pthread_create(&t[i], NULL, reader_main, &a[i]), 0);
    for (unsigned v = 1; v <= 40; v++) {
        struct obj o = base;
        o.seed = v;
        struct store_fill *f;
        ASSERT_EQ(store_fill_begin(fx.c, NOW, NULL, NULL, &f), 0);
        append_all(f, &o, 64 * KIB);
        char headers[32];
        snprintf(headers, sizeof(headers), "seed=%u\r\n", v);
        struct store_record rec = rec_of(&o, headers);
        struct done d = {0};
        ASSERT_EQ(store_fill_commit(f, &o.pkey, &o.vkey, &rec, done_cb, &d), 0);
        run_until(&fx.loop, fx.c, &d.called);
        ASSERT_EQ(d.status, 0);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(pthread_join(t[i], NULL), 0);
        fprintf(stderr, "  reader %d: whole reads %d, cut short by a replacement %d\n", i, a[i].whole, a[i].gone);
        ASSERT_EQ(a[i].bad, 0);
    }
    ASSERT_UEQ(counters(fx.s).replacements, 39);
    ASSERT_UEQ(counters(fx.s).entries, 1);
    fx_close(&fx);
}

int main(void)
{
    RUN_TEST(test_fill_commit_streams_chunks);
    RUN_TEST(test_group_commit);
    RUN_TEST(test_commit_pacing);
    RUN_TEST(test_fills_refused_when_behind);
    RUN_TEST(test_backpressure);
    RUN_TEST(test_no_resume_after_abort);
    RUN_TEST(test_sticky_fill_error);
    RUN_TEST(test_update_meta_and_deletes);
    RUN_TEST(test_free_aborts_open_fills);
    RUN_TEST(test_two_loops);
    RUN_TEST(test_readers_see_whole_versions);
    return 0;
}
