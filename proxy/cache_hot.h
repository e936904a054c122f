/* A per-loop table of decoded stored heads, so that repeated hits on one URL skip the key hash, the
 * two LMDB lookups, the copy of the record and the parse of its head (40% of a small hit's
 * instructions). The body is still read from the store, in the request's own snapshot.
 *
 * Correctness rests on store_meta_generation(): an entry is tagged with the generation read before the
 * snapshot it was decoded from, and is used only while the generation is unchanged, i.e. while no
 * committed transaction has put or deleted any meta record (a 304 refresh, a new object, an
 * eviction, an invalidation). Any change empties the table's usefulness at once, which is coarse and
 * therefore simple: the table pays off exactly when hits dominate. Only URLs with a single stored
 * variant and no Vary are kept, so there is no variant selection to repeat.
 *
 * Ownership: the table belongs to one loop (no locks). Entries are reference counted: the table holds
 * one reference, and every cache_entry that uses one holds another (cache_entry_release drops it), so
 * an entry replaced in the table stays valid for the transactions that still use it. */
#ifndef LARDER_PROXY_CACHE_HOT_H
#define LARDER_PROXY_CACHE_HOT_H

#include <stddef.h>
#include <stdint.h>

#include "http/arena.h"
#include "http/cache_policy.h"
#include "http/http_msg.h"
#include "store/store.h"

#define CACHE_HOT_SLOTS 1024         /* direct-mapped by URL hash */
#define CACHE_HOT_MAX_BLOB (16 << 10) /* larger records are not kept */

struct cache_hot_entry;

struct cache_hot {
    struct cache_hot_entry **slots; /* CACHE_HOT_SLOTS, NULL until the first insert */
};

/* What a lookup needs from an entry: the record (pointing into the entry's copy of it), the parsed
 * head (fields cloned into the caller's arena; strings in the entry) and the keys. */
struct cache_hot_view {
    struct cache_hot_entry *ref; /* a reference the caller now owns: cache_hot_unref */
    struct store_record rec;
    struct http_msg resp;
    struct store_key pkey, vkey;
    const struct cp_resp_summary *summary; /* the entry's (valid while ref is held) */
};

/* An entry for url tagged with generation gen, or 0. */
int cache_hot_get(struct cache_hot *h, const char *url, size_t url_len, uint64_t gen, struct arena *a,
                  struct cache_hot_view *out);
/* Keeps a decoded record: takes ownership of blob (malloc'd; rec and resp's strings point into it)
 * and copies resp's field array. Returns the entry with a reference for the caller, or NULL (out of
 * memory), in which case blob is still the caller's. */
struct cache_hot_entry *cache_hot_put(struct cache_hot *h, const char *url, size_t url_len, uint64_t gen, void *blob,
                                      const struct store_record *rec, const struct http_msg *resp,
                                      const struct store_key *pkey, const struct store_key *vkey,
                                      const struct cp_resp_summary *summary);
void cache_hot_unref(struct cache_hot_entry *e);
void cache_hot_free(struct cache_hot *h);

#endif
