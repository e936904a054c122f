/* Reference-counted byte blocks, pooled per event loop.
 *
 * A socket read lands in a block; the parser hands out spans that point into it, and every queued
 * write that carries one of those spans holds a reference. So body bytes go from the upstream read
 * to the client write without a copy, and the block returns to the loop's free list when the last
 * write that needed it completes.
 *
 * Ownership: buf_pool_get()/buf_new() return a block with one reference, owned by the caller; every
 * buf_ref() is matched by one buf_unref(). Blocks belong to the loop (and pool) that made them and
 * must not cross threads.
 */
#ifndef LARDER_PROXY_BUF_H
#define LARDER_PROXY_BUF_H

#include <stddef.h>
#include <stdint.h>

/* Recycling hides use-after-free from AddressSanitizer: in sanitizer builds every pool keeps
 * nothing, so each object really is freed and a stale pointer is caught. */
#if defined(__SANITIZE_ADDRESS__)
#define LARDER_POOL(n) 0
#else
#define LARDER_POOL(n) (n)
#endif

struct buf_pool;

struct buf_block {
    uint32_t refs;
    uint32_t size; /* usable bytes in data[] */
    uint32_t used; /* fill level, for blocks used as append buffers */
    struct buf_pool *pool; /* NULL for odd-sized blocks, which are freed rather than pooled */
    struct buf_block *next_free;
    char data[];
};

struct buf_pool {
    struct buf_block *free;
    size_t n_free;
    size_t max_free;   /* free blocks kept; more are released to malloc */
    size_t block_size; /* size of pooled blocks */
    size_t outstanding; /* blocks handed out and not yet returned: for tests and metrics */
    /* Spare write requests of outq.c, recycled so a steady flow of responses does not malloc one per
     * write. A singly linked list through each spare's first pointer. */
    void *spare_writes;
    size_t n_spare_writes;
};

void buf_pool_init(struct buf_pool *p, size_t block_size, size_t max_free);
void buf_pool_destroy(struct buf_pool *p);

/* A pooled block of p->block_size bytes, or NULL when memory is exhausted. */
struct buf_block *buf_pool_get(struct buf_pool *p);
/* A block of exactly `size` bytes, not pooled. */
struct buf_block *buf_new(size_t size);

static inline struct buf_block *buf_ref(struct buf_block *b)
{
    b->refs++;
    return b;
}

void buf_unref(struct buf_block *b);

#endif
