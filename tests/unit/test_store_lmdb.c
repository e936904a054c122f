/* Unit tests for the LMDB store (store/store_lmdb.c), driven synchronously through store_apply():
 * each test opens a store in its own tmpdir with MDB_NOSYNC and asserts on contents and counters.
 * No test reads the clock (times are constants) and none sleeps. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/store.h"
#include "store/store_filter.h"
#include "test_util.h"

#define KIB 1024u
#define MIB (1024u * 1024u)
#define NOW 1700000000

/* ---- fixtures ---------------------------------------------------------------------------------- */

static char *tmpdir_new(void)
{
    char tmpl[] = "/tmp/larder-store-test-XXXXXX";
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

static struct store *open_with(const struct store_config *cfg)
{
    struct store *s = NULL;
    char err[256];
    int rc = store_open(&s, cfg, err, sizeof(err));
    if (rc != 0) TEST_FAIL_("store_open(%s): %s: %s", cfg->dir, store_strerror(rc), err);
    return s;
}

static struct store *open_store_cfg(const char *dir, uint64_t cache_size, uint64_t max_object, uint64_t map_size)
{
    struct store_config cfg = {
        .dir = dir, .cache_size = cache_size, .max_object_size = max_object, .flags = STORE_F_NOSYNC, .map_size = map_size};
    return open_with(&cfg);
}

static struct store *open_store(const char *dir, uint64_t cache_size)
{
    return open_store_cfg(dir, cache_size, 0, 0);
}

static struct store_counters counters(struct store *s)
{
    struct store_counters c;
    store_counters_get(s, &c);
    return c;
}

static uint8_t pat(uint64_t i, unsigned seed)
{
    return (uint8_t)(i * 31u + seed * 7u + (i >> 9));
}

/* One object: its keys, URI, body seed and length. */
struct obj {
    struct store_key pkey, vkey;
    char uri[128];
    char variant[64];
    unsigned seed;
    size_t len;
    uint64_t body_id;
};

static struct obj obj_make(const char *uri, const char *variant, unsigned seed, size_t len)
{
    struct obj o;
    memset(&o, 0, sizeof(o));
    snprintf(o.uri, sizeof(o.uri), "%s", uri);
    snprintf(o.variant, sizeof(o.variant), "%s", variant ? variant : "");
    o.seed = seed;
    o.len = len;
    ASSERT_EQ(store_key_primary(NULL, &o.pkey, "GET", 3, o.uri, strlen(o.uri)), 0);
    ASSERT_EQ(store_key_variant(NULL, &o.vkey, &o.pkey, o.variant, strlen(o.variant)), 0);
    return o;
}

/* obj_make for "http://example.com/<stem><i>": the numbered objects most tests store. */
static struct obj obj_numbered(const char *stem, unsigned i, const char *variant, unsigned seed, size_t len)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "http://example.com/%s%u", stem, i);
    return obj_make(uri, variant, seed, len);
}

/* Encodes a meta record for o; the caller frees it. */
static void *rec_make(const struct obj *o, const char *headers, const char *etag, uint64_t body_id_lie, size_t *rec_len)
{
    struct store_record r = {
        .status = 200,
        .request_time = NOW - 1,
        .response_time = NOW,
        .stored_at = NOW,
        .body_id = body_id_lie,
        .body_len = o->len,
        .method = "GET",
        .method_len = 3,
        .uri = o->uri,
        .uri_len = strlen(o->uri),
        .variant = o->variant,
        .variant_len = strlen(o->variant),
        .etag = etag,
        .etag_len = etag ? strlen(etag) : 0,
        .headers = headers,
        .headers_len = strlen(headers),
    };
    size_t n = store_record_encoded_len(&r);
    ASSERT(n > 0);
    void *buf = malloc(n);
    ASSERT(buf != NULL);
    ASSERT_EQ(store_record_encode(&r, buf, n, rec_len), 0);
    return buf;
}

static uint8_t *body_make(const struct obj *o)
{
    uint8_t *b = malloc(o->len ? o->len : 1);
    ASSERT(b != NULL);
    for (size_t i = 0; i < o->len; i++)
        b[i] = pat(i, o->seed);
    return b;
}

/* Writes every chunk but the last, each in its own store_apply (so its own write transaction). */
static void fill_chunks(struct store *s, struct obj *o, const uint8_t *body)
{
    if (o->body_id == 0) o->body_id = store_body_id_alloc(s);
    size_t n_chunks = (o->len + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE;
    for (size_t c = 0; c + 1 < n_chunks; c++) {
        struct store_op op = {.kind = STORE_OP_PUT_CHUNK,
                              .body_id = o->body_id,
                              .chunk_no = (uint32_t)c,
                              .now = NOW,
                              .data = body + c * STORE_CHUNK_SIZE,
                              .len = STORE_CHUNK_SIZE};
        ASSERT_EQ(store_apply(s, &op, 1), 0);
    }
}

/* The COMMIT op for o: carries the final chunk and the meta record (caller frees op->rec). */
static struct store_op commit_op(const struct obj *o, const uint8_t *body, const char *headers)
{
    size_t n_chunks = (o->len + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE;
    struct store_op op = {.kind = STORE_OP_COMMIT, .body_id = o->body_id, .now = NOW, .pkey = o->pkey, .vkey = o->vkey};
    if (n_chunks > 0) {
        op.chunk_no = (uint32_t)(n_chunks - 1);
        op.data = body + (n_chunks - 1) * STORE_CHUNK_SIZE;
        op.len = o->len - (n_chunks - 1) * STORE_CHUNK_SIZE;
    }
    op.rec = rec_make(o, headers, "\"v1\"", 0, &op.rec_len);
    return op;
}

/* Stores a whole object; returns the commit status. */
static int put_object(struct store *s, struct obj *o)
{
    uint8_t *body = body_make(o);
    fill_chunks(s, o, body);
    struct store_op op = commit_op(o, body, "HTTP/1.1 200 OK\r\n\r\n");
    int rc = store_apply(s, &op, 1);
    ASSERT_EQ(rc, op.status);
    free((void *)op.rec);
    free(body);
    return rc;
}

/* Reads a body back in pieces of `step` bytes (crossing chunk boundaries) and checks every byte. */
static void assert_body(struct store *s, uint64_t body_id, size_t len, unsigned seed, size_t step)
{
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    uint8_t *buf = malloc(step);
    uint64_t off = 0;
    while (off < len) {
        size_t n;
        int rc = store_body_read(r, body_id, off, buf, step, &n);
        if (rc != 0) TEST_FAIL_("store_body_read(%ju, off %ju): %s", (uintmax_t)body_id, (uintmax_t)off, store_strerror(rc));
        ASSERT(n > 0);
        for (size_t i = 0; i < n; i++)
            if (buf[i] != pat(off + i, seed)) TEST_FAIL_("body %ju byte %ju differs", (uintmax_t)body_id, (uintmax_t)(off + i));
        off += n;
    }
    ASSERT_UEQ(off, len);
    size_t n = 99;
    ASSERT_EQ(store_body_read(r, body_id, len, buf, step, &n), 0); /* at the end: nothing, not "gone" */
    ASSERT_EQ(n, 0);
    free(buf);
    store_rtxn_end(r);
}

static int meta_get(struct store *s, const struct obj *o, struct store_meta *m)
{
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    int rc = store_meta_get(r, &o->vkey, "GET", 3, o->uri, strlen(o->uri), m);
    store_rtxn_end(r);
    return rc;
}

static int present(struct store *s, const struct obj *o)
{
    struct store_meta m;
    int rc = meta_get(s, o, &m);
    if (rc == 0)
        store_meta_release(&m);
    else
        ASSERT_EQ(rc, STORE_ENOTFOUND);
    return rc == 0;
}

static int body_gone(struct store *s, uint64_t body_id)
{
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    uint8_t b[16];
    size_t n;
    int rc = store_body_read(r, body_id, 0, b, sizeof(b), &n);
    store_rtxn_end(r);
    return rc == STORE_EGONE;
}

/* Fold noted hits: an empty batch. */
static void fold(struct store *s)
{
    ASSERT_EQ(store_apply(s, NULL, 0), 0);
}

/* ---- tests ------------------------------------------------------------------------------------- */

static void test_multichunk_put_commit_read(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    struct obj o = obj_make("http://example.com/big", NULL, 1, 3 * STORE_CHUNK_SIZE + 1000);
    ASSERT_EQ(put_object(s, &o), 0);

    struct store_meta m;
    ASSERT_EQ(meta_get(s, &o, &m), 0);
    ASSERT_UEQ(m.rec.body_id, o.body_id);
    ASSERT_UEQ(m.rec.body_len, o.len);
    ASSERT_UEQ(m.rec.n_chunks, 4);
    ASSERT_EQ(m.rec.complete, 1);
    ASSERT_MEM_STR_EQ(m.rec.uri, m.rec.uri_len, "http://example.com/big");
    ASSERT_MEM_STR_EQ(m.rec.headers, m.rec.headers_len, "HTTP/1.1 200 OK\r\n\r\n");
    store_meta_release(&m);
    ASSERT(m.blob == NULL);

    assert_body(s, o.body_id, o.len, o.seed, 100000);           /* pieces straddle chunk boundaries */
    assert_body(s, o.body_id, o.len, o.seed, STORE_CHUNK_SIZE); /* chunk by chunk */

    struct store_counters c = counters(s);
    ASSERT_UEQ(c.body_chunk_writes, 4);
    ASSERT_UEQ(c.body_bytes_written, o.len);
    ASSERT_UEQ(c.meta_writes, 1);
    ASSERT_UEQ(c.body_bytes_read, 2 * o.len);
    ASSERT_UEQ(c.entries, 1);
    ASSERT_UEQ(c.pending_bodies, 0);
    ASSERT(c.used_bytes >= o.len && c.used_bytes < o.len + 4096);

    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct store_key vk[4];
    size_t n;
    ASSERT_EQ(store_variants_get(r, &o.pkey, vk, 4, &n), 0);
    ASSERT_EQ(n, 1);
    ASSERT(memcmp(vk[0].b, o.vkey.b, STORE_KEY_LEN) == 0);
    /* An active rtxn is used as is and left active. */
    ASSERT_EQ(store_rtxn_renew(r), 0);
    ASSERT_EQ(store_rtxn_renew(r), -EINVAL);
    uint8_t b[10];
    ASSERT_EQ(store_body_read(r, o.body_id, STORE_CHUNK_SIZE - 5, b, sizeof(b), &n), 0);
    ASSERT_EQ(n, 10);
    ASSERT_EQ(b[9], pat(STORE_CHUNK_SIZE + 4, o.seed));
    store_rtxn_reset(r);
    store_rtxn_reset(r);
    store_rtxn_end(r);

    store_close(s);
    tmpdir_free(dir);
}

/* Body rows are put with MDB_APPEND when their key is the greatest; two fills that take turns make
 * every other chunk an earlier key, which must fall back to an ordinary put. */
static void test_interleaved_fills(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    struct obj a = obj_make("http://example.com/a", NULL, 3, 3 * STORE_CHUNK_SIZE + 10);
    struct obj b = obj_make("http://example.com/b", NULL, 4, 2 * STORE_CHUNK_SIZE + 20);
    a.body_id = store_body_id_alloc(s);
    b.body_id = store_body_id_alloc(s);
    ASSERT(b.body_id > a.body_id);
    uint8_t *ba = body_make(&a), *bb = body_make(&b);
    for (uint32_t c = 0; c < 3; c++) {
        struct obj *o[2] = {&a, &b};
        uint8_t *body[2] = {ba, bb};
        for (int i = 0; i < 2; i++) {
            size_t n_chunks = (o[i]->len + STORE_CHUNK_SIZE - 1) / STORE_CHUNK_SIZE;
            if (c + 1 >= n_chunks)
                continue; /* the last chunk travels with the commit */
            struct store_op op = {.kind = STORE_OP_PUT_CHUNK, .body_id = o[i]->body_id, .chunk_no = c, .now = NOW,
                                  .data = body[i] + (size_t)c * STORE_CHUNK_SIZE, .len = STORE_CHUNK_SIZE};
            ASSERT_EQ(store_apply(s, &op, 1), 0);
        }
    }
    struct store_op ops[2] = {commit_op(&a, ba, "HTTP/1.1 200 OK\r\n\r\n"), commit_op(&b, bb, "HTTP/1.1 200 OK\r\n\r\n")};
    ASSERT_EQ(store_apply(s, ops, 2), 0);
    ASSERT_EQ(ops[0].status, 0);
    ASSERT_EQ(ops[1].status, 0);
    assert_body(s, a.body_id, a.len, a.seed, STORE_CHUNK_SIZE);
    assert_body(s, b.body_id, b.len, b.seed, 100000);
    /* A chunk written twice is still refused, whichever put was tried first. */
    struct store_op again = {.kind = STORE_OP_PUT_CHUNK, .body_id = b.body_id, .chunk_no = 0, .now = NOW, .data = bb,
                             .len = STORE_CHUNK_SIZE};
    ASSERT(store_apply(s, &again, 1) != 0);
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.body_chunk_writes, 7);
    ASSERT_UEQ(c.entries, 2);
    ASSERT_UEQ(c.pending_bodies, 0);
    free((void *)ops[0].rec);
    free((void *)ops[1].rec);
    free(ba);
    free(bb);
    store_close(s);
    tmpdir_free(dir);
}

static void test_zero_length_body(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 8 * MIB);
    struct obj o = obj_make("http://example.com/empty", NULL, 2, 0);
    ASSERT_EQ(put_object(s, &o), 0);
    struct store_meta m;
    ASSERT_EQ(meta_get(s, &o, &m), 0);
    ASSERT_UEQ(m.rec.body_len, 0);
    ASSERT_UEQ(m.rec.n_chunks, 0);
    store_meta_release(&m);
    ASSERT_UEQ(counters(s).body_chunk_writes, 0);
    store_close(s);
    tmpdir_free(dir);
}

