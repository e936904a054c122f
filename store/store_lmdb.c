/* The LMDB adapter: the only file that includes <lmdb.h>. Layout, visibility rules and the eviction
 * policy are described in store.h; this file is their implementation.
 *
 * Write path in brief. store_apply() runs a batch of ops in one parent write transaction. First all of
 * them in one nested (child) transaction, since they nearly always succeed; if one fails, that child is
 * dropped and the ops run again each in its own child, so one failing op (too big, full, malformed)
 * rolls back alone while the others commit together. In-memory writer state (allocation counters, gauges, counter deltas) is
 * kept in a `struct wstate` copy that is saved before each child and restored if it aborts, and is
 * published only after the parent commits: memory never runs ahead of what is on disk.
 *
 * MDB_MAP_FULL. LMDB marks a transaction unusable after MDB_MAP_FULL, but only the child in which it
 * happened, so the parent is still good: commit what succeeded, evict in a transaction of its own, run
 * one more small transaction (pages freed by transaction T become reusable only from T+2, see
 * mdb_find_oldest), and retry the failing op once. If it fails again it gets STORE_EFULL.
 */
#include "store/store.h"
#include "store/store_filter.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_MAGIC "LARDERST"
/* 2: the entry header moved into the meta value and the `entry` table went; an unvaried response is
 * stored under its primary key with no `variants` row. Stores of version 1 are emptied at open. */
#define FORMAT_VERSION 2
#define FORMAT_LEN 16 /* magic 8 ‖ version u32 ‖ chunk size u32 */

#define SEG_PROBATION 0
#define SEG_PROTECTED 1
#define LRU_KEY_LEN (1 + 8 + STORE_KEY_LEN)
#define ENTRY_HDR_LEN 64 /* the entry header at the start of every meta value */
#define ENTRY_VERSION 2
#define ALLOC_VAL_LEN 40

#define HIT_SLOTS 4096 /* power of two */
#define HIT_PROBES 16

#define MAX_READERS 254

/* Persisted in state/"alloc", in the same transaction as the changes it describes. */
struct alloc_state {
    uint64_t next_body_id; /* every body_id on disk is below this */
    uint64_t used_bytes;
    uint64_t prot_bytes;
    uint64_t lru_seq;
    uint64_t n_entries;
};

/* Counter deltas of one transaction, added to the public counters once it commits. */
struct deltas {
    uint64_t meta_writes, body_chunk_writes, body_bytes_written, evictions, reclaimed_bodies, promotions, demotions, replacements;
    uint64_t meta_changes; /* meta records put or deleted: readers' copies of them may be out of date */
};

/* The writer's working state for one transaction. */
struct wstate {
    struct alloc_state a;
    uint64_t pending; /* gauge: pending bodies */
    struct deltas d;
};

struct hit_slot {
    struct store_key key;
    uint32_t count;
    uint32_t used;
};

struct store {
    MDB_env *env;
    MDB_dbi dbi_state, dbi_meta, dbi_body, dbi_pending, dbi_variants, dbi_lru;
    int lock_fd;
    uint64_t cache_size;
    uint64_t room_limit; /* writer (wlock): accounted bytes the map is trusted to hold, <= cache_size (ROOM) */
    uint64_t max_object_size;
    uint64_t map_size;
    uint64_t prot_cap;

    uint64_t next_body_id; /* atomic: in-memory allocator, >= committed.next_body_id */
    uint64_t meta_gen;     /* atomic: bumped around every commit that changes a meta record */

    pthread_mutex_t wlock; /* serialises store_apply(); guards everything below up to hits_lock */
    struct alloc_state committed;
    uint64_t pending;
    uint64_t *reclaim; /* body_ids of failed fills whose chunks still have to go */
    size_t n_reclaim, cap_reclaim;
    struct hit_slot *hit_buf; /* the writer's snapshot of the hit table */

    pthread_mutex_t hits_lock;
    struct hit_slot *hits;
    size_t n_hits;

    struct store_counters c; /* every field accessed with __atomic builtins */

    /* The filter of stored primary keys (store_filter.h, FILTER below). `filter` is the one readers probe
     * (an atomic pointer): NULL until the first build is complete, then replaced whole by each rebuild.
     * The other filter_* fields are the writer's, under wlock. */
    struct store_filter *filter;
    struct store_filter *filter_next; /* being built by store_filter_step() */
    struct store_filter *filter_old;  /* replaced; freed once no reader's hazard points at it */
    int filter_wanted;                /* a build is due */
    int filter_phase;                 /* the build scans 0: lru, 1: variants */
    int filter_pos_set;               /* the build scan resumes at filter_pos, else at the first key */
    uint8_t filter_pos[LRU_KEY_LEN];
    uint64_t filter_min_keys;
    unsigned filter_slice;
    MDB_txn *filter_txn; /* the scan's read transaction, reset between steps */

    pthread_mutex_t rtxns_lock; /* guards the list of read handles: their hazards are checked, counts summed */
    struct store_rtxn *rtxns;
    uint64_t filter_negatives_ended; /* filter_negatives of handles already ended */
};

struct store_rtxn {
    struct store *s;
    MDB_txn *txn;
    int active;
    /* The filter this handle is probing, if any (a hazard pointer: the writer frees a replaced filter only
     * when no handle points at it), and its count of lookups the filter answered; both atomic, written
     * by the handle's own thread only. */
    struct store_filter *hazard;
    uint64_t filter_negatives;
    struct store_rtxn *prev, *next; /* in s->rtxns */
};

/* One write transaction (parent or child) and the state it works on. */
struct wctx {
    struct store *s;
    MDB_txn *txn;
    struct wstate *ws;
    int dirty;
};

/* An entry's bookkeeping: the header of its meta value. */
struct entry_info {
    struct store_key pkey;
    uint64_t body_id;
    uint64_t size; /* accounted bytes: body_len + meta record + STORE_ENTRY_OVERHEAD */
    uint64_t seq;
    uint32_t hits;
    uint8_t seg;
};

#define CTR_ADD(s, field, n) __atomic_fetch_add(&(s)->c.field, (uint64_t)(n), __ATOMIC_RELAXED)
#define CTR_SET(s, field, v) __atomic_store_n(&(s)->c.field, (uint64_t)(v), __ATOMIC_RELAXED)
#define CTR_GET(s, field) __atomic_load_n(&(s)->c.field, __ATOMIC_RELAXED)

/* ---- errors ------------------------------------------------------------------------------------- */

/* LMDB or errno code -> store code. MDB_MAP_FULL is passed through: the write path acts on it. */
static int mdb_err(int rc)
{
    switch (rc) {
    case 0:
        return 0;
    case MDB_MAP_FULL:
        return MDB_MAP_FULL;
    case MDB_NOTFOUND:
        return STORE_ENOTFOUND;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_BAD_DBI:
        return STORE_ECORRUPT;
    case MDB_VERSION_MISMATCH:
    case MDB_INCOMPATIBLE:
        return STORE_EFORMAT;
    case ENOMEM:
        return -ENOMEM;
    case EINVAL:
        return -EINVAL;
    default:
        return STORE_EIO;
    }
}

const char *store_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case STORE_ENOTFOUND:
        return "not found";
    case STORE_EGONE:
        return "body deleted while being read";
    case STORE_EFULL:
        return "store full, even after eviction";
    case STORE_ETOOBIG:
        return "object larger than max_object_size";
    case STORE_ECORRUPT:
        return "store or record damaged";
    case STORE_EFORMAT:
        return "not a larder store, or an incompatible format version";
    case STORE_EIO:
        return "I/O or LMDB failure";
    case STORE_EBUSY:
        return "store in use by another process";
    case STORE_ESHORT:
        return "stored body length does not match the record";
    case STORE_ECANCELED:
        return "canceled: an earlier write of the same body failed";
    }
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown store error";
}

