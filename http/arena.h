/* Per-transaction bump allocator.
 *
 * Every allocation made while a request is being handled (parsed header fields, the rewritten
 * request head, log strings) comes from one arena, which is released in one call when the
 * transaction ends. There is no per-allocation free.
 *
 * Overflow is sticky (after Varnish's workspace): when an allocation does not fit, it returns NULL
 * and the arena remembers it, so the caller can check once at a convenient point and fail the
 * request (431/500 or close) instead of the process. The arena never grows past its limit.
 *
 * Ownership: the caller owns `struct arena`; arena_init() allocates its first block with malloc,
 * arena_free() releases every block. Pointers returned by arena_alloc() stay valid until
 * arena_reset() or arena_free().
 */
#ifndef LARDER_HTTP_ARENA_H
#define LARDER_HTTP_ARENA_H

#include <stddef.h>

struct arena_block;

struct arena {
    struct arena_block *head; /* current block; older blocks chain behind it */
    size_t block_size;        /* size of the first block */
    size_t used_total;        /* bytes handed out since the last reset */
    size_t limit;             /* hard cap on used_total */
    int overflowed;           /* sticky: an allocation failed since the last reset */
};

/* 0, or -ENOMEM when the first block cannot be allocated. */
int arena_init(struct arena *a, size_t block_size, size_t limit);
void arena_free(struct arena *a);
/* Forget every allocation and the overflow flag; keeps the first block for reuse. */
void arena_reset(struct arena *a);

/* Aligned to max_align_t. NULL on overflow (and the sticky flag is set). */
void *arena_alloc(struct arena *a, size_t n);
/* Copies n bytes and appends a NUL; NULL on overflow. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
/* printf into the arena; NULL on overflow or format error. */
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline int arena_overflowed(const struct arena *a)
{
    return a->overflowed;
}

#endif