static void test_invisible_until_commit(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    struct obj o = obj_make("http://example.com/streaming", NULL, 3, 2 * STORE_CHUNK_SIZE + 10);
    uint8_t *body = body_make(&o);
    fill_chunks(s, &o, body);
    ASSERT(!present(s, &o));
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct store_key vk[1];
    size_t n = 99;
    ASSERT_EQ(store_variants_get(r, &o.pkey, vk, 1, &n), 0);
    ASSERT_EQ(n, 0);
    store_rtxn_end(r);
    ASSERT_UEQ(counters(s).pending_bodies, 1);
    ASSERT_UEQ(counters(s).entries, 0);

    struct store_op op = commit_op(&o, body, "H");
    ASSERT_EQ(store_apply(s, &op, 1), 0);
    ASSERT(present(s, &o));
    ASSERT_UEQ(counters(s).pending_bodies, 0);
    assert_body(s, o.body_id, o.len, o.seed, 65536);
    free((void *)op.rec);
    free(body);
    store_close(s);
    tmpdir_free(dir);
}

/* A commit whose record says another length than the chunks add up to fails and leaves nothing. */
static void test_commit_verifies_length(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    uint64_t used0 = counters(s).used_bytes;
    struct obj o = obj_make("http://example.com/truncated", NULL, 4, 2 * STORE_CHUNK_SIZE + 10);
    uint8_t *body = body_make(&o);
    fill_chunks(s, &o, body);
    struct store_op op = commit_op(&o, body, "H");
    op.len -= 1; /* the upstream closed one byte early */
    ASSERT_EQ(store_apply(s, &op, 1), STORE_ESHORT);
    ASSERT(!present(s, &o));
    ASSERT(body_gone(s, o.body_id)); /* the failed fill's chunks were reclaimed */
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.pending_bodies, 0);
    ASSERT_UEQ(c.used_bytes, used0);
    ASSERT_UEQ(c.reclaimed_bodies, 1);
    free((void *)op.rec);

    /* A short chunk that is not the last one breaks the fixed chunk layout: rejected too. */
    struct obj o2 = obj_make("http://example.com/ragged", NULL, 5, 200);
    o2.body_id = store_body_id_alloc(s);
    struct store_op ops[2] = {
        {.kind = STORE_OP_PUT_CHUNK, .body_id = o2.body_id, .chunk_no = 0, .now = NOW, .data = body, .len = 100},
        {.kind = STORE_OP_PUT_CHUNK, .body_id = o2.body_id, .chunk_no = 1, .now = NOW, .data = body, .len = 100},
    };
    ASSERT_EQ(store_apply(s, ops, 2), 0);
    struct store_op cop = {.kind = STORE_OP_COMMIT, .body_id = o2.body_id, .pkey = o2.pkey, .vkey = o2.vkey};
    cop.rec = rec_make(&o2, "H", NULL, 0, &cop.rec_len);
    ASSERT_EQ(store_apply(s, &cop, 1), STORE_ESHORT);
    ASSERT(!present(s, &o2));
    free((void *)cop.rec);
    free(body);
    store_close(s);
    tmpdir_free(dir);
}

/* kill -9 in the middle of a fill: the next open reclaims the chunks; whole objects survive. */
static void test_reclaim_after_crash(void)
{
    char *dir = tmpdir_new();
    struct obj done = obj_make("http://example.com/done", NULL, 6, STORE_CHUNK_SIZE + 5);
    struct obj half = obj_make("http://example.com/half", NULL, 7, 4 * STORE_CHUNK_SIZE);
    {
        struct store *s = open_store(dir, 64 * MIB);
        ASSERT_EQ(put_object(s, &done), 0);
        store_close(s);
    }
    int pipefd[2];
    ASSERT_EQ(pipe(pipefd), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        /* The child: stream three chunks of `half` in three transactions, report its body_id, die. */
        close(pipefd[0]);
        struct store *s = open_store(dir, 64 * MIB);
        uint8_t *body = body_make(&half);
        fill_chunks(s, &half, body);
        if (write(pipefd[1], &half.body_id, sizeof(half.body_id)) != sizeof(half.body_id)) _exit(2);
        raise(SIGKILL);
        _exit(3);
    }
    close(pipefd[1]);
    ASSERT_EQ(read(pipefd[0], &half.body_id, sizeof(half.body_id)), sizeof(half.body_id));
    close(pipefd[0]);
    int status;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    struct store *s = open_store(dir, 64 * MIB);
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.reclaimed_bodies, 1);
    ASSERT_UEQ(c.pending_bodies, 0);
    ASSERT_UEQ(c.entries, 1);
    ASSERT(body_gone(s, half.body_id));
    ASSERT(!present(s, &half));
    ASSERT(present(s, &done));
    assert_body(s, done.body_id, done.len, done.seed, 70000);
    /* Accounting forgot the reclaimed chunks too. */
    ASSERT(c.used_bytes < done.len + 4096);
    /* body_ids never repeat, not even the one the dead process was writing. */
    ASSERT(store_body_id_alloc(s) > half.body_id);
    store_close(s);

    /* Closing with a fill open (no crash) is the same thing: reclaimed at the next open. */
    s = open_store(dir, 64 * MIB);
    struct obj again = obj_make("http://example.com/again", NULL, 8, 2 * STORE_CHUNK_SIZE + 1);
    uint8_t *body = body_make(&again);
    fill_chunks(s, &again, body);
    store_close(s);
    s = open_store(dir, 64 * MIB);
    ASSERT_UEQ(counters(s).reclaimed_bodies, 1);
    ASSERT(body_gone(s, again.body_id));
    free(body);
    store_close(s);
    tmpdir_free(dir);
}