static int fail_msg(char *err, size_t err_len, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_msg(char *err, size_t err_len, int code, const char *fmt, ...)
{
    if (err != NULL && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* ---- small codecs -------------------------------------------------------------------------------- */

static void lru_key(uint8_t out[LRU_KEY_LEN], uint8_t seg, uint64_t seq, const struct store_key *vkey)
{
    out[0] = seg;
    store__be64_put(out + 1, seq);
    memcpy(out + 9, vkey->b, STORE_KEY_LEN);
}

static void entry_encode(uint8_t out[ENTRY_HDR_LEN], const struct entry_info *e)
{
    out[0] = ENTRY_VERSION;
    out[1] = e->seg;
    out[2] = out[3] = 0;
    store__be32_put(out + 4, e->hits);
    store__be64_put(out + 8, e->body_id);
    store__be64_put(out + 16, e->size);
    store__be64_put(out + 24, e->seq);
    memcpy(out + 32, e->pkey.b, STORE_KEY_LEN);
}

static int entry_decode(const MDB_val *v, struct entry_info *e)
{
    const uint8_t *p = v->mv_data;
    if (v->mv_size < ENTRY_HDR_LEN || p[0] != ENTRY_VERSION || p[1] > SEG_PROTECTED) return STORE_ECORRUPT;
    e->seg = p[1];
    e->hits = store__be32_get(p + 4);
    e->body_id = store__be64_get(p + 8);
    e->size = store__be64_get(p + 16);
    e->seq = store__be64_get(p + 24);
    memcpy(e->pkey.b, p + 32, STORE_KEY_LEN);
    return 0;
}

static void alloc_encode(uint8_t out[ALLOC_VAL_LEN], const struct alloc_state *a)
{
    store__be64_put(out, a->next_body_id);
    store__be64_put(out + 8, a->used_bytes);
    store__be64_put(out + 16, a->prot_bytes);
    store__be64_put(out + 24, a->lru_seq);
    store__be64_put(out + 32, a->n_entries);
}

static void alloc_decode(const uint8_t in[ALLOC_VAL_LEN], struct alloc_state *a)
{
    a->next_body_id = store__be64_get(in);
    a->used_bytes = store__be64_get(in + 8);
    a->prot_bytes = store__be64_get(in + 16);
    a->lru_seq = store__be64_get(in + 24);
    a->n_entries = store__be64_get(in + 32);
}

static MDB_val val(const void *p, size_t n)
{
    return (MDB_val){.mv_size = n, .mv_data = (void *)p};
}

/* ---- write-side building blocks (all run inside w->txn) ------------------------------------------ */

static int entry_get(struct wctx *w, const struct store_key *vkey, struct entry_info *e)
{
    MDB_val k = val(vkey->b, STORE_KEY_LEN), v;
    int rc = mdb_get(w->txn, w->s->dbi_meta, &k, &v);
    if (rc != 0) return mdb_err(rc);
    return entry_decode(&v, e);
}

/* Rewrites the entry header of a meta value; the record after it stays byte for byte, so this is not a
 * meta change for readers (no meta_changes). The value is copied out first: LMDB's pointer is into a
 * page that the put may move. */
static int entry_put(struct wctx *w, const struct store_key *vkey, const struct entry_info *e)
{
    MDB_val k = val(vkey->b, STORE_KEY_LEN), v;
    int rc = mdb_get(w->txn, w->s->dbi_meta, &k, &v);
    if (rc != 0) return mdb_err(rc);
    if (v.mv_size < ENTRY_HDR_LEN) return STORE_ECORRUPT;
    uint8_t small[2048];
    uint8_t *buf = v.mv_size <= sizeof(small) ? small : malloc(v.mv_size);
    if (buf == NULL) return -ENOMEM;
    memcpy(buf, v.mv_data, v.mv_size);
    entry_encode(buf, e);
    MDB_val nv = val(buf, v.mv_size);
    rc = mdb_put(w->txn, w->s->dbi_meta, &k, &nv, 0);
    if (buf != small) free(buf);
    return mdb_err(rc);
}

static int is_unvaried(const struct store_key *vkey, const struct store_key *pkey)
{
    return memcmp(vkey->b, pkey->b, STORE_KEY_LEN) == 0;
}

/* mdb_del that treats "already gone" as success. */
static int del_quiet(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len, const void *data, size_t data_len)
{
    MDB_val k = val(key, key_len), d = val(data, data_len);
    int rc = mdb_del(txn, dbi, &k, data != NULL ? &d : NULL);
    return rc == MDB_NOTFOUND ? 0 : mdb_err(rc);
}

/* Puts a row whose key is usually beyond every key of its table (body ids and LRU sequence numbers
 * only grow). MDB_APPEND then splits a full last leaf by starting an empty one instead of halving it:
 * pages stay full, so a commit rewrites about a third fewer body pages per small object. A key that
 * is not the greatest (fills interleave) is refused with MDB_KEYEXIST and put the ordinary way. */
static int put_mostly_appended(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v, unsigned flags)
{
    MDB_val k2 = *k, v2 = *v; /* a refused append must not leave k or v changed */
    int rc = mdb_put(txn, dbi, &k2, &v2, flags | MDB_APPEND);
    if (rc != MDB_KEYEXIST)
        return rc;
    return mdb_put(txn, dbi, k, v, flags);
}

static int lru_put(struct wctx *w, const struct store_key *vkey, const struct entry_info *e)
{
    uint8_t kb[LRU_KEY_LEN];
    lru_key(kb, e->seg, e->seq, vkey);
    MDB_val k = val(kb, sizeof(kb)), v = val("", 0);
    return mdb_err(put_mostly_appended(w->txn, w->s->dbi_lru, &k, &v, 0));
}

static int lru_del(struct wctx *w, const struct store_key *vkey, const struct entry_info *e)
{
    uint8_t kb[LRU_KEY_LEN];
    lru_key(kb, e->seg, e->seq, vkey);
    return del_quiet(w->txn, w->s->dbi_lru, kb, sizeof(kb), NULL, 0);
}

/* Deletes every chunk of a body; *freed gets their total size. */
static int body_delete(struct wctx *w, uint64_t body_id, uint64_t *freed)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(w->txn, w->s->dbi_body, &c);
    *freed = 0;
    if (rc != 0) return mdb_err(rc);
    uint8_t kb[STORE_BODY_KEY_LEN];
    store__body_key(kb, body_id, 0);
    for (;;) {
        /* Re-seek after each delete: simple, and O(log n) per 256 KiB chunk is nothing. */
        MDB_val k = val(kb, sizeof(kb)), v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND) {
            rc = 0;
            break;
        }
        if (rc != 0) break;
        if (k.mv_size != STORE_BODY_KEY_LEN || store__be64_get(k.mv_data) != body_id) break;
        *freed += v.mv_size;
        if ((rc = mdb_cursor_del(c, 0)) != 0) break;
    }
    mdb_cursor_close(c);
    return mdb_err(rc);
}

/* Deletes a body that is still pending (never published), with its pending entry. A body without a
 * pending entry is either published (its chunks belong to an entry) or already gone: left alone. */
static int pending_reclaim(struct wctx *w, uint64_t body_id, int *reclaimed)
{
    uint8_t kb[8];
    store__be64_put(kb, body_id);
    MDB_val k = val(kb, sizeof(kb));
    *reclaimed = 0;
    int rc = mdb_del(w->txn, w->s->dbi_pending, &k, NULL);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc != 0) return mdb_err(rc);
    w->ws->pending = sub_sat(w->ws->pending, 1);
    uint64_t freed;
    if ((rc = body_delete(w, body_id, &freed)) != 0) return rc;
    w->ws->a.used_bytes = sub_sat(w->ws->a.used_bytes, freed);
    *reclaimed = 1;
    return 0;
}

/* Removes an entry and everything it owns: meta value (with its header), variants row (a varied
 * entry's), lru row, body chunks. */
static int entry_remove(struct wctx *w, const struct store_key *vkey, const struct entry_info *e)
{
    struct store *s = w->s;
    int rc;
    uint64_t freed;
    w->ws->d.meta_changes++;
    if ((rc = del_quiet(w->txn, s->dbi_meta, vkey->b, STORE_KEY_LEN, NULL, 0)) != 0 ||
        (!is_unvaried(vkey, &e->pkey) &&
         (rc = del_quiet(w->txn, s->dbi_variants, e->pkey.b, STORE_KEY_LEN, vkey->b, STORE_KEY_LEN)) != 0) ||
        (rc = lru_del(w, vkey, e)) != 0 || (rc = body_delete(w, e->body_id, &freed)) != 0)
        return rc;
    w->ws->a.used_bytes = sub_sat(w->ws->a.used_bytes, e->size);
    if (e->seg == SEG_PROTECTED) w->ws->a.prot_bytes = sub_sat(w->ws->a.prot_bytes, e->size);
    w->ws->a.n_entries = sub_sat(w->ws->a.n_entries, 1);
    return 0;
}

/* Evicts the least valuable entry other than `exclude`: the first `lru` key, which is probation's LRU
 * end while probation is not empty (segment 0 sorts first), else protected's. STORE_ENOTFOUND when
 * there is nothing to evict. *freed gets the accounted size released. */
static int evict_one(struct wctx *w, const struct store_key *exclude, uint64_t *freed)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(w->txn, w->s->dbi_lru, &c);
    if (rc != 0) return mdb_err(rc);
    MDB_val k, v;
    struct store_key vkey;
    rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
    while (rc == 0) {
        if (k.mv_size != LRU_KEY_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }
        memcpy(vkey.b, (const uint8_t *)k.mv_data + 9, STORE_KEY_LEN);
        if (exclude == NULL || memcmp(vkey.b, exclude->b, STORE_KEY_LEN) != 0) break;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0) return mdb_err(rc);
    struct entry_info e;
    rc = entry_get(w, &vkey, &e);
    if (rc == STORE_ENOTFOUND) {
        /* An lru row without its entry: drop the row, report nothing freed, let the caller loop. */
        uint8_t kb[LRU_KEY_LEN];
        memcpy(kb, k.mv_data, LRU_KEY_LEN);
        *freed = 0;
        return del_quiet(w->txn, w->s->dbi_lru, kb, sizeof(kb), NULL, 0);
    }
    if (rc != 0) return rc;
    if ((rc = entry_remove(w, &vkey, &e)) != 0) return rc;
    w->ws->d.evictions++;
    *freed = e.size;
    return 0;
}

/* Evicts until `need` more bytes fit in cache_size, or in the smaller room_limit (ROOM below). */
static int ensure_room(struct wctx *w, uint64_t need, const struct store_key *exclude)
{
    struct store *s = w->s;
    if (need > s->cache_size) return STORE_EFULL;
    uint64_t limit = s->room_limit > need ? s->room_limit : need;
    while (w->ws->a.used_bytes + need > limit) {
        uint64_t freed;
        int rc = evict_one(w, exclude, &freed);
        if (rc == STORE_ENOTFOUND) return STORE_EFULL; /* only unfinished fills left */
        if (rc != 0) return rc;
    }
    return 0;
}

/* Moves an entry to the MRU end of a segment. */
static int entry_move(struct wctx *w, const struct store_key *vkey, struct entry_info *e, uint8_t seg)
{
    int rc = lru_del(w, vkey, e);
    if (rc != 0) return rc;
    if (e->seg != seg) {
        if (seg == SEG_PROTECTED)
            w->ws->a.prot_bytes += e->size;
        else
            w->ws->a.prot_bytes = sub_sat(w->ws->a.prot_bytes, e->size);
    }
    e->seg = seg;
    e->seq = ++w->ws->a.lru_seq;
    /* A moved lru row may land behind a filter build's scan (FILTER below). */
    if (w->s->filter_next != NULL) store_filter_add(w->s->filter_next, &e->pkey);
    if ((rc = lru_put(w, vkey, e)) != 0) return rc;
    return entry_put(w, vkey, e);
}

/* Keeps protected within its cap by demoting its LRU end to probation's MRU end, where it has to earn
 * its promotion again. */
static int demote_excess(struct wctx *w)
{
    while (w->ws->a.prot_bytes > w->s->prot_cap) {
        MDB_cursor *c;
        int rc = mdb_cursor_open(w->txn, w->s->dbi_lru, &c);
        if (rc != 0) return mdb_err(rc);
        uint8_t first[1] = {SEG_PROTECTED};
        MDB_val k = val(first, 1), v;
        rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
        struct store_key vkey;
        if (rc == 0 && k.mv_size == LRU_KEY_LEN) memcpy(vkey.b, (const uint8_t *)k.mv_data + 9, STORE_KEY_LEN);
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND) {
            w->ws->a.prot_bytes = 0; /* the gauge drifted: nothing is protected */
            return 0;
        }
        if (rc != 0) return mdb_err(rc);
        if (k.mv_size != LRU_KEY_LEN) return STORE_ECORRUPT;
        struct entry_info e;
        if ((rc = entry_get(w, &vkey, &e)) != 0) return rc == STORE_ENOTFOUND ? STORE_ECORRUPT : rc;
        e.hits = 0;
        if ((rc = entry_move(w, &vkey, &e, SEG_PROBATION)) != 0) return rc;
        w->ws->d.demotions++;
    }
    return 0;
}

static int put_chunk(struct wctx *w, uint64_t body_id, uint32_t chunk_no, const void *data, size_t len, int64_t now)
{
    struct store *s = w->s;
    if (body_id == 0 || data == NULL || len == 0 || len > STORE_CHUNK_SIZE) return -EINVAL;
    if ((uint64_t)chunk_no * STORE_CHUNK_SIZE + len > s->max_object_size) return STORE_ETOOBIG;
    int rc = ensure_room(w, len, NULL);
    if (rc != 0) return rc;
    /* The pending row goes in with the first chunk (and is re-asserted by every later one), so no chunk
     * is ever on disk without either a pending row or a published entry owning it. */
    uint8_t pk[8], pv[8];
    store__be64_put(pk, body_id);
    store__be64_put(pv, (uint64_t)now);
    MDB_val k = val(pk, sizeof(pk)), v = val(pv, sizeof(pv));
    rc = mdb_put(w->txn, s->dbi_pending, &k, &v, MDB_NOOVERWRITE);
    if (rc == 0 && chunk_no != 0)
        return -EINVAL; /* chunk 0 opened this body; without its row it was published, aborted or reclaimed */
    if (rc == 0)
        w->ws->pending++;
    else if (rc != MDB_KEYEXIST)
        return mdb_err(rc);
    uint8_t kb[STORE_BODY_KEY_LEN];
    store__body_key(kb, body_id, chunk_no);
    k = val(kb, sizeof(kb));
    v = val(data, len);
    rc = put_mostly_appended(w->txn, s->dbi_body, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) return -EINVAL; /* a chunk written twice: a caller bug */
    if (rc != 0) return mdb_err(rc);
    if (body_id >= w->ws->a.next_body_id) w->ws->a.next_body_id = body_id + 1;
    w->ws->a.used_bytes += len;
    w->ws->d.body_chunk_writes++;
    w->ws->d.body_bytes_written += len;
    return 0;
}

