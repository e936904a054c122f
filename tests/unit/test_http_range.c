/* Range requests (RFC 9110 s14), If-Range (s13.1.5, s8.8.2.2) and Content-Range (s14.4). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_date.h"
#include "http/http_msg.h"
#include "http/http_range.h"
#include "test_util.h"
#include "test_msg.h"

static struct arena A;

#define T0 INT64_C(1700000000) /* 2023-11-14T22:13:20Z */

/* Fields from "Name: value" lines; a value "@N" becomes the IMF-fixdate of T0 + N (test_msg.h). */
static struct http_msg *msg(int is_request, enum http_method method, const char *spec)
{
    return test_msg(&A, is_request, method, spec, T0);
}

/* ---- Range evaluation ---- */

struct range_row {
    const char *name;
    const char *value;
    uint64_t length;
    enum http_range_status status;
    size_t n;
    uint64_t r[3][2];
};

#define FULL HTTP_RANGE_FULL
#define PART HTTP_RANGE_PARTIAL
#define UNSAT HTTP_RANGE_UNSATISFIABLE

static const struct range_row range_rows[] = {
    {"s14.1.2 the first 500 bytes", "bytes=0-499", 10000, PART, 1, {{0, 499}}},
    {"s14.1.2 the second 500 bytes", "bytes=500-999", 10000, PART, 1, {{500, 999}}},
    {"s14.1.2 suffix-range: the final 500 bytes", "bytes=-500", 10000, PART, 1, {{9500, 9999}}},
    {"s14.1.2 open-ended int-range", "bytes=9500-", 10000, PART, 1, {{9500, 9999}}},
    {"s14.1.2 first and last bytes only", "bytes=0-0,-1", 10000, PART, 2, {{0, 0}, {9999, 9999}}},
    {"s14.1.2 OWS in the list", "bytes= 0-999, 4500-5499, -1000", 10000, PART, 3, {{0, 999}, {4500, 5499}, {9000, 9999}}},
    {"s14.1.2 non-canonical: adjacent ranges", "bytes=500-600,601-999", 10000, PART, 2, {{500, 600}, {601, 999}}},
    {"s14.2 two overlapping ranges are fine", "bytes=500-700,601-999", 10000, PART, 2, {{500, 700}, {601, 999}}},
    {"s14.1.2 last-pos beyond the length is the remainder", "bytes=0-20000", 10000, PART, 1, {{0, 9999}}},
    {"s14.1.2 last-pos equal to the length", "bytes=10-10000", 10000, PART, 1, {{10, 9999}}},
    {"s14.1.2 suffix longer than the representation is all of it", "bytes=-20000", 10000, PART, 1, {{0, 9999}}},
    {"s14.1.2 a single byte representation", "bytes=0-0", 1, PART, 1, {{0, 0}}},
    {"s14.1 range unit is case-insensitive", "BYTES=0-1", 10, PART, 1, {{0, 1}}},
    {"s5.6.1 empty list elements are skipped", "bytes=,0-1,,", 10, PART, 1, {{0, 1}}},
    {"s14.1.2 huge last-pos saturates instead of failing", "bytes=0-99999999999999999999999999", 10, PART, 1, {{0, 9}}},
    {"s14.1.2 huge suffix saturates", "bytes=-99999999999999999999999999", 10, PART, 1, {{0, 9}}},
    {"s14.1.2 unsatisfiable ranges are dropped from a set", "bytes=20000-30000,0-1", 10000, PART, 1, {{0, 1}}},
    /* 416 */
    {"s14.1.2 first-pos at the length is unsatisfiable", "bytes=10000-", 10000, UNSAT, 0, {{0}}},
    {"s14.1.2 a zero-length suffix is unsatisfiable", "bytes=-0", 10000, UNSAT, 0, {{0}}},
    {"s14.1.1 no satisfiable range at all", "bytes=20000-,30000-30001", 10000, UNSAT, 0, {{0}}},
    {"s14.1.2 huge first-pos is unsatisfiable", "bytes=99999999999999999999999999-", 10, UNSAT, 0, {{0}}},
    /* ignored: 200 */
    {"s14.1.1 last-pos before first-pos invalidates the set", "bytes=5-1", 10000, FULL, 0, {{0}}},
    {"s14.1.1 one invalid spec invalidates the whole set", "bytes=0-1,5-1", 10000, FULL, 0, {{0}}},
    {"s14.2 unknown range unit is ignored", "items=0-1", 10000, FULL, 0, {{0}}},
    {"s14.1.1 garbage spec", "bytes=abc", 10000, FULL, 0, {{0}}},
    {"s14.1.1 empty range-set", "bytes=", 10000, FULL, 0, {{0}}},
    {"s14.1.1 only commas", "bytes=,,", 10000, FULL, 0, {{0}}},
    {"s14.1.1 three numbers", "bytes=1-2-3", 10000, FULL, 0, {{0}}},
    {"s14.1.1 double dash", "bytes=--1", 10000, FULL, 0, {{0}}},
    {"s14.1.1 bare dash", "bytes=-", 10000, FULL, 0, {{0}}},
    {"s14.1.1 no equals sign", "bytes 0-1", 10000, FULL, 0, {{0}}},
    {"s14.1.1 space before equals", "bytes =0-1", 10000, FULL, 0, {{0}}},
    {"s14.1.1 space inside a spec", "bytes=0 -1", 10000, FULL, 0, {{0}}},
    {"s14.1.1 negative first-pos", "bytes=-5-10", 10000, FULL, 0, {{0}}},
    {"s14.2 zero-length representation: Range ignored", "bytes=0-1", 0, FULL, 0, {{0}}},
    {"s14.2 zero-length representation: suffix ignored too", "bytes=-1", 0, FULL, 0, {{0}}},
    {"s14.2 more than two overlapping ranges are ignored", "bytes=0-10,5-15,8-20", 10000, FULL, 0, {{0}}},
    {"s14.2 three identical ranges are ignored", "bytes=0-0,0-0,0-0", 10000, FULL, 0, {{0}}},
};