static void test_abort_fill(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    uint64_t used0 = counters(s).used_bytes;
    struct obj o = obj_make("http://example.com/aborted", NULL, 9, 3 * STORE_CHUNK_SIZE);
    uint8_t *body = body_make(&o);
    fill_chunks(s, &o, body);
    ASSERT(counters(s).used_bytes >= used0 + 2 * STORE_CHUNK_SIZE);
    struct store_op op = {.kind = STORE_OP_ABORT, .body_id = o.body_id};
    ASSERT_EQ(store_apply(s, &op, 1), 0);
    ASSERT(body_gone(s, o.body_id));
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.used_bytes, used0);
    ASSERT_UEQ(c.pending_bodies, 0);
    ASSERT_UEQ(c.reclaimed_bodies, 0); /* an abort is not a leftover */
    /* Aborting a published body is a no-op: it has no pending row. */
    struct obj p = obj_make("http://example.com/published", NULL, 10, 1000);
    ASSERT_EQ(put_object(s, &p), 0);
    op.body_id = p.body_id;
    ASSERT_EQ(store_apply(s, &op, 1), 0);
    assert_body(s, p.body_id, p.len, p.seed, 4096);
    free(body);
    store_close(s);
    tmpdir_free(dir);
}

/* A 304 refresh: one meta write; body_id, length and every chunk byte untouched. */
static void test_update_meta_keeps_body(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    struct obj o = obj_make("http://example.com/refresh", "accept-encoding=gzip", 11, 2 * STORE_CHUNK_SIZE + 77);
    ASSERT_EQ(put_object(s, &o), 0);
    struct store_meta before;
    ASSERT_EQ(meta_get(s, &o, &before), 0);
    /* Snapshot the stored bytes and the counters. */
    uint8_t *snap = malloc(o.len);
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    size_t got = 0, n;
    while (got < o.len) {
        ASSERT_EQ(store_body_read(r, o.body_id, got, snap + got, o.len - got, &n), 0);
        got += n;
    }
    struct store_counters c0 = counters(s);

    /* The new record lies about the body (body_id 12345, and a longer body): the store must keep the
     * stored body fields, since a 304 never carries a body (RFC 9111 s4.3.4). */
    struct obj lie = o;
    lie.len = 5;
    size_t rec_len;
    void *rec = rec_make(&lie, "HTTP/1.1 200 OK\r\nX-Refreshed: 1\r\nCache-Control: max-age=60\r\n\r\n", "\"v2\"", 12345, &rec_len);
    struct store_op op = {.kind = STORE_OP_UPDATE_META, .vkey = o.vkey, .rec = rec, .rec_len = rec_len};
    ASSERT_EQ(store_apply(s, &op, 1), 0);

    struct store_counters c1 = counters(s);
    ASSERT_UEQ(c1.meta_writes, c0.meta_writes + 1);
    ASSERT_UEQ(c1.body_bytes_written, c0.body_bytes_written);
    ASSERT_UEQ(c1.body_chunk_writes, c0.body_chunk_writes);
    ASSERT_UEQ(c1.body_bytes_read, c0.body_bytes_read);
    ASSERT_UEQ(c1.entries, c0.entries);

    struct store_meta after;
    ASSERT_EQ(meta_get(s, &o, &after), 0);
    ASSERT_MEM_STR_EQ(after.rec.etag, after.rec.etag_len, "\"v2\"");
    ASSERT(after.rec.headers_len > before.rec.headers_len);
    ASSERT_UEQ(after.rec.body_id, before.rec.body_id);
    ASSERT_UEQ(after.rec.body_len, before.rec.body_len);
    ASSERT_UEQ(after.rec.n_chunks, before.rec.n_chunks);
    ASSERT_EQ(after.rec.complete, 1);
    /* Byte-identical body. */
    uint8_t *now = malloc(o.len);
    got = 0;
    while (got < o.len) {
        ASSERT_EQ(store_body_read(r, o.body_id, got, now + got, o.len - got, &n), 0);
        got += n;
    }
    ASSERT(memcmp(snap, now, o.len) == 0);
    /* Accounting follows the record's new size. */
    ASSERT_UEQ(c1.used_bytes, c0.used_bytes + (after.blob_len - before.blob_len));

    /* Refreshing something that is not there, or with another URI, is refused. */
    struct obj other = obj_make("http://example.com/other", "accept-encoding=gzip", 1, 5);
    size_t other_len;
    void *other_rec = rec_make(&other, "H", NULL, 0, &other_len);
    struct store_op bad = {.kind = STORE_OP_UPDATE_META, .vkey = other.vkey, .rec = other_rec, .rec_len = other_len};
    ASSERT_EQ(store_apply(s, &bad, 1), STORE_ENOTFOUND);
    bad.vkey = o.vkey;
    ASSERT_EQ(store_apply(s, &bad, 1), -EINVAL);
    bad.rec_len = 10;
    ASSERT_EQ(store_apply(s, &bad, 1), -EINVAL);

    store_rtxn_end(r);
    store_meta_release(&before);
    store_meta_release(&after);
    free(other_rec);
    free(rec);
    free(snap);
    free(now);
    store_close(s);
    tmpdir_free(dir);
}

/* A new 200 for the same variant: the new meta is published and the old body deleted in one
 * transaction; a reader in the middle of the old body gets STORE_EGONE at its next chunk. */
static void test_replacement_deletes_old_body(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    struct obj v1 = obj_make("http://example.com/replaced", NULL, 12, 3 * STORE_CHUNK_SIZE);
    ASSERT_EQ(put_object(s, &v1), 0);
    uint64_t used1 = counters(s).used_bytes;

    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    uint8_t *buf = malloc(STORE_CHUNK_SIZE);
    size_t n;
    ASSERT_EQ(store_body_read(r, v1.body_id, 0, buf, STORE_CHUNK_SIZE, &n), 0); /* chunk 0 sent... */
    ASSERT_EQ(n, STORE_CHUNK_SIZE);

    struct obj v2 = obj_make("http://example.com/replaced", NULL, 13, 1000);
    ASSERT_EQ(put_object(s, &v2), 0);
    ASSERT_NE(v2.body_id, v1.body_id);

    /* ...and chunk 1 is gone. */
    ASSERT_EQ(store_body_read(r, v1.body_id, STORE_CHUNK_SIZE, buf, STORE_CHUNK_SIZE, &n), STORE_EGONE);
    ASSERT(body_gone(s, v1.body_id));
    struct store_meta m;
    ASSERT_EQ(meta_get(s, &v2, &m), 0);
    ASSERT_UEQ(m.rec.body_id, v2.body_id);
    store_meta_release(&m);
    assert_body(s, v2.body_id, v2.len, v2.seed, 333);
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.replacements, 1);
    ASSERT_UEQ(c.entries, 1);
    ASSERT(c.used_bytes < used1 - 2 * STORE_CHUNK_SIZE);
    ASSERT_UEQ(c.evictions, 0);
    /* Still one variant under the primary key. */
    struct store_key vk[2];
    ASSERT_EQ(store_variants_get(r, &v1.pkey, vk, 2, &n), 0);
    ASSERT_EQ(n, 1);
    free(buf);
    store_rtxn_end(r);
    store_close(s);
    tmpdir_free(dir);
}