/* A commit carrying chunk 0: the body is that one chunk. A chunk 0 already there (an earlier
 * PUT_CHUNK) makes this a second writer of the body: refused, as put_chunk refuses it. */
static int put_only_chunk(struct wctx *w, const struct store_op *op, uint64_t body_len)
{
    struct store *s = w->s;
    if (op->len != body_len || op->len > STORE_CHUNK_SIZE) return STORE_ESHORT;
    if (op->len > s->max_object_size) return STORE_ETOOBIG;
    int rc = ensure_room(w, op->len, NULL);
    if (rc != 0) return rc;
    uint8_t kb[STORE_BODY_KEY_LEN];
    store__body_key(kb, op->body_id, 0);
    MDB_val k = val(kb, sizeof(kb)), v = val(op->data, op->len);
    rc = put_mostly_appended(w->txn, s->dbi_body, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) return -EINVAL;
    if (rc != 0) return mdb_err(rc);
    w->ws->a.used_bytes += op->len;
    w->ws->d.body_chunk_writes++;
    w->ws->d.body_bytes_written += op->len;
    return 0;
}

/* Checks that a body's chunks are numbered 0..n-1, all full but the last, and add up to body_len. */
static int verify_chunks(struct wctx *w, uint64_t body_id, uint64_t body_len, uint32_t *n_chunks)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(w->txn, w->s->dbi_body, &c);
    if (rc != 0) return mdb_err(rc);
    uint8_t kb[STORE_BODY_KEY_LEN];
    store__body_key(kb, body_id, 0);
    MDB_val k = val(kb, sizeof(kb)), v;
    uint64_t total = 0;
    uint32_t n = 0;
    size_t last_len = STORE_CHUNK_SIZE;
    int bad = 0;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && k.mv_size == STORE_BODY_KEY_LEN && store__be64_get(k.mv_data) == body_id) {
        if (store__be32_get((const uint8_t *)k.mv_data + 8) != n || last_len != STORE_CHUNK_SIZE) {
            bad = 1;
            break;
        }
        last_len = v.mv_size;
        total += v.mv_size;
        n++;
        rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(c);
    if (rc != 0 && rc != MDB_NOTFOUND) return mdb_err(rc);
    if (bad || total != body_len) return STORE_ESHORT;
    *n_chunks = n;
    return 0;
}

/* Puts a meta value, entry header then record, straight into the map (MDB_RESERVE); then sets the
 * record's body fields. */
static int meta_put(struct wctx *w, const struct store_key *vkey, const struct entry_info *e, const void *rec, size_t rec_len,
                    uint64_t body_id, uint64_t body_len, uint32_t n_chunks)
{
    MDB_val k = val(vkey->b, STORE_KEY_LEN), v = {.mv_size = ENTRY_HDR_LEN + rec_len, .mv_data = NULL};
    int rc = mdb_put(w->txn, w->s->dbi_meta, &k, &v, MDB_RESERVE);
    if (rc != 0) return mdb_err(rc);
    uint8_t *p = v.mv_data;
    entry_encode(p, e);
    memcpy(p + ENTRY_HDR_LEN, rec, rec_len);
    if ((rc = store_record_set_body(p + ENTRY_HDR_LEN, rec_len, body_id, body_len, n_chunks, 1)) != 0) return rc;
    w->ws->d.meta_writes++;
    w->ws->d.meta_changes++;
    return 0;
}

/* Removes every varied entry of a URL (its `variants` rows and what they index). *n is increased by
 * how many went; best (if not NULL) takes the segment and hits of the most popular one. */
static int remove_varied(struct wctx *w, const struct store_key *pkey, int *n, struct entry_info *best)
{
    for (;;) {
        MDB_val k = val(pkey->b, STORE_KEY_LEN), v;
        int rc = mdb_get(w->txn, w->s->dbi_variants, &k, &v);
        if (rc == MDB_NOTFOUND) return 0;
        if (rc != 0) return mdb_err(rc);
        if (v.mv_size != STORE_KEY_LEN) return STORE_ECORRUPT;
        struct store_key vkey;
        memcpy(vkey.b, v.mv_data, STORE_KEY_LEN);
        struct entry_info e;
        rc = entry_get(w, &vkey, &e);
        if (rc == 0) {
            if (best != NULL && (e.seg > best->seg || (e.seg == best->seg && e.hits > best->hits))) {
                best->seg = e.seg;
                best->hits = e.hits;
            }
            rc = entry_remove(w, &vkey, &e);
        }
        if (rc != 0 && rc != STORE_ENOTFOUND) return rc;
        /* Also when the entry was missing, so the loop always makes progress. */
        if ((rc = del_quiet(w->txn, w->s->dbi_variants, pkey->b, STORE_KEY_LEN, vkey.b, STORE_KEY_LEN)) != 0) return rc;
        (*n)++;
    }
}

/* A URL's responses are either one unvaried entry (under the primary key) or varied ones (each with a
 * `variants` row), never both: a new response of one form supersedes the other form, which is older and
 * either matches no request any more (an unvaried response matches every request, RFC 9111 s4.1) or
 * describes a resource that no longer varies. Dropping it is a cache's right at any time; keeping the
 * forms exclusive is what lets an unvaried object skip the `variants` table altogether. The superseded
 * entries' popularity carries over to e, as for a replacement. */
static int supersede_other_form(struct wctx *w, const struct store_key *pkey, int unvaried, struct entry_info *e)
{
    int rc, n = 0;
    if (unvaried) {
        if ((rc = remove_varied(w, pkey, &n, e)) != 0) return rc;
    } else {
        struct entry_info old;
        rc = entry_get(w, pkey, &old);
        if (rc == STORE_ENOTFOUND) return 0;
        if (rc != 0) return rc;
        if ((rc = entry_remove(w, pkey, &old)) != 0) return rc;
        if (old.seg > e->seg || (old.seg == e->seg && old.hits > e->hits)) {
            e->seg = old.seg;
            e->hits = old.hits;
        }
        n = 1;
    }
    w->ws->d.replacements += (uint64_t)n;
    return 0;
}

/* ---- FILTER: the in-memory filter of stored primary keys ------------------------------------------
 *
 * Readers probe it before any B-tree walk (store_variants_get) and go to LMDB only on "maybe". Its one
 * rule: every primary key with an entry visible in a snapshot must be in the filter a reader probes
 * after taking that snapshot. A key that is not there would turn a hit into a miss (a fetch, never a
 * wrong answer), so a lost race costs efficiency only; the rule still holds by construction:
 *  - the writer adds a key to the current filter and to the one being built before the transaction
 *    that publishes its entry commits (release stores; the reader's snapshot comes after the commit);
 *  - a build (store_filter_step) starts empty, receives every key committed from then on, and scans
 *    in slices, each in a snapshot taken after the build began, the `lru` table (one row per entry,
 *    keyed by segment, sequence and variant key, which is the primary key of every unvaried entry)
 *    and then the keys of `variants` (the primary keys of varied URLs). So every key committed before
 *    it is scanned, deleted, or had its lru row moved, and entry_move() adds the keys it moves. Only
 *    then does it replace the current filter. Why those tables and not `meta`, which has the primary
 *    key in every value: their rows are small (about 40 to a page, `meta` about 5), so a build reads
 *    an eighth of the pages; on the cold-miss benchmark scanning `meta` cost the writer about as much
 *    as the filter saved the loops.
 * Bits are never cleared, so evicted and replaced entries stay "maybe" until the next build, which is
 * due once more keys were added than the filter was sized for (capacity: twice the entries at its
 * start, at least filter_min_keys). Until the first build after open is complete there is no filter
 * and every lookup walks the tree, as before: a store of any size opens at once. */

#define FILTER_MIN_KEYS_DEFAULT 65536
#define FILTER_SLICE_DEFAULT 8192 /* rows scanned per step: about 210 pages of lru rows */

static void filter_note_entry(struct store *s, const struct store_key *pkey)
{
    struct store_filter *f = s->filter; /* only the writer stores it, under wlock, which we hold */
    if (f != NULL) {
        store_filter_add(f, pkey);
        if (s->filter_next == NULL && store_filter_added(f) > store_filter_capacity(f)) s->filter_wanted = 1;
    }
    if (s->filter_next != NULL) store_filter_add(s->filter_next, pkey);
}

/* Frees the replaced filter unless a reader is still probing it (rtxns_lock; wlock held). */
static void filter_free_old(struct store *s)
{
    if (s->filter_old == NULL) return;
    pthread_mutex_lock(&s->rtxns_lock);
    int held = 0;
    for (struct store_rtxn *r = s->rtxns; r != NULL && !held; r = r->next)
        held = __atomic_load_n(&r->hazard, __ATOMIC_SEQ_CST) == s->filter_old;
    pthread_mutex_unlock(&s->rtxns_lock);
    if (held) return;
    store_filter_free(s->filter_old);
    s->filter_old = NULL;
}

/* One slice of the build scan (wlock held): adds the keys of up to filter_slice rows of the table of
 * filter_phase (lru, then variants) to filter_next, starting at filter_pos. Every key of either table
 * ends in a store key: lru's in the variant key, variants' is the primary key. 1 when there is more, 0
 * at the end of the last table. */
static int filter_scan_slice(struct store *s)
{
    int rc = s->filter_txn == NULL ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->filter_txn) : mdb_txn_renew(s->filter_txn);
    if (rc != 0) return mdb_err(rc);
    int lru = s->filter_phase == 0;
    size_t klen = lru ? LRU_KEY_LEN : STORE_KEY_LEN;
    MDB_cursor *c = NULL;
    if ((rc = mdb_cursor_open(s->filter_txn, lru ? s->dbi_lru : s->dbi_variants, &c)) == 0) {
        MDB_val k = val(s->filter_pos, klen), v;
        rc = mdb_cursor_get(c, &k, &v, s->filter_pos_set ? MDB_SET_RANGE : MDB_FIRST);
        for (unsigned n = 0; rc == 0 && n < s->filter_slice; n++) {
            if (k.mv_size != klen) {
                rc = MDB_CORRUPTED;
                break;
            }
            struct store_key key;
            memcpy(key.b, (const uint8_t *)k.mv_data + klen - STORE_KEY_LEN, STORE_KEY_LEN);
            store_filter_add(s->filter_next, &key);
            rc = mdb_cursor_get(c, &k, &v, lru ? MDB_NEXT : MDB_NEXT_NODUP);
        }
        if (rc == 0) {
            /* The next slice starts here, in a newer snapshot: anything committed in between before this
             * key is in the filter already (filter_note_entry, entry_move). */
            if (k.mv_size != klen) rc = MDB_CORRUPTED;
            else memcpy(s->filter_pos, k.mv_data, klen);
            s->filter_pos_set = 1;
        }
        mdb_cursor_close(c);
    }
    mdb_txn_reset(s->filter_txn);
    if (rc == MDB_NOTFOUND && lru) {
        s->filter_phase = 1;
        s->filter_pos_set = 0;
        return 1;
    }
    if (rc == MDB_NOTFOUND) return 0;
    return rc == 0 ? 1 : mdb_err(rc);
}

