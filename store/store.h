/* larder's object store: LMDB, bytes in and out, no notion of HTTP.
 *
 * TABLES (LMDB named DBIs, all keys fixed-length, integers big-endian; see store_keys.h)
 *   meta      variant key (32)             -> entry header (64: primary key, body_id, accounted size,
 *                                             segment, LRU sequence number, hit count) ‖ meta record
 *                                             (store_record.h); present only for whole objects
 *   body      body_id u64 ‖ chunk_no u32   -> chunk bytes; every chunk is STORE_CHUNK_SIZE except the last
 *   variants  primary key (32)             -> variant keys (32), MDB_DUPSORT|MDB_DUPFIXED: the varied
 *                                             responses (Vary) of a URL
 *   lru       segment u8 ‖ seq u64 ‖ vkey  -> (empty); ordered, so the first key is the next victim
 *   pending   body_id u64                  -> fill start time; a body being written and not yet published
 *   state     "format" -> magic, version, chunk size;  "alloc" -> next body_id, used/protected bytes, ...
 *
 * ONE FORM PER URL. A response without Vary is stored under its primary key (store_key_variant() with no
 * vary bytes returns the primary key) and has no `variants` row; varied responses have their own keys
 * and rows. A commit of one form removes the other form's entries (counted in replacements), so a URL
 * has either one unvaried entry or only varied ones. Why: keys are hashes, so every table a new object
 * touches costs a random leaf page rewritten at the next commit; with the bookkeeping in the meta value
 * and no `variants` row, a typical object dirties one random page instead of three (the `body`, `lru`
 * and `pending` keys grow in order and share their pages; body and lru rows go in with MDB_APPEND when
 * theirs is the greatest key, so those pages fill up instead of being split in half). A hit's
 * bookkeeping (store_note_hit, folded by the writer) rewrites the entry header only; the record bytes
 * after it stay the same, so readers' copies stay valid.
 *
 * VISIBILITY. A body is written chunk by chunk as it streams in, possibly over several write
 * transactions. The first chunk's transaction also writes `pending[body_id]`; the transaction that
 * publishes the meta record (it may carry the final chunk too) verifies that the chunks are contiguous
 * and add up to the record's body_len, then deletes the pending entry. A reader only ever reaches a body
 * through a meta record, so until then the object is invisible. store_open() deletes every body still
 * listed in `pending` (a crash, kill -9, or a fill never finished): "leftovers reclaimed at the next
 * start", counted in reclaimed_bodies. LMDB transactions are atomic, so after a crash at any moment the
 * store opens with whole objects only.
 *
 * MISSES are answered from memory when possible: store_variants_get() first probes a Bloom filter of
 * the primary keys that have entries (store_filter.h) and reads LMDB only on "maybe". The writer thread
 * builds it (store_filter_step) and adds every key before the commit that publishes it; until the first
 * build after open, every lookup reads LMDB.
 *
 * READERS use short read transactions (store_rtxn_*), one per chunk: copy a chunk out, reset, renew for
 * the next one; never hold one across an I/O callback (lmdb.h Caveats). When an object is replaced (a new
 * 200 for the same variant) or evicted, its meta and its body chunks are deleted in the same write
 * transaction, immediately, even if a client is streaming it. That client's next store_body_read()
 * finds the chunk gone and returns STORE_EGONE: if no byte has been sent yet, look the URL up again; if
 * the response is already under way, close the client connection (a truncated response must not look
 * complete, RFC 9112 s6.3/s8). body_ids are never reused (a counter in `state`), so a stale body_id can
 * only ever miss, never read another object's bytes.
 *
 * 304 REFRESH is UPDATE_META: one `meta` put; body_id, body_len and every chunk stay untouched (the store
 * copies the body fields from the existing record into the new one).
 *
 * EVICTION: segmented LRU with a probationary and a protected segment. A committed object enters
 * probation; a hit promotes it to protected (so promotion needs a second reference: the fill, then a
 * hit; STORE_PROMOTE_HITS tunes it). Protected is capped at 80% of cache_size; its least recently used
 * objects are demoted back to the MRU end of probation. Victims come from probation's LRU end first,
 * from protected only when probation is empty. Why this for a CI cache: CI traffic is a hot set (the
 * toolchains, base images and dependency archives every job fetches) plus occasional sweeps (a job
 * that mirrors a registry, a new dependency tree, a one-off release build) that touch thousands of
 * objects exactly once. Plain LRU lets one such sweep push the entire hot set out, and every following
 * job then misses on its biggest downloads. With two segments a once-seen object can only displace other
 * once-seen objects: the sweep cycles through probation while the protected hot set stays, and an
 * object of the sweep that is reused is promoted on its first hit. (2Q and S3-FIFO rest on the same
 * observation; SLRU was chosen because it needs no ghost list and maps onto one ordered LMDB table.)
 * A replacement (new 200 for a stored variant) keeps the segment of the object it replaces: popularity
 * belongs to the URL. Bodies of unfinished fills are never victims; when only they are left, the write
 * that needs room fails with STORE_EFULL. The hit path never writes LMDB: store_note_hit() counts hits
 * in a small in-memory table; the writer folds them into `lru`/`entry` at the start of its next batch.
 * Hits that do not fit are dropped (they only steer eviction).
 *
 * SIZE. cache_size bounds the accounted bytes: body bytes (pending fills included, as they are written)
 * plus each entry's meta record plus STORE_ENTRY_OVERHEAD for its keys and index rows. Before any put
 * that would exceed it, the writer evicts. LMDB also needs room it does not give back: copy-on-write
 * pages of the transaction being written, free pages still visible to readers, pages of the free list
 * itself, and whole-page rounding of 256 KiB overflow values. So the map is cache_size * 1.25 + 64 MiB
 * (STORE_MAP_SIZE()). Small objects cost more pages than accounted bytes, so the writer also watches the
 * pages its trees use and evicts below cache_size while they pass 70% of the map (room_limit, the ROOM
 * notes in store_lmdb.c). If LMDB still answers MDB_MAP_FULL, the writer commits what it has, evicts at
 * least twice the failing write (and >= 1/16 of the map) in small transactions of its own, and retries
 * that write once; if it fails again, that object's fill fails with STORE_EFULL. Nothing crashes.
 *
 * DURABILITY. Production commits with MDB_NOMETASYNC: data pages are fsynced at every commit, the meta
 * page at the next commit. A process crash loses nothing (the page cache has it); an OS crash or power
 * loss may undo the last committed transaction, but never tears one, which for a cache means
 * re-fetching a few objects, while each commit costs one fsync instead of two. STORE_F_NOSYNC
 * (MDB_NOSYNC) is for tests only.
 *
 * THREADS. The env is opened with MDB_NOTLS: any thread may use a store_rtxn, one thread at a time per
 * rtxn (one per event loop). store_apply() is serialised internally and is meant to be called by one
 * writer thread (store_writer.h); store_note_hit() and the counters are thread-safe.
 *
 * ERRORS. Every function returns 0 (or a count where stated) or a negative code: STORE_E* below or a
 * negative errno (-ENOMEM, -EINVAL, ...). store_strerror() names both.
 */
