#include "http/arena.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct arena_block {
    struct arena_block *prev;
    size_t size; /* usable bytes in data[] */
    size_t used;
    _Alignas(max_align_t) unsigned char data[];
};

/* The alignment of max_align_t, not its size: on x86-64 sizeof is 32 but 16 is enough for any object,
 * and rounding every small string to 32 would halve what fits under the limit. A power of two. */
#define ARENA_ALIGN (_Alignof(max_align_t))

static struct arena_block *block_new(size_t size)
{
    struct arena_block *b = malloc(sizeof(*b) + size);
    if (b == NULL)
        return NULL;
    b->prev = NULL;
    b->size = size;
    b->used = 0;
    return b;
}

int arena_init(struct arena *a, size_t block_size, size_t limit)
{
    memset(a, 0, sizeof(*a));
    a->block_size = block_size;
    a->limit = limit;
    a->head = block_new(block_size);
    return a->head == NULL ? -ENOMEM : 0;
}

void arena_free(struct arena *a)
{
    struct arena_block *b = a->head;
    while (b != NULL) {
        struct arena_block *prev = b->prev;
        free(b);
        b = prev;
    }
    a->head = NULL;
}

void arena_reset(struct arena *a)
{
    /* Keep only the oldest block, the one of the configured size. */
    struct arena_block *b = a->head;
    while (b != NULL && b->prev != NULL) {
        struct arena_block *prev = b->prev;
        free(b);
        b = prev;
    }
    a->head = b;
    if (b != NULL)
        b->used = 0;
    a->used_total = 0;
    a->overflowed = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = (n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
    if (need < n || a->head == NULL || a->used_total + need > a->limit || a->used_total + need < need) {
        a->overflowed = 1;
        return NULL;
    }
    struct arena_block *b = a->head;
    if (b->size - b->used < need) {
        size_t size = a->block_size > need ? a->block_size : need;
        struct arena_block *nb = block_new(size);
        if (nb == NULL) {
            a->overflowed = 1;
            return NULL;
        }
        nb->prev = b;
        a->head = nb;
        b = nb;
    }
    void *p = b->data + b->used;
    b->used += need;
    a->used_total += need;
    return p;
}

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        a->overflowed = 1;
        return NULL;
    }
    char *p = arena_alloc(a, (size_t)n + 1);
    if (p == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