int store_filter_step(struct store *s)
{
    pthread_mutex_lock(&s->wlock);
    filter_free_old(s);
    int rc = 0;
    if (s->filter_next == NULL && s->filter_wanted) {
        if (s->filter_old != NULL) {
            rc = 1; /* a reader is probing the filter replaced last time: a moment */
            goto out;
        }
        uint64_t cap = 2 * s->committed.n_entries;
        if (cap < s->filter_min_keys) cap = s->filter_min_keys;
        if ((s->filter_next = store_filter_new(cap)) == NULL) {
            rc = -ENOMEM;
            goto out;
        }
        s->filter_phase = 0;
        s->filter_pos_set = 0;
        s->filter_wanted = 0;
    }
    if (s->filter_next == NULL) goto out;
    rc = filter_scan_slice(s);
    if (rc < 0) {
        /* Readers keep the filter they have (or none); the next step starts the build over. */
        store_filter_free(s->filter_next);
        s->filter_next = NULL;
        s->filter_wanted = 1;
        goto out;
    }
    if (rc == 0) {
        s->filter_old = s->filter;
        __atomic_store_n(&s->filter, s->filter_next, __ATOMIC_SEQ_CST);
        s->filter_next = NULL;
        CTR_ADD(s, filter_builds, 1);
        CTR_SET(s, filter_bytes, store_filter_bytes(s->filter));
        filter_free_old(s);
    }
out:
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

static int op_commit(struct wctx *w, const struct store_op *op)
{
    struct store *s = w->s;
    struct store_record rec;
    if (op->body_id == 0 || store_record_decode(op->rec, op->rec_len, &rec) != 0) return -EINVAL;
    if (rec.body_len > s->max_object_size) return STORE_ETOOBIG;
    int rc;
    uint32_t n_chunks = 0;
    uint8_t pk[8];
    store__be64_put(pk, op->body_id);
    MDB_val k, v;
    int had_pending = 0;
    if (op->data != NULL && op->len > 0 && op->chunk_no == 0) {
        /* The whole body in the commit (every small object): it is published in this same transaction,
         * so it needs no pending row (put, read back and deleted here before) nor a walk over its
         * chunks. */
        if ((rc = put_only_chunk(w, op, rec.body_len)) != 0) return rc;
        n_chunks = 1;
    } else {
        if (op->data != NULL && op->len > 0 && (rc = put_chunk(w, op->body_id, op->chunk_no, op->data, op->len, op->now)) != 0)
            return rc;
        if ((rc = verify_chunks(w, op->body_id, rec.body_len, &n_chunks)) != 0) return rc;
        /* Chunks without a pending row belong to a published entry (or to nobody): one body, one entry. */
        k = val(pk, sizeof(pk));
        rc = mdb_get(w->txn, s->dbi_pending, &k, &v);
        if (rc == MDB_NOTFOUND && n_chunks > 0) return -EINVAL;
        if (rc != 0 && rc != MDB_NOTFOUND) return mdb_err(rc);
        had_pending = rc == 0;
    }

    /* Replacing a variant: the old meta, index rows and body go in this same transaction. A reader
     * streaming the old body gets STORE_EGONE at its next chunk. Popularity belongs to the URL, so the
     * new object keeps the old one's segment and hits. */
    struct entry_info e = {.pkey = op->pkey, .body_id = op->body_id, .seg = SEG_PROBATION};
    struct entry_info old;
    rc = entry_get(w, &op->vkey, &old);
    if (rc == 0) {
        if (old.body_id == op->body_id) return -EINVAL; /* committed twice */
        if ((rc = entry_remove(w, &op->vkey, &old)) != 0) return rc;
        e.seg = old.seg;
        e.hits = old.hits;
        w->ws->d.replacements++;
    } else if (rc != STORE_ENOTFOUND) {
        return rc;
    }
    int unvaried = is_unvaried(&op->vkey, &op->pkey);
    if ((rc = supersede_other_form(w, &op->pkey, unvaried, &e)) != 0) return rc;

    uint64_t extra = op->rec_len + STORE_ENTRY_OVERHEAD;
    if ((rc = ensure_room(w, extra, NULL)) != 0) return rc;
    e.size = rec.body_len + extra;
    e.seq = ++w->ws->a.lru_seq;
    if ((rc = meta_put(w, &op->vkey, &e, op->rec, op->rec_len, op->body_id, rec.body_len, n_chunks)) != 0) return rc;
    filter_note_entry(s, &op->pkey);
    if (!unvaried) {
        k = val(op->pkey.b, STORE_KEY_LEN);
        v = val(op->vkey.b, STORE_KEY_LEN);
        rc = mdb_put(w->txn, s->dbi_variants, &k, &v, MDB_NODUPDATA);
        if (rc != 0 && rc != MDB_KEYEXIST) return mdb_err(rc);
    }
    if ((rc = lru_put(w, &op->vkey, &e)) != 0) return rc;
    if (had_pending) {
        k = val(pk, sizeof(pk));
        if ((rc = mdb_del(w->txn, s->dbi_pending, &k, NULL)) != 0) return mdb_err(rc);
        w->ws->pending = sub_sat(w->ws->pending, 1);
    }
    if (op->body_id >= w->ws->a.next_body_id) w->ws->a.next_body_id = op->body_id + 1;
    w->ws->a.used_bytes += extra;
    w->ws->a.n_entries++;
    if (e.seg == SEG_PROTECTED) {
        w->ws->a.prot_bytes += e.size;
        return demote_excess(w);
    }
    return 0;
}

static int op_update_meta(struct wctx *w, const struct store_op *op)
{
    struct store *s = w->s;
    struct store_record nrec, orec;
    if (store_record_decode(op->rec, op->rec_len, &nrec) != 0) return -EINVAL;
    MDB_val k = val(op->vkey.b, STORE_KEY_LEN), v;
    int rc = mdb_get(w->txn, s->dbi_meta, &k, &v);
    if (rc != 0) return mdb_err(rc);
    struct entry_info e;
    if (entry_decode(&v, &e) != 0) return STORE_ECORRUPT;
    size_t old_len = v.mv_size - ENTRY_HDR_LEN;
    if (store_record_decode((const uint8_t *)v.mv_data + ENTRY_HDR_LEN, old_len, &orec) != 0) return STORE_ECORRUPT;
    /* A 304 refreshes the same object (RFC 9111 s4.3.4): same request, same variant. */
    if (nrec.method_len != orec.method_len || memcmp(nrec.method, orec.method, nrec.method_len) != 0 ||
        nrec.uri_len != orec.uri_len || memcmp(nrec.uri, orec.uri, nrec.uri_len) != 0 || nrec.variant_len != orec.variant_len ||
        (nrec.variant_len && memcmp(nrec.variant, orec.variant, nrec.variant_len) != 0))
        return -EINVAL;
    uint64_t body_id = orec.body_id, body_len = orec.body_len;
    uint32_t n_chunks = orec.n_chunks; /* orec points into the map: copy before the put below */
    if (op->rec_len > old_len && (rc = ensure_room(w, op->rec_len - old_len, &op->vkey)) != 0) return rc;
    uint64_t new_size = sub_sat(e.size, old_len) + op->rec_len;
    w->ws->a.used_bytes = sub_sat(w->ws->a.used_bytes, e.size) + new_size;
    if (e.seg == SEG_PROTECTED) w->ws->a.prot_bytes = sub_sat(w->ws->a.prot_bytes, e.size) + new_size;
    e.size = new_size;
    /* One put: the entry header travels with the record. */
    return meta_put(w, &op->vkey, &e, op->rec, op->rec_len, body_id, body_len, n_chunks);
}

static int op_delete_variant(struct wctx *w, const struct store_key *vkey)
{
    struct entry_info e;
    int rc = entry_get(w, vkey, &e);
    if (rc != 0) return rc;
    return entry_remove(w, vkey, &e);
}

static int op_delete_primary(struct wctx *w, const struct store_key *pkey)
{
    int n = 0;
    int rc = op_delete_variant(w, pkey); /* the unvaried entry, if that is the URL's form */
    if (rc == 0) n++;
    else if (rc != STORE_ENOTFOUND) return rc;
    if ((rc = remove_varied(w, pkey, &n, NULL)) != 0) return rc;
    return n > 0 ? 0 : STORE_ENOTFOUND;
}

static int op_run(struct wctx *w, const struct store_op *op)
{
    int reclaimed;
    switch (op->kind) {
    case STORE_OP_PUT_CHUNK:
        return put_chunk(w, op->body_id, op->chunk_no, op->data, op->len, op->now);
    case STORE_OP_COMMIT:
        return op_commit(w, op);
    case STORE_OP_ABORT:
        return pending_reclaim(w, op->body_id, &reclaimed);
    case STORE_OP_UPDATE_META:
        return op_update_meta(w, op);
    case STORE_OP_DELETE_VARIANT:
        return op_delete_variant(w, &op->vkey);
    case STORE_OP_DELETE_PRIMARY:
        return op_delete_primary(w, &op->pkey);
    }
    return -EINVAL;
}

static int is_fill_op(const struct store_op *op)
{
    return op->kind == STORE_OP_PUT_CHUNK || op->kind == STORE_OP_COMMIT;
}

/* Bytes an op is about to write, to size an eviction after MDB_MAP_FULL. */
static uint64_t op_need(const struct store_op *op)
{
    uint64_t n = 4096;
    if (op->kind == STORE_OP_PUT_CHUNK || op->kind == STORE_OP_COMMIT) n += op->len;
    if (op->kind == STORE_OP_COMMIT || op->kind == STORE_OP_UPDATE_META) n += op->rec_len;
    return n;
}

/* ---- hits -------------------------------------------------------------------------------------------- */

int store_note_hit(struct store *s, const struct store_key *vkey)
{
    /* The key is a SHA-256 already: its first bytes are a perfectly good slot index. */
    size_t h = (size_t)store__be32_get(vkey->b) & (HIT_SLOTS - 1);
    int over_half = 0, stored = 0;
    pthread_mutex_lock(&s->hits_lock);
    for (size_t i = 0; i < HIT_PROBES; i++) {
        struct hit_slot *slot = &s->hits[(h + i) & (HIT_SLOTS - 1)];
        if (slot->used && memcmp(slot->key.b, vkey->b, STORE_KEY_LEN) == 0) {
            if (slot->count < UINT32_MAX) slot->count++;
            stored = 1;
            break;
        }
        if (!slot->used) {
            slot->used = 1;
            slot->key = *vkey;
            slot->count = 1;
            s->n_hits++;
            stored = 1;
            break;
        }
    }
    over_half = s->n_hits >= HIT_SLOTS / 2;
    pthread_mutex_unlock(&s->hits_lock);
    if (stored)
        CTR_ADD(s, hits_noted, 1);
    else
        CTR_ADD(s, hits_dropped, 1);
    return over_half;
}

/* Moves the hit table into s->hit_buf (writer side) and empties it; returns how many slots. */
static size_t hits_take(struct store *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->hits_lock);
    if (s->n_hits > 0) {
        for (size_t i = 0; i < HIT_SLOTS; i++) {
            if (s->hits[i].used) {
                s->hit_buf[n++] = s->hits[i];
                s->hits[i].used = 0;
            }
        }
        s->n_hits = 0;
    }
    pthread_mutex_unlock(&s->hits_lock);
    return n;
}