static void test_variants_and_deletes(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    struct obj gz = obj_make("http://example.com/v", "accept-encoding=gzip", 14, 3000);
    struct obj br = obj_make("http://example.com/v", "accept-encoding=br", 15, 4000);
    struct obj id = obj_make("http://example.com/v", "accept-encoding=identity", 16, STORE_CHUNK_SIZE + 1);
    ASSERT_EQ(put_object(s, &gz), 0);
    ASSERT_EQ(put_object(s, &br), 0);
    ASSERT_EQ(put_object(s, &id), 0);
    ASSERT(memcmp(gz.pkey.b, br.pkey.b, STORE_KEY_LEN) == 0);

    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct store_key vk[2];
    size_t n;
    ASSERT_EQ(store_variants_get(r, &gz.pkey, vk, 2, &n), 0);
    ASSERT_EQ(n, 3); /* total, though only two fit */

    struct store_op del = {.kind = STORE_OP_DELETE_VARIANT, .vkey = br.vkey};
    ASSERT_EQ(store_apply(s, &del, 1), 0);
    ASSERT_EQ(store_apply(s, &del, 1), STORE_ENOTFOUND);
    ASSERT(!present(s, &br));
    ASSERT(body_gone(s, br.body_id));
    ASSERT_EQ(store_variants_get(r, &gz.pkey, vk, 2, &n), 0);
    ASSERT_EQ(n, 2);

    /* RFC 9111 s4.4: an unsafe request invalidates the target URI: every variant goes. */
    struct store_op inval = {.kind = STORE_OP_DELETE_PRIMARY, .pkey = gz.pkey};
    ASSERT_EQ(store_apply(s, &inval, 1), 0);
    ASSERT(!present(s, &gz) && !present(s, &id));
    ASSERT(body_gone(s, gz.body_id) && body_gone(s, id.body_id));
    ASSERT_EQ(store_variants_get(r, &gz.pkey, vk, 2, &n), 0);
    ASSERT_EQ(n, 0);
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.entries, 0);
    ASSERT_UEQ(c.used_bytes, 0);
    ASSERT_UEQ(c.evictions, 0);
    ASSERT_EQ(store_apply(s, &inval, 1), STORE_ENOTFOUND);
    store_rtxn_end(r);
    store_close(s);
    tmpdir_free(dir);
}

/* The record's method and URI are compared on read: a (simulated) hash collision is a miss. */
/* ONE FORM PER URL (store.h): an unvaried response lives under the primary key with no variants row;
 * a varied one supersedes it, and an unvaried one supersedes every variant. Popularity carries over,
 * bodies of superseded entries go in the same transaction, and hit bookkeeping (which rewrites the
 * entry header in the meta value) leaves the record intact. */
static void test_one_form_per_url(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    struct obj u = obj_make("http://example.com/form", NULL, 31, 5000);
    ASSERT(memcmp(u.vkey.b, u.pkey.b, STORE_KEY_LEN) == 0);
    ASSERT_EQ(put_object(s, &u), 0);
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct store_key vk[4];
    size_t n = 0;
    ASSERT_EQ(store_variants_get(r, &u.pkey, vk, 4, &n), 0);
    ASSERT_EQ(n, 1);
    ASSERT(memcmp(vk[0].b, u.pkey.b, STORE_KEY_LEN) == 0);

    /* A hit promotes it: the header is rewritten, the record and body read back unchanged. */
    ASSERT_EQ(store_note_hit(s, &u.vkey), 0);
    fold(s);
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.promotions, 1);
    ASSERT(c.protected_bytes >= u.len);
    struct store_meta m;
    ASSERT_EQ(meta_get(s, &u, &m), 0);
    ASSERT_UEQ(m.rec.body_len, u.len);
    ASSERT(m.rec.headers_len > 0 && memcmp(m.rec.headers, "HTTP/1.1 200 OK", 15) == 0);
    store_meta_release(&m);
    assert_body(s, u.body_id, u.len, u.seed, 4096);

    /* A varied response for the URL: the unvaried one goes, its standing stays with the URL. */
    struct obj gz = obj_make("http://example.com/form", "accept-encoding=gzip", 32, 3000);
    ASSERT_EQ(put_object(s, &gz), 0);
    ASSERT(!present(s, &u));
    ASSERT(body_gone(s, u.body_id));
    ASSERT(present(s, &gz));
    c = counters(s);
    ASSERT_UEQ(c.replacements, 1);
    ASSERT_UEQ(c.entries, 1);
    ASSERT(c.protected_bytes >= gz.len && c.protected_bytes < gz.len + 4096);
    struct obj br = obj_make("http://example.com/form", "accept-encoding=br", 33, 2000);
    ASSERT_EQ(put_object(s, &br), 0);
    ASSERT(present(s, &gz) && present(s, &br));
    ASSERT_EQ(store_variants_get(r, &u.pkey, vk, 4, &n), 0);
    ASSERT_EQ(n, 2);

    /* Unvaried again: every variant goes. */
    struct obj u2 = obj_make("http://example.com/form", NULL, 34, 7000);
    ASSERT_EQ(put_object(s, &u2), 0);
    ASSERT(!present(s, &gz) && !present(s, &br));
    ASSERT(body_gone(s, gz.body_id) && body_gone(s, br.body_id));
    assert_body(s, u2.body_id, u2.len, u2.seed, 1000);
    ASSERT_EQ(store_variants_get(r, &u.pkey, vk, 4, &n), 0);
    ASSERT_EQ(n, 1);
    ASSERT(memcmp(vk[0].b, u.pkey.b, STORE_KEY_LEN) == 0);
    c = counters(s);
    ASSERT_UEQ(c.replacements, 3);
    ASSERT_UEQ(c.entries, 1);
    ASSERT(c.used_bytes >= u2.len && c.used_bytes < u2.len + 4096);

    /* Invalidation of the URL removes the unvaried entry too. */
    struct store_op inval = {.kind = STORE_OP_DELETE_PRIMARY, .pkey = u.pkey};
    ASSERT_EQ(store_apply(s, &inval, 1), 0);
    ASSERT(!present(s, &u2));
    ASSERT(body_gone(s, u2.body_id));
    ASSERT_EQ(store_variants_get(r, &u.pkey, vk, 4, &n), 0);
    ASSERT_EQ(n, 0);
    c = counters(s);
    ASSERT_UEQ(c.entries, 0);
    ASSERT_UEQ(c.used_bytes, 0);
    ASSERT_UEQ(c.protected_bytes, 0);
    ASSERT_EQ(store_apply(s, &inval, 1), STORE_ENOTFOUND);
    store_rtxn_end(r);
    store_close(s);
    tmpdir_free(dir);
}

static void test_collision_is_a_miss(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 8 * MIB);
    struct obj o = obj_make("http://example.com/x", NULL, 17, 10);
    ASSERT_EQ(put_object(s, &o), 0);
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct store_meta m;
    ASSERT_EQ(store_meta_get(r, &o.vkey, "GET", 3, "http://example.com/y", 20, &m), STORE_ENOTFOUND);
    ASSERT(m.blob == NULL);
    ASSERT_EQ(store_meta_get(r, &o.vkey, "HEAD", 4, "http://example.com/x", 20, &m), STORE_ENOTFOUND);
    ASSERT_UEQ(counters(s).collisions, 2);
    ASSERT_EQ(store_meta_get(r, &o.vkey, NULL, 0, NULL, 0, &m), 0); /* no comparison asked for */
    store_meta_release(&m);
    store_rtxn_end(r);
    store_close(s);
    tmpdir_free(dir);
}

static void test_too_big_rejected(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store_cfg(dir, 64 * MIB, 300 * KIB, 0);
    struct obj o = obj_make("http://example.com/huge", NULL, 18, 2 * STORE_CHUNK_SIZE);
    uint8_t *body = body_make(&o);
    o.body_id = store_body_id_alloc(s);
    struct store_op ops[3] = {
        {.kind = STORE_OP_PUT_CHUNK, .body_id = o.body_id, .chunk_no = 0, .now = NOW, .data = body, .len = STORE_CHUNK_SIZE},
        {.kind = STORE_OP_PUT_CHUNK,
         .body_id = o.body_id,
         .chunk_no = 1,
         .now = NOW,
         .data = body + STORE_CHUNK_SIZE,
         .len = STORE_CHUNK_SIZE},
        commit_op(&o, body, "H"),
    };
    ops[2].data = NULL, ops[2].len = 0;
    ASSERT_EQ(store_apply(s, ops, 3), STORE_ETOOBIG);
    ASSERT_EQ(ops[0].status, 0);
    ASSERT_EQ(ops[1].status, STORE_ETOOBIG);
    ASSERT_EQ(ops[2].status, STORE_ECANCELED);
    ASSERT(!present(s, &o));
    ASSERT(body_gone(s, o.body_id)); /* chunk 0, already written, was reclaimed */
    ASSERT_UEQ(counters(s).pending_bodies, 0);
    /* A record announcing a body above the limit is refused at commit as well. */
    struct obj big = obj_make("http://example.com/big-announced", NULL, 1, 400 * KIB);
    struct store_op cop = {.kind = STORE_OP_COMMIT, .body_id = store_body_id_alloc(s), .pkey = big.pkey, .vkey = big.vkey};
    cop.rec = rec_make(&big, "H", NULL, 0, &cop.rec_len);
    ASSERT_EQ(store_apply(s, &cop, 1), STORE_ETOOBIG);
    free((void *)cop.rec);
    free((void *)ops[2].rec);
    free(body);
    store_close(s);
    tmpdir_free(dir);
}

static void assert_under(struct store *s, uint64_t cache_size)
{
    struct store_counters c = counters(s);
    if (c.used_bytes > cache_size) TEST_FAIL_("used_bytes %ju > cache_size %ju", (uintmax_t)c.used_bytes, (uintmax_t)cache_size);
}

