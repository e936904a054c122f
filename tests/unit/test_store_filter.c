/* Unit tests for the key filter (store/store_filter.c): no false negatives, a bounded false-positive
 * rate at capacity, sizing. Keys are SHA-256 of made-up URLs, as the store's are. */
#include "store/store_filter.h"
#include "test_util.h"

static struct store_key key_of(const char *prefix, unsigned i)
{
    char uri[64];
    snprintf(uri, sizeof(uri), "http://%s.example/%u", prefix, i);
    struct store_key k;
    ASSERT_EQ(store_key_primary(NULL, &k, "GET", 3, uri, strlen(uri)), 0);
    return k;
}

static void test_every_added_key_may_be_contained(void)
{
    struct store_filter *f = store_filter_new(20000);
    ASSERT(f != NULL);
    for (unsigned i = 0; i < 40000; i++) { /* twice its capacity: fuller, never wrong */
        struct store_key k = key_of("in", i);
        store_filter_add(f, &k);
    }
    for (unsigned i = 0; i < 40000; i++) {
        struct store_key k = key_of("in", i);
        if (!store_filter_may_contain(f, &k)) TEST_FAIL_("key %u was added and is ruled out", i);
    }
    ASSERT_UEQ(store_filter_added(f), 40000);
    store_filter_free(f);
}

static unsigned false_positives(struct store_filter *f, unsigned n)
{
    unsigned fp = 0;
    for (unsigned i = 0; i < n; i++) {
        struct store_key k = key_of("out", i);
        fp += (unsigned)store_filter_may_contain(f, &k);
    }
    return fp;
}

static void test_false_positives_bounded_at_capacity(void)
{
    /* A capacity that is not a power of two of blocks, so the rounding is not what keeps it low. */
    const unsigned cap = 50000;
    struct store_filter *f = store_filter_new(cap);
    ASSERT(f != NULL);
    ASSERT_UEQ(false_positives(f, 1000), 0); /* empty: every key ruled out */
    for (unsigned i = 0; i < cap; i++) {
        struct store_key k = key_of("in", i);
        store_filter_add(f, &k);
    }
    unsigned fp = false_positives(f, 100000);
    fprintf(stderr, "false positives at capacity: %u in 100000\n", fp);
    ASSERT(fp < 500); /* under 0.5% (store_filter.h) */
    store_filter_free(f);
}

static void test_sizing(void)
{
    struct store_filter *f = store_filter_new(0);
    ASSERT(f != NULL);
    ASSERT_UEQ(store_filter_capacity(f), 1);
    ASSERT_UEQ(store_filter_bytes(f), 64); /* one block */
    store_filter_free(f);
    /* 16 bits a key: 65536 keys need 2048 blocks of 64 bytes exactly; one more key, twice that. */
    f = store_filter_new(65536);
    ASSERT_UEQ(store_filter_bytes(f), 65536 * STORE_FILTER_BITS_PER_KEY / 8);
    store_filter_free(f);
    f = store_filter_new(65537);
    ASSERT_UEQ(store_filter_bytes(f), 2 * 65536 * STORE_FILTER_BITS_PER_KEY / 8);
    store_filter_free(f);
    ASSERT(store_filter_new(UINT64_MAX) == NULL); /* refused, not an overflowed size */
    store_filter_free(NULL);
}

int main(void)
{
    RUN_TEST(test_every_added_key_may_be_contained);
    RUN_TEST(test_false_positives_bounded_at_capacity);
    RUN_TEST(test_sizing);
    return 0;
}