static void test_range_table(void)
{
    for (size_t i = 0; i < sizeof(range_rows) / sizeof(range_rows[0]); i++) {
        const struct range_row *r = &range_rows[i];
        struct http_range_set set;
        enum http_range_status st = http_range_eval(r->value, strlen(r->value), r->length, &set);
        if (st != r->status || set.n != r->n)
            TEST_FAIL_("row \"%s\": status %d n %zu, want %d %zu (why %s)", r->name, st, set.n, r->status, r->n,
                       set.why ? set.why : "-");
        for (size_t k = 0; k < r->n; k++)
            if (set.r[k].first != r->r[k][0] || set.r[k].last != r->r[k][1])
                TEST_FAIL_("row \"%s\": range %zu is %ju-%ju", r->name, k, (uintmax_t)set.r[k].first, (uintmax_t)set.r[k].last);
        /* a reason is given exactly when a Range was ignored */
        if ((st == FULL) != (set.why != NULL)) TEST_FAIL_("row \"%s\": why %s", r->name, set.why ? set.why : "NULL");
    }
}

/* Generated rows around the limits of s14.2 ("MAY ignore ... many small ranges"). */
static void range_list(char *buf, size_t size, int count, int descending)
{
    size_t off = (size_t)snprintf(buf, size, "bytes=");
    for (int i = 0; i < count; i++) {
        int k = descending ? count - 1 - i : i;
        off += (size_t)snprintf(buf + off, size - off, "%s%d-%d", i ? "," : "", k * 10, k * 10 + 4);
        ASSERT(off < size);
    }
}