static void test_eviction_keeps_under_cache_size(void)
{
    char *dir = tmpdir_new();
    const uint64_t cache = 2 * MIB;
    struct store *s = open_store(dir, cache);
    struct obj o[40];
    for (int i = 0; i < 40; i++) {
        o[i] = obj_numbered("e", (unsigned)i, NULL, (unsigned)i, 100 * KIB);
        ASSERT_EQ(put_object(s, &o[i]), 0);
        assert_under(s, cache);
    }
    struct store_counters c = counters(s);
    ASSERT(c.evictions >= 20);
    ASSERT_UEQ(c.entries + c.evictions, 40);
    /* Oldest first: the first object went, the last ones are there and intact. */
    ASSERT(!present(s, &o[0]));
    ASSERT(body_gone(s, o[0].body_id));
    for (int i = 35; i < 40; i++) {
        ASSERT(present(s, &o[i]));
        assert_body(s, o[i].body_id, o[i].len, o[i].seed, 50000);
    }
    store_close(s);
    tmpdir_free(dir);
}

/* Runs the sweep scenario; returns how many of the hot objects survived. */
static int sweep_survivors(int hit_hot)
{
    char *dir = tmpdir_new();
    const uint64_t cache = 4 * MIB;
    struct store *s = open_store(dir, cache);
    struct obj hot[6];
    for (int i = 0; i < 6; i++) {
        char uri[64];
        snprintf(uri, sizeof(uri), "http://example.com/toolchain-%d.tar.gz", i);
        hot[i] = obj_make(uri, NULL, (unsigned)i, 100 * KIB);
        ASSERT_EQ(put_object(s, &hot[i]), 0);
    }
    if (hit_hot) {
        /* Every CI job fetches the toolchain: two more references each. */
        for (int round = 0; round < 2; round++)
            for (int i = 0; i < 6; i++)
                store_note_hit(s, &hot[i].vkey);
        uint64_t applied_before = counters(s).promotions;
        ASSERT_UEQ(counters(s).hits_noted, 12);
        fold(s); /* the hit path wrote nothing; the writer folds the hits now */
        ASSERT_UEQ(counters(s).promotions, applied_before + 6);
        ASSERT_UEQ(counters(s).protected_bytes, counters(s).used_bytes); /* all six, and nothing else */
    }
    /* A one-off job sweeps 100 objects once each: 2.5 times the cache. */
    for (int i = 0; i < 100; i++) {
        char uri[64];
        snprintf(uri, sizeof(uri), "http://mirror.example.com/pkg-%d.deb", i);
        struct obj cold = obj_make(uri, NULL, 100u + (unsigned)i, 100 * KIB);
        ASSERT_EQ(put_object(s, &cold), 0);
        assert_under(s, cache);
    }
    int survivors = 0;
    for (int i = 0; i < 6; i++) {
        if (present(s, &hot[i])) {
            survivors++;
            assert_body(s, hot[i].body_id, hot[i].len, hot[i].seed, 100 * KIB);
        }
    }
    ASSERT(counters(s).evictions >= 60);
    store_close(s);
    tmpdir_free(dir);
    return survivors;
}

static void test_scan_resistance(void)
{
    ASSERT_EQ(sweep_survivors(1), 6);
    /* The control: without the hits the same sweep flushes them (so the test above can fail). */
    ASSERT_EQ(sweep_survivors(0), 0);
}

/* Protected never exceeds its share; its LRU end is demoted to probation, not evicted. */
static void test_protected_cap_demotes(void)
{
    char *dir = tmpdir_new();
    const uint64_t cache = 2 * MIB;
    struct store *s = open_store(dir, cache);
    struct obj o[18];
    for (int i = 0; i < 18; i++) {
        o[i] = obj_numbered("p", (unsigned)i, NULL, (unsigned)i, 100 * KIB);
        ASSERT_EQ(put_object(s, &o[i]), 0);
        store_note_hit(s, &o[i].vkey);
        fold(s);
    }
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.promotions, 18);
    ASSERT(c.demotions > 0);
    ASSERT(c.protected_bytes <= cache / 100 * STORE_PROTECTED_PCT);
    ASSERT_UEQ(c.evictions, 0); /* 18 * ~100 KiB fits in 2 MiB: demoted, not evicted */
    store_close(s);
    tmpdir_free(dir);
}

/* Noted hits for entries that are gone are ignored; a full table drops hits and says so. */
static void test_hit_table(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 8 * MIB);
    struct obj ghost = obj_make("http://example.com/ghost", NULL, 1, 10);
    ASSERT_EQ(store_note_hit(s, &ghost.vkey), 0);
    uint64_t txns = counters(s).write_txns;
    fold(s);
    ASSERT_UEQ(counters(s).write_txns, txns); /* nothing to write: no transaction committed */
    int said_fold = 0;
    for (unsigned i = 0; i < 5000; i++) {
        struct store_key k;
        ASSERT_EQ(store_key_primary(NULL, &k, "GET", 3, &i, sizeof(i)), 0);
        said_fold |= store_note_hit(s, &k);
    }
    ASSERT(said_fold);
    struct store_counters c = counters(s);
    ASSERT(c.hits_dropped > 0);
    ASSERT_UEQ(c.hits_noted + c.hits_dropped, 5001);
    fold(s);
    store_close(s);
    tmpdir_free(dir);
}

/* A map much smaller than cache_size: LMDB itself runs out (MDB_MAP_FULL) before the accounting
 * does. The store evicts and retries; an object that cannot fit at all fails with STORE_EFULL. */
static void test_map_full(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store_cfg(dir, 256 * MIB, 64 * MIB, 4 * MIB);
    /* Eight objects of 200 KiB to a batch, 40% of the map: more than the room the store keeps free
     * between batches (store_lmdb.c, ROOM), so the map fills inside a batch. */
    struct obj o[40];
    for (int b = 0; b < 5; b++) {
        struct store_op ops[8];
        uint8_t *bodies[8];
        for (int j = 0; j < 8; j++) {
            int i = b * 8 + j;
            o[i] = obj_numbered("m", (unsigned)i, NULL, (unsigned)i, 200 * KIB);
            o[i].body_id = store_body_id_alloc(s);
            bodies[j] = body_make(&o[i]);
            ops[j] = commit_op(&o[i], bodies[j], "HTTP/1.1 200 OK\r\n\r\n");
        }
        (void)store_apply(s, ops, 8);
        for (int j = 0; j < 8; j++) {
            if (ops[j].status != 0) TEST_FAIL_("object %d: %s", b * 8 + j, store_strerror(ops[j].status));
            free((void *)ops[j].rec);
            free(bodies[j]);
        }
    }
    struct store_counters c = counters(s);
    fprintf(stderr, "  map_full %ju, evictions %ju, write_txns %ju\n", (uintmax_t)c.map_full, (uintmax_t)c.evictions,
            (uintmax_t)c.write_txns);
    ASSERT(c.map_full > 0);
    ASSERT(c.evictions > 0);
    for (int i = 36; i < 40; i++)
        assert_body(s, o[i].body_id, o[i].len, o[i].seed, 65536);

    /* 8 MiB can never fit in a 4 MiB map: the fill fails cleanly... */
    struct obj huge = obj_make("http://example.com/huge", NULL, 99, 8 * MIB);
    uint8_t *body = body_make(&huge);
    huge.body_id = store_body_id_alloc(s);
    size_t n_chunks = huge.len / STORE_CHUNK_SIZE;
    struct store_op *ops = calloc(n_chunks + 1, sizeof(*ops));
    for (size_t k = 0; k < n_chunks; k++)
        ops[k] = (struct store_op){.kind = STORE_OP_PUT_CHUNK,
                                   .body_id = huge.body_id,
                                   .chunk_no = (uint32_t)k,
                                   .now = NOW,
                                   .data = body + k * STORE_CHUNK_SIZE,
                                   .len = STORE_CHUNK_SIZE};
    int rc = STORE_EFULL + 1;
    size_t k = 0;
    for (; k < n_chunks && (rc = store_apply(s, &ops[k], 1)) == 0; k++)
        ;
    ASSERT_EQ(rc, STORE_EFULL);
    ASSERT(k < n_chunks);
    ASSERT(body_gone(s, huge.body_id));
    ASSERT_UEQ(counters(s).pending_bodies, 0);
    /* ...and the store goes on working. */
    struct obj after = obj_make("http://example.com/after", NULL, 100, 200 * KIB);
    ASSERT_EQ(put_object(s, &after), 0);
    assert_body(s, after.body_id, after.len, after.seed, 65536);
    free(ops);
    free(body);
    store_close(s);
    /* And it reopens. */
    s = open_store_cfg(dir, 256 * MIB, 64 * MIB, 4 * MIB);
    assert_body(s, after.body_id, after.len, after.seed, 65536);
    store_close(s);
    tmpdir_free(dir);
}

/* Many ops in one store_apply: one write transaction; a failing op does not sink the others. */
/* Stores `rounds` batches of `batch` 1 KiB objects named prefix-round-i; returns how many of the last
 * batch were stored and leaves that batch's objects in last[]. */