#ifndef LARDER_STORE_STORE_H
#define LARDER_STORE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "store/store_keys.h"
#include "store/store_record.h"

#define STORE_ENOTFOUND (-30900) /* no such entry: a miss */
#define STORE_EGONE (-30901)     /* the body was deleted (replaced, evicted) while it was being read */
#define STORE_EFULL (-30902)     /* no room, even after eviction */
#define STORE_ETOOBIG (-30903)   /* object larger than max_object_size */
#define STORE_ECORRUPT (-30904)  /* damaged: not an LMDB file, or a record that does not decode */
#define STORE_EFORMAT (-30905)   /* a valid LMDB env that is not a larder store, or of another version */
#define STORE_EIO (-30906)       /* I/O or library failure */
#define STORE_EBUSY (-30907)     /* the store directory is open in another process (or twice here) */
#define STORE_ESHORT (-30908)    /* commit: the stored chunks do not add up to the record's body_len */
#define STORE_ECANCELED (-30909) /* not executed: an earlier op of the same fill failed in this batch */

#define STORE_CHUNK_SIZE ((size_t)256 * 1024)
/* Bytes accounted per entry on top of body and meta record: keys, the entry header, lru/variants rows. */
#define STORE_ENTRY_OVERHEAD 256
/* Hits needed while in probation to be promoted to protected (the fill itself is the first reference). */
#define STORE_PROMOTE_HITS 1
#define STORE_PROTECTED_PCT 80
#define STORE_MAP_SIZE(cache_size) ((cache_size) + (cache_size) / 4 + ((uint64_t)64 << 20))

#define STORE_F_NOSYNC 0x1u /* tests only: MDB_NOSYNC, no fsync at all */

struct store;
struct store_rtxn;

struct store_config {
    const char *dir;          /* created (with parents) if missing; holds data.mdb, lock.mdb, larder.lock */
    uint64_t cache_size;      /* bytes; > 0 */
    uint64_t max_object_size; /* bytes; 0 means cache_size */
    unsigned flags;           /* STORE_F_* */
    uint64_t map_size;        /* 0: STORE_MAP_SIZE(cache_size). Tests set it small to provoke MDB_MAP_FULL. */
    uint64_t filter_min_keys; /* 0: 65536. The smallest key filter built (store_filter_step); tests set it small. */
    unsigned filter_slice;    /* 0: 8192. Rows a store_filter_step scans; tests set it small. */
};

