/* Cache-Control / Pragma (RFC 9111 s5.2, s5.4), entity tags (RFC 9110 s8.8.3, s13.1), Age (RFC 9111
 * s5.1), Vary "*" and list walking (RFC 9110 s5.6.1). */
#include <errno.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_cache_control.h"
#include "http/http_msg.h"
#include "test_util.h"
#include "test_msg.h"

static struct arena A;

/* A message with the fields of `spec`: "Name: value" lines separated by '\n' (test_msg.h). */
static struct http_msg *msg(int is_request, const char *spec)
{
    return test_msg(&A, is_request, HTTP_METHOD_GET, spec, 0);
}

/* ---- Cache-Control ---- */

#define NONE (-2) /* "no value expected" in the rows below */

struct cc_row {
    const char *name;
    const char *fields; /* one or more "Cache-Control: ..." (and Pragma) lines */
    int is_request;
    uint32_t present; /* exact set expected, HTTP_CC_FIELD_PRESENT excluded */
    uint32_t invalid;
    int64_t max_age, s_maxage, max_stale, min_fresh, swr, sie; /* NONE: not checked */
};

static const struct cc_row cc_rows[] = {
    {"s5.2.2.1 max-age", "Cache-Control: max-age=60", 0, HTTP_CC_MAX_AGE, 0, 60, NONE, NONE, NONE, NONE, NONE},
    {"s5.2 quoted-string argument accepted for max-age", "Cache-Control: max-age=\"60\"", 0, HTTP_CC_MAX_AGE, 0, 60, NONE, NONE,
     NONE, NONE, NONE},
    {"s5.2 directive names are case-insensitive", "Cache-Control: MAX-AGE=5, No-Store, S-MaxAge=7", 0,
     HTTP_CC_MAX_AGE | HTTP_CC_NO_STORE | HTTP_CC_S_MAXAGE, 0, 5, 7, NONE, NONE, NONE, NONE},
    {"s1.3 delta-seconds overflow is 2^31", "Cache-Control: max-age=99999999999999999999999", 0, HTTP_CC_MAX_AGE, 0, HTTP_DELTA_MAX,
     NONE, NONE, NONE, NONE, NONE},
    {"s1.3 2^31 exactly", "Cache-Control: max-age=2147483648", 0, HTTP_CC_MAX_AGE, 0, HTTP_DELTA_MAX, NONE, NONE, NONE, NONE, NONE},
    {"s1.3 zero", "Cache-Control: max-age=0", 0, HTTP_CC_MAX_AGE, 0, 0, NONE, NONE, NONE, NONE, NONE},
    {"s4.2.1 non-integer max-age is invalid", "Cache-Control: max-age=abc", 0, HTTP_CC_MAX_AGE, HTTP_CC_MAX_AGE, NONE, NONE, NONE,
     NONE, NONE, NONE},
    {"s4.2.1 negative max-age is invalid", "Cache-Control: max-age=-1", 0, HTTP_CC_MAX_AGE, HTTP_CC_MAX_AGE, NONE, NONE, NONE, NONE,
     NONE, NONE},
    {"s4.2.1 fractional max-age is invalid", "Cache-Control: max-age=1.5", 0, HTTP_CC_MAX_AGE, HTTP_CC_MAX_AGE, NONE, NONE, NONE,
     NONE, NONE, NONE},
    {"s4.2.1 empty max-age is invalid", "Cache-Control: max-age=", 0, HTTP_CC_MAX_AGE, HTTP_CC_MAX_AGE, NONE, NONE, NONE, NONE,
     NONE, NONE},
    {"s4.2.1 max-age without argument is invalid", "Cache-Control: max-age", 0, HTTP_CC_MAX_AGE, HTTP_CC_MAX_AGE, NONE, NONE, NONE,
     NONE, NONE, NONE},
    {"s4.2.1 junk after max-age value is invalid", "Cache-Control: max-age=5 6", 0, HTTP_CC_MAX_AGE, HTTP_CC_MAX_AGE, NONE, NONE,
     NONE, NONE, NONE, NONE},
    {"s4.2.1 max-age missing = is invalid", "Cache-Control: max-age 5", 0, HTTP_CC_MAX_AGE, HTTP_CC_MAX_AGE, NONE, NONE, NONE, NONE,
     NONE, NONE},
    {"s4.2.1 unterminated quoted max-age is invalid", "Cache-Control: max-age=\"5", 0, HTTP_CC_MAX_AGE, HTTP_CC_MAX_AGE, NONE, NONE,
     NONE, NONE, NONE, NONE},
    {"s4.2.1 duplicate with the same value is fine", "Cache-Control: max-age=5, max-age=5", 0, HTTP_CC_MAX_AGE, 0, 5, NONE, NONE,
     NONE, NONE, NONE},
    {"s4.2.1 conflicting duplicates are invalid, first kept", "Cache-Control: max-age=5, max-age=10", 0, HTTP_CC_MAX_AGE,
     HTTP_CC_MAX_AGE, 5, NONE, NONE, NONE, NONE, NONE},
    {"s4.2.1 conflicting duplicates across field lines", "Cache-Control: s-maxage=5\nCache-Control: s-maxage=6", 0,
     HTTP_CC_S_MAXAGE, HTTP_CC_S_MAXAGE, NONE, 5, NONE, NONE, NONE, NONE},
    {"s4.2.1 invalid then valid keeps the valid value, still invalid", "Cache-Control: max-age=x, max-age=7", 0, HTTP_CC_MAX_AGE,
     HTTP_CC_MAX_AGE, 7, NONE, NONE, NONE, NONE, NONE},
    {"s5.2.1.2 max-stale without a value accepts any staleness", "Cache-Control: max-stale", 1, HTTP_CC_MAX_STALE, 0, NONE, NONE,
     HTTP_CC_ANY, NONE, NONE, NONE},
    {"s5.2.1.2 max-stale with a value", "Cache-Control: max-stale=30", 1, HTTP_CC_MAX_STALE, 0, NONE, NONE, 30, NONE, NONE, NONE},
    {"s5.2.1.2 max-stale with a bad value is invalid", "Cache-Control: max-stale=soon", 1, HTTP_CC_MAX_STALE, HTTP_CC_MAX_STALE,
     NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.2.1.3 min-fresh", "Cache-Control: min-fresh=10", 1, HTTP_CC_MIN_FRESH, 0, NONE, NONE, NONE, 10, NONE, NONE},
    {"s5.2.1.7 only-if-cached and s5.2.1.6 no-transform", "Cache-Control: only-if-cached, no-transform", 1,
     HTTP_CC_ONLY_IF_CACHED | HTTP_CC_NO_TRANSFORM, 0, NONE, NONE, NONE, NONE, NONE, NONE},
    {"RFC 5861 stale-while-revalidate and stale-if-error",
     "Cache-Control: max-age=600, stale-while-revalidate=30, stale-if-error=86400", 0,
     HTTP_CC_MAX_AGE | HTTP_CC_STALE_WHILE_REVALIDATE | HTTP_CC_STALE_IF_ERROR, 0, 600, NONE, NONE, NONE, 30, 86400},
    {"RFC 5861 stale-if-error without value is invalid", "Cache-Control: stale-if-error", 0, HTTP_CC_STALE_IF_ERROR,
     HTTP_CC_STALE_IF_ERROR, NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.2.2 flag directives", "Cache-Control: public, must-revalidate, proxy-revalidate, must-understand, no-transform, no-store",
     0,
     HTTP_CC_PUBLIC | HTTP_CC_MUST_REVALIDATE | HTTP_CC_PROXY_REVALIDATE | HTTP_CC_MUST_UNDERSTAND | HTTP_CC_NO_TRANSFORM |
         HTTP_CC_NO_STORE,
     0, NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.2.2.4 unqualified no-cache", "Cache-Control: no-cache", 0, HTTP_CC_NO_CACHE, 0, NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.2.2.4 qualified no-cache", "Cache-Control: no-cache=\"Set-Cookie, X-Foo\"", 0, HTTP_CC_NO_CACHE_FIELDS, 0, NONE, NONE,
     NONE, NONE, NONE, NONE},
    {"s5.2 token form of the no-cache argument accepted", "Cache-Control: no-cache=Set-Cookie", 0, HTTP_CC_NO_CACHE_FIELDS, 0, NONE,
     NONE, NONE, NONE, NONE, NONE},
    {"s5.2.2.4 bare and qualified no-cache: both recorded", "Cache-Control: no-cache=\"a\", no-cache", 0,
     HTTP_CC_NO_CACHE | HTTP_CC_NO_CACHE_FIELDS, 0, NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.2.2.4 empty field list degrades to unqualified", "Cache-Control: no-cache=\"\"", 0, HTTP_CC_NO_CACHE, 0, NONE, NONE, NONE,
     NONE, NONE, NONE},
    {"s5.2.2.4 non-token field name degrades to unqualified", "Cache-Control: no-cache=\"a b\"", 0, HTTP_CC_NO_CACHE, 0, NONE, NONE,
     NONE, NONE, NONE, NONE},
    {"s5.2.2.4 quoted-pair in the list degrades to unqualified", "Cache-Control: no-cache=\"a\\b\"", 0, HTTP_CC_NO_CACHE, 0, NONE,
     NONE, NONE, NONE, NONE, NONE},
    {"s5.2.2.7 unqualified private", "Cache-Control: private", 0, HTTP_CC_PRIVATE, 0, NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.2.2.7 qualified private", "Cache-Control: private=\"Set-Cookie\", max-age=5", 0, HTTP_CC_PRIVATE_FIELDS | HTTP_CC_MAX_AGE,
     0, 5, NONE, NONE, NONE, NONE, NONE},
    {"s5.2.3 unknown directives are ignored", "Cache-Control: community=\"UCI\", private, immutable", 0, HTTP_CC_PRIVATE, 0, NONE,
     NONE, NONE, NONE, NONE, NONE},
    {"s5.2.3 a quoted argument of an unknown directive may hold commas", "Cache-Control: foo=\"a, no-store, max-age=1\", max-age=5",
     0, HTTP_CC_MAX_AGE, 0, 5, NONE, NONE, NONE, NONE, NONE},
    {"s5.2 quoted argument with an escaped quote and comma", "Cache-Control: ext=\"a\\\", no-store\", max-age=5", 0,
     HTTP_CC_MAX_AGE, 0, 5, NONE, NONE, NONE, NONE, NONE},
    {"s5.2 OWS and empty list elements", "Cache-Control:  ,max-age = 5 ,  , no-store ,", 0, HTTP_CC_MAX_AGE | HTTP_CC_NO_STORE, 0,
     5, NONE, NONE, NONE, NONE, NONE},
    {"s5.2 a stray argument does not cancel a flag directive", "Cache-Control: no-store=yes", 0, HTTP_CC_NO_STORE, 0, NONE, NONE,
     NONE, NONE, NONE, NONE},
    {"s5.2 junk after a flag directive does not cancel it", "Cache-Control: no-store please", 0, HTTP_CC_NO_STORE, 0, NONE, NONE,
     NONE, NONE, NONE, NONE},
    {"s5.2 element that is not a token is skipped", "Cache-Control: \"quoted\", =5, max-age=3", 0, HTTP_CC_MAX_AGE, 0, 3, NONE,
     NONE, NONE, NONE, NONE},
    {"RFC 9110 s5.3 several Cache-Control lines combine", "Cache-Control: max-age=5\nCache-Control: no-transform", 0,
     HTTP_CC_MAX_AGE | HTTP_CC_NO_TRANSFORM, 0, 5, NONE, NONE, NONE, NONE, NONE},
    {"s5.2 empty field", "Cache-Control: ", 0, 0, 0, NONE, NONE, NONE, NONE, NONE, NONE},
    /* Pragma (s5.4) */
    {"s5.4 Pragma: no-cache in a request without Cache-Control", "Pragma: no-cache", 1, HTTP_CC_NO_CACHE | HTTP_CC_FROM_PRAGMA, 0,
     NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.4 Pragma: no-cache among other pragma directives", "Pragma: foo=bar, No-Cache", 1, HTTP_CC_NO_CACHE | HTTP_CC_FROM_PRAGMA,
     0, NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.4 Pragma ignored when Cache-Control is present", "Pragma: no-cache\nCache-Control: max-stale=5", 1, HTTP_CC_MAX_STALE, 0,
     NONE, NONE, 5, NONE, NONE, NONE},
    {"s5.4 Pragma ignored when Cache-Control is present but empty", "Cache-Control: \nPragma: no-cache", 1, 0, 0, NONE, NONE, NONE,
     NONE, NONE, NONE},
    {"s5.4 Pragma in a response means nothing", "Pragma: no-cache", 0, 0, 0, NONE, NONE, NONE, NONE, NONE, NONE},
    {"s5.4 other Pragma values mean nothing", "Pragma: no-cache-please", 1, 0, 0, NONE, NONE, NONE, NONE, NONE, NONE},
};

static void check_value(const char *row, const char *what, int64_t got, int64_t want)
{
    if (want != NONE && got != want) TEST_FAIL_("row \"%s\": %s = %jd, want %jd", row, what, (intmax_t)got, (intmax_t)want);
}

static void test_cc_table(void)
{
    for (size_t i = 0; i < sizeof(cc_rows) / sizeof(cc_rows[0]); i++) {
        const struct cc_row *r = &cc_rows[i];
        arena_reset(&A);
        struct http_cc cc;
        http_cc_parse(msg(r->is_request, r->fields), &cc);
        uint32_t present = cc.present & ~(uint32_t)HTTP_CC_FIELD_PRESENT;
        if (present != r->present || cc.invalid != r->invalid)
            TEST_FAIL_("row \"%s\": present %#x invalid %#x, want %#x %#x", r->name, present, cc.invalid, r->present, r->invalid);
        check_value(r->name, "max_age", cc.max_age, r->max_age);
        check_value(r->name, "s_maxage", cc.s_maxage, r->s_maxage);
        check_value(r->name, "max_stale", cc.max_stale, r->max_stale);
        check_value(r->name, "min_fresh", cc.min_fresh, r->min_fresh);
        check_value(r->name, "stale_while_revalidate", cc.stale_while_revalidate, r->swr);
        check_value(r->name, "stale_if_error", cc.stale_if_error, r->sie);
    }
}

static void test_cc_field_present_bit(void)
{
    arena_reset(&A);
    struct http_cc cc;
    http_cc_parse(msg(0, "Cache-Control: "), &cc);
    ASSERT(cc.present & HTTP_CC_FIELD_PRESENT);
    http_cc_parse(msg(0, "X: y"), &cc);
    ASSERT_EQ(cc.present, 0);
}

static void test_cc_field_lists(void)
{
    arena_reset(&A);
    struct http_cc cc;
    /* s5.2.2.4 / s5.2.2.7: field names are case-insensitive; several occurrences accumulate */
    http_cc_parse(msg(0, "Cache-Control: no-cache=\"Set-Cookie, X-Foo\", private=\"Authorization-Info\"\n"
                         "Cache-Control: no-cache=\"x-bar\""),
                  &cc);
    ASSERT_EQ(cc.no_cache_fields.n, 2);
    ASSERT(http_cc_list_has(&cc.no_cache_fields, "set-cookie", 10));
    ASSERT(http_cc_list_has(&cc.no_cache_fields, "X-FOO", 5));
    ASSERT(http_cc_list_has(&cc.no_cache_fields, "X-Bar", 5));
    ASSERT(!http_cc_list_has(&cc.no_cache_fields, "X-Fo", 4));
    ASSERT(!http_cc_list_has(&cc.no_cache_fields, "Authorization-Info", 18));
    ASSERT(http_cc_list_has(&cc.private_fields, "authorization-info", 18));
    ASSERT(!(cc.present & HTTP_CC_NO_CACHE));

    /* More occurrences than HTTP_CC_LIST_MAX: the unqualified (stricter) form is recorded too. */
    http_cc_parse(msg(0, "Cache-Control: no-cache=\"a\", no-cache=\"b\", no-cache=\"c\", no-cache=\"d\", no-cache=\"e\""), &cc);
    ASSERT_EQ(cc.no_cache_fields.n, HTTP_CC_LIST_MAX);
    ASSERT(cc.present & HTTP_CC_NO_CACHE);
    ASSERT(http_cc_list_has(&cc.no_cache_fields, "d", 1));
    ASSERT(!http_cc_list_has(&cc.no_cache_fields, "e", 1));

    /* The empty list matches nothing. */
    struct http_cc_list empty = {0};
    ASSERT(!http_cc_list_has(&empty, "a", 1));
}

static void test_cc_parse_value_accumulates(void)
{
    struct http_cc cc;
    memset(&cc, 0, sizeof(cc));
    http_cc_parse_value(&cc, "max-age=1", 9);
    http_cc_parse_value(&cc, "public", 6);
    ASSERT_EQ(cc.present, HTTP_CC_MAX_AGE | HTTP_CC_PUBLIC);
    ASSERT_EQ(cc.max_age, 1);
}

/* ---- list walking ---- */

static void test_field_list_next(void)
{
    const char *v = " , a ,\"b, c\" ,, d e ,";
    const char *pos = v, *end = v + strlen(v), *e;
    size_t n;
    ASSERT_EQ(http_field_list_next(&pos, end, &e, &n), 1);
    ASSERT_MEM_STR_EQ(e, n, "a");
    ASSERT_EQ(http_field_list_next(&pos, end, &e, &n), 1);
    ASSERT_MEM_STR_EQ(e, n, "\"b, c\"");
    ASSERT_EQ(http_field_list_next(&pos, end, &e, &n), 1);
    ASSERT_MEM_STR_EQ(e, n, "d e");
    ASSERT_EQ(http_field_list_next(&pos, end, &e, &n), 0);
    ASSERT_EQ(http_field_list_next(&pos, end, &e, &n), 0);

    const char *empty = "";
    pos = empty;
    ASSERT_EQ(http_field_list_next(&pos, empty, &e, &n), 0);

    ASSERT(http_is_token("max-age", 7));
    ASSERT(!http_is_token("", 0));
    ASSERT(!http_is_token("a b", 3));
    ASSERT(!http_is_token("a\"", 2));
}

/* ---- entity tags ---- */

struct etag_row {
    const char *name;
    const char *in;
    int rc;
    int weak;
    const char *tag;
};

static const struct etag_row etag_rows[] = {
    {"s8.8.3 strong entity-tag", "\"xyzzy\"", 0, 0, "xyzzy"},
    {"s8.8.3 weak entity-tag", "W/\"xyzzy\"", 0, 1, "xyzzy"},
    {"s8.8.3 empty opaque-tag", "\"\"", 0, 0, ""},
    {"s8.8.3 OWS around is fine", "  \"a\" ", 0, 0, "a"},
    {"s8.8.3 etagc includes comma and backslash", "\"a,b\\\"", 0, 0, "a,b\\"},
    {"s8.8.3 obs-text allowed", "\"caf\xc3\xa9\"", 0, 0, "caf\xc3\xa9"},
    {"s8.8.3 unquoted is invalid", "xyzzy", -EINVAL, 0, NULL},
    {"s8.8.3 unterminated is invalid", "\"abc", -EINVAL, 0, NULL},
    {"s8.8.3 W/ is case-sensitive", "w/\"x\"", -EINVAL, 0, NULL},
    {"s8.8.3 trailing garbage", "\"a\"b", -EINVAL, 0, NULL},
    {"s8.8.3 SP is not etagc", "\"a b\"", -EINVAL, 0, NULL},
    {"s8.8.3 two tags are not one", "\"a\", \"b\"", -EINVAL, 0, NULL},
    {"s8.8.3 empty", "", -EINVAL, 0, NULL},
};

static void test_etag_parse_table(void)
{
    for (size_t i = 0; i < sizeof(etag_rows) / sizeof(etag_rows[0]); i++) {
        const struct etag_row *r = &etag_rows[i];
        struct http_etag e;
        int rc = http_etag_parse(r->in, strlen(r->in), &e);
        if (rc != r->rc) TEST_FAIL_("row \"%s\": rc %d, want %d", r->name, rc, r->rc);
        if (rc == 0) {
            ASSERT_EQ(e.weak, r->weak);
            ASSERT_MEM_STR_EQ(e.tag, e.len, r->tag);
        }
    }
}

static void test_etag_comparison_table(void)
{
    /* RFC 9110 s8.8.3.2, the example table verbatim. */
    static const struct {
        const char *a, *b;
        int strong, weak;
    } rows[] = {
        {"W/\"1\"", "W/\"1\"", 0, 1},
        {"W/\"1\"", "W/\"2\"", 0, 0},
        {"W/\"1\"", "\"1\"", 0, 1},
        {"\"1\"", "\"1\"", 1, 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct http_etag a, b;
        ASSERT_EQ(http_etag_parse(rows[i].a, strlen(rows[i].a), &a), 0);
        ASSERT_EQ(http_etag_parse(rows[i].b, strlen(rows[i].b), &b), 0);
        ASSERT_EQ(http_etag_strong_eq(&a, &b), rows[i].strong);
        ASSERT_EQ(http_etag_strong_eq(&b, &a), rows[i].strong);
        ASSERT_EQ(http_etag_weak_eq(&a, &b), rows[i].weak);
        ASSERT_EQ(http_etag_weak_eq(&b, &a), rows[i].weak);
    }
}

struct list_row {
    const char *name;
    const char *fields; /* If-None-Match lines */
    const char *cur;    /* current entity-tag, NULL for none */
    int weak;
    int rc;
};

static const struct list_row list_rows[] = {
    {"s13.1.2 a listed tag matches", "If-None-Match: \"a\", \"b\"", "\"b\"", 1, 1},
    {"s13.1.2 no listed tag matches", "If-None-Match: \"a\", \"b\"", "\"c\"", 1, 0},
    {"s13.1.2 weak comparison: W/ in the list", "If-None-Match: W/\"b\"", "\"b\"", 1, 1},
    {"s13.1.2 weak comparison: weak current tag", "If-None-Match: \"b\"", "W/\"b\"", 1, 1},
    {"s13.1.1 strong comparison refuses weak tags", "If-None-Match: W/\"b\"", "\"b\"", 0, 0},
    {"s13.1.1 strong comparison matches strong tags", "If-None-Match: \"x\", \"b\"", "\"b\"", 0, 1},
    {"s13.1.2 star matches any current representation", "If-None-Match: *", "\"z\"", 1, 1},
    {"s13.1.2 star matches without an entity-tag", "If-None-Match: *", NULL, 1, 1},
    {"s13.1.2 a tag list never matches without an entity-tag", "If-None-Match: \"a\"", NULL, 1, 0},
    {"s13.1.2 star mixed with tags is invalid", "If-None-Match: \"a\", *", "\"a\"", 1, -EINVAL},
    {"s13.1.2 a comma inside an entity-tag", "If-None-Match: \"a,b\"", "\"a,b\"", 1, 1},
    {"s13.1.2 list over several lines", "If-None-Match: \"a\"\nIf-None-Match: \"b\"", "\"b\"", 1, 1},
    {"s13.1.2 empty elements and OWS", "If-None-Match: , \"a\" ,, \"b\" ,", "\"b\"", 1, 1},
    {"s13.1.2 unquoted tag is malformed", "If-None-Match: abc", "\"abc\"", 1, -EINVAL},
    {"s13.1.2 unterminated tag is malformed", "If-None-Match: \"abc", "\"abc\"", 1, -EINVAL},
    {"s13.1.2 missing comma is malformed", "If-None-Match: \"a\" \"b\"", "\"b\"", 1, -EINVAL},
    {"s13.1.2 empty field is malformed", "If-None-Match: ", "\"b\"", 1, -EINVAL},
    {"s13.1.2 absent field", "X: y", "\"b\"", 1, -ENOENT},
};

static void test_etag_list_table(void)
{
    for (size_t i = 0; i < sizeof(list_rows) / sizeof(list_rows[0]); i++) {
        const struct list_row *r = &list_rows[i];
        arena_reset(&A);
        struct http_etag cur;
        if (r->cur != NULL) ASSERT_EQ(http_etag_parse(r->cur, strlen(r->cur), &cur), 0);
        int rc = http_etag_list_match(msg(1, r->fields), "If-None-Match", r->cur ? &cur : NULL, r->weak);
        if (rc != r->rc) TEST_FAIL_("row \"%s\": rc %d, want %d", r->name, rc, r->rc);
    }
}

static void test_etag_get(void)
{
    arena_reset(&A);
    struct http_etag e;
    ASSERT_EQ(http_etag_get(msg(0, "X: y"), &e), -ENOENT);
    ASSERT_EQ(http_etag_get(msg(0, "ETag: \"v1\""), &e), 0);
    ASSERT_MEM_STR_EQ(e.tag, e.len, "v1");
    ASSERT_EQ(http_etag_get(msg(0, "ETag: v1"), &e), -EINVAL);
    ASSERT_EQ(http_etag_get(msg(0, "ETag: \"v1\"\nETag: \"v1\""), &e), 0);
    ASSERT_EQ(http_etag_get(msg(0, "ETag: \"v1\"\nETag: \"v2\""), &e), -EINVAL);
    ASSERT_EQ(http_etag_get(msg(0, "ETag: \"v1\"\nETag: W/\"v1\""), &e), -EINVAL);
}

/* ---- Age ---- */

static void test_age_table(void)
{
    static const struct {
        const char *name, *fields;
        int rc;
        int64_t age;
    } rows[] = {
        {"s5.1 Age", "Age: 120", 0, 120},
        {"s5.1 Age zero", "Age: 0", 0, 0},
        {"s5.1 first of several lines is used", "Age: 5\nAge: 7", 0, 5},
        {"s1.3 overflow is 2^31", "Age: 123456789012345678901234567890", 0, HTTP_DELTA_MAX},
        {"s5.1 a list is invalid", "Age: 1, 2", -EINVAL, 0},
        {"s5.1 negative is invalid", "Age: -1", -EINVAL, 0},
        {"s5.1 not a number is invalid", "Age: old", -EINVAL, 0},
        {"s5.1 empty is invalid", "Age: ", -EINVAL, 0},
        {"s5.1 absent", "X: 1", -ENOENT, 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        arena_reset(&A);
        int64_t age = -1;
        int rc = http_age_get(msg(0, rows[i].fields), &age);
        if (rc != rows[i].rc || (rc == 0 && age != rows[i].age))
            TEST_FAIL_("row \"%s\": rc %d age %jd", rows[i].name, rc, (intmax_t)age);
    }
}

/* ---- Vary ---- */

static void test_vary_star(void)
{
    arena_reset(&A);
    ASSERT_EQ(http_vary_has_star(msg(0, "Vary: Accept, *")), 1);
    ASSERT_EQ(http_vary_has_star(msg(0, "Vary: *")), 1);
    ASSERT_EQ(http_vary_has_star(msg(0, "Vary: Accept\nVary: *")), 1);
    ASSERT_EQ(http_vary_has_star(msg(0, "Vary: Accept, Accept-Encoding")), 0);
    ASSERT_EQ(http_vary_has_star(msg(0, "Vary: **")), 0);
    ASSERT_EQ(http_vary_has_star(msg(0, "X: *")), 0);
}

int main(void)
{
    ASSERT_EQ(arena_init(&A, 1 << 16, 1 << 22), 0);
    RUN_TEST(test_cc_table);
    RUN_TEST(test_cc_field_present_bit);
    RUN_TEST(test_cc_field_lists);
    RUN_TEST(test_cc_parse_value_accumulates);
    RUN_TEST(test_field_list_next);
    RUN_TEST(test_etag_parse_table);
    RUN_TEST(test_etag_comparison_table);
    RUN_TEST(test_etag_list_table);
    RUN_TEST(test_etag_get);
    RUN_TEST(test_age_table);
    RUN_TEST(test_vary_star);
    arena_free(&A);
    return 0;
}