static int put_small_batches(struct store *s, const char *prefix, int rounds, int batch, struct obj *last)
{
    struct store_op *ops = calloc((size_t)batch, sizeof(*ops));
    uint8_t **bodies = calloc((size_t)batch, sizeof(*bodies));
    ASSERT(ops != NULL && bodies != NULL);
    int ok = 0;
    for (int round = 0; round < rounds; round++) {
        for (int i = 0; i < batch; i++) {
            char uri[64];
            snprintf(uri, sizeof(uri), "http://example.com/%s-%d-%d", prefix, round, i);
            last[i] = obj_make(uri, NULL, (unsigned)i, 1 * KIB);
            last[i].body_id = store_body_id_alloc(s);
            bodies[i] = body_make(&last[i]);
            ops[i] = commit_op(&last[i], bodies[i], "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n");
        }
        (void)store_apply(s, ops, (size_t)batch);
        ok = 0;
        for (int i = 0; i < batch; i++) {
            ok += ops[i].status == 0;
            free((void *)ops[i].rec);
            free(bodies[i]);
        }
    }
    free(ops);
    free(bodies);
    return ok;
}

/* Small objects cost LMDB more pages than their accounted size says (a meta leaf holds five or so
 * records, a body leaf three 1 KiB bodies), so the map can fill while the accounted bytes are far
 * below cache_size. The store must keep storing: evict, and not wedge with every write failing. */
static void test_map_full_with_small_objects(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store_cfg(dir, 256 * MIB, 0, 4 * MIB);
    enum { BATCH = 256 };
    struct obj *o = calloc(BATCH, sizeof(*o));
    int last_ok = put_small_batches(s, "small", 20, BATCH, o);
    struct store_counters c = counters(s);
    fprintf(stderr, "  map_full %ju, evictions %ju, entries %ju, used %ju, last batch stored %d of %d\n",
            (uintmax_t)c.map_full, (uintmax_t)c.evictions, (uintmax_t)c.entries, (uintmax_t)c.used_bytes, last_ok, BATCH);
    ASSERT(c.evictions > 0); /* 5120 objects do not fit in 4 MiB */
    ASSERT_EQ(last_ok, BATCH);
    for (int i = 0; i < BATCH; i++)
        ASSERT(present(s, &o[i]));
    free(o);
    store_close(s);
    tmpdir_free(dir);
}

/* With room for a few batches of copy-on-write left, the store keeps its trees out of the last fifth
 * of the map by evicting below cache_size (ROOM), so the map never fills at all. */
static void test_room_limit_keeps_map_from_filling(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store_cfg(dir, 256 * MIB, 0, 32 * MIB);
    enum { BATCH = 256 };
    struct obj *o = calloc(BATCH, sizeof(*o));
    int last_ok = put_small_batches(s, "room", 120, BATCH, o); /* ~70 MiB of pages */
    struct store_counters c = counters(s);
    fprintf(stderr, "  map_full %ju, evictions %ju, entries %ju, used %ju, room_limit %ju\n", (uintmax_t)c.map_full,
            (uintmax_t)c.evictions, (uintmax_t)c.entries, (uintmax_t)c.used_bytes, (uintmax_t)c.room_limit);
    ASSERT(c.evictions > 0);
    ASSERT_UEQ(c.map_full, 0);
    ASSERT(c.room_limit < 32 * MIB);
    ASSERT_EQ(last_ok, BATCH);
    free(o);
    store_close(s);
    tmpdir_free(dir);
}

static void test_group_commit(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    enum { N = 30 };
    struct obj o[N];
    struct store_op ops[2 * N];
    uint8_t *bodies[N];
    size_t n_ops = 0;
    for (int i = 0; i < N; i++) {
        o[i] = obj_numbered("g", (unsigned)i, NULL, (unsigned)i, STORE_CHUNK_SIZE + 100);
        o[i].body_id = store_body_id_alloc(s);
        bodies[i] = body_make(&o[i]);
        ops[n_ops++] = (struct store_op){
            .kind = STORE_OP_PUT_CHUNK, .body_id = o[i].body_id, .now = NOW, .data = bodies[i], .len = STORE_CHUNK_SIZE};
        ops[n_ops++] = commit_op(&o[i], bodies[i], "H");
    }
    ops[2 * 7 + 1].len -= 1; /* object 7 is truncated */
    uint64_t txns0 = counters(s).write_txns;
    ASSERT_EQ(store_apply(s, ops, n_ops), STORE_ESHORT);
    struct store_counters c = counters(s);
    /* The batch, plus one to reclaim the truncated fill's first chunk. */
    ASSERT_UEQ(c.write_txns, txns0 + 2);
    ASSERT_UEQ(c.entries, N - 1);
    ASSERT_UEQ(c.meta_writes, N - 1);
    for (int i = 0; i < N; i++) {
        ASSERT_EQ(present(s, &o[i]), i != 7);
        free((void *)ops[2 * i + 1].rec);
        free(bodies[i]);
    }
    ASSERT(body_gone(s, o[7].body_id));
    store_close(s);
    tmpdir_free(dir);
}

static void test_restart_serves_entries(void)
{
    char *dir = tmpdir_new();
    struct obj o[3];
    uint64_t max_id = 0;
    struct store_counters before;
    {
        struct store *s = open_store(dir, 64 * MIB);
        for (int i = 0; i < 3; i++) {
            o[i] = obj_numbered("r", (unsigned)i, NULL, (unsigned)i, (size_t)i * STORE_CHUNK_SIZE + 17);
            ASSERT_EQ(put_object(s, &o[i]), 0);
            max_id = o[i].body_id > max_id ? o[i].body_id : max_id;
        }
        store_note_hit(s, &o[0].vkey);
        fold(s);
        before = counters(s);
        store_close(s);
    }
    struct store *s = open_store(dir, 64 * MIB);
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.entries, 3);
    ASSERT_UEQ(c.used_bytes, before.used_bytes);
    ASSERT_UEQ(c.protected_bytes, before.protected_bytes);
    ASSERT_UEQ(c.reclaimed_bodies, 0);
    for (int i = 0; i < 3; i++) {
        ASSERT(present(s, &o[i]));
        assert_body(s, o[i].body_id, o[i].len, o[i].seed, 100000);
    }
    ASSERT(store_body_id_alloc(s) > max_id);
    store_close(s);

    /* A smaller cache_size at the next start: the open evicts down to it. */
    s = open_store(dir, 300 * KIB);
    assert_under(s, 300 * KIB);
    ASSERT(counters(s).evictions > 0);
    store_close(s);
    tmpdir_free(dir);
}

/* ---- the key filter (store_filter_step) --------------------------------------------------------- */

static struct store *open_store_filter_cfg(const char *dir, uint64_t cache_size, uint64_t min_keys, unsigned slice)
{
    struct store_config cfg = {
        .dir = dir, .cache_size = cache_size, .flags = STORE_F_NOSYNC, .filter_min_keys = min_keys, .filter_slice = slice};
    return open_with(&cfg);
}

static struct store *open_store_filter(const char *dir, uint64_t min_keys)
{
    return open_store_filter_cfg(dir, 64 * MIB, min_keys, 0);
}

/* How many stored responses a lookup of pkey finds (the proxy's lookup: store_variants_get). */
static size_t lookup(struct store_rtxn *r, const struct store_key *pkey)
{
    struct store_key keys[4];
    size_t n = 99;
    ASSERT_EQ(store_variants_get(r, pkey, keys, 4, &n), 0);
    return n;
}

/* Steps until the build is done; a build of a few entries takes one or two steps. */
static void build_filter(struct store *s)
{
    int rc = 1;
    for (int i = 0; rc == 1 && i < 100; i++)
        rc = store_filter_step(s);
    ASSERT_EQ(rc, 0);
}

static void test_filter_answers_misses(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store_filter(dir, 64);
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct obj o[6];
    for (int i = 0; i < 6; i++) {
        o[i] = obj_numbered("f", (unsigned)i, i == 5 ? "accept-encoding: gzip" : NULL, (unsigned)i, 100);
        if (i < 4 || i == 5) ASSERT_EQ(put_object(s, &o[i]), 0);
    }
    struct obj missing = obj_make("http://example.com/never", NULL, 9, 1);
    /* No filter before the first build: the lookup reads LMDB and finds what is there. */
    ASSERT_UEQ(lookup(r, &o[0].pkey), 1);
    ASSERT_UEQ(lookup(r, &missing.pkey), 0);
    ASSERT_UEQ(counters(s).filter_negatives, 0);
    ASSERT_UEQ(counters(s).filter_builds, 0);

    build_filter(s);
    ASSERT_UEQ(counters(s).filter_builds, 1);
    ASSERT_UEQ(counters(s).filter_bytes, 64 * STORE_FILTER_BITS_PER_KEY / 8);
    ASSERT_UEQ(lookup(r, &missing.pkey), 0);
    ASSERT_UEQ(counters(s).filter_negatives, 1); /* answered without LMDB */
    for (int i = 0; i < 4; i++)
        ASSERT_UEQ(lookup(r, &o[i].pkey), 1);
    ASSERT_UEQ(lookup(r, &o[5].pkey), 1); /* a varied response: its primary key is in the filter */
    /* Committed after the build: in the filter from its commit on. */
    ASSERT_UEQ(lookup(r, &o[4].pkey), 0);
    uint64_t neg = counters(s).filter_negatives;
    ASSERT_UEQ(neg, 2);
    ASSERT_EQ(put_object(s, &o[4]), 0);
    ASSERT_UEQ(lookup(r, &o[4].pkey), 1);
    ASSERT_UEQ(counters(s).filter_negatives, neg);
    ASSERT_EQ(store_filter_step(s), 0); /* nothing due */
    ASSERT_UEQ(counters(s).filter_builds, 1);
    /* An ended handle's count stays counted. */
    store_rtxn_end(r);
    ASSERT_UEQ(counters(s).filter_negatives, neg);
    store_close(s);

    /* After a restart every stored response is found again, before and after the new build. */
    s = open_store_filter(dir, 64);
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    for (int i = 0; i < 6; i++)
        ASSERT_UEQ(lookup(r, &o[i].pkey), 1);
    build_filter(s);
    for (int i = 0; i < 6; i++)
        ASSERT_UEQ(lookup(r, &o[i].pkey), 1);
    ASSERT_UEQ(lookup(r, &missing.pkey), 0);
    ASSERT_UEQ(counters(s).filter_negatives, 1);
    store_rtxn_end(r);
    store_close(s);
    tmpdir_free(dir);
}