/* Opens or creates the store. On failure *out is NULL and err (if err_len > 0) holds a one-line reason,
 * e.g. "/var/cache/larder/data.mdb: not an LMDB file (MDB_INVALID: File is not an LMDB file)".
 * STORE_ECORRUPT, STORE_EFORMAT, STORE_EBUSY, -errno. Reclaims leftover pending bodies and evicts down
 * to cache_size (it may have been lowered since the last run) before returning. */
int store_open(struct store **out, const struct store_config *cfg, char *err, size_t err_len);
/* Every rtxn must have been ended and the writer freed (store_writer_free) first. NULL is a no-op. */
void store_close(struct store *s);

const char *store_strerror(int code);

/* ---- reading (any thread; one thread at a time per rtxn) ---------------------------------------- */

/* Allocates a read transaction handle, returned reset (inactive). Free with store_rtxn_end(). */
int store_rtxn_begin(struct store *s, struct store_rtxn **out);
/* Takes a fresh snapshot. 0 or a negative code. Renewing an active rtxn is -EINVAL. */
int store_rtxn_renew(struct store_rtxn *r);
/* Releases the snapshot; the handle stays for the next renew. Idempotent. */
void store_rtxn_reset(struct store_rtxn *r);
void store_rtxn_end(struct store_rtxn *r);

/* The read functions below accept an rtxn in either state. Reset: they renew it, read, and reset it
 * before returning (one short transaction per call: the normal way). Active: they read in its snapshot
 * and leave it active (to see a meta record and chunk 0 in the same snapshot, say). */

/* A decoded meta record and the heap copy it points into. Ownership: the caller's; release with
 * store_meta_release(), after which rec's pointers are invalid. Nothing points into the LMDB map. */
struct store_meta {
    struct store_record rec;
    void *blob;
    size_t blob_len;
};

/* Looks up a variant. When uri is not NULL, the record's method and URI must equal (method, uri) or the
 * lookup is a miss (a hash collision, counted in collisions). 0, STORE_ENOTFOUND, STORE_ECORRUPT,
 * -ENOMEM. On error *out is zeroed and needs no release. */
int store_meta_get(struct store_rtxn *r, const struct store_key *vkey, const void *method, size_t method_len, const void *uri,
                   size_t uri_len, struct store_meta *out);
void store_meta_release(struct store_meta *m);

/* Variant keys stored under a primary key, up to max of them into out; *n_total gets how many there
 * are: the primary key itself when the URL's response is unvaried (ONE FORM PER URL), else the varied
 * ones. 0 (even when there are none) or a negative code. */
int store_variants_get(struct store_rtxn *r, const struct store_key *pkey, struct store_key *out, size_t max, size_t *n_total);

/* Copies up to len body bytes starting at offset into buf; *nread gets the count. May cross chunk
 * boundaries; never reads past the body's end (0 bytes at or after it). STORE_EGONE when the chunk
 * holding offset does not exist: the body was deleted (see READERS above). */
int store_body_read(struct store_rtxn *r, uint64_t body_id, uint64_t offset, void *buf, size_t len, size_t *nread);

/* Zero-copy form of store_body_read: points *ptr at up to len body bytes starting at offset, inside the
 * one stored chunk that holds offset, in the LMDB map itself; *n gets the count (less than len at the
 * chunk's end; 0 at or past the body's end). r must be active (-EINVAL otherwise), and the bytes are
 * valid only until it is reset: the writer may reuse those pages for later transactions once no
 * snapshot references them (lmdb.h, mdb_get). Same errors as store_body_read. */
int store_body_view(struct store_rtxn *r, uint64_t body_id, uint64_t offset, size_t len, const void **ptr, size_t *n);
/* Counts n viewed bytes as read (body_bytes_read): only the caller knows how many of a view it used. */
void store_body_view_used(struct store_rtxn *r, uint64_t n);
/* 1 when r holds a snapshot (renewed and not yet reset). */
int store_rtxn_active(const struct store_rtxn *r);

/* A number that changes whenever a committed transaction has put or deleted a meta record: a reader
 * that keeps a decoded record across snapshots (the proxy's per-loop hot table) may reuse it only
 * while this is unchanged. The writer bumps it before each such commit and again after it. So a copy
 * is safe when (a) it was read in a snapshot taken after the generation it is tagged with was read,
 * since a commit that snapshot missed bumps once more after it; and (b) when reused, the generation is
 * read after the snapshot used alongside it was taken, since a commit that snapshot misses cannot have
 * bumped before it. Any thread. */
uint64_t store_meta_generation(struct store *s);

/* Records a hit for the eviction policy, in memory only (never LMDB). Thread-safe. Returns 1 when the
 * table is over half full and the writer should fold it soon, else 0. */
