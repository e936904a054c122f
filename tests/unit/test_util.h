/* Minimal assertion macros for the C unit tests: each prints both sides and the location, then aborts
 * the test process, so ctest reports the failing line. After libuv's test/task.h. */
#ifndef LARDER_TEST_UTIL_H
#define LARDER_TEST_UTIL_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_FAIL_(...)                                                                                                  \
    do {                                                                                                                 \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                                                                  \
        fprintf(stderr, __VA_ARGS__);                                                                                    \
        fprintf(stderr, "\n");                                                                                           \
        abort();                                                                                                         \
    } while (0)

#define ASSERT(cond)                                                                                                     \
    do {                                                                                                                 \
        if (!(cond))                                                                                                     \
            TEST_FAIL_("assertion failed: %s", #cond);                                                                   \
    } while (0)

#define ASSERT_EQ(a, b)                                                                                                  \
    do {                                                                                                                 \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                                                 \
        if (a_ != b_)                                                                                                    \
            TEST_FAIL_("%s == %s: %jd != %jd", #a, #b, a_, b_);                                                          \
    } while (0)

#define ASSERT_NE(a, b)                                                                                                  \
    do {                                                                                                                 \
        intmax_t a_ = (intmax_t)(a), b_ = (intmax_t)(b);                                                                 \
        if (a_ == b_)                                                                                                    \
            TEST_FAIL_("%s != %s: both %jd", #a, #b, a_);                                                                \
    } while (0)

#define ASSERT_UEQ(a, b)                                                                                                 \
    do {                                                                                                                 \
        uintmax_t a_ = (uintmax_t)(a), b_ = (uintmax_t)(b);                                                              \
        if (a_ != b_)                                                                                                    \
            TEST_FAIL_("%s == %s: %ju != %ju", #a, #b, a_, b_);                                                          \
    } while (0)

#define ASSERT_STR_EQ(a, b)                                                                                              \
    do {                                                                                                                 \
        const char *a_ = (a), *b_ = (b);                                                                                 \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                                             \
            TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                    \
    } while (0)

/* Compare a counted string with a C string. */
#define ASSERT_MEM_STR_EQ(p, n, s)                                                                                       \
    do {                                                                                                                 \
        const char *p_ = (p), *s_ = (s);                                                                                 \
        size_t n_ = (n);                                                                                                 \
        if (p_ == NULL || n_ != strlen(s_) || memcmp(p_, s_, n_) != 0)                                                   \
            TEST_FAIL_("%s == %s: \"%.*s\" != \"%s\"", #p, #s, (int)(p_ ? n_ : 6), p_ ? p_ : "(null)", s_);              \
    } while (0)

/* Runs one named test function and reports it; a failure aborts inside it. */
#define RUN_TEST(fn)                                                                                                     \
    do {                                                                                                                 \
        fn();                                                                                                            \
        fprintf(stderr, "ok - %s\n", #fn);                                                                               \
    } while (0)

#endif