static void test_filter_rebuilt_when_outgrown(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store_filter(dir, 8);
    build_filter(s); /* empty store: the smallest filter */
    ASSERT_UEQ(counters(s).filter_builds, 1);
    ASSERT_UEQ(counters(s).filter_bytes, 64);
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct obj o[40];
    for (int i = 0; i < 40; i++) {
        o[i] = obj_numbered("g", (unsigned)i, NULL, (unsigned)i, 10);
        ASSERT_EQ(put_object(s, &o[i]), 0);
        /* A rebuild is due once more keys were added than the filter holds; it runs between batches. */
        int rc;
        while ((rc = store_filter_step(s)) == 1) {
        }
        ASSERT_EQ(rc, 0);
    }
    struct store_counters c = counters(s);
    ASSERT(c.filter_builds >= 3); /* 8 -> 18 -> 38 -> 78 keys, say */
    ASSERT(c.filter_bytes >= 40 * STORE_FILTER_BITS_PER_KEY / 8);
    for (int i = 0; i < 40; i++)
        ASSERT_UEQ(lookup(r, &o[i].pkey), 1);
    store_rtxn_end(r);
    store_close(s);
    tmpdir_free(dir);
}

/* The build scans the lru table, whose rows move: a demotion puts an entry at the MRU end of probation,
 * which may be behind a scan that has reached the protected segment. The move itself must put the key
 * in the filter being built. One row per step here, so the scan can be stopped anywhere. */
static void test_filter_build_sees_entries_moved_behind_it(void)
{
    char *dir = tmpdir_new();
    /* Protected holds 80% of 256 KiB: the four 25 KiB objects, not those and 140 KiB more. */
    struct store *s = open_store_filter_cfg(dir, 256 * KIB, 64, 1);
    struct obj p = obj_make("http://example.com/m-p", NULL, 1, 1 * KIB), y = obj_make("http://example.com/m-y", NULL, 2, 140 * KIB);
    struct obj x[4];
    ASSERT_EQ(put_object(s, &p), 0);
    for (int i = 0; i < 4; i++) {
        x[i] = obj_numbered("m-x", (unsigned)i, NULL, (unsigned)(10 + i), 25 * KIB);
        ASSERT_EQ(put_object(s, &x[i]), 0);
        store_note_hit(s, &x[i].vkey);
        fold(s); /* promoted: protected, in this order */
    }
    ASSERT_EQ(put_object(s, &y), 0);
    /* lru order: probation p, y; protected x0..x3. Three steps scan p, y, x0; the scan stops at x1. */
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(store_filter_step(s), 1);
    uint64_t dem = counters(s).demotions;
    store_note_hit(s, &y.vkey);
    fold(s); /* y promoted: protected over its cap, its LRU end (x0, x1) demoted behind the scan */
    ASSERT(counters(s).demotions >= dem + 2);
    build_filter(s);
    ASSERT_UEQ(counters(s).filter_builds, 1);
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    ASSERT_UEQ(lookup(r, &p.pkey), 1);
    ASSERT_UEQ(lookup(r, &y.pkey), 1);
    for (int i = 0; i < 4; i++)
        if (lookup(r, &x[i].pkey) != 1) TEST_FAIL_("x%d, stored all along, ruled out by the filter", i);
    ASSERT_UEQ(counters(s).evictions, 0);
    store_rtxn_end(r);
    store_close(s);
    tmpdir_free(dir);
}

/* Readers on other threads while the writer commits and rebuilds the filter over and over: a reader
 * never misses a response committed before its lookup began, and never probes a freed filter (the
 * hazard pointers; ASan would report a use after free). */
struct filter_race {
    struct store *s;
    struct obj *o;
    unsigned committed; /* atomic: o[0..committed) are in the store */
    int done;           /* atomic */
    unsigned lookups; /* atomic */
};

static void *filter_race_reader(void *arg)
{
    struct filter_race *fr = arg;
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(fr->s, &r), 0);
    struct obj never = obj_make("http://example.com/race-never", NULL, 1, 1);
    unsigned x = 12345;
    while (!__atomic_load_n(&fr->done, __ATOMIC_ACQUIRE)) {
        unsigned n = __atomic_load_n(&fr->committed, __ATOMIC_ACQUIRE);
        if (n == 0) continue;
        x = x * 1103515245u + 12345u;
        unsigned i = (x >> 8) % n;
        if (lookup(r, &fr->o[i].pkey) != 1) TEST_FAIL_("object %u, committed before the lookup, not found", i);
        ASSERT_UEQ(lookup(r, &never.pkey), 0);
        __atomic_fetch_add(&fr->lookups, 2, __ATOMIC_RELAXED);
    }
    store_rtxn_end(r);
    return NULL;
}

static void test_filter_rebuilds_race_readers(void)
{
    char *dir = tmpdir_new();
    enum { N = 3000 };
    struct filter_race fr = {.s = open_store_filter(dir, 16), .o = calloc(N, sizeof(struct obj))};
    ASSERT(fr.o != NULL);
    for (unsigned i = 0; i < N; i++) {
        fr.o[i] = obj_numbered("race", i, NULL, i, 8);
    }
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        ASSERT_EQ(pthread_create(&th[t], NULL, filter_race_reader, &fr), 0);
    for (unsigned i = 0; i < N; i++) {
        ASSERT_EQ(put_object(fr.s, &fr.o[i]), 0);
        __atomic_store_n(&fr.committed, i + 1, __ATOMIC_RELEASE);
        ASSERT(store_filter_step(fr.s) >= 0);
    }
    int rc;
    while ((rc = store_filter_step(fr.s)) == 1) {
    }
    ASSERT_EQ(rc, 0);
    __atomic_store_n(&fr.done, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < 2; t++)
        ASSERT_EQ(pthread_join(th[t], NULL), 0);
    struct store_counters c = counters(fr.s);
    fprintf(stderr, "filter race: %u lookups, %ju builds, %ju ruled out\n", __atomic_load_n(&fr.lookups, __ATOMIC_RELAXED), (uintmax_t)c.filter_builds,
            (uintmax_t)c.filter_negatives);
    ASSERT(c.filter_builds >= 6); /* 16 keys at first, 3000 in the end: rebuilt while the readers ran */
    ASSERT(c.filter_negatives > 0);
    store_close(fr.s);
    free(fr.o);
    tmpdir_free(dir);
}

static void test_open_twice_busy(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 8 * MIB);
    struct store_config cfg = {.dir = dir, .cache_size = 8 * MIB, .flags = STORE_F_NOSYNC};
    struct store *s2 = (struct store *)1;
    char err[256];
    ASSERT_EQ(store_open(&s2, &cfg, err, sizeof(err)), STORE_EBUSY);
    ASSERT(s2 == NULL);
    ASSERT(strstr(err, "in use") != NULL);
    store_close(s);
    s = open_store(dir, 8 * MIB); /* free again after close */
    store_close(s);
    tmpdir_free(dir);
}

static void expect_open_fails(const char *dir, int code, const char *needle)
{
    struct store_config cfg = {.dir = dir, .cache_size = 8 * MIB, .flags = STORE_F_NOSYNC};
    struct store *s = NULL;
    char err[512] = "";
    int rc = store_open(&s, &cfg, err, sizeof(err));
    if (rc != code || s != NULL || strstr(err, needle) == NULL)
        TEST_FAIL_("store_open(%s) = %d (%s), \"%s\"; wanted %d and a message with \"%s\"", dir, rc, store_strerror(rc), err, code,
                   needle);
    fprintf(stderr, "  rejected as expected: %s\n", err);
}