int store_note_hit(struct store *s, const struct store_key *vkey);

/* ---- writing (one writer thread; see store_writer.h for the queued, asynchronous form) --------- */

/* A fresh body_id: never returned before, in this process or any earlier one that wrote it to disk.
 * Thread-safe, no I/O. */
uint64_t store_body_id_alloc(struct store *s);
/* The effective max_object_size (the configured one, or cache_size). */
uint64_t store_max_object_size(const struct store *s);

enum store_op_kind {
    STORE_OP_PUT_CHUNK = 1,  /* body_id, chunk_no, data/len (1..STORE_CHUNK_SIZE), now = fill start time */
    STORE_OP_COMMIT,         /* publish: body_id, pkey, vkey, rec/rec_len; optional final chunk data/len at chunk_no */
    STORE_OP_ABORT,          /* body_id: delete its chunks and pending entry */
    STORE_OP_UPDATE_META,    /* vkey, rec/rec_len: 304 refresh; body fields are kept from the stored record */
    STORE_OP_DELETE_VARIANT, /* vkey */
    STORE_OP_DELETE_PRIMARY, /* pkey: every variant of a URL (RFC 9111 s4.4 invalidation) */
};

/* One write operation. The store reads data and rec during store_apply() only and never keeps them.
 * COMMIT fills in the record's body_id, body_len-verified n_chunks and complete=1 itself (in its own
 * copy); UPDATE_META copies body_id, body_len, n_chunks from the stored record. The record's method,
 * URI and variant must match the stored ones for UPDATE_META (-EINVAL otherwise). */
struct store_op {
    enum store_op_kind kind;
    uint64_t body_id;
    uint32_t chunk_no;
    int64_t now;
    const void *data;
    size_t len;
    const void *rec;
    size_t rec_len;
    struct store_key pkey;
    struct store_key vkey;
    int status; /* out: 0 or a negative code */
};

/* Runs ops in order as one write transaction (group commit): more only if MDB_MAP_FULL forces an
 * evict-and-retry. Folds noted hits first. A failing op does not stop the others, except that later ops
 * of the same body_id then get STORE_ECANCELED; a failed fill's chunks are reclaimed by the store.
 * Each op gets its status; returns the first non-zero status, or 0. Serialised by an internal mutex. */
int store_apply(struct store *s, struct store_op *ops, size_t n);

/* Does one step of building the in-memory filter of stored URLs (store_filter.h): a slice of a scan of
 * the lru and variants tables, at most filter_slice (8192) rows of small keys. Meant for
 * the writer thread between
 * batches. A build is due after store_open and whenever more keys were added than the filter in use
 * was sized for; until the first one is complete, lookups read LMDB as if there were no filter. Returns
 * 1 when more steps are due (call again soon), 0 when there is nothing to do, or a negative code (the
 * build starts over at the next call). Serialised with store_apply(). */
int store_filter_step(struct store *s);

/* ---- counters ----------------------------------------------------------------------------------- */

struct store_counters {
    uint64_t meta_writes;        /* meta records put (commit, 304 update) */
    uint64_t body_chunk_writes;  /* chunks put */
    uint64_t body_bytes_written; /* body bytes put */
    uint64_t body_bytes_read;    /* body bytes copied out by store_body_read */
    uint64_t evictions;          /* entries evicted for space */
    uint64_t reclaimed_bodies;   /* unfinished bodies deleted: at open, and after failed fills */
    uint64_t write_txns;         /* committed write transactions */
    uint64_t map_full;           /* MDB_MAP_FULL answers that led to an evict-and-retry */
    uint64_t room_limit;         /* gauge: accounted bytes the store keeps under, <= cache_size (store_lmdb.c ROOM) */
    uint64_t collisions;         /* meta_get hits whose method/URI did not match */
    uint64_t hits_noted;         /* store_note_hit() calls counted */
    uint64_t hits_dropped;       /* store_note_hit() calls dropped: table full */
    uint64_t promotions;         /* probation -> protected */
    uint64_t demotions;          /* protected -> probation */
    uint64_t replacements;       /* entries a commit replaced or superseded (same variant, or the URL's other form) */
    uint64_t discarded_at_open;  /* objects of an older store format dropped by store_open (the cache started empty) */
    /* Gauges, as of the last committed write transaction. */
    uint64_t used_bytes;
    uint64_t protected_bytes;
    uint64_t entries;
    uint64_t pending_bodies;
    /* The key filter (store_filter_step). */
    uint64_t filter_negatives; /* lookups the filter answered "not stored" without reading LMDB */
    uint64_t filter_builds;    /* filters built and put in use */
    uint64_t filter_bytes;     /* gauge: size of the one in use */
};

void store_counters_get(struct store *s, struct store_counters *out);

#endif