static void test_range_limits(void)
{
    static char buf[8192];
    struct http_range_set set;

    range_list(buf, sizeof(buf), HTTP_RANGE_MAX, 0);
    ASSERT_EQ(http_range_eval(buf, strlen(buf), 100000, &set), PART);
    ASSERT_EQ(set.n, HTTP_RANGE_MAX);
    ASSERT_EQ(set.r[HTTP_RANGE_MAX - 1].first, (HTTP_RANGE_MAX - 1) * 10);

    range_list(buf, sizeof(buf), HTTP_RANGE_MAX + 1, 0);
    ASSERT_EQ(http_range_eval(buf, strlen(buf), 100000, &set), FULL);
    ASSERT_STR_EQ(set.why, "too many ranges");

    range_list(buf, sizeof(buf), HTTP_RANGE_MAX_UNORDERED, 1);
    ASSERT_EQ(http_range_eval(buf, strlen(buf), 100000, &set), PART);
    ASSERT_EQ(set.n, HTTP_RANGE_MAX_UNORDERED);

    range_list(buf, sizeof(buf), HTTP_RANGE_MAX_UNORDERED + 1, 1);
    ASSERT_EQ(http_range_eval(buf, strlen(buf), 100000, &set), FULL);
    ASSERT_STR_EQ(set.why, "many ranges out of order");

    /* Unsatisfiable specs count towards the limit too: the parser's work is what it bounds. */
    range_list(buf, sizeof(buf), HTTP_RANGE_MAX + 1, 0);
    ASSERT_EQ(http_range_eval(buf, strlen(buf), 5, &set), FULL);
}

/* ---- If-Range ---- */

struct if_range_row {
    const char *name;
    const char *req;  /* request fields */
    const char *resp; /* stored response fields */
    int rc;
};

static const struct if_range_row if_range_rows[] = {
    {"s13.1.5 strong entity-tag matches", "Range: bytes=0-1\nIf-Range: \"v1\"", "ETag: \"v1\"", 1},
    {"s13.1.5 entity-tag differs", "Range: bytes=0-1\nIf-Range: \"v2\"", "ETag: \"v1\"", 0},
    {"s13.1.5 weak entity-tag in If-Range never matches", "Range: bytes=0-1\nIf-Range: W/\"v1\"", "ETag: W/\"v1\"", 0},
    {"s13.1.5 stored weak entity-tag never matches", "Range: bytes=0-1\nIf-Range: \"v1\"", "ETag: W/\"v1\"", 0},
    {"s13.1.5 entity-tag but nothing stored", "Range: bytes=0-1\nIf-Range: \"v1\"", "X: y", 0},
    {"s13.1.5 malformed entity-tag", "Range: bytes=0-1\nIf-Range: \"v1", "ETag: \"v1\"", 0},
    {"s13.1.5 date equal to a strong Last-Modified", "If-Range: @-100", "Last-Modified: @-100\nDate: @0", 1},
    {"s8.8.2.2 Date exactly one second after Last-Modified is strong", "If-Range: @-1", "Last-Modified: @-1\nDate: @0", 1},
    {"s8.8.2.2 Date equal to Last-Modified is weak: false", "If-Range: @0", "Last-Modified: @0\nDate: @0", 0},
    {"s13.1.5 date differs from Last-Modified (earlier)", "If-Range: @-101", "Last-Modified: @-100\nDate: @0", 0},
    {"s13.1.5 date differs from Last-Modified (later)", "If-Range: @-99", "Last-Modified: @-100\nDate: @0", 0},
    {"s13.1.5 date without a stored Last-Modified", "If-Range: @-100", "Date: @0", 0},
    {"s8.8.2.2 date without a stored Date cannot be strong", "If-Range: @-100", "Last-Modified: @-100", 0},
    {"s13.1.5 invalid date", "If-Range: yesterday", "Last-Modified: @-100\nDate: @0", 0},
    {"s13.1.5 obsolete date format compares by value", "If-Range: Sunday, 06-Nov-94 08:49:37 GMT",
     "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT\nDate: @0", 1},
    {"s13.1.5 two If-Range lines", "If-Range: \"v1\"\nIf-Range: \"v1\"", "ETag: \"v1\"", 0},
    {"s13.1.5 absent", "Range: bytes=0-1", "ETag: \"v1\"", -ENOENT},
};