static int fold_hits(struct wctx *w, size_t n)
{
    struct store *s = w->s;
    for (size_t i = 0; i < n; i++) {
        const struct hit_slot *h = &s->hit_buf[i];
        struct entry_info e;
        int rc = entry_get(w, &h->key, &e);
        if (rc == STORE_ENOTFOUND) continue; /* evicted or replaced since */
        if (rc != 0) return rc;
        e.hits = e.hits > UINT32_MAX - h->count ? UINT32_MAX : e.hits + h->count;
        uint8_t seg = e.seg;
        if (seg == SEG_PROBATION && e.hits >= STORE_PROMOTE_HITS) {
            seg = SEG_PROTECTED;
            w->ws->d.promotions++;
        }
        if ((rc = entry_move(w, &h->key, &e, seg)) != 0) return rc;
    }
    return demote_excess(w);
}

/* ---- transactions -------------------------------------------------------------------------------- */

static void wstate_init(struct store *s, struct wstate *ws)
{
    memset(ws, 0, sizeof(*ws));
    ws->a = s->committed;
    ws->pending = s->pending;
}

/* Publishes a committed transaction's state. */
static void wstate_publish(struct store *s, const struct wstate *ws, int dirty)
{
    if (ws->d.meta_changes > 0) __atomic_add_fetch(&s->meta_gen, 1, __ATOMIC_SEQ_CST);
    s->committed = ws->a;
    s->pending = ws->pending;
    CTR_ADD(s, meta_writes, ws->d.meta_writes);
    CTR_ADD(s, body_chunk_writes, ws->d.body_chunk_writes);
    CTR_ADD(s, body_bytes_written, ws->d.body_bytes_written);
    CTR_ADD(s, evictions, ws->d.evictions);
    CTR_ADD(s, reclaimed_bodies, ws->d.reclaimed_bodies);
    CTR_ADD(s, promotions, ws->d.promotions);
    CTR_ADD(s, demotions, ws->d.demotions);
    CTR_ADD(s, replacements, ws->d.replacements);
    if (dirty) CTR_ADD(s, write_txns, 1);
    CTR_SET(s, used_bytes, ws->a.used_bytes);
    CTR_SET(s, protected_bytes, ws->a.prot_bytes);
    CTR_SET(s, entries, ws->a.n_entries);
    CTR_SET(s, pending_bodies, ws->pending);
}

static int wtxn_begin(struct store *s, struct wctx *w, struct wstate *ws)
{
    wstate_init(s, ws);
    *w = (struct wctx){.s = s, .ws = ws};
    return mdb_err(mdb_txn_begin(s->env, NULL, 0, &w->txn));
}

/* Writes state/"alloc" if it changed, then commits (or aborts a clean transaction). The transaction is
 * finished either way. 0, MDB_MAP_FULL or a store code; on 0 the state is published. */
static int wtxn_commit(struct wctx *w)
{
    struct store *s = w->s;
    int rc = 0;
    if (memcmp(&w->ws->a, &s->committed, sizeof(s->committed)) != 0) {
        uint8_t buf[ALLOC_VAL_LEN];
        alloc_encode(buf, &w->ws->a);
        MDB_val k = val("alloc", 5), v = val(buf, sizeof(buf));
        rc = mdb_put(w->txn, s->dbi_state, &k, &v, 0);
        w->dirty = 1;
    }
    if (rc != 0) {
        mdb_txn_abort(w->txn);
    } else if (!w->dirty) {
        mdb_txn_abort(w->txn);
    } else {
        /* Bumped before and after: see store_meta_generation() for why both. */
        if (w->ws->d.meta_changes > 0) __atomic_add_fetch(&s->meta_gen, 1, __ATOMIC_SEQ_CST);
        rc = mdb_txn_commit(w->txn);
    }
    w->txn = NULL;
    if (rc != 0) return mdb_err(rc);
    wstate_publish(s, w->ws, w->dirty);
    return 0;
}

typedef int (*child_fn)(struct wctx *w, const void *arg);

/* Runs fn in a nested transaction: on failure only its own changes (and its wstate changes) roll back. */
static int run_child(struct wctx *w, child_fn fn, const void *arg)
{
    MDB_txn *parent = w->txn, *child;
    int rc = mdb_txn_begin(w->s->env, parent, 0, &child);
    if (rc != 0) return mdb_err(rc);
    struct wstate saved = *w->ws;
    w->txn = child;
    rc = fn(w, arg);
    w->txn = parent;
    if (rc == 0) {
        rc = mdb_err(mdb_txn_commit(child));
        /* Every change to the tables also changes the working state (a gauge, a sequence number or a
         * counter), so an unchanged state means a clean child and nothing to commit for it. */
        if (rc == 0)
            w->dirty |= memcmp(&saved, w->ws, sizeof(saved)) != 0;
        else
            *w->ws = saved;
    } else {
        mdb_txn_abort(child);
        *w->ws = saved;
    }
    return rc;
}

static int child_op(struct wctx *w, const void *arg)
{
    return op_run(w, arg);
}

static int child_fold(struct wctx *w, const void *arg)
{
    return fold_hits(w, *(const size_t *)arg);
}

static int child_reclaim(struct wctx *w, const void *arg)
{
    (void)arg;
    struct store *s = w->s;
    for (size_t i = 0; i < s->n_reclaim; i++) {
        int reclaimed, rc = pending_reclaim(w, s->reclaim[i], &reclaimed);
        if (rc != 0) return rc;
        w->ws->d.reclaimed_bodies += (uint64_t)reclaimed;
    }
    return 0;
}

static void reclaim_add(struct store *s, uint64_t body_id)
{
    for (size_t i = 0; i < s->n_reclaim; i++)
        if (s->reclaim[i] == body_id) return;
    if (s->n_reclaim == s->cap_reclaim) {
        size_t cap = s->cap_reclaim ? 2 * s->cap_reclaim : 16;
        uint64_t *p = realloc(s->reclaim, cap * sizeof(*p));
        if (p == NULL) return; /* the pending row stays: reclaimed at the next open */
        s->reclaim = p;
        s->cap_reclaim = cap;
    }
    s->reclaim[s->n_reclaim++] = body_id;
}

/* Deletes the bodies of failed fills, in a transaction of their own. On failure the list is kept for
 * the next batch (and the pending rows guarantee the next open reclaims them anyway). */
static void reclaim_run(struct store *s)
{
    if (s->n_reclaim == 0) return;
    struct wctx w;
    struct wstate ws;
    if (wtxn_begin(s, &w, &ws) != 0) return;
    if (run_child(&w, child_reclaim, NULL) != 0) {
        mdb_txn_abort(w.txn);
        return;
    }
    if (wtxn_commit(&w) == 0) s->n_reclaim = 0;
}

/* ROOM. cache_size bounds accounted bytes, but LMDB spends more pages than that on small objects (a meta
 * leaf holds five or so records, a body leaf three 1 KiB bodies; 2.35 KB of pages per 1.9 KB accounted
 * on the cold-miss benchmark), so a map of cache_size * 1.25 + 64 MiB could fill first. Then every
 * write failed, and so did the eviction meant to make room, since a delete needs fresh pages too: the
 * store stopped storing for good. So each batch looks at the pages its trees really use (mdb_stat: O(1)
 * per table) and keeps room_limit, the accounted bytes the map is trusted to hold: above 70% of the
 * map it is cut to 31/32 of what is used (at most 8 MiB less a batch, so an eviction transaction stays
 * small), below 55% it regains a sixteenth of its distance to cache_size. ensure_room() evicts to it.
 * The rest is for copy-on-write pages, pages readers still see, and the free list, which LMDB keeps in
 * runs of contiguous pages: at 80% a 256 MiB cache of 1 KiB objects under steady eviction still met
 * MDB_MAP_FULL about once in 2 s, at 70% not once in 40 s (and then held 170 MB accounted, in a
 * map of 384 MiB: evicted small objects leave emptier leaves, about 2 bytes of pages per accounted
 * byte). The data file never outgrows the map, so disk use stays within cache_size * 1.25 + 64 MiB. */
static void room_limit_update(struct wctx *w)
{
    struct store *s = w->s;
    MDB_dbi dbis[] = {s->dbi_state, s->dbi_meta, s->dbi_body, s->dbi_pending, s->dbi_variants, s->dbi_lru};
    uint64_t bytes = 0;
    for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
        MDB_stat st;
        if (mdb_stat(w->txn, dbis[i], &st) != 0) return;
        bytes += (uint64_t)st.ms_psize * (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages);
    }
    uint64_t used = w->ws->a.used_bytes;
    if (bytes > s->map_size / 100 * 70) {
        uint64_t cut = used / 32 < ((uint64_t)8 << 20) ? used / 32 : (uint64_t)8 << 20;
        if (used - cut < s->room_limit) s->room_limit = used - cut;
    } else if (bytes < s->map_size / 100 * 55 && s->room_limit < s->cache_size) {
        s->room_limit += (s->cache_size - s->room_limit) / 16 + 1;
        if (s->room_limit > s->cache_size) s->room_limit = s->cache_size;
    }
    CTR_SET(s, room_limit, s->room_limit);
}

/* After MDB_MAP_FULL: evicts at least `need` bytes (and 1/16 of the map), then commits one more small
 * transaction so the freed pages become reusable (LMDB hands out pages freed by transaction T only from
 * T+2 on). The map is full, so a delete may not find a page to copy either: evictions go in
 * transactions of a few entries, fewer after each MDB_MAP_FULL, and each commit frees pages for the
 * next. The map evidently holds no more than what is used now: room_limit (ROOM) drops below it. 0 when
 * the failed write is worth one more try. */
