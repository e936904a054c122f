/* The proxy's side of the cache: opening the store and its writer thread, per-loop handles (a read
 * transaction and a writer client whose completions arrive through a uv_async), looking up the stored
 * response that may serve a request, and turning a response head into a store record.
 *
 * Policy (what may be stored, what is fresh) is not here: it is http/cache_policy.h, pure functions.
 * Bytes on disk are not here either: they are store/. This file joins the two to the event loop.
 */
#ifndef LARDER_PROXY_CACHE_H
#define LARDER_PROXY_CACHE_H

#include <stdint.h>
#include <uv.h>

#include "http/arena.h"
#include "http/cache_policy.h"
#include "http/http_msg.h"
#include "proxy/config.h"
#include "proxy/cache_hot.h"
#include "store/store.h"
#include "store/store_writer.h"

struct proxy_ctx;

/* Shared by every loop; owned by main. */
struct cache {
    struct store *store;
    struct store_writer *writer;
    struct cp_limits limits;
    uint64_t max_object_size;
};

/* Per loop, embedded in proxy_ctx. */
struct cache_loop {
    struct cache *cache;
    struct store_rtxn *rtxn;   /* reset between uses: each read is one short transaction */
    struct store_hasher *hasher; /* this loop's SHA-256 for keys */
    struct cache_hot hot;      /* decoded heads of recent hits (cache_hot.h) */
    uint64_t snap_gen;         /* store_meta_generation() read just before rtxn was last renewed */
    struct store_wclient *wc;  /* writer completions for this loop */
    uv_async_t wakeup;         /* the writer thread signals completions here */
    int open;
};

/* A stored response loaded for a request. Owns meta (release with cache_entry_release). */
struct cache_entry {
    struct store_meta meta;     /* meta.blob is NULL when the record is the hot entry's */
    struct cache_hot_entry *hot; /* a reference, when the record came from (or went to) the hot table */
    struct http_msg resp;   /* parsed stored head; strings in meta's or the hot entry's copy */
    struct store_key pkey, vkey;
    int found;
    int from_hot;           /* found in the hot table, without an LMDB lookup */
    int vary_miss;          /* something is stored for the URL, but no variant matches this request */
    const struct cp_resp_summary *summary; /* the hot entry's, when from_hot; else NULL */
};

/* Opens the store in cfg->cache_dir and starts the writer thread. 0, or -1 with a reason in err. */
int cache_open(struct cache **out, const struct proxy_config *cfg, char *err, size_t err_len);
void cache_close(struct cache *c);

int cache_loop_init(struct cache_loop *cl, struct cache *c, uv_loop_t *loop);
/* Closes the async handle; call at loop shutdown, after which the loop can end. */
void cache_loop_close(struct cache_loop *cl);

/* Takes the loop's read snapshot for a request (renews rtxn), noting the meta generation first. 0 or a
 * negative store code. End it with store_rtxn_reset(cl->rtxn). */
int cache_snapshot_begin(struct cache_loop *cl);

/* The primary key of a URL for GET (HEAD uses GET's entries: RFC 9111 s4 lets a stored GET answer HEAD). */
void cache_primary_key(struct cache_loop *cl, const char *url, size_t url_len, struct store_key *out);

/* Finds the stored response for (url, req): the variant whose Vary-selected request fields match
 * (RFC 9111 s4.1). 0 with e->found 1 or 0, or a negative store code (a damaged record is reported
 * and treated as absent by the caller). */
int cache_lookup(struct cache_loop *cl, const char *url, size_t url_len, const struct http_msg *req, struct arena *a,
                 struct cache_entry *e);
void cache_entry_release(struct cache_entry *e);

/* Builds a store record for response `resp` (prepared with cp_prepare_for_storage) to `req`: stored
 * head, validators, times, variant key. Strings point into the arena and `resp`. 0 or -ENOMEM. */
int cache_record_build(struct store_record *rec, const char *url, size_t url_len, const struct http_msg *resp,
                       const char *variant, size_t variant_len, int64_t request_time, int64_t response_time,
                       int64_t now, struct arena *a);

#endif
