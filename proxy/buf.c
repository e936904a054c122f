#include "proxy/buf.h"

#include <stdlib.h>

void buf_pool_init(struct buf_pool *p, size_t block_size, size_t max_free)
{
    p->free = NULL;
    p->n_free = 0;
    p->max_free = max_free;
    p->block_size = block_size;
    p->outstanding = 0;
    p->spare_writes = NULL;
    p->n_spare_writes = 0;
}

void buf_pool_destroy(struct buf_pool *p)
{
    while (p->free != NULL) {
        struct buf_block *b = p->free;
        p->free = b->next_free;
        free(b);
    }
    p->n_free = 0;
    while (p->spare_writes != NULL) {
        void *next = *(void **)p->spare_writes;
        free(p->spare_writes);
        p->spare_writes = next;
    }
    p->n_spare_writes = 0;
}

struct buf_block *buf_pool_get(struct buf_pool *p)
{
    struct buf_block *b = p->free;
    if (b != NULL) {
        p->free = b->next_free;
        p->n_free--;
    } else {
        b = malloc(sizeof(*b) + p->block_size);
        if (b == NULL)
            return NULL;
        b->size = (uint32_t)p->block_size;
        b->pool = p;
    }
    b->refs = 1;
    b->used = 0;
    b->next_free = NULL;
    p->outstanding++;
    return b;
}

struct buf_block *buf_new(size_t size)
{
    struct buf_block *b = malloc(sizeof(*b) + size);
    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->used = 0;
    b->size = (uint32_t)size;
    b->pool = NULL;
    b->next_free = NULL;
    return b;
}

void buf_unref(struct buf_block *b)
{
    if (--b->refs > 0)
        return;
    struct buf_pool *p = b->pool;
    if (p == NULL) {
        free(b);
        return;
    }
    p->outstanding--;
    if (p->n_free >= p->max_free) {
        free(b);
        return;
    }
    b->next_free = p->free;
    p->free = b;
    p->n_free++;
}