static int evict_for_space(struct store *s, uint64_t need)
{
    uint64_t target = need > s->map_size / 16 ? need : s->map_size / 16;
    uint64_t freed_total = 0;
    unsigned per_txn = 64;
    struct wctx w;
    struct wstate ws;
    int rc = 0;
    if (s->committed.used_bytes - s->committed.used_bytes / 16 < s->room_limit)
        s->room_limit = s->committed.used_bytes - s->committed.used_bytes / 16;
    CTR_SET(s, room_limit, s->room_limit);
    while (freed_total < target) {
        if ((rc = wtxn_begin(s, &w, &ws)) != 0) return rc;
        uint64_t freed_here = 0;
        unsigned n = 0;
        while (n < per_txn && freed_total + freed_here < target) {
            uint64_t freed;
            if ((rc = evict_one(&w, NULL, &freed)) != 0) break;
            n++;
            freed_here += freed;
        }
        if (rc != 0 && rc != STORE_ENOTFOUND && rc != MDB_MAP_FULL) {
            mdb_txn_abort(w.txn);
            return rc;
        }
        if (rc == MDB_MAP_FULL) {
            mdb_txn_abort(w.txn);
            if (per_txn == 1) return STORE_EFULL; /* not even one delete fits */
            per_txn /= 4;
            continue;
        }
        w.dirty = n > 0;
        int crc = wtxn_commit(&w);
        if (crc == MDB_MAP_FULL && per_txn > 1) {
            per_txn /= 4;
            continue;
        }
        if (crc != 0) return crc;
        freed_total += freed_here;
        if (rc == STORE_ENOTFOUND) break; /* nothing left to evict */
    }
    /* Even with nothing left to evict, pages freed by the last transactions (a failed fill's chunks,
     * reclaimed just before) may be what is missing: they become reusable only after more commits,
     * so the small transaction below is worth a retry either way. */
    if ((rc = wtxn_begin(s, &w, &ws)) != 0) return rc;
    uint8_t buf[ALLOC_VAL_LEN];
    alloc_encode(buf, &ws.a);
    MDB_val k = val("alloc", 5), v = val(buf, sizeof(buf));
    if ((rc = mdb_put(w.txn, s->dbi_state, &k, &v, 0)) != 0) {
        mdb_txn_abort(w.txn);
        return mdb_err(rc);
    }
    w.dirty = 1;
    return wtxn_commit(&w);
}

static int id_in(const uint64_t *ids, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return 1;
    return 0;
}

/* Runs ops[i..n) in one child transaction: the common case, where every op succeeds. A child per op
 * isolates failures, but each costs LMDB a dirty-page list, a copy of every page the parent had
 * already dirtied and a merge at its commit: a third of the writer's time on small objects. 0 when
 * all ran and the child is merged; otherwise nothing of them happened (the caller runs them again,
 * one child each, to tell which failed). */
static int run_ops_together(struct wctx *w, struct store_op *ops, size_t i, size_t n, const uint64_t *failed,
                            size_t n_failed)
{
    MDB_txn *parent = w->txn, *child;
    int rc = mdb_txn_begin(w->s->env, parent, 0, &child);
    if (rc != 0) return mdb_err(rc);
    struct wstate saved = *w->ws;
    w->txn = child;
    for (size_t j = i; j < n && rc == 0; j++) {
        struct store_op *op = &ops[j];
        if (is_fill_op(op) && id_in(failed, n_failed, op->body_id)) {
            op->status = STORE_ECANCELED;
            continue;
        }
        rc = op_run(w, op);
        op->status = rc;
    }
    w->txn = parent;
    if (rc == 0) rc = mdb_err(mdb_txn_commit(child));
    else mdb_txn_abort(child);
    if (rc == 0) {
        w->dirty |= memcmp(&saved, w->ws, sizeof(saved)) != 0;
    } else {
        *w->ws = saved;
        for (size_t j = i; j < n; j++)
            ops[j].status = 0;
    }
    return rc;
}

int store_apply(struct store *s, struct store_op *ops, size_t n)
{
    pthread_mutex_lock(&s->wlock);
    size_t n_hits = hits_take(s);
    /* body_ids whose fill failed in this call: their later ops are canceled. */
    uint64_t *failed = malloc((n + 1) * sizeof(*failed));
    size_t n_failed = 0;
    if (failed == NULL) {
        for (size_t i = 0; i < n; i++)
            ops[i].status = -ENOMEM;
        pthread_mutex_unlock(&s->wlock);
        return n > 0 ? -ENOMEM : 0;
    }
    for (size_t i = 0; i < n; i++)
        ops[i].status = 0;

    size_t i = 0, retried = (size_t)-1;
    int housekeeping = n_hits > 0 || s->n_reclaim > 0, careful = 0;
    while (i < n || housekeeping) {
        struct wctx w;
        struct wstate ws;
        int rc = wtxn_begin(s, &w, &ws);
        if (rc != 0) {
            for (; i < n; i++)
                ops[i].status = rc;
            break;
        }
        size_t failed_mark = n_failed;
        int reclaim_ran = 0;
        room_limit_update(&w);
        if (housekeeping) {
            /* Hits first, so a just-promoted object is not the victim of this batch's evictions. A
             * failure here only loses hints. */
            if (n_hits > 0) (void)run_child(&w, child_fold, &n_hits);
            if (s->n_reclaim > 0) reclaim_ran = run_child(&w, child_reclaim, NULL) == 0;
            housekeeping = 0;
        }
        size_t j = i;
        int full = 0;
        if (!careful && run_ops_together(&w, ops, i, n, failed, n_failed) == 0)
            j = n; /* all of them, in one child */
        else
            careful = 1; /* one failed: every op again, each in its own child, for the rest of the call */
        for (; j < n; j++) {
            struct store_op *op = &ops[j];
            if (is_fill_op(op) && id_in(failed, n_failed, op->body_id)) {
                op->status = STORE_ECANCELED;
                continue;
            }
            rc = run_child(&w, child_op, op);
            if (rc == MDB_MAP_FULL) {
                full = 1;
                break;
            }
            op->status = rc;
            if (rc < 0 && is_fill_op(op)) failed[n_failed++] = op->body_id;
        }
        rc = wtxn_commit(&w);
        if (rc == MDB_MAP_FULL) {
            /* Nothing of this transaction happened: run its ops again after eviction. */
            n_failed = failed_mark;
            full = 1;
            j = i;
        } else if (rc != 0) {
            for (size_t k = i; k < j; k++) {
                if (ops[k].status == 0) ops[k].status = rc;
                if (is_fill_op(&ops[k]) && !id_in(failed, n_failed, ops[k].body_id)) failed[n_failed++] = ops[k].body_id;
            }
        } else if (reclaim_ran) {
            s->n_reclaim = 0;
        }
        i = j;
        if (full && i < n) {
            CTR_ADD(s, map_full, 1);
            if (retried == i || evict_for_space(s, 2 * op_need(&ops[i])) != 0) {
                ops[i].status = STORE_EFULL;
                if (is_fill_op(&ops[i])) failed[n_failed++] = ops[i].body_id;
                i++;
            } else {
                retried = i;
            }
        }
    }
    for (size_t k = 0; k < n_failed; k++)
        reclaim_add(s, failed[k]);
    reclaim_run(s);
    free(failed);
    pthread_mutex_unlock(&s->wlock);
    for (size_t k = 0; k < n; k++)
        if (ops[k].status != 0) return ops[k].status;
    return 0;
}

uint64_t store_meta_generation(struct store *s)
{
    return __atomic_load_n(&s->meta_gen, __ATOMIC_SEQ_CST);
}

uint64_t store_body_id_alloc(struct store *s)
{
    return __atomic_fetch_add(&s->next_body_id, 1, __ATOMIC_RELAXED);
}

uint64_t store_max_object_size(const struct store *s)
{
    return s->max_object_size;
}

/* ---- reading ----------------------------------------------------------------------------------------- */

int store_rtxn_begin(struct store *s, struct store_rtxn **out)
{
    *out = NULL;
    struct store_rtxn *r = calloc(1, sizeof(*r));
    if (r == NULL) return -ENOMEM;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &r->txn);
    if (rc != 0) {
        free(r);
        return mdb_err(rc);
    }
    mdb_txn_reset(r->txn);
    r->s = s;
    pthread_mutex_lock(&s->rtxns_lock);
    r->next = s->rtxns;
    if (r->next != NULL) r->next->prev = r;
    s->rtxns = r;
    pthread_mutex_unlock(&s->rtxns_lock);
    *out = r;
    return 0;
}

int store_rtxn_renew(struct store_rtxn *r)
{
    if (r->active) return -EINVAL;
    int rc = mdb_txn_renew(r->txn);
    if (rc != 0) return mdb_err(rc);
    r->active = 1;
    return 0;
}

void store_rtxn_reset(struct store_rtxn *r)
{
    if (r->active) {
        mdb_txn_reset(r->txn);
        r->active = 0;
    }
}

void store_rtxn_end(struct store_rtxn *r)
{
    if (r == NULL) return;
    struct store *s = r->s;
    pthread_mutex_lock(&s->rtxns_lock);
    if (r->prev != NULL) r->prev->next = r->next;
    else s->rtxns = r->next;
    if (r->next != NULL) r->next->prev = r->prev;
    s->filter_negatives_ended += __atomic_load_n(&r->filter_negatives, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&s->rtxns_lock);
    mdb_txn_abort(r->txn);
    free(r);
}

/* 1 when the filter says no response is stored under pkey (FILTER below), 0 when there may be one or
 * no filter is built yet. The hazard pointer keeps the probed filter from being freed under the probe:
 * published, then checked to still be the current one (seq_cst on both sides, so the writer's swap and
 * its scan of the hazards cannot both miss it). */
