/* The per-transaction bump allocator (http/arena.h): alignment, growth across blocks, the hard limit
 * with its sticky overflow flag, reset, and the string helpers. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/arena.h"
#include "test_util.h"

#define ALIGN_OF_MAX _Alignof(max_align_t)

static int aligned(const void *p)
{
    return ((uintptr_t)p % ALIGN_OF_MAX) == 0;
}

/* Every pointer is aligned for any object, whatever the size asked before it. */
static void test_alignment(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 256, 1 << 20), 0);
    static const size_t sizes[] = {1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 1, 100, 255, 256, 257, 1000, 2};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = arena_alloc(&a, sizes[i]);
        ASSERT(p != NULL);
        if (!aligned(p)) TEST_FAIL_("allocation %zu (size %zu) at %p is not aligned to %zu", i, sizes[i], (void *)p, ALIGN_OF_MAX);
        memset(p, 0xa5, sizes[i]); /* ASan: the whole request is ours */
    }
    /* A zero-byte request still returns an aligned, distinct pointer and uses nothing. */
    size_t before = a.used_total;
    void *z = arena_alloc(&a, 0);
    ASSERT(z != NULL);
    ASSERT(aligned(z));
    ASSERT_UEQ(a.used_total, before);
    ASSERT_EQ(arena_overflowed(&a), 0);
    arena_free(&a);
}

/* A request costs its size rounded up to the alignment max_align_t needs, no more: the limit is
 * counted in these bytes, so rounding to anything coarser (sizeof(max_align_t) is 32 on x86-64, its
 * alignment 16) would halve what a transaction can hold in small strings. */
static void test_rounding_cost(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 256, 1 << 20), 0);
    static const size_t sizes[] = {1, ALIGN_OF_MAX - 1, ALIGN_OF_MAX, ALIGN_OF_MAX + 1, 3 * ALIGN_OF_MAX - 1};
    size_t want = 0;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        ASSERT(arena_alloc(&a, sizes[i]) != NULL);
        want += (sizes[i] + ALIGN_OF_MAX - 1) / ALIGN_OF_MAX * ALIGN_OF_MAX;
        ASSERT_UEQ(a.used_total, want);
    }
    /* Two one-byte strings in a row are one alignment unit apart in the same block. */
    char *s1 = arena_strndup(&a, "", 0);
    char *s2 = arena_strndup(&a, "", 0);
    ASSERT_UEQ((size_t)(s2 - s1), ALIGN_OF_MAX);
    arena_free(&a);
}

/* Allocations larger than what is left in the current block go to a new block, and nothing handed
 * out earlier is moved or overwritten. */
static void test_growth_across_blocks(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 64, 1 << 20), 0);
    enum { N = 40 };
    unsigned char *ptr[N];
    size_t len[N];
    for (size_t i = 0; i < N; i++) {
        /* 40 bytes each (48 once aligned): never two in one 64-byte block; every 7th is bigger than a
         * whole block and needs one of its own. */
        len[i] = (i % 7 == 6) ? 200 : 40;
        ptr[i] = arena_alloc(&a, len[i]);
        ASSERT(ptr[i] != NULL);
        ASSERT(aligned(ptr[i]));
        memset(ptr[i], (int)i + 1, len[i]);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < len[i]; j++)
            if (ptr[i][j] != (unsigned char)(i + 1)) TEST_FAIL_("allocation %zu byte %zu was overwritten: %u", i, j, ptr[i][j]);
    ASSERT_EQ(arena_overflowed(&a), 0);
    arena_free(&a);
    ASSERT(a.head == NULL);
}

/* The limit is a hard cap: what fits succeeds, the first thing that does not returns NULL and sets the
 * flag, and the flag stays set even when later, smaller allocations fit again. */