static void test_corrupt_or_foreign_rejected(void)
{
    /* Garbage where data.mdb should be. */
    char *dir = tmpdir_new();
    char path[512];
    snprintf(path, sizeof(path), "%s/data.mdb", dir);
    FILE *f = fopen(path, "wb");
    ASSERT(f != NULL);
    uint64_t seed = 12345;
    for (int i = 0; i < 64 * 1024; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        fputc((int)(seed >> 56), f);
    }
    fclose(f);
    expect_open_fails(dir, STORE_ECORRUPT, "not an LMDB file");
    tmpdir_free(dir);

    /* A regular file where the directory should be. */
    dir = tmpdir_new();
    snprintf(path, sizeof(path), "%s/file", dir);
    f = fopen(path, "w");
    fputs("not a directory", f);
    fclose(f);
    expect_open_fails(path, -ENOTDIR, "not a directory");
    tmpdir_free(dir);

    /* A healthy LMDB environment that belongs to someone else. */
    dir = tmpdir_new();
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_open(env, dir, MDB_NOSYNC, 0600), 0);
    ASSERT_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val k = {5, "hello"}, v = {5, "world"};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    expect_open_fails(dir, STORE_EFORMAT, "not a larder store");
    tmpdir_free(dir);

    /* A larder store from an incompatible (future) format version. */
    dir = tmpdir_new();
    store_close(open_store(dir, 8 * MIB));
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(env, 8), 0);
    ASSERT_EQ(mdb_env_open(env, dir, MDB_NOSYNC, 0600), 0);
    ASSERT_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "state", 0, &dbi), 0);
    k = (MDB_val){6, "format"};
    ASSERT_EQ(mdb_get(txn, dbi, &k, &v), 0);
    ASSERT_EQ(v.mv_size, 16);
    uint8_t fmt[16];
    memcpy(fmt, v.mv_data, 16);
    store__be32_put(fmt + 8, 99);
    v = (MDB_val){16, fmt};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
    expect_open_fails(dir, STORE_EFORMAT, "version 99");
    tmpdir_free(dir);

    /* A directory created on demand, parents included. */
    dir = tmpdir_new();
    snprintf(path, sizeof(path), "%s/a/b/store", dir);
    store_close(open_store(path, 8 * MIB));
    struct stat st;
    snprintf(path, sizeof(path), "%s/a/b/store/data.mdb", dir);
    ASSERT_EQ(stat(path, &st), 0);
    tmpdir_free(dir);
}

/* A reader that holds nothing across calls: meta and body reads with a reset rtxn never leave it
 * active, so the writer can reuse freed pages. */
/* A store written by the previous format (version 1, with its `entry` table) is emptied at open, in
 * one transaction, and larder starts with an empty cache instead of refusing the directory. */
static void test_old_format_discarded(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 8 * MIB);
    struct obj o = obj_make("http://example.com/old", NULL, 41, 3000);
    ASSERT_EQ(put_object(s, &o), 0);
    store_close(s);

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi, entry;
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(env, 8), 0);
    ASSERT_EQ(mdb_env_open(env, dir, MDB_NOSYNC, 0600), 0);
    ASSERT_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "state", 0, &dbi), 0);
    MDB_val k = {6, "format"}, v;
    ASSERT_EQ(mdb_get(txn, dbi, &k, &v), 0);
    uint8_t fmt[16];
    memcpy(fmt, v.mv_data, 16);
    store__be32_put(fmt + 8, 1);
    v = (MDB_val){16, fmt};
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "entry", MDB_CREATE, &entry), 0);
    MDB_val ek = {STORE_KEY_LEN, o.vkey.b}, ev = {3, "old"};
    ASSERT_EQ(mdb_put(txn, entry, &ek, &ev, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    s = open_store(dir, 8 * MIB);
    struct store_counters c = counters(s);
    ASSERT_UEQ(c.discarded_at_open, 1);
    ASSERT_UEQ(c.entries, 0);
    ASSERT_UEQ(c.used_bytes, 0);
    ASSERT(!present(s, &o));
    ASSERT(body_gone(s, o.body_id));
    struct obj o2 = obj_make("http://example.com/new", NULL, 42, 2000);
    ASSERT_EQ(put_object(s, &o2), 0);
    ASSERT(o2.body_id > o.body_id); /* body_ids keep growing across the discard */
    store_close(s);

    s = open_store(dir, 8 * MIB);
    c = counters(s);
    ASSERT_UEQ(c.discarded_at_open, 0);
    ASSERT_UEQ(c.entries, 1);
    ASSERT(present(s, &o2));
    assert_body(s, o2.body_id, o2.len, o2.seed, 500);
    /* The old format's table is gone for good. */
    store_close(s);
    ASSERT_EQ(mdb_env_create(&env), 0);
    ASSERT_EQ(mdb_env_set_maxdbs(env, 8), 0);
    ASSERT_EQ(mdb_env_open(env, dir, MDB_NOSYNC | MDB_RDONLY, 0600), 0);
    ASSERT_EQ(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "entry", 0, &entry), MDB_NOTFOUND);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    tmpdir_free(dir);
}

static void test_rtxn_left_reset(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 8 * MIB);
    struct obj o = obj_make("http://example.com/rt", NULL, 1, 5000);
    ASSERT_EQ(put_object(s, &o), 0);
    struct store_rtxn *r;
    ASSERT_EQ(store_rtxn_begin(s, &r), 0);
    struct store_meta m;
    ASSERT_EQ(store_meta_get(r, &o.vkey, "GET", 3, o.uri, strlen(o.uri), &m), 0);
    store_meta_release(&m);
    /* Still reset: renew succeeds exactly once. */
    ASSERT_EQ(store_rtxn_renew(r), 0);
    ASSERT_EQ(store_rtxn_renew(r), -EINVAL);
    store_rtxn_reset(r);
    uint8_t b[100];
    size_t n;
    ASSERT_EQ(store_body_read(r, o.body_id, 4990, b, sizeof(b), &n), 0);
    ASSERT_EQ(n, 10);
    ASSERT_EQ(store_rtxn_renew(r), 0);
    store_rtxn_end(r); /* ending an active one is fine too */
    store_close(s);
    tmpdir_free(dir);
}

/* The store keeps its invariants even against a confused caller: a body belongs to one entry, and a
 * body that is no longer pending takes no more chunks (so nothing the next open reclaims can be live). */
static void test_misuse_refused(void)
{
    char *dir = tmpdir_new();
    struct store *s = open_store(dir, 64 * MIB);
    struct obj a = obj_make("http://example.com/a", NULL, 1, STORE_CHUNK_SIZE + 10);
    ASSERT_EQ(put_object(s, &a), 0);
    uint8_t *body = body_make(&a);
    /* A chunk for a published body. */
    struct store_op put = {.kind = STORE_OP_PUT_CHUNK, .body_id = a.body_id, .chunk_no = 2, .now = NOW, .data = body, .len = 5};
    ASSERT_EQ(store_apply(s, &put, 1), -EINVAL);
    /* The same body published a second time under another variant. */
    struct obj b = obj_make("http://example.com/b", NULL, 1, a.len);
    b.body_id = a.body_id;
    struct store_op cop = {.kind = STORE_OP_COMMIT, .body_id = a.body_id, .pkey = b.pkey, .vkey = b.vkey};
    cop.rec = rec_make(&b, "H", NULL, 0, &cop.rec_len);
    ASSERT_EQ(store_apply(s, &cop, 1), -EINVAL);
    /* The same commit twice. */
    struct store_op again = commit_op(&a, body, "H");
    again.data = NULL, again.len = 0;
    ASSERT_EQ(store_apply(s, &again, 1), -EINVAL);
    /* A chunk too large for the fixed layout. */
    put =
        (struct store_op){.kind = STORE_OP_PUT_CHUNK, .body_id = store_body_id_alloc(s), .data = body, .len = STORE_CHUNK_SIZE + 1};
    ASSERT_EQ(store_apply(s, &put, 1), -EINVAL);
    ASSERT(!present(s, &b));
    assert_body(s, a.body_id, a.len, a.seed, 10000); /* untouched by all of the above */
    struct store_counters cn = counters(s);
    ASSERT_UEQ(cn.entries, 1);
    ASSERT_UEQ(cn.pending_bodies, 0);
    free((void *)cop.rec);
    free((void *)again.rec);
    free(body);
    store_close(s);
    tmpdir_free(dir);
}

int main(void)
{
    RUN_TEST(test_multichunk_put_commit_read);
    RUN_TEST(test_interleaved_fills);
    RUN_TEST(test_zero_length_body);
    RUN_TEST(test_invisible_until_commit);
    RUN_TEST(test_commit_verifies_length);
    RUN_TEST(test_reclaim_after_crash);
    RUN_TEST(test_abort_fill);
    RUN_TEST(test_update_meta_keeps_body);
    RUN_TEST(test_replacement_deletes_old_body);
    RUN_TEST(test_variants_and_deletes);
    RUN_TEST(test_one_form_per_url);
    RUN_TEST(test_collision_is_a_miss);
    RUN_TEST(test_too_big_rejected);
    RUN_TEST(test_eviction_keeps_under_cache_size);
    RUN_TEST(test_scan_resistance);
    RUN_TEST(test_protected_cap_demotes);
    RUN_TEST(test_hit_table);
    RUN_TEST(test_map_full);
    RUN_TEST(test_map_full_with_small_objects);
    RUN_TEST(test_room_limit_keeps_map_from_filling);
    RUN_TEST(test_group_commit);
    RUN_TEST(test_restart_serves_entries);
    RUN_TEST(test_filter_answers_misses);
    RUN_TEST(test_filter_rebuilt_when_outgrown);
    RUN_TEST(test_filter_rebuilds_race_readers);
    RUN_TEST(test_filter_build_sees_entries_moved_behind_it);
    RUN_TEST(test_open_twice_busy);
    RUN_TEST(test_corrupt_or_foreign_rejected);
    RUN_TEST(test_old_format_discarded);
    RUN_TEST(test_rtxn_left_reset);
    RUN_TEST(test_misuse_refused);
    return 0;
}