static int filter_rules_out(struct store_rtxn *r, const struct store_key *pkey)
{
    struct store *s = r->s;
    struct store_filter *f = __atomic_load_n(&s->filter, __ATOMIC_SEQ_CST);
    while (f != NULL) {
        __atomic_store_n(&r->hazard, f, __ATOMIC_SEQ_CST);
        struct store_filter *now = __atomic_load_n(&s->filter, __ATOMIC_SEQ_CST);
        if (now == f) break;
        f = now;
    }
    if (f == NULL) {
        __atomic_store_n(&r->hazard, NULL, __ATOMIC_RELEASE);
        return 0;
    }
    int absent = !store_filter_may_contain(f, pkey);
    __atomic_store_n(&r->hazard, NULL, __ATOMIC_RELEASE);
    if (absent)
        __atomic_store_n(&r->filter_negatives, __atomic_load_n(&r->filter_negatives, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    return absent;
}

/* Renews a reset rtxn for the duration of one call; *own tells rt_leave() to reset it again. */
static int rt_enter(struct store_rtxn *r, int *own)
{
    *own = !r->active;
    return *own ? store_rtxn_renew(r) : 0;
}

static void rt_leave(struct store_rtxn *r, int own)
{
    if (own) store_rtxn_reset(r);
}

int store_meta_get(struct store_rtxn *r, const struct store_key *vkey, const void *method, size_t method_len, const void *uri,
                   size_t uri_len, struct store_meta *out)
{
    memset(out, 0, sizeof(*out));
    int own, rc = rt_enter(r, &own);
    if (rc != 0) return rc;
    MDB_val k = val(vkey->b, STORE_KEY_LEN), v;
    rc = mdb_get(r->txn, r->s->dbi_meta, &k, &v);
    void *blob = NULL;
    if (rc == 0) {
        /* Copy out of the map before the snapshot goes (lmdb.h mdb_get @note). */
        blob = malloc(v.mv_size > 0 ? v.mv_size : 1);
        if (blob != NULL) memcpy(blob, v.mv_data, v.mv_size);
    }
    rt_leave(r, own);
    if (rc != 0) return mdb_err(rc);
    if (blob == NULL) return -ENOMEM;
    struct store_record rec;
    if (v.mv_size < ENTRY_HDR_LEN || store_record_decode((uint8_t *)blob + ENTRY_HDR_LEN, v.mv_size - ENTRY_HDR_LEN, &rec) != 0 ||
        !rec.complete) {
        free(blob);
        return STORE_ECORRUPT;
    }
    if (uri != NULL && (rec.method_len != method_len || (method_len && memcmp(rec.method, method, method_len) != 0) ||
                        rec.uri_len != uri_len || memcmp(rec.uri, uri, uri_len) != 0)) {
        free(blob);
        CTR_ADD(r->s, collisions, 1);
        return STORE_ENOTFOUND;
    }
    out->rec = rec;
    out->blob = blob;
    out->blob_len = v.mv_size;
    return 0;
}

void store_meta_release(struct store_meta *m)
{
    free(m->blob);
    memset(m, 0, sizeof(*m));
}

int store_variants_get(struct store_rtxn *r, const struct store_key *pkey, struct store_key *out, size_t max, size_t *n_total)
{
    *n_total = 0;
    /* A URL with no stored response, the usual miss, costs no B-tree walk. */
    if (filter_rules_out(r, pkey)) return 0;
    int own, rc = rt_enter(r, &own);
    if (rc != 0) return rc;
    MDB_val k = val(pkey->b, STORE_KEY_LEN), v;
    /* The unvaried form, if that is the URL's: its only entry, under the primary key (store_keys.h). */
    rc = mdb_get(r->txn, r->s->dbi_meta, &k, &v);
    if (rc != MDB_NOTFOUND) {
        if (rc == 0) {
            *n_total = 1;
            if (max > 0) out[0] = *pkey;
        }
        rt_leave(r, own);
        return mdb_err(rc);
    }
    MDB_cursor *c;
    if ((rc = mdb_cursor_open(r->txn, r->s->dbi_variants, &c)) != 0) {
        rt_leave(r, own);
        return mdb_err(rc);
    }
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_KEY);
    if (rc == 0) {
        size_t count;
        rc = mdb_cursor_count(c, &count);
        if (rc == 0) *n_total = count;
        for (size_t i = 0; rc == 0 && i < max && i < count; i++) {
            if (v.mv_size != STORE_KEY_LEN) {
                rc = MDB_CORRUPTED;
                break;
            }
            memcpy(out[i].b, v.mv_data, STORE_KEY_LEN);
            if (i + 1 < max && i + 1 < count) rc = mdb_cursor_get(c, &k, &v, MDB_NEXT_DUP);
        }
    } else if (rc == MDB_NOTFOUND) {
        rc = 0;
    }
    mdb_cursor_close(c);
    rt_leave(r, own);
    return mdb_err(rc);
}

int store_rtxn_active(const struct store_rtxn *r)
{
    return r->active;
}

/* In r's snapshot (active): the bytes of the chunk holding offset, from offset to the chunk's end or
 * len, whichever is first. */
static int body_view(struct store_rtxn *r, uint64_t body_id, uint64_t offset, size_t len, const void **ptr, size_t *n)
{
    *ptr = NULL;
    *n = 0;
    if (offset / STORE_CHUNK_SIZE > UINT32_MAX) return STORE_EGONE;
    uint32_t chunk = (uint32_t)(offset / STORE_CHUNK_SIZE);
    size_t off = (size_t)(offset % STORE_CHUNK_SIZE);
    uint8_t kb[STORE_BODY_KEY_LEN];
    store__body_key(kb, body_id, chunk);
    MDB_val k = val(kb, sizeof(kb)), v;
    int rc = mdb_get(r->txn, r->s->dbi_body, &k, &v);
    if (rc == MDB_NOTFOUND && off == 0 && chunk > 0) {
        /* offset is exactly the end of a body whose length is a multiple of the chunk size? Then the
         * previous chunk exists and is full: end of body, not gone. */
        store__body_key(kb, body_id, chunk - 1);
        k = val(kb, sizeof(kb));
        if (mdb_get(r->txn, r->s->dbi_body, &k, &v) == 0 && v.mv_size == STORE_CHUNK_SIZE) return 0;
        return STORE_EGONE;
    }
    if (rc == MDB_NOTFOUND) return STORE_EGONE;
    if (rc != 0) return mdb_err(rc);
    if (off >= v.mv_size) return 0; /* at or past the end of the last chunk */
    size_t avail = v.mv_size - off;
    *ptr = (const uint8_t *)v.mv_data + off;
    *n = avail < len ? avail : len;
    return 0;
}

int store_body_view(struct store_rtxn *r, uint64_t body_id, uint64_t offset, size_t len, const void **ptr, size_t *n)
{
    *ptr = NULL;
    *n = 0;
    if (!r->active) return -EINVAL;
    if (len == 0) return 0;
    return body_view(r, body_id, offset, len, ptr, n);
}

void store_body_view_used(struct store_rtxn *r, uint64_t n)
{
    CTR_ADD(r->s, body_bytes_read, n);
}

int store_body_read(struct store_rtxn *r, uint64_t body_id, uint64_t offset, void *buf, size_t len, size_t *nread)
{
    *nread = 0;
    if (len == 0) return 0;
    int own, rc = rt_enter(r, &own);
    if (rc != 0) return rc;
    size_t copied = 0;
    while (copied < len) {
        const void *p;
        size_t n;
        uint64_t at = offset + copied;
        rc = body_view(r, body_id, at, len - copied, &p, &n);
        if (rc == STORE_EGONE && copied > 0) rc = 0; /* ran off the end of the last (full) chunk */
        if (rc != 0 || n == 0) break;
        memcpy((uint8_t *)buf + copied, p, n);
        copied += n;
        /* Short of len and not at a chunk boundary: that chunk was the body's last. */
        if ((at + n) % STORE_CHUNK_SIZE != 0) break;
    }
    rt_leave(r, own);
    if (rc != 0) return rc;
    *nread = copied;
    CTR_ADD(r->s, body_bytes_read, copied);
    return 0;
}

void store_counters_get(struct store *s, struct store_counters *out)
{
    out->meta_writes = CTR_GET(s, meta_writes);
    out->body_chunk_writes = CTR_GET(s, body_chunk_writes);
    out->body_bytes_written = CTR_GET(s, body_bytes_written);
    out->body_bytes_read = CTR_GET(s, body_bytes_read);
    out->evictions = CTR_GET(s, evictions);
    out->reclaimed_bodies = CTR_GET(s, reclaimed_bodies);
    out->write_txns = CTR_GET(s, write_txns);
    out->map_full = CTR_GET(s, map_full);
    out->room_limit = CTR_GET(s, room_limit);
    out->collisions = CTR_GET(s, collisions);
    out->hits_noted = CTR_GET(s, hits_noted);
    out->hits_dropped = CTR_GET(s, hits_dropped);
    out->promotions = CTR_GET(s, promotions);
    out->demotions = CTR_GET(s, demotions);
    out->replacements = CTR_GET(s, replacements);
    out->discarded_at_open = CTR_GET(s, discarded_at_open);
    out->used_bytes = CTR_GET(s, used_bytes);
    out->protected_bytes = CTR_GET(s, protected_bytes);
    out->entries = CTR_GET(s, entries);
    out->pending_bodies = CTR_GET(s, pending_bodies);
    out->filter_builds = CTR_GET(s, filter_builds);
    out->filter_bytes = CTR_GET(s, filter_bytes);
    pthread_mutex_lock(&s->rtxns_lock);
    out->filter_negatives = s->filter_negatives_ended;
    for (struct store_rtxn *r = s->rtxns; r != NULL; r = r->next)
        out->filter_negatives += __atomic_load_n(&r->filter_negatives, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&s->rtxns_lock);
}

/* ---- open / close ------------------------------------------------------------------------------- */

/* mkdir -p, then insist on a directory. */
static int make_dir(const char *dir, char *err, size_t err_len)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (p == NULL) return -ENOMEM;
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            int rc = fail_msg(err, err_len, -e, "%s: cannot create directory: %s", p, strerror(e));
            free(p);
            return rc;
        }
        p[i] = saved;
    }
    free(p);
    struct stat st;
    if (stat(dir, &st) != 0) return fail_msg(err, err_len, -errno, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fail_msg(err, err_len, -ENOTDIR, "%s: exists and is not a directory", dir);
    return 0;
}

static int open_dbis(struct store *s, MDB_txn *txn, unsigned create)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
        unsigned flags;
    } t[] = {
        {"meta", &s->dbi_meta, 0},       {"body", &s->dbi_body, 0},
        {"pending", &s->dbi_pending, 0}, {"variants", &s->dbi_variants, MDB_DUPSORT | MDB_DUPFIXED},
        {"lru", &s->dbi_lru, 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int rc = mdb_dbi_open(txn, t[i].name, t[i].flags | create, t[i].dbi);
        if (rc != 0) return rc;
    }
    return 0;
}

/* Stamps the format record and a first allocation record. */
static int stamp_format(struct store *s, MDB_txn *txn, uint64_t next_body_id)
{
    uint8_t fmt[FORMAT_LEN], alloc[ALLOC_VAL_LEN];
    memcpy(fmt, FORMAT_MAGIC, 8);
    store__be32_put(fmt + 8, FORMAT_VERSION);
    store__be32_put(fmt + 12, (uint32_t)STORE_CHUNK_SIZE);
    struct alloc_state a = {.next_body_id = next_body_id};
    alloc_encode(alloc, &a);
    MDB_val k = val("format", 6), v = val(fmt, sizeof(fmt));
    MDB_val k2 = val("alloc", 5), v2 = val(alloc, sizeof(alloc));
    int rc = mdb_put(txn, s->dbi_state, &k, &v, 0);
    if (rc == 0) rc = mdb_put(txn, s->dbi_state, &k2, &v2, 0);
    if (rc == 0) s->committed = a;
    return rc;
}

/* A store written by an older larder: it is a cache, so rather than refuse to start (or convert records
 * on every open), its tables are dropped and recreated empty in the opening transaction, atomically.
 * *entries gets how many objects went. */
static int discard_old_format(struct store *s, MDB_txn *txn, uint64_t *entries)
{
    static const char *const tables[] = {"meta", "body", "pending", "variants", "lru", "entry"};
    MDB_val k = val("alloc", 5), v;
    struct alloc_state old = {.next_body_id = 1};
    if (mdb_get(txn, s->dbi_state, &k, &v) == 0 && v.mv_size == ALLOC_VAL_LEN) alloc_decode(v.mv_data, &old);
    *entries = old.n_entries;
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        MDB_dbi dbi;
        int rc = mdb_dbi_open(txn, tables[i], 0, &dbi);
        if (rc == MDB_NOTFOUND) continue;
        if (rc == 0) rc = mdb_drop(txn, dbi, 1);
        if (rc != 0) return rc;
    }
    int rc = open_dbis(s, txn, MDB_CREATE);
    if (rc != 0) return rc;
    /* body_ids keep growing across the discard, as everywhere else. */
    return stamp_format(s, txn, old.next_body_id ? old.next_body_id : 1);
}