static void test_limit_and_sticky_overflow(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 64, 256), 0);
    /* 4 x 64 bytes is exactly the limit. */
    for (int i = 0; i < 4; i++)
        ASSERT(arena_alloc(&a, 64) != NULL);
    ASSERT_UEQ(a.used_total, 256);
    ASSERT_EQ(arena_overflowed(&a), 0);
    ASSERT(arena_alloc(&a, 1) == NULL);
    ASSERT_EQ(arena_overflowed(&a), 1);
    ASSERT_UEQ(a.used_total, 256); /* a failed request costs nothing */
    ASSERT(arena_alloc(&a, 0) != NULL);
    ASSERT_EQ(arena_overflowed(&a), 1);
    arena_free(&a);

    /* Rounding counts against the limit: 17 bytes take 32 on a 16-byte-aligned arena. */
    ASSERT_EQ(arena_init(&a, 1024, 4 * ALIGN_OF_MAX), 0);
    ASSERT(arena_alloc(&a, ALIGN_OF_MAX + 1) != NULL);
    ASSERT(arena_alloc(&a, ALIGN_OF_MAX + 1) != NULL);
    ASSERT(arena_alloc(&a, 1) == NULL);
    ASSERT_EQ(arena_overflowed(&a), 1);
    arena_free(&a);

    /* A request so large that rounding it up would wrap around must fail, not return a tiny block. */
    ASSERT_EQ(arena_init(&a, 64, SIZE_MAX), 0);
    ASSERT(arena_alloc(&a, SIZE_MAX) == NULL);
    ASSERT_EQ(arena_overflowed(&a), 1);
    arena_reset(&a);
    ASSERT(arena_alloc(&a, SIZE_MAX - ALIGN_OF_MAX + 2) == NULL);
    ASSERT_EQ(arena_overflowed(&a), 1);
    arena_free(&a);
}

/* Reset forgets every allocation and the flag, frees the extra blocks and reuses the first one. */
static void test_reset_keeps_working(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 128, 1024), 0);
    void *first = arena_alloc(&a, 10);
    ASSERT(first != NULL);
    for (int round = 0; round < 3; round++) {
        /* Spill into several blocks and overflow. */
        while (arena_alloc(&a, 100) != NULL)
            ;
        ASSERT_EQ(arena_overflowed(&a), 1);
        arena_reset(&a);
        ASSERT_EQ(arena_overflowed(&a), 0);
        ASSERT_UEQ(a.used_total, 0);
        void *again = arena_alloc(&a, 10);
        ASSERT(again == first); /* the first block is kept and reused from its start */
        char *s = arena_strndup(&a, "still works", 11);
        ASSERT_STR_EQ(s, "still works");
    }
    arena_free(&a);
    /* After free nothing is handed out, and nothing crashes. */
    ASSERT(arena_alloc(&a, 1) == NULL);
    ASSERT_EQ(arena_overflowed(&a), 1);
    arena_free(&a);
}

static void test_strndup(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 64, 1024), 0);
    const char src[] = {'h', 'e', 'l', 'l', 'o', 'X'}; /* not NUL-terminated */
    char *s = arena_strndup(&a, src, 5);
    ASSERT_STR_EQ(s, "hello");
    ASSERT(s != src);
    ASSERT_STR_EQ(arena_strndup(&a, src, 0), "");
    ASSERT_STR_EQ(arena_strndup(&a, NULL, 0), "");
    /* Bytes after an embedded NUL are copied too: the result is n bytes plus a terminator. */
    char *e = arena_strndup(&a, "a\0b", 3);
    ASSERT(e != NULL);
    ASSERT(memcmp(e, "a\0b\0", 4) == 0);
    /* The terminator counts against the limit. */
    char big[1024];
    memset(big, 'x', sizeof(big));
    ASSERT(arena_strndup(&a, big, sizeof(big)) == NULL);
    ASSERT_EQ(arena_overflowed(&a), 1);
    arena_free(&a);
}

static void test_printf(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 32, 256), 0);
    ASSERT_STR_EQ(arena_printf(&a, "%s %d %s", "GET", 42, "HTTP/1.1"), "GET 42 HTTP/1.1");
    ASSERT_STR_EQ(arena_printf(&a, "%s", ""), "");
    /* Longer than a block: grows into a block of its own. */
    char *l = arena_printf(&a, "%0100d", 7);
    ASSERT(l != NULL);
    ASSERT_UEQ(strlen(l), 100);
    ASSERT_EQ(l[99], '7');
    ASSERT_EQ(arena_overflowed(&a), 0);
    /* Longer than what the limit leaves: NULL and the flag. */
    ASSERT(arena_printf(&a, "%0300d", 7) == NULL);
    ASSERT_EQ(arena_overflowed(&a), 1);
    arena_free(&a);
}

int main(void)
{
    RUN_TEST(test_alignment);
    RUN_TEST(test_rounding_cost);
    RUN_TEST(test_growth_across_blocks);
    RUN_TEST(test_limit_and_sticky_overflow);
    RUN_TEST(test_reset_keeps_working);
    RUN_TEST(test_strndup);
    RUN_TEST(test_printf);
    return 0;
}