static void test_if_range_table(void)
{
    for (size_t i = 0; i < sizeof(if_range_rows) / sizeof(if_range_rows[0]); i++) {
        const struct if_range_row *r = &if_range_rows[i];
        arena_reset(&A);
        int rc = http_if_range_eval(msg(1, HTTP_METHOD_GET, r->req), msg(0, HTTP_METHOD_OTHER, r->resp), T0);
        if (rc != r->rc) TEST_FAIL_("row \"%s\": %d, want %d", r->name, rc, r->rc);
    }
}

struct for_request_row {
    const char *name;
    enum http_method method;
    const char *req;
    enum http_range_status status;
    size_t n;
};

static const struct for_request_row for_request_rows[] = {
    {"s14.2 no Range: full", HTTP_METHOD_GET, "X: 1", FULL, 0},
    {"s14.2 GET with Range", HTTP_METHOD_GET, "Range: bytes=0-1", PART, 1},
    {"s14.2 only GET has range semantics (HEAD)", HTTP_METHOD_HEAD, "Range: bytes=0-1", FULL, 0},
    {"s14.2 only GET has range semantics (POST)", HTTP_METHOD_POST, "Range: bytes=0-1", FULL, 0},
    {"s14.2 two Range field lines are ignored", HTTP_METHOD_GET, "Range: bytes=0-1\nRange: bytes=2-3", FULL, 0},
    {"s13.2.2 If-Range true: 206", HTTP_METHOD_GET, "Range: bytes=0-1\nIf-Range: \"v1\"", PART, 1},
    {"s13.2.2 If-Range false: 200", HTTP_METHOD_GET, "Range: bytes=0-1\nIf-Range: \"v0\"", FULL, 0},
    {"s13.2.2 If-Range true but unsatisfiable: 416", HTTP_METHOD_GET, "Range: bytes=500-\nIf-Range: \"v1\"", UNSAT, 0},
    {"s13.1.5 If-Range without Range is ignored", HTTP_METHOD_GET, "If-Range: \"v0\"", FULL, 0},
};

static void test_for_request_table(void)
{
    for (size_t i = 0; i < sizeof(for_request_rows) / sizeof(for_request_rows[0]); i++) {
        const struct for_request_row *r = &for_request_rows[i];
        arena_reset(&A);
        struct http_range_set set;
        enum http_range_status st =
            http_range_for_request(msg(1, r->method, r->req), msg(0, HTTP_METHOD_OTHER, "ETag: \"v1\""), 100, T0, &set);
        if (st != r->status || set.n != r->n) TEST_FAIL_("row \"%s\": status %d n %zu", r->name, st, set.n);
    }
}

/* ---- Content-Range ---- */

struct cr_row {
    const char *name;
    const char *in;
    int rc;
    int unsatisfied, length_known;
    uint64_t first, last, complete;
};