/* Creates the tables of a fresh store, or checks the format record of an existing one. */
static int check_format(struct store *s, MDB_txn *txn, const char *dir, char *err, size_t err_len)
{
    MDB_dbi main_dbi;
    int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
    if (rc != 0) return fail_msg(err, err_len, mdb_err(rc), "%s: cannot open the main table: %s", dir, mdb_strerror(rc));
    MDB_stat st;
    if ((rc = mdb_stat(txn, main_dbi, &st)) != 0) return fail_msg(err, err_len, mdb_err(rc), "%s: %s", dir, mdb_strerror(rc));
    rc = mdb_dbi_open(txn, "state", 0, &s->dbi_state);
    if (rc == MDB_NOTFOUND && st.ms_entries == 0) {
        /* A fresh environment: create everything and stamp the format. */
        if ((rc = mdb_dbi_open(txn, "state", MDB_CREATE, &s->dbi_state)) != 0 || (rc = open_dbis(s, txn, MDB_CREATE)) != 0)
            return fail_msg(err, err_len, mdb_err(rc), "%s: cannot create tables: %s", dir, mdb_strerror(rc));
        if ((rc = stamp_format(s, txn, 1)) != 0)
            return fail_msg(err, err_len, mdb_err(rc), "%s: cannot write the format record: %s", dir, mdb_strerror(rc));
        return 0;
    }
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE)
        return fail_msg(err, err_len, STORE_EFORMAT, "%s/data.mdb: an LMDB environment that is not a larder store (no state table)",
                        dir);
    if (rc != 0) return fail_msg(err, err_len, mdb_err(rc), "%s: cannot open the state table: %s", dir, mdb_strerror(rc));

    MDB_val k = val("format", 6), v;
    rc = mdb_get(txn, s->dbi_state, &k, &v);
    if (rc == MDB_NOTFOUND || (rc == 0 && (v.mv_size != FORMAT_LEN || memcmp(v.mv_data, FORMAT_MAGIC, 8) != 0)))
        return fail_msg(err, err_len, STORE_EFORMAT, "%s/data.mdb: not a larder store (no or foreign format record)", dir);
    if (rc != 0) return fail_msg(err, err_len, mdb_err(rc), "%s: cannot read the format record: %s", dir, mdb_strerror(rc));
    uint32_t version = store__be32_get((const uint8_t *)v.mv_data + 8);
    uint32_t chunk = store__be32_get((const uint8_t *)v.mv_data + 12);
    if (version > 0 && version < FORMAT_VERSION) {
        uint64_t gone = 0;
        if ((rc = discard_old_format(s, txn, &gone)) != 0)
            return fail_msg(err, err_len, mdb_err(rc), "%s/data.mdb: cannot empty a store of format version %u: %s", dir,
                            (unsigned)version, mdb_strerror(rc));
        CTR_SET(s, discarded_at_open, gone);
        return 0;
    }
    if (version != FORMAT_VERSION)
        return fail_msg(err, err_len, STORE_EFORMAT, "%s/data.mdb: store format version %u, this build reads version %u", dir,
                        (unsigned)version, (unsigned)FORMAT_VERSION);
    if (chunk != STORE_CHUNK_SIZE)
        return fail_msg(err, err_len, STORE_EFORMAT, "%s/data.mdb: chunk size %u, this build uses %zu", dir, (unsigned)chunk,
                        STORE_CHUNK_SIZE);
    if ((rc = open_dbis(s, txn, 0)) != 0)
        return fail_msg(err, err_len, rc == MDB_NOTFOUND ? STORE_ECORRUPT : mdb_err(rc),
                        "%s/data.mdb: a table is missing or wrong: %s", dir, mdb_strerror(rc));
    k = val("alloc", 5);
    rc = mdb_get(txn, s->dbi_state, &k, &v);
    if (rc != 0 || v.mv_size != ALLOC_VAL_LEN)
        return fail_msg(err, err_len, STORE_ECORRUPT, "%s/data.mdb: allocation record missing or damaged", dir);
    alloc_decode(v.mv_data, &s->committed);
    if (s->committed.next_body_id == 0) s->committed.next_body_id = 1;
    return 0;
}

/* Reclaims every pending body (fills a previous run never finished) and evicts down to cache_size. */
static int open_recover(struct store *s, struct wctx *w)
{
    MDB_stat st;
    int rc = mdb_stat(w->txn, s->dbi_pending, &st);
    if (rc != 0) return mdb_err(rc);
    w->ws->pending = st.ms_entries;
    for (;;) {
        MDB_cursor *c;
        if ((rc = mdb_cursor_open(w->txn, s->dbi_pending, &c)) != 0) return mdb_err(rc);
        MDB_val k, v;
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        uint64_t id = rc == 0 && k.mv_size == 8 ? store__be64_get(k.mv_data) : 0;
        int bad = rc == 0 && k.mv_size != 8;
        mdb_cursor_close(c);
        if (rc == MDB_NOTFOUND) break;
        if (rc != 0) return mdb_err(rc);
        if (bad) return STORE_ECORRUPT;
        int reclaimed;
        if ((rc = pending_reclaim(w, id, &reclaimed)) != 0) return rc;
        w->ws->d.reclaimed_bodies += (uint64_t)reclaimed;
        w->dirty = 1;
    }
    uint64_t before = w->ws->d.evictions;
    rc = ensure_room(w, 0, NULL);
    if (w->ws->d.evictions != before) w->dirty = 1;
    return rc == STORE_EFULL ? 0 : rc; /* only unevictable bytes left: nothing more to do here */
}

int store_open(struct store **out, const struct store_config *cfg, char *err, size_t err_len)
{
    *out = NULL;
    if (err != NULL && err_len > 0) err[0] = '\0';
    if (cfg == NULL || cfg->dir == NULL || cfg->dir[0] == '\0' || cfg->cache_size == 0)
        return fail_msg(err, err_len, -EINVAL, "store: a directory and a cache_size > 0 are required");
    const char *dir = cfg->dir;
    int rc = make_dir(dir, err, err_len);
    if (rc != 0) return rc;

    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL) return fail_msg(err, err_len, -ENOMEM, "store: out of memory");
    s->lock_fd = -1;
    s->cache_size = cfg->cache_size;
    s->room_limit = cfg->cache_size;
    s->max_object_size = cfg->max_object_size ? cfg->max_object_size : cfg->cache_size;
    s->map_size = cfg->map_size ? cfg->map_size : STORE_MAP_SIZE(cfg->cache_size);
    s->map_size = (s->map_size + (1u << 20) - 1) & ~(uint64_t)((1u << 20) - 1);
    s->prot_cap = cfg->cache_size / 100 * STORE_PROTECTED_PCT;
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->hits_lock, NULL);
    pthread_mutex_init(&s->rtxns_lock, NULL);
    s->filter_min_keys = cfg->filter_min_keys ? cfg->filter_min_keys : FILTER_MIN_KEYS_DEFAULT;
    s->filter_slice = cfg->filter_slice ? cfg->filter_slice : FILTER_SLICE_DEFAULT;
    s->filter_wanted = 1;
    s->hits = calloc(HIT_SLOTS, sizeof(*s->hits));
    s->hit_buf = calloc(HIT_SLOTS, sizeof(*s->hit_buf));
    if (s->hits == NULL || s->hit_buf == NULL) {
        rc = fail_msg(err, err_len, -ENOMEM, "store: out of memory");
        goto fail;
    }

    /* One process, one open: LMDB forbids opening an env twice in a process, and two writers would
     * each keep their own idea of the allocation state. */
    size_t plen = strlen(dir) + sizeof("/larder.lock");
    char *lock_path = malloc(plen);
    if (lock_path == NULL) {
        rc = fail_msg(err, err_len, -ENOMEM, "store: out of memory");
        goto fail;
    }
    snprintf(lock_path, plen, "%s/larder.lock", dir);
    s->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        rc = fail_msg(err, err_len, e == EWOULDBLOCK ? STORE_EBUSY : -e, "%s: %s", lock_path,
                      e == EWOULDBLOCK ? "the store is in use by another process" : strerror(e));
        free(lock_path);
        goto fail;
    }
    free(lock_path);

    if ((rc = mdb_env_create(&s->env)) != 0) {
        rc = fail_msg(err, err_len, mdb_err(rc), "store: mdb_env_create: %s", mdb_strerror(rc));
        goto fail;
    }
    mdb_env_set_maxdbs(s->env, 8);
    mdb_env_set_maxreaders(s->env, MAX_READERS);
    if ((rc = mdb_env_set_mapsize(s->env, (size_t)s->map_size)) != 0) {
        rc = fail_msg(err, err_len, mdb_err(rc), "store: map size %ju: %s", (uintmax_t)s->map_size, mdb_strerror(rc));
        goto fail;
    }
    unsigned env_flags = MDB_NOTLS | ((cfg->flags & STORE_F_NOSYNC) ? MDB_NOSYNC : MDB_NOMETASYNC);
    if ((rc = mdb_env_open(s->env, dir, env_flags, 0600)) != 0) {
        const char *why = rc == MDB_INVALID            ? "not an LMDB file"
                          : rc == MDB_VERSION_MISMATCH ? "written by an incompatible LMDB version"
                          : rc == MDB_CORRUPTED        ? "damaged"
                                                       : "cannot open";
        int code = mdb_err(rc);
        if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_PANIC) code = STORE_ECORRUPT;
        rc = fail_msg(err, err_len, code, "%s/data.mdb: %s (%s)", dir, why, mdb_strerror(rc));
        goto fail;
    }
    int dead = 0;
    mdb_reader_check(s->env, &dead); /* reader slots of crashed processes */

    struct wctx w;
    struct wstate ws;
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        rc = fail_msg(err, err_len, mdb_err(rc), "%s: cannot begin a transaction: %s", dir, mdb_strerror(rc));
        goto fail;
    }
    if ((rc = check_format(s, txn, dir, err, err_len)) != 0) {
        mdb_txn_abort(txn);
        goto fail;
    }
    wstate_init(s, &ws);
    w = (struct wctx){.s = s, .txn = txn, .ws = &ws, .dirty = 1};
    if ((rc = open_recover(s, &w)) != 0) {
        mdb_txn_abort(txn);
        rc = fail_msg(err, err_len, rc, "%s: recovery failed: %s", dir, store_strerror(rc));
        goto fail;
    }
    /* Force the alloc record out with the format on a fresh store. */
    memset(&s->committed, 0xff, sizeof(s->committed));
    if ((rc = wtxn_commit(&w)) != 0) {
        rc = fail_msg(err, err_len, rc == MDB_MAP_FULL ? STORE_EFULL : rc, "%s: cannot commit: %s", dir,
                      rc == MDB_MAP_FULL ? "map full" : store_strerror(rc));
        goto fail;
    }
    s->next_body_id = s->committed.next_body_id;
    *out = s;
    return 0;

fail:
    store_close(s);
    return rc;
}

void store_close(struct store *s)
{
    if (s == NULL) return;
    if (s->filter_txn != NULL) mdb_txn_abort(s->filter_txn);
    if (s->env != NULL) mdb_env_close(s->env);
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->hits_lock);
    pthread_mutex_destroy(&s->rtxns_lock);
    store_filter_free(s->filter);
    store_filter_free(s->filter_next);
    store_filter_free(s->filter_old);
    free(s->hits);
    free(s->hit_buf);
    free(s->reclaim);
    free(s);
}
