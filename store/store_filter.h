/* An in-memory Bloom filter over primary keys: "this URL may have stored responses" or "certainly not".
 *
 * Why: a lookup for a URL the store does not hold (every cold miss, the commonest request of an egress
 * cache) otherwise walks the meta B-tree down to a random leaf. The top of the tree stays cached, its
 * leaves do not: measured on the cold-miss benchmark, that walk cost the event loop cache and TLB misses
 * worth 11-13% of larder's CPU per miss, and on a store larger than RAM it would be a disk read. Squid
 * and Traffic Server answer misses from an in-memory index for the same reason; a filter of 2-4 bytes
 * per object is enough to answer "not stored" without touching LMDB, while LMDB stays the one index.
 *
 * LAYOUT (split-block Bloom filter): 64-byte blocks, one cache line each, and a key sets one bit in each
 * of its block's eight 64-bit words. The block comes from the key's first 8 bytes, the eight bit
 * positions from 6-bit slices of the next 8: keys are SHA-256 output (store_keys.h), uniform already,
 * so no further hashing. 16 bits per key of capacity, rounded up to a power of two of blocks: false
 * positives (a lookup that goes to LMDB and misses there) stay under 0.5% while no more than `capacity`
 * keys were added, and one probe is one cache line.
 *
 * THREADS: one writer adds, any number of threads probe concurrently (atomic OR / atomic loads; no
 * lock). A probe that races an add may not see it. The caller must only ever treat "not contained" as a
 * miss it may serve by fetching, never as a reason to skip a write, so a lost race costs one miss.
 * Bits are never cleared: deleted keys stay "maybe" until the filter is rebuilt (store_lmdb.c does that
 * once more keys were added than it was sized for).
 */
#ifndef LARDER_STORE_FILTER_H
#define LARDER_STORE_FILTER_H

#include <stddef.h>
#include <stdint.h>

#include "store/store_keys.h"

#define STORE_FILTER_BITS_PER_KEY 16

struct store_filter;

/* A filter sized for `capacity` keys (at least 1). NULL when out of memory. */
struct store_filter *store_filter_new(uint64_t capacity);
void store_filter_free(struct store_filter *f);

/* One writer thread at a time. */
void store_filter_add(struct store_filter *f, const struct store_key *k);
/* 0: k was certainly never added. 1: it may have been. Any thread. */
int store_filter_may_contain(const struct store_filter *f, const struct store_key *k);

/* Keys it was sized for, and keys added so far (duplicates counted each time). */
uint64_t store_filter_capacity(const struct store_filter *f);
uint64_t store_filter_added(const struct store_filter *f);
/* Bytes of its bit array. */
size_t store_filter_bytes(const struct store_filter *f);

#endif