static const struct cr_row cr_rows[] = {
    {"s14.4 complete length known", "bytes 42-1233/1234", 0, 0, 1, 42, 1233, 1234},
    {"s14.4 complete length unknown", "bytes 42-1233/*", 0, 0, 0, 42, 1233, 0},
    {"s14.4 unsatisfied-range", "bytes */1234", 0, 1, 1, 0, 0, 1234},
    {"s14.4 the last 500 bytes", "bytes 734-1233/1234", 0, 0, 1, 734, 1233, 1234},
    {"s14.1 unit is case-insensitive", "Bytes 0-0/1", 0, 0, 1, 0, 0, 1},
    {"s14.4 last-pos before first-pos is invalid", "bytes 5-4/10", -EINVAL, 0, 0, 0, 0, 0},
    {"s14.4 complete-length not above last-pos is invalid", "bytes 0-10/10", -EINVAL, 0, 0, 0, 0, 0},
    {"s14.4 unsatisfied-range needs a length", "bytes */*", -EINVAL, 0, 0, 0, 0, 0},
    {"s14.4 other unit", "items 0-1/2", -EINVAL, 0, 0, 0, 0, 0},
    {"s14.4 missing length", "bytes 0-1", -EINVAL, 0, 0, 0, 0, 0},
    {"s14.4 trailing garbage", "bytes 1-2/3 x", -EINVAL, 0, 0, 0, 0, 0},
    {"s14.4 missing last-pos", "bytes 1-/3", -EINVAL, 0, 0, 0, 0, 0},
    {"s14.4 overflowing number", "bytes 0-99999999999999999999/99999999999999999999", -EINVAL, 0, 0, 0, 0, 0},
    {"s14.4 largest numbers", "bytes 0-18446744073709551614/18446744073709551615", 0, 0, 1, 0, UINT64_MAX - 1, UINT64_MAX},
    {"s14.4 empty", "", -EINVAL, 0, 0, 0, 0, 0},
};

static void test_content_range_table(void)
{
    for (size_t i = 0; i < sizeof(cr_rows) / sizeof(cr_rows[0]); i++) {
        const struct cr_row *r = &cr_rows[i];
        struct http_content_range cr;
        int rc = http_content_range_parse(r->in, strlen(r->in), &cr);
        if (rc != r->rc) TEST_FAIL_("row \"%s\": rc %d, want %d", r->name, rc, r->rc);
        if (rc == 0 &&
            (cr.unsatisfied != r->unsatisfied || cr.length_known != r->length_known ||
             (!cr.unsatisfied && (cr.first != r->first || cr.last != r->last)) || (cr.length_known && cr.complete != r->complete)))
            TEST_FAIL_("row \"%s\": %d %d %ju-%ju/%ju", r->name, cr.unsatisfied, cr.length_known, (uintmax_t)cr.first,
                       (uintmax_t)cr.last, (uintmax_t)cr.complete);
    }
}

static void test_content_range_format(void)
{
    char buf[128];
    struct http_range r = {0, 499};
    ASSERT_EQ(http_content_range_format(buf, sizeof(buf), &r, 1234), 16);
    ASSERT_STR_EQ(buf, "bytes 0-499/1234");
    ASSERT_EQ(http_content_range_format_unsatisfied(buf, sizeof(buf), 1234), 12);
    ASSERT_STR_EQ(buf, "bytes */1234");
    ASSERT_EQ(http_content_range_format(buf, 16, &r, 1234), -ENOSPC); /* no room for the NUL */
    ASSERT_EQ(http_content_range_format_unsatisfied(buf, 4, 1234), -ENOSPC);

    /* What we format, we parse back. */
    struct http_range big = {UINT64_MAX - 10, UINT64_MAX - 1};
    int n = http_content_range_format(buf, sizeof(buf), &big, UINT64_MAX);
    ASSERT(n > 0);
    struct http_content_range cr;
    ASSERT_EQ(http_content_range_parse(buf, (size_t)n, &cr), 0);
    ASSERT_UEQ(cr.first, UINT64_MAX - 10);
    ASSERT_UEQ(cr.complete, UINT64_MAX);
}

int main(void)
{
    ASSERT_EQ(arena_init(&A, 1 << 16, 1 << 22), 0);
    RUN_TEST(test_range_table);
    RUN_TEST(test_range_limits);
    RUN_TEST(test_if_range_table);
    RUN_TEST(test_for_request_table);
    RUN_TEST(test_content_range_table);
    RUN_TEST(test_content_range_format);
    arena_free(&A);
    return 0;
}
