/* The split-block Bloom filter of store_filter.h. */
#include "store/store_filter.h"

#include <stdlib.h>

#define WORDS_PER_BLOCK 8 /* 8 x 64 bits: one 64-byte cache line */
#define BITS_PER_BLOCK (WORDS_PER_BLOCK * 64)

struct store_filter {
    uint64_t *words;    /* n_blocks * WORDS_PER_BLOCK, 64-byte aligned; accessed atomically */
    uint64_t block_mask; /* n_blocks - 1 (a power of two) */
    uint64_t capacity;
    uint64_t added; /* written by the one writer, read by anyone: atomic */
};

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

struct store_filter *store_filter_new(uint64_t capacity)
{
    if (capacity == 0) capacity = 1;
    if (capacity > (UINT64_C(1) << 40)) return NULL;
    uint64_t want = (capacity * STORE_FILTER_BITS_PER_KEY + BITS_PER_BLOCK - 1) / BITS_PER_BLOCK;
    uint64_t n_blocks = 1;
    while (n_blocks < want)
        n_blocks <<= 1;
    struct store_filter *f = calloc(1, sizeof(*f));
    if (f == NULL) return NULL;
    size_t bytes = (size_t)n_blocks * WORDS_PER_BLOCK * sizeof(uint64_t);
    /* Aligned so that a probe is exactly one cache line. */
    if (posix_memalign((void **)&f->words, 64, bytes) != 0) {
        free(f);
        return NULL;
    }
    for (size_t i = 0; i < bytes / sizeof(uint64_t); i++)
        f->words[i] = 0;
    f->block_mask = n_blocks - 1;
    f->capacity = capacity;
    return f;
}

void store_filter_free(struct store_filter *f)
{
    if (f == NULL) return;
    free(f->words);
    free(f);
}

/* The key's block, and in `bits` the bit each of the block's words must have. */
static uint64_t *block_of(const struct store_filter *f, const struct store_key *k, uint64_t bits[WORDS_PER_BLOCK])
{
    uint64_t h = le64(k->b + 8);
    for (int i = 0; i < WORDS_PER_BLOCK; i++)
        bits[i] = UINT64_C(1) << ((h >> (6 * i)) & 63);
    return f->words + (le64(k->b) & f->block_mask) * WORDS_PER_BLOCK;
}

void store_filter_add(struct store_filter *f, const struct store_key *k)
{
    uint64_t bits[WORDS_PER_BLOCK];
    uint64_t *b = block_of(f, k, bits);
    /* Release: a reader that sees these bits also sees what the writer did before (store_lmdb.c adds a
     * key before the commit that makes its entry visible). */
    for (int i = 0; i < WORDS_PER_BLOCK; i++)
        if ((__atomic_load_n(&b[i], __ATOMIC_RELAXED) & bits[i]) == 0) __atomic_fetch_or(&b[i], bits[i], __ATOMIC_RELEASE);
    __atomic_store_n(&f->added, __atomic_load_n(&f->added, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

int store_filter_may_contain(const struct store_filter *f, const struct store_key *k)
{
    uint64_t bits[WORDS_PER_BLOCK];
    const uint64_t *b = block_of(f, k, bits);
    for (int i = 0; i < WORDS_PER_BLOCK; i++)
        if ((__atomic_load_n(&b[i], __ATOMIC_ACQUIRE) & bits[i]) == 0) return 0;
    return 1;
}

uint64_t store_filter_capacity(const struct store_filter *f)
{
    return f->capacity;
}

uint64_t store_filter_added(const struct store_filter *f)
{
    return __atomic_load_n(&f->added, __ATOMIC_RELAXED);
}

size_t store_filter_bytes(const struct store_filter *f)
{
    return (size_t)(f->block_mask + 1) * WORDS_PER_BLOCK * sizeof(uint64_t);
}
