/* RFC 9111 policy (http/cache_policy.h), one table per behaviour; every row is named after the section
 * it checks. Times are relative to T0; no test reads the clock. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http/arena.h"
#include "http/cache_policy.h"
#include "http/http_date.h"
#include "http/http_msg.h"
#include "test_util.h"
#include "test_msg.h"

static struct arena A;

#define T0 INT64_C(1700000000) /* 2023-11-14T22:13:20Z */

/* Fields from "Name: value" lines; a value "@N" becomes the IMF-fixdate of T0 + N (test_msg.h). */
static struct http_msg *msg(int is_request, const char *spec)
{
    return test_msg(&A, is_request, HTTP_METHOD_GET, spec, T0);
}

static struct http_msg *req(const char *method, const char *spec)
{
    struct http_msg *m = msg(1, spec);
    m->method = http_method_from_name(method, strlen(method));
    m->method_name = method;
    m->method_len = strlen(method);
    return m;
}

static struct http_msg *resp(int status, const char *spec)
{
    struct http_msg *m = msg(0, spec);
    m->status = status;
    return m;
}

/* The value of the only live field `name`, or NULL; fails the test if there are several. */
static const char *field(const struct http_msg *m, const char *name)
{
    const struct http_field *f = http_msg_find(m, name);
    if (f == NULL) return NULL;
    if (http_msg_find_next(m, f) != NULL) TEST_FAIL_("several %s fields", name);
    return f->value;
}

static struct cp_limits lim_default(void)
{
    struct cp_limits l;
    cp_limits_default(&l);
    return l;
}

/* ================================================================================================ */
/* Status codes                                                                                      */

static void test_status_classes(void)
{
    /* RFC 9110 s15.1: exactly these are heuristically cacheable. */
    static const int heuristic[] = {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501};
    for (int s = 100; s < 600; s++) {
        int want = 0;
        for (size_t i = 0; i < sizeof(heuristic) / sizeof(heuristic[0]); i++)
            want |= heuristic[i] == s;
        if (cp_status_heuristic(s) != want)
            TEST_FAIL_("RFC 9110 s15.1: status %d heuristic %d, want %d", s, cp_status_heuristic(s), want);
    }
    /* s3 / s5.2.2.3: we understand the RFC 9110 final codes except 206 and 304. */
    ASSERT(cp_status_understood(200));
    ASSERT(cp_status_understood(404));
    ASSERT(cp_status_understood(308));
    ASSERT(cp_status_understood(503));
    ASSERT(!cp_status_understood(206));
    ASSERT(!cp_status_understood(304));
    ASSERT(!cp_status_understood(100));
    ASSERT(!cp_status_understood(299));
    ASSERT(!cp_status_understood(418));
    ASSERT(!cp_status_understood(599));

    struct cp_limits l = lim_default();
    ASSERT_EQ(l.heuristic_percent, 10);
    ASSERT_EQ(l.heuristic_max, 86400);
    ASSERT_EQ(l.stale_if_error_default, 0);
}

/* ================================================================================================ */
/* s3 storing                                                                                        */

struct store_row {
    const char *name;
    const char *method;
    const char *req;
    int status;
    const char *resp;
    unsigned flags;
    enum cp_store_verdict want;
};

static const struct store_row store_rows[] = {
    {"s3 GET 200 with max-age", "GET", "", 200, "Cache-Control: max-age=60", 0, CP_STORE_OK},
    {"s3 heuristically cacheable 200 without explicit freshness", "GET", "", 200, "", 0, CP_STORE_OK},
    {"s3 heuristically cacheable 404", "GET", "", 404, "", 0, CP_STORE_OK},
    {"s3 heuristically cacheable 301", "GET", "", 301, "Location: /x", 0, CP_STORE_OK},
    {"s3 heuristically cacheable 501", "GET", "", 501, "", 0, CP_STORE_OK},
    {"s3 302 without explicit freshness is not storable", "GET", "", 302, "", 0, CP_NS_NOT_CACHEABLE},
    {"s3 302 with Expires", "GET", "", 302, "Date: @0\nExpires: @60", 0, CP_STORE_OK},
    {"s3 307 with s-maxage (shared cache)", "GET", "", 307, "Cache-Control: s-maxage=60", 0, CP_STORE_OK},
    {"s3 500 is not heuristically cacheable", "GET", "", 500, "", 0, CP_NS_NOT_CACHEABLE},
    {"s3 500 with max-age is storable", "GET", "", 500, "Cache-Control: max-age=5", 0, CP_STORE_OK},
    {"s5.2.2.9 public makes an otherwise uncacheable status storable", "GET", "", 403, "Cache-Control: public", 0, CP_STORE_OK},
    {"s5.3 an invalid Expires still counts (stale, revalidatable)", "GET", "", 302, "Expires: 0", 0, CP_STORE_OK},
    {"s5.2.2.1 an invalid max-age still counts", "GET", "", 302, "Cache-Control: max-age=x", 0, CP_STORE_OK},
    {"s5.2.3 an unknown extension does not make a response storable", "GET", "", 302, "Cache-Control: community=\"UCI\"", 0,
     CP_NS_NOT_CACHEABLE},
    {"s5.2.2.8 proxy-revalidate alone does not imply cacheable", "GET", "", 302, "Cache-Control: proxy-revalidate", 0,
     CP_NS_NOT_CACHEABLE},
    {"s3 stale-while-revalidate alone does not make it storable", "GET", "", 302, "Cache-Control: stale-while-revalidate=60", 0,
     CP_NS_NOT_CACHEABLE},
    {"s7.3 Set-Cookie does not inhibit storing", "GET", "", 200, "Cache-Control: max-age=60\nSet-Cookie: a=b", 0, CP_STORE_OK},
    /* method */
    {"s3 POST responses are not stored", "POST", "", 200, "Cache-Control: max-age=60", 0, CP_NS_METHOD},
    {"s4.3.5 HEAD responses are not stored as GET objects", "HEAD", "", 200, "Cache-Control: max-age=60", 0, CP_NS_METHOD},
    {"s3 unknown methods are not understood", "PURGE", "", 200, "Cache-Control: max-age=60", 0, CP_NS_METHOD},
    /* status */
    {"s3 1xx is not final", "GET", "", 103, "Cache-Control: max-age=60", 0, CP_NS_NOT_FINAL},
    {"RFC 9110 s15 status above 599 is invalid", "GET", "", 600, "Cache-Control: max-age=60", 0, CP_NS_NOT_FINAL},
    {"s3.3 206 is never stored as an object", "GET", "Range: bytes=0-1", 206, "Cache-Control: max-age=60", 0, CP_NS_PARTIAL},
    {"s4.3.4 304 updates instead of being stored", "GET", "", 304, "Cache-Control: max-age=60", 0, CP_NS_NOT_MODIFIED},
    /* no-store, must-understand */
    {"s5.2.2.5 response no-store", "GET", "", 200, "Cache-Control: max-age=60, no-store", 0, CP_NS_NO_STORE},
    {"s5.2.2.5 no-store is case-insensitive and wins over public", "GET", "", 200, "Cache-Control: public, NO-STORE", 0,
     CP_NS_NO_STORE},
    {"s5.2.2.3 must-understand with an understood status overrides no-store", "GET", "", 200,
     "Cache-Control: must-understand, no-store, max-age=60", 0, CP_STORE_OK},
    {"s5.2.2.3 must-understand with an unknown status", "GET", "", 299, "Cache-Control: must-understand, no-store", 0,
     CP_NS_MUST_UNDERSTAND},
    {"s5.2.2.3 must-understand with an unknown status even without no-store", "GET", "", 418,
     "Cache-Control: must-understand, max-age=60", 0, CP_NS_MUST_UNDERSTAND},
    {"s5.2.2.3 must-understand with 404 (understood, heuristic)", "GET", "", 404, "Cache-Control: must-understand", 0, CP_STORE_OK},
    {"s5.2.1.5 request no-store", "GET", "Cache-Control: no-store", 200, "Cache-Control: max-age=60", 0, CP_NS_NO_STORE_REQ},
    {"s5.4 Pragma: no-cache does not forbid storing", "GET", "Pragma: no-cache", 200, "Cache-Control: max-age=60", 0, CP_STORE_OK},
    /* private */
    {"s5.2.2.7 unqualified private: shared cache MUST NOT store", "GET", "", 200, "Cache-Control: private, max-age=60", 0,
     CP_NS_PRIVATE},
    {"s5.2.2.7 qualified private: storable without the fields", "GET", "", 200, "Cache-Control: private=\"Set-Cookie\", max-age=60",
     0, CP_STORE_OK},
    /* Authorization */
    {"s3.5 Authorization without an allowing directive", "GET", "Authorization: Basic x", 200, "Cache-Control: max-age=60", 0,
     CP_NS_AUTHORIZATION},
    {"s3.5 Authorization, heuristic response", "GET", "Authorization: Basic x", 200, "", 0, CP_NS_AUTHORIZATION},
    {"s3.5 Authorization with public", "GET", "Authorization: Basic x", 200, "Cache-Control: public", 0, CP_STORE_OK},
    {"s3.5 Authorization with s-maxage", "GET", "Authorization: Basic x", 200, "Cache-Control: s-maxage=60", 0, CP_STORE_OK},
    {"s3.5 Authorization with must-revalidate", "GET", "Authorization: Basic x", 200, "Cache-Control: must-revalidate, max-age=60",
     0, CP_STORE_OK},
    /* Vary, completeness */
    {"s4.1 Vary: * can never be selected", "GET", "", 200, "Cache-Control: max-age=60\nVary: Accept, *", 0, CP_NS_VARY_STAR},
    {"s4.1 ordinary Vary is storable", "GET", "", 200, "Cache-Control: max-age=60\nVary: Accept", 0, CP_STORE_OK},
    {"s3.3 incomplete body is not stored", "GET", "", 200, "Cache-Control: max-age=60", CP_STORE_INCOMPLETE, CP_NS_INCOMPLETE},
};

static void test_storable_table(void)
{
    for (size_t i = 0; i < sizeof(store_rows) / sizeof(store_rows[0]); i++) {
        const struct store_row *r = &store_rows[i];
        arena_reset(&A);
        enum cp_store_verdict v = cp_storable(req(r->method, r->req), resp(r->status, r->resp), r->flags);
        if (v != r->want) TEST_FAIL_("row \"%s\": %s, want %s", r->name, cp_store_reason(v), cp_store_reason(r->want));
    }
}

static void test_store_reasons(void)
{
    for (int v = CP_STORE_OK; v <= CP_NS_NOT_CACHEABLE; v++) {
        const char *s = cp_store_reason((enum cp_store_verdict)v);
        ASSERT(s != NULL && strlen(s) > 0);
        if (v != CP_STORE_OK) ASSERT(strstr(s, "(s") != NULL); /* every refusal cites its section */
    }
    ASSERT_STR_EQ(cp_store_reason((enum cp_store_verdict)999), "unknown");
}

static void test_prepare_for_storage(void)
{
    arena_reset(&A);
    /* s3.1: hop-by-hop, Connection-named, proxy-specific and private="..." fields are not stored;
     * RFC 9110 s6.6.1: a Date is added. */
    struct http_msg *m = resp(200, "Connection: close, X-Hop\n"
                                   "X-Hop: 1\n"
                                   "Keep-Alive: timeout=5\n"
                                   "Transfer-Encoding: chunked\n"
                                   "Trailer: X-Sum\n"
                                   "Upgrade: h2c\n"
                                   "Proxy-Connection: keep-alive\n"
                                   "Proxy-Authenticate: Basic\n"
                                   "Proxy-Authentication-Info: x\n"
                                   "TE: trailers\n"
                                   "Cache-Control: private=\"Set-Cookie, X-User\", max-age=60\n"
                                   "Set-Cookie: id=1\n"
                                   "x-user: bob\n"
                                   "ETag: \"v1\"\n"
                                   "Content-Type: text/plain");
    ASSERT_EQ(cp_prepare_for_storage(m, T0 + 5, &A), 0);
    static const char *const gone[] = {"Connection",
                                       "X-Hop",
                                       "Keep-Alive",
                                       "Transfer-Encoding",
                                       "Trailer",
                                       "Upgrade",
                                       "Proxy-Connection",
                                       "Proxy-Authenticate",
                                       "Proxy-Authentication-Info",
                                       "TE",
                                       "Set-Cookie",
                                       "X-User"};
    for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
        if (http_msg_find(m, gone[i]) != NULL) TEST_FAIL_("s3.1: %s was kept", gone[i]);
    ASSERT_STR_EQ(field(m, "ETag"), "\"v1\"");
    ASSERT_STR_EQ(field(m, "Content-Type"), "text/plain");
    ASSERT(field(m, "Cache-Control") != NULL);
    char want[HTTP_DATE_BUFSZ];
    http_date_format(T0 + 5, want);
    ASSERT_STR_EQ(field(m, "Date"), want);

    /* Connection names are gathered once per message: several Connection lines, and more names than
     * the gathered list holds (the rest is found by scanning), all count. */
    m = resp(200, "Connection: a1, a2, a3\n"
                  "Connection: a4, a5, a6, a7, X-Early\n"
                  "Connection: a9, a10, X-Late\n"
                  "X-Early: 1\n"
                  "X-Late: 2\n"
                  "X-Kept: 3");
    ASSERT_EQ(cp_prepare_for_storage(m, T0, &A), 0);
    ASSERT(field(m, "X-Early") == NULL);
    ASSERT(field(m, "X-Late") == NULL);
    ASSERT_STR_EQ(field(m, "X-Kept"), "3");

    /* An existing valid Date is kept; an invalid one is replaced (RFC 9110 s6.6.1 MAY). */
    m = resp(200, "Date: @-10");
    ASSERT_EQ(cp_prepare_for_storage(m, T0, &A), 0);
    http_date_format(T0 - 10, want);
    ASSERT_STR_EQ(field(m, "Date"), want);
    m = resp(200, "Date: yesterday");
    ASSERT_EQ(cp_prepare_for_storage(m, T0, &A), 0);
    http_date_format(T0, want);
    ASSERT_STR_EQ(field(m, "Date"), want);
}

/* ================================================================================================ */
/* s4.2.1 / s4.2.2 freshness lifetime                                                                */

struct fresh_row {
    const char *name;
    int status;
    const char *resp;
    int64_t response_time; /* relative to T0 */
    int64_t lifetime;
    enum cp_fresh_source source;
};

static const struct fresh_row fresh_rows[] = {
    {"s4.2.1 s-maxage beats max-age (shared cache)", 200, "Cache-Control: max-age=60, s-maxage=120", 0, 120, CP_FRESH_S_MAXAGE},
    {"s4.2.1 s-maxage beats max-age even when smaller", 200, "Cache-Control: s-maxage=0, max-age=600", 0, 0, CP_FRESH_S_MAXAGE},
    {"s5.3 s-maxage makes a shared cache ignore Expires", 200, "Cache-Control: s-maxage=10\nDate: @0\nExpires: @3600", 0, 10,
     CP_FRESH_S_MAXAGE},
    {"s4.2.1 max-age beats Expires", 200, "Cache-Control: max-age=60\nDate: @0\nExpires: @3600", 0, 60, CP_FRESH_MAX_AGE},
    {"s5.3 max-age makes Expires \"0\" irrelevant", 200, "Cache-Control: max-age=60\nExpires: 0", 0, 60, CP_FRESH_MAX_AGE},
    {"s4.2.1 Expires minus Date", 200, "Date: @0\nExpires: @3600", 0, 3600, CP_FRESH_EXPIRES},
    {"s4.2.1 Expires minus Date, independent of response_time (no clock skew)", 200, "Date: @-500\nExpires: @100", 9999, 600,
     CP_FRESH_EXPIRES},
    {"s4.2.1 Expires without Date: minus the time received", 200, "Expires: @3600", 100, 3500, CP_FRESH_EXPIRES},
    {"RFC 9110 s6.6.1 invalid Date: the time received is used", 200, "Date: garbage\nExpires: @3600", 600, 3000, CP_FRESH_EXPIRES},
    {"s4.2.1 Expires before Date: already stale", 200, "Date: @0\nExpires: @-60", 0, 0, CP_FRESH_EXPIRES},
    {"s4.2.1 Expires in another obsolete format", 200,
     "Date: Sun, 06 Nov 1994 08:49:37 GMT\n"
     "Expires: Sun Nov  6 09:49:37 1994",
     0, 3600, CP_FRESH_EXPIRES},
    {"s5.3 Expires \"0\" means already expired", 200, "Date: @0\nExpires: 0", 0, 0, CP_FRESH_INVALID},
    {"s5.3 invalid Expires blocks heuristics too", 200, "Date: @0\nExpires: soon\nLast-Modified: @-100000", 0, 0, CP_FRESH_INVALID},
    {"s4.2.1 two different Expires lines: stale", 200, "Date: @0\nExpires: @60\nExpires: @120", 0, 0, CP_FRESH_INVALID},
    {"s4.2.1 two equal Expires lines are fine", 200, "Date: @0\nExpires: @60\nExpires: @60", 0, 60, CP_FRESH_EXPIRES},
    {"s4.2.1 non-integer max-age: stale", 200, "Cache-Control: max-age=1h\nDate: @0\nExpires: @3600", 0, 0, CP_FRESH_INVALID},
    {"s4.2.1 conflicting max-age: stale", 200, "Cache-Control: max-age=60, max-age=120", 0, 0, CP_FRESH_INVALID},
    {"s4.2.1 invalid s-maxage: stale, max-age not consulted", 200, "Cache-Control: s-maxage=x, max-age=60", 0, 0, CP_FRESH_INVALID},
    {"s1.3 huge max-age is capped at 2^31", 200, "Cache-Control: max-age=99999999999999", 0, HTTP_DELTA_MAX, CP_FRESH_MAX_AGE},
    {"s1.3 Expires far in the future is capped at 2^31", 200, "Date: @0\nExpires: Fri, 31 Dec 9999 23:59:59 GMT", 0, HTTP_DELTA_MAX,
     CP_FRESH_EXPIRES},
    {"s4.2.1 max-age=0", 200, "Cache-Control: max-age=0", 0, 0, CP_FRESH_MAX_AGE},
    /* s4.2.2 heuristics */
    {"s4.2.2 heuristic: 10% of Date - Last-Modified", 200, "Date: @0\nLast-Modified: @-10000", 0, 1000, CP_FRESH_HEURISTIC},
    {"s4.2.2 heuristic without Date uses response_time", 200, "Last-Modified: @-10000", 10000, 2000, CP_FRESH_HEURISTIC},
    {"s4.2.2 heuristic is capped (24 h by default)", 200, "Date: @0\nLast-Modified: @-100000000", 0, 86400, CP_FRESH_HEURISTIC},
    {"s4.2.2 heuristic for 404", 404, "Date: @0\nLast-Modified: @-10000", 0, 1000, CP_FRESH_HEURISTIC},
    {"s4.2.2 no heuristic for a status that is not heuristically cacheable", 302, "Date: @0\nLast-Modified: @-10000", 0, 0,
     CP_FRESH_NONE},
    {"s4.2.2 public makes a response heuristically cacheable", 302, "Cache-Control: public\nDate: @0\nLast-Modified: @-10000", 0,
     1000, CP_FRESH_HEURISTIC},
    {"s4.2.2 no Last-Modified: no heuristic", 200, "Date: @0", 0, 0, CP_FRESH_NONE},
    {"s4.2.2 invalid Last-Modified: no heuristic", 200, "Date: @0\nLast-Modified: never", 0, 0, CP_FRESH_NONE},
    {"RFC 9110 s8.8.2.1 Last-Modified after Date: no heuristic", 200, "Date: @0\nLast-Modified: @10", 0, 0, CP_FRESH_NONE},
    {"s4.2.2 Last-Modified equal to Date: no heuristic", 200, "Date: @0\nLast-Modified: @0", 0, 0, CP_FRESH_NONE},
    {"s4.2.2 explicit expiry forbids heuristics", 200, "Cache-Control: max-age=5\nDate: @0\nLast-Modified: @-10000", 0, 5,
     CP_FRESH_MAX_AGE},
    {"s4.2.2 heuristic rounds down", 200, "Date: @0\nLast-Modified: @-19", 0, 1, CP_FRESH_HEURISTIC},
};

static void test_freshness_table(void)
{
    struct cp_limits lim = lim_default();
    for (size_t i = 0; i < sizeof(fresh_rows) / sizeof(fresh_rows[0]); i++) {
        const struct fresh_row *r = &fresh_rows[i];
        arena_reset(&A);
        enum cp_fresh_source src = (enum cp_fresh_source) - 1;
        int64_t lt = cp_freshness_lifetime(resp(r->status, r->resp), T0 + r->response_time, &lim, &src);
        if (lt != r->lifetime || src != r->source)
            TEST_FAIL_("row \"%s\": lifetime %jd source %d, want %jd %d", r->name, (intmax_t)lt, src, (intmax_t)r->lifetime,
                       r->source);
    }
}

static void test_freshness_limits(void)
{
    arena_reset(&A);
    struct http_msg *m = resp(200, "Date: @0\nLast-Modified: @-10000");
    struct cp_limits lim = lim_default();
    lim.heuristic_percent = 0; /* heuristics disabled */
    ASSERT_EQ(cp_freshness_lifetime(m, T0, &lim, NULL), 0);
    lim.heuristic_percent = 50;
    ASSERT_EQ(cp_freshness_lifetime(m, T0, &lim, NULL), 5000);
    lim.heuristic_max = 300;
    ASSERT_EQ(cp_freshness_lifetime(m, T0, &lim, NULL), 300);
}

/* ================================================================================================ */
/* s4.2.3 age                                                                                         */

struct age_row {
    const char *name;
    int64_t age_value, date_value, request_time, response_time, now, want;
};

static const struct age_row age_rows[] = {
    {"s4.2.3 resident time only", 0, T0, T0, T0, T0 + 10, 10},
    {"s4.2.3 apparent_age = response_time - date_value", 0, T0 - 5, T0, T0, T0, 5},
    {"s4.2.3 corrected_age_value = age_value + response_delay", 100, T0, T0 - 2, T0, T0, 102},
    {"s4.2.3 corrected_initial_age = max(apparent, corrected): apparent wins", 1, T0 - 50, T0, T0, T0, 50},
    {"s4.2.3 corrected_initial_age = max(apparent, corrected): corrected wins", 60, T0 - 50, T0 - 1, T0, T0, 61},
    {"s4.2.3 all terms", 30, T0 - 10, T0 - 3, T0, T0 + 100, 133},
    {"s4.2.3 apparent_age is never negative (origin clock ahead)", 0, T0 + 100, T0, T0, T0 + 5, 5},
    {"s4.2.3 clock stepping back: resident time floored at 0", 0, T0, T0, T0, T0 - 100, 0},
    {"s4.2.3 clock stepping back: response_delay floored at 0", 10, T0, T0 + 5, T0, T0, 10},
    {"s1.3 huge Age is capped at 2^31", INT64_C(1) << 40, T0, T0, T0, T0 + 10, HTTP_DELTA_MAX},
    {"s1.3 overflowing sum is capped at 2^31", HTTP_DELTA_MAX, T0, T0 - HTTP_DELTA_MAX, T0, T0 + HTTP_DELTA_MAX, HTTP_DELTA_MAX},
    {"s1.3 extreme inputs never go negative", INT64_MAX, INT64_MIN, INT64_MIN, INT64_MAX, INT64_MAX, HTTP_DELTA_MAX},
};

static void test_age_formula_table(void)
{
    for (size_t i = 0; i < sizeof(age_rows) / sizeof(age_rows[0]); i++) {
        const struct age_row *r = &age_rows[i];
        int64_t got = cp_age_formula(r->age_value, r->date_value, r->request_time, r->response_time, r->now);
        if (got != r->want) TEST_FAIL_("row \"%s\": %jd, want %jd", r->name, (intmax_t)got, (intmax_t)r->want);
    }
}

static void test_current_age_from_fields(void)
{
    arena_reset(&A);
    /* s4.2.3 on a message: Age and Date are read from the fields */
    ASSERT_EQ(cp_current_age(resp(200, "Age: 30\nDate: @-10"), T0 - 3, T0, T0 + 100), 133);
    /* RFC 9110 s6.6.1: no Date: date_value = response_time */
    ASSERT_EQ(cp_current_age(resp(200, "Age: 30"), T0 - 3, T0, T0 + 100), 133);
    ASSERT_EQ(cp_current_age(resp(200, ""), T0, T0, T0 + 7), 7);
    /* s5.1: the first Age line is used */
    ASSERT_EQ(cp_current_age(resp(200, "Age: 30\nAge: 1000\nDate: @0"), T0, T0, T0), 30);
    /* s4.2.3: age_value is 0 when not available (cp_decide() treats an invalid Age as stale) */
    ASSERT_EQ(cp_current_age(resp(200, "Age: x\nDate: @0"), T0, T0, T0 + 1), 1);
}

/* ================================================================================================ */
/* s4 cp_decide                                                                                      */

#define NOTHING NULL /* "nothing stored" */

struct decide_row {
    const char *name;
    const char *method;
    const char *req;
    const char *stored; /* stored response fields (status 200), or NOTHING */
    int64_t now;        /* relative to T0; the stored response was requested at T0-1, received at T0 */
    enum cp_action action;
    unsigned flags;    /* exact flags, CP_F_HEURISTIC excluded */
    int64_t sie_until; /* relative to T0, checked when CP_F_STALE_IF_ERROR */
};

#define MA100 "Date: @0\nCache-Control: max-age=100"

static const struct decide_row decide_rows[] = {
    {"s4 nothing stored: MISS", "GET", "", NOTHING, 0, CP_MISS, 0, 0},
    {"s4 unsafe method is written through: PASS", "POST", "", MA100, 10, CP_PASS, 0, 0},
    {"s4 other methods are not served from cache: PASS", "OPTIONS", "", MA100, 10, CP_PASS, 0, 0},
    {"s4 PUT even with nothing stored: PASS", "PUT", "", NOTHING, 0, CP_PASS, 0, 0},
    {"s4.2 fresh: HIT", "GET", "", MA100, 50, CP_HIT, 0, 0},
    {"s4 HEAD is answered from a stored GET response", "HEAD", "", MA100, 50, CP_HIT, 0, 0},
    /* age = 1 (response_delay) + resident time, so at T0+99 the age is 100 */
    {"s4.2 age one below lifetime: fresh", "GET", "", MA100, 98, CP_HIT, 0, 0},
    {"s4.2 age equal to lifetime is stale", "GET", "", MA100, 99, CP_REVALIDATE, 0, 0},
    {"s4.2 stale: REVALIDATE", "GET", "", MA100, 150, CP_REVALIDATE, 0, 0},
    {"s4.2.1 s-maxage beats max-age for the decision", "GET", "", "Date: @0\nCache-Control: max-age=1000, s-maxage=10", 50,
     CP_REVALIDATE, 0, 0},
    {"s5.3 Expires in the past: REVALIDATE", "GET", "", "Date: @0\nExpires: @-1", 0, CP_REVALIDATE, 0, 0},
    {"s5.3 invalid Expires: REVALIDATE", "GET", "", "Date: @0\nExpires: 0", 0, CP_REVALIDATE, 0, 0},
    {"s4.2.1 Expires in the future: HIT", "GET", "", "Date: @0\nExpires: @60", 30, CP_HIT, 0, 0},
    {"s5.1 Age adds to the age", "GET", "", "Date: @0\nAge: 60\nCache-Control: max-age=100", 50, CP_REVALIDATE, 0, 0},
    {"s5.1 Age below the margin: still fresh", "GET", "", "Date: @0\nAge: 40\nCache-Control: max-age=100", 50, CP_HIT, 0, 0},
    {"s5.1 invalid Age: stale", "GET", "", "Date: @0\nAge: young\nCache-Control: max-age=100", 1, CP_REVALIDATE, 0, 0},
    {"s4.2.2 heuristic freshness: HIT", "GET", "", "Date: @0\nLast-Modified: @-10000", 500, CP_HIT, 0, 0},
    {"s4.2.2 heuristic freshness expired: REVALIDATE", "GET", "", "Date: @0\nLast-Modified: @-10000", 1000, CP_REVALIDATE, 0, 0},
    {"s4.2.2 no freshness information at all: REVALIDATE", "GET", "", "Date: @0", 0, CP_REVALIDATE, 0, 0},
    /* response no-cache */
    {"s5.2.2.4 response no-cache: validate even when fresh", "GET", "", "Date: @0\nCache-Control: max-age=100, no-cache", 1,
     CP_REVALIDATE, 0, 0},
    {"s5.2.2.4 response no-cache beats request max-stale", "GET", "Cache-Control: max-stale", "Date: @0\nCache-Control: no-cache",
     1, CP_REVALIDATE, 0, 0},
    {"s5.2.2.4 qualified no-cache: HIT without the fields", "GET", "",
     "Date: @0\nCache-Control: max-age=100, no-cache=\"Set-Cookie\"", 1, CP_HIT, CP_F_STRIP, 0},
    {"s5.2.2.4 qualified no-cache does not apply to a revalidation", "GET", "",
     "Date: @0\nCache-Control: max-age=100, no-cache=\"Set-Cookie\"", 200, CP_REVALIDATE, 0, 0},
    /* request directives */
    {"s5.2.1.4 request no-cache: REVALIDATE", "GET", "Cache-Control: no-cache", MA100, 1, CP_REVALIDATE, CP_F_STALE_IF_ERROR, 99},
    {"s5.4 request Pragma: no-cache without Cache-Control: REVALIDATE", "GET", "Pragma: no-cache", MA100, 1, CP_REVALIDATE,
     CP_F_STALE_IF_ERROR, 99},
    {"s5.4 request Pragma ignored when Cache-Control is present", "GET", "Pragma: no-cache\nCache-Control: max-stale=0", MA100, 1,
     CP_HIT, 0, 0},
    {"s5.2.1.1 request max-age=0: REVALIDATE", "GET", "Cache-Control: max-age=0", MA100, 1, CP_REVALIDATE, CP_F_STALE_IF_ERROR, 99},
    {"s5.2.1.1 request max-age not exceeded: HIT", "GET", "Cache-Control: max-age=60", MA100, 50, CP_HIT, 0, 0},
    {"s5.2.1.1 request max-age exceeded: REVALIDATE", "GET", "Cache-Control: max-age=30", MA100, 50, CP_REVALIDATE,
     CP_F_STALE_IF_ERROR, 99},
    {"s5.2.1.1 request max-age equal to the age: HIT", "GET", "Cache-Control: max-age=51", MA100, 50, CP_HIT, 0, 0},
    {"s5.2.1.1 invalid request max-age reads as 0", "GET", "Cache-Control: max-age=soon", MA100, 1, CP_REVALIDATE,
     CP_F_STALE_IF_ERROR, 99},
    {"s5.2.1.3 min-fresh not met: REVALIDATE", "GET", "Cache-Control: min-fresh=60", MA100, 50, CP_REVALIDATE, CP_F_STALE_IF_ERROR,
     99},
    {"s5.2.1.3 min-fresh met: HIT", "GET", "Cache-Control: min-fresh=40", MA100, 50, CP_HIT, 0, 0},
    {"s5.2.1.3 min-fresh exactly met: HIT", "GET", "Cache-Control: min-fresh=49", MA100, 50, CP_HIT, 0, 0},
    {"s5.2.1.3 invalid min-fresh is ignored", "GET", "Cache-Control: min-fresh=x", MA100, 50, CP_HIT, 0, 0},
    {"s5.2.1.2 max-stale allows a stale response", "GET", "Cache-Control: max-stale=60", MA100, 150, CP_HIT, CP_F_STALE, 0},
    {"s5.2.1.2 max-stale exceeded: REVALIDATE", "GET", "Cache-Control: max-stale=50", MA100, 150, CP_REVALIDATE, 0, 0},
    {"s5.2.1.2 max-stale without a value: any staleness", "GET", "Cache-Control: max-stale", MA100, 1000000, CP_HIT, CP_F_STALE, 0},
    {"s5.2.1.2 invalid max-stale is ignored", "GET", "Cache-Control: max-stale=x", MA100, 150, CP_REVALIDATE, 0, 0},
    {"s5.2.1.2 max-stale on a fresh response is an ordinary HIT", "GET", "Cache-Control: max-stale=60", MA100, 10, CP_HIT, 0, 0},
    {"s5.2.1.1 request max-age still binds with max-stale", "GET", "Cache-Control: max-age=100, max-stale=1000", MA100, 150,
     CP_REVALIDATE, 0, 0},
    /* must-revalidate & co. (s4.2.4) */
    {"s5.2.2.2 must-revalidate forbids max-stale", "GET", "Cache-Control: max-stale",
     "Date: @0\nCache-Control: max-age=100, must-revalidate", 150, CP_REVALIDATE, 0, 0},
    {"s5.2.2.2 must-revalidate does not affect a fresh response", "GET", "",
     "Date: @0\nCache-Control: max-age=100, must-revalidate", 50, CP_HIT, 0, 0},
    {"s5.2.2.8 proxy-revalidate forbids max-stale in a shared cache", "GET", "Cache-Control: max-stale",
     "Date: @0\nCache-Control: max-age=100, proxy-revalidate", 150, CP_REVALIDATE, 0, 0},
    {"s5.2.2.10 s-maxage forbids serving stale in a shared cache", "GET", "Cache-Control: max-stale",
     "Date: @0\nCache-Control: s-maxage=100", 150, CP_REVALIDATE, 0, 0},
    /* RFC 5861 */
    {"RFC 5861 s3 stale-while-revalidate window", "GET", "", "Date: @0\nCache-Control: max-age=100, stale-while-revalidate=60", 150,
     CP_REVALIDATE, CP_F_SWR, 0},
    {"RFC 5861 s3 stale-while-revalidate window passed", "GET", "",
     "Date: @0\nCache-Control: max-age=100, stale-while-revalidate=60", 200, CP_REVALIDATE, 0, 0},
    {"RFC 5861 s3 stale-while-revalidate on a fresh response changes nothing", "GET", "",
     "Date: @0\nCache-Control: max-age=100, stale-while-revalidate=60", 10, CP_HIT, 0, 0},
    {"s4.2.4 must-revalidate cancels stale-while-revalidate", "GET", "",
     "Date: @0\nCache-Control: max-age=100, stale-while-revalidate=60, must-revalidate", 150, CP_REVALIDATE, 0, 0},
    {"s5.2.2.4 no-cache cancels stale-while-revalidate", "GET", "",
     "Date: @0\nCache-Control: max-age=100, stale-while-revalidate=60, no-cache", 150, CP_REVALIDATE, 0, 0},
    {"RFC 5861 s4 stale-if-error window (response)", "GET", "", "Date: @0\nCache-Control: max-age=100, stale-if-error=300", 150,
     CP_REVALIDATE, CP_F_STALE_IF_ERROR, 150 + 249},
    {"RFC 5861 s4 stale-if-error window passed", "GET", "", "Date: @0\nCache-Control: max-age=100, stale-if-error=300", 500,
     CP_REVALIDATE, 0, 0},
    {"RFC 5861 s4 stale-if-error in the request", "GET", "Cache-Control: stale-if-error=100", MA100, 150, CP_REVALIDATE,
     CP_F_STALE_IF_ERROR, 150 + 49},
    {"RFC 5861 s4 the larger of request and response allowances", "GET", "Cache-Control: stale-if-error=100",
     "Date: @0\nCache-Control: max-age=100, stale-if-error=10", 150, CP_REVALIDATE, CP_F_STALE_IF_ERROR, 150 + 49},
    {"RFC 5861 s4 fresh response revalidated on request: usable on error until expiry", "GET", "Cache-Control: no-cache", MA100, 50,
     CP_REVALIDATE, CP_F_STALE_IF_ERROR, 99},
    {"s4.2.4 must-revalidate cancels stale-if-error", "GET", "",
     "Date: @0\nCache-Control: max-age=100, stale-if-error=300, must-revalidate", 150, CP_REVALIDATE, 0, 0},
    {"s5.2.2.4 no-cache cancels stale-if-error even when fresh", "GET", "",
     "Date: @0\nCache-Control: max-age=100, stale-if-error=300, no-cache", 10, CP_REVALIDATE, 0, 0},
    /* only-if-cached */
    {"s5.2.1.7 only-if-cached, fresh: HIT", "GET", "Cache-Control: only-if-cached", MA100, 50, CP_HIT, 0, 0},
    {"s5.2.1.7 only-if-cached, nothing stored: 504", "GET", "Cache-Control: only-if-cached", NOTHING, 0, CP_MISS,
     CP_F_ONLY_IF_CACHED, 0},
    {"s5.2.1.7 only-if-cached, stale: 504", "GET", "Cache-Control: only-if-cached", MA100, 150, CP_REVALIDATE, CP_F_ONLY_IF_CACHED,
     0},
    {"s5.2.1.7 only-if-cached with max-stale: stale HIT", "GET", "Cache-Control: only-if-cached, max-stale", MA100, 150, CP_HIT,
     CP_F_STALE, 0},
    {"s5.2.1.7 only-if-cached with stale-while-revalidate: stale HIT", "GET", "Cache-Control: only-if-cached",
     "Date: @0\nCache-Control: max-age=100, stale-while-revalidate=60", 150, CP_HIT, CP_F_STALE, 0},
    {"s5.2.2.2 only-if-cached with must-revalidate, stale: 504", "GET", "Cache-Control: only-if-cached, max-stale",
     "Date: @0\nCache-Control: max-age=100, must-revalidate", 150, CP_REVALIDATE, CP_F_ONLY_IF_CACHED, 0},
    {"s5.2.1.7 only-if-cached with no-cache cannot be satisfied", "GET", "Cache-Control: only-if-cached, no-cache", MA100, 1,
     CP_REVALIDATE, CP_F_ONLY_IF_CACHED, 0},
    /* request no-store */
    {"s5.2.1.5 request no-store may still be served a stored response", "GET", "Cache-Control: no-store", MA100, 50, CP_HIT,
     CP_F_NO_STORE, 0},
    {"s5.2.1.5 request no-store, stale: PASS, no update", "GET", "Cache-Control: no-store", MA100, 150, CP_PASS, CP_F_NO_STORE, 0},
    {"s5.2.1.5 request no-store, nothing stored: PASS", "GET", "Cache-Control: no-store", NOTHING, 0, CP_PASS, CP_F_NO_STORE, 0},
    {"s5.2.1.5 request no-store keeps stale-if-error, drops stale-while-revalidate", "GET", "Cache-Control: no-store",
     "Date: @0\nCache-Control: max-age=100, stale-while-revalidate=60, stale-if-error=60", 150, CP_PASS,
     CP_F_NO_STORE | CP_F_STALE_IF_ERROR, 150 + 9},
    /* Vary */
    {"s4.1 Vary: * never matches: MISS", "GET", "", "Date: @0\nCache-Control: max-age=100\nVary: *", 1, CP_MISS, 0, 0},
};

static void run_decide_row_as(const struct decide_row *r, const struct cp_limits *lim, int summarized, struct cp_decision *d)
{
    arena_reset(&A);
    struct cp_stored st = {0};
    struct cp_resp_summary sum;
    if (r->stored != NOTHING) {
        st.resp = resp(200, r->stored);
        st.request_time = T0 - 1;
        st.response_time = T0;
        if (summarized) {
            cp_summarize(st.resp, st.response_time, lim, &sum);
            st.summary = &sum;
        }
    }
    cp_decide(req(r->method, r->req), r->stored != NOTHING ? &st : NULL, T0 + r->now, lim, d);
}

/* Every row is decided twice: with the summary computed inside cp_decide and with one the caller
 * computed beforehand (as the hot table does); the decisions must be identical. */
static void run_decide_row(const struct decide_row *r, const struct cp_limits *lim, struct cp_decision *d)
{
    struct cp_decision pre;
    run_decide_row_as(r, lim, 1, &pre);
    run_decide_row_as(r, lim, 0, d);
    if (pre.action != d->action || pre.flags != d->flags || pre.reason != d->reason || pre.age != d->age ||
        pre.lifetime != d->lifetime || pre.stale_if_error_until != d->stale_if_error_until ||
        pre.strip.n != d->strip.n)
        TEST_FAIL_("row \"%s\": a precomputed summary decides %s (%s), computed in place %s (%s)", r->name,
                   cp_action_name(pre.action), pre.reason ? pre.reason : "-", cp_action_name(d->action),
                   d->reason ? d->reason : "-");
}

static void test_decide_table(void)
{
    struct cp_limits lim = lim_default();
    for (size_t i = 0; i < sizeof(decide_rows) / sizeof(decide_rows[0]); i++) {
        const struct decide_row *r = &decide_rows[i];
        struct cp_decision d;
        run_decide_row(r, &lim, &d);
        unsigned flags = d.flags & ~(unsigned)CP_F_HEURISTIC;
        if (d.action != r->action || flags != r->flags)
            TEST_FAIL_("row \"%s\": %s flags %#x (%s), want %s %#x", r->name, cp_action_name(d.action), flags,
                       d.reason ? d.reason : "-", cp_action_name(r->action), r->flags);
        if (d.reason == NULL) TEST_FAIL_("row \"%s\": no reason", r->name);
        if ((flags & CP_F_STALE_IF_ERROR) && d.stale_if_error_until != T0 + r->sie_until)
            TEST_FAIL_("row \"%s\": stale_if_error_until T0%+jd, want T0%+jd", r->name, (intmax_t)(d.stale_if_error_until - T0),
                       (intmax_t)r->sie_until);
    }
}

/* s4.2 for a response offered outside cp_decide (single flight): reusable until its age reaches
 * its lifetime; never with no-cache; and a request with limits of its own is told so. */
static void test_reusable_until_and_request_limits(void)
{
    arena_reset(&A);
    struct cp_limits lim = lim_default();
    ASSERT_EQ(cp_reusable_until(resp(200, "Date: @0\nCache-Control: max-age=60"), T0, T0, T0, &lim), T0 + 60);
    ASSERT_EQ(cp_reusable_until(resp(200, "Date: @0\nCache-Control: max-age=60"), T0, T0, T0 + 10, &lim), T0 + 60);
    ASSERT_EQ(cp_reusable_until(resp(200, "Date: @0\nAge: 20\nCache-Control: max-age=60"), T0, T0, T0, &lim), T0 + 40);
    ASSERT_EQ(cp_reusable_until(resp(200, "Date: @0\nCache-Control: max-age=60"), T0, T0, T0 + 60, &lim), 0);
    ASSERT_EQ(cp_reusable_until(resp(200, "Date: @0\nCache-Control: max-age=0"), T0, T0, T0, &lim), 0);
    ASSERT_EQ(cp_reusable_until(resp(200, "Date: @0\nCache-Control: max-age=60, no-cache"), T0, T0, T0, &lim), 0);

    struct cp_decision d;
    static const char *const limiting[] = {"Cache-Control: no-cache", "Pragma: no-cache", "Cache-Control: max-age=5",
                                           "Cache-Control: min-fresh=5"};
    for (size_t i = 0; i < sizeof(limiting) / sizeof(limiting[0]); i++) {
        cp_decide(req("GET", limiting[i]), NULL, T0, &lim, &d);
        if (!d.request_limits_reuse) TEST_FAIL_("\"%s\" does not limit reuse", limiting[i]);
    }
    cp_decide(req("GET", "Cache-Control: max-stale=5, no-transform"), NULL, T0, &lim, &d);
    ASSERT_EQ(d.request_limits_reuse, 0);
    cp_decide(req("GET", ""), NULL, T0, &lim, &d);
    ASSERT_EQ(d.request_limits_reuse, 0);
}

static void test_decide_outputs(void)
{
    struct cp_limits lim = lim_default();
    struct cp_decision d;

    /* age and lifetime are reported; the heuristic flag says where the lifetime came from */
    const struct decide_row heuristic = {"s4.2.2", "GET", "", "Date: @0\nLast-Modified: @-10000", 500, CP_HIT, 0, 0};
    run_decide_row(&heuristic, &lim, &d);
    ASSERT_EQ(d.action, CP_HIT);
    ASSERT_EQ(d.age, 501);
    ASSERT_EQ(d.lifetime, 1000);
    ASSERT(d.flags & CP_F_HEURISTIC);

    /* s5.2.2.4: the list of fields to strip */
    const struct decide_row strip = {
        "s5.2.2.4", "GET", "", "Date: @0\nCache-Control: max-age=100, no-cache=\"Set-Cookie, X-Token\"", 1, CP_HIT, CP_F_STRIP, 0};
    run_decide_row(&strip, &lim, &d);
    ASSERT(d.flags & CP_F_STRIP);
    ASSERT(http_cc_list_has(&d.strip, "set-cookie", 10));
    ASSERT(http_cc_list_has(&d.strip, "X-Token", 7));
    ASSERT(!http_cc_list_has(&d.strip, "Date", 4));

    /* s4.2.4 by configuration: a disconnected cache may serve stale for stale_if_error_default seconds */
    const struct decide_row cfg = {"s4.2.4", "GET", "", MA100, 150, CP_REVALIDATE, 0, 0};
    lim.stale_if_error_default = 100;
    run_decide_row(&cfg, &lim, &d);
    ASSERT_EQ(d.flags, CP_F_STALE_IF_ERROR);
    ASSERT_EQ(d.stale_if_error_until, T0 + 150 + 49);
    const struct decide_row cfg_forbidden = {"s4.2.4", "GET",         "", "Date: @0\nCache-Control: max-age=100, proxy-revalidate",
                                             150,      CP_REVALIDATE, 0,  0};
    run_decide_row(&cfg_forbidden, &lim, &d);
    ASSERT_EQ(d.flags, 0);

    ASSERT_STR_EQ(cp_action_name(CP_HIT), "HIT");
    ASSERT_STR_EQ(cp_action_name(CP_MISS), "MISS");
    ASSERT_STR_EQ(cp_action_name(CP_REVALIDATE), "REVALIDATE");
    ASSERT_STR_EQ(cp_action_name(CP_PASS), "PASS");
}

static void test_decide_stored_state(void)
{
    struct cp_limits lim = lim_default();
    struct cp_decision d;
    arena_reset(&A);
    struct http_msg *stored = resp(200, "Date: @0\nCache-Control: max-age=100\nVary: Accept-Encoding");
    struct http_msg *orig = req("GET", "Accept-Encoding: gzip");
    const char *key;
    size_t key_len;
    ASSERT_EQ(cp_variant_key(stored, orig, &A, &key, &key_len), 0);
    struct cp_stored st = {stored, T0 - 1, T0, key, key_len, 0, NULL};

    /* s4.1: the selecting fields match: HIT */
    cp_decide(req("GET", "Accept-Encoding:  gzip "), &st, T0 + 10, &lim, &d);
    ASSERT_EQ(d.action, CP_HIT);
    /* s4.1: they do not: the stored response is not a candidate */
    cp_decide(req("GET", "Accept-Encoding: br"), &st, T0 + 10, &lim, &d);
    ASSERT_EQ(d.action, CP_MISS);
    cp_decide(req("GET", ""), &st, T0 + 10, &lim, &d);
    ASSERT_EQ(d.action, CP_MISS);
    /* s4.4: marked invalid: validate before reuse, even though fresh */
    st.invalidated = 1;
    cp_decide(req("GET", "Accept-Encoding: gzip"), &st, T0 + 10, &lim, &d);
    ASSERT_EQ(d.action, CP_REVALIDATE);
    ASSERT_EQ(d.flags & CP_F_STALE_IF_ERROR, 0); /* "mandatory validation": never served on error */
    /* a cp_stored without a response is "nothing stored" */
    struct cp_stored empty = {0};
    cp_decide(req("GET", ""), &empty, T0, &lim, &d);
    ASSERT_EQ(d.action, CP_MISS);
}

/* ================================================================================================ */
/* s4.1 variant keys                                                                                  */

struct vary_row {
    const char *name;
    const char *resp; /* response fields (Vary lines) */
    const char *req;  /* request fields */
    int rc;
    const char *key;
};

static const struct vary_row vary_rows[] = {
    {"s4.1 no Vary: empty key", "Cache-Control: max-age=1", "Accept: x", 0, ""},
    {"s4.1 one selecting field", "Vary: Accept-Encoding", "Accept-Encoding: gzip", 0, "accept-encoding:gzip\n"},
    {"s4.1 absent field only matches absent", "Vary: Accept-Encoding", "", 0, "accept-encoding!\n"},
    {"s4.1 empty field differs from absent", "Vary: Accept-Encoding", "Accept-Encoding: ", 0, "accept-encoding:\n"},
    {"s4.1 names lower-cased, sorted, de-duplicated", "Vary: User-Agent, accept-encoding\nVary: ACCEPT-ENCODING",
     "user-agent: UA/1\nAccept-Encoding: br", 0, "accept-encoding:br\nuser-agent:UA/1\n"},
    {"s4.1 field names in the request are case-insensitive", "Vary: accept", "ACCEPT: text/html", 0, "accept:text/html\n"},
    {"s4.1 several field lines combine", "Vary: Accept", "Accept: text/html\nAccept: application/json", 0,
     "accept:text/html,application/json\n"},
    {"s4.1 whitespace around commas removed", "Vary: Accept-Encoding", "Accept-Encoding:  gzip ,  deflate , br", 0,
     "accept-encoding:gzip,deflate,br\n"},
    {"s4.1 empty list members removed", "Vary: Accept-Encoding", "Accept-Encoding: gzip,,deflate,", 0,
     "accept-encoding:gzip,deflate\n"},
    {"s4.1 inner whitespace runs collapsed", "Vary: User-Agent", "User-Agent: A  \t B", 0, "user-agent:A B\n"},
    {"s4.1 whitespace inside quoted-strings kept", "Vary: X-Q", "X-Q: \"a  b\",  c", 0, "x-q:\"a  b\",c\n"},
    {"s4.1 values keep their case", "Vary: Accept-Language", "Accept-Language: en-GB", 0, "accept-language:en-GB\n"},
    {"s4.1 Vary: * fails to match", "Vary: Accept, *", "Accept: x", CP_VARY_STAR, NULL},
    {"s4.1 a Vary member that is not a token", "Vary: Accept Encoding", "", -EINVAL, NULL},
    {"s4.1 a control character in a selecting value", "Vary: X-A", "X-A: a\x01z", -EINVAL, NULL},
    {"s4.1 empty Vary elements ignored", "Vary: , Accept ,", "Accept: x", 0, "accept:x\n"},
};

static void test_variant_key_table(void)
{
    for (size_t i = 0; i < sizeof(vary_rows) / sizeof(vary_rows[0]); i++) {
        const struct vary_row *r = &vary_rows[i];
        arena_reset(&A);
        struct http_msg *rs = resp(200, r->resp), *rq = req("GET", r->req);
        const char *key = NULL;
        size_t len = 0;
        int rc = cp_variant_key(rs, rq, &A, &key, &len);
        if (rc != r->rc) TEST_FAIL_("row \"%s\": rc %d, want %d", r->name, rc, r->rc);
        if (rc == 0) {
            ASSERT_EQ(strlen(key), len);
            if (strcmp(key, r->key) != 0) TEST_FAIL_("row \"%s\": key \"%s\", want \"%s\"", r->name, key, r->key);
            /* the request that built the key always matches it */
            ASSERT_EQ(cp_vary_matches(rs, key, len, rq), 1);
        }
    }
}

static void test_variant_key_limits(void)
{
    arena_reset(&A);
    char vary[1024] = "Vary: ";
    for (int i = 0; i < CP_VARY_MAX_FIELDS; i++)
        snprintf(vary + strlen(vary), sizeof(vary) - strlen(vary), "%sX-%d", i ? ", " : "", i);
    const char *key;
    size_t len;
    ASSERT_EQ(cp_variant_key(resp(200, vary), req("GET", ""), &A, &key, &len), 0);
    snprintf(vary + strlen(vary), sizeof(vary) - strlen(vary), ", X-Extra");
    ASSERT_EQ(cp_variant_key(resp(200, vary), req("GET", ""), &A, &key, &len), -E2BIG);

    /* arena overflow is reported, not hidden */
    struct arena tiny;
    ASSERT_EQ(arena_init(&tiny, 64, 64), 0);
    ASSERT_EQ(cp_variant_key(resp(200, "Vary: Accept"),
                             req("GET", "Accept: a-very-long-value-that-does-not-fit-in-the-64-bytes-of-this-tiny-arena"), &tiny,
                             &key, &len),
              -ENOMEM);
    ASSERT(arena_overflowed(&tiny));
    arena_free(&tiny);
}

struct match_row {
    const char *name;
    const char *vary;
    const char *stored_req;
    const char *new_req;
    int match;
};

static const struct match_row match_rows[] = {
    {"s4.1 same value matches", "Vary: Accept-Encoding", "Accept-Encoding: gzip", "Accept-Encoding: gzip", 1},
    {"s4.1 different value does not match", "Vary: Accept-Encoding", "Accept-Encoding: gzip", "Accept-Encoding: br", 0},
    {"s4.1 adding whitespace still matches", "Vary: Accept-Encoding", "Accept-Encoding: gzip,br", "Accept-Encoding: gzip , br", 1},
    {"s4.1 combining field lines still matches", "Vary: Accept-Encoding", "Accept-Encoding: gzip, br",
     "Accept-Encoding: gzip\nAccept-Encoding: br", 1},
    {"s4.1 absent vs present does not match", "Vary: Accept-Encoding", "", "Accept-Encoding: gzip", 0},
    {"s4.1 present vs absent does not match", "Vary: Accept-Encoding", "Accept-Encoding: gzip", "", 0},
    {"s4.1 absent vs empty does not match", "Vary: Accept-Encoding", "", "Accept-Encoding: ", 0},
    {"s4.1 absent vs absent matches", "Vary: Accept-Encoding", "", "", 1},
    {"s4.1 non-selecting fields do not matter", "Vary: Accept-Encoding", "Accept-Encoding: gzip\nUser-Agent: a",
     "Accept-Encoding: gzip\nUser-Agent: b", 1},
    {"s4.1 every selecting field must match", "Vary: Accept-Encoding, User-Agent", "Accept-Encoding: gzip\nUser-Agent: a",
     "Accept-Encoding: gzip\nUser-Agent: b", 0},
    {"s4.1 a value that extends the stored one does not match", "Vary: X-A", "X-A: ab", "X-A: abc", 0},
    {"s4.1 a value that is a prefix of the stored one does not match", "Vary: X-A", "X-A: abc", "X-A: ab", 0},
    {"s4.1 no Vary: every request matches", "X: 1", "Accept: a", "Accept: b", 1},
};

static void test_vary_matches_table(void)
{
    for (size_t i = 0; i < sizeof(match_rows) / sizeof(match_rows[0]); i++) {
        const struct match_row *r = &match_rows[i];
        arena_reset(&A);
        struct http_msg *rs = resp(200, r->vary);
        const char *key;
        size_t len;
        ASSERT_EQ(cp_variant_key(rs, req("GET", r->stored_req), &A, &key, &len), 0);
        int m = cp_vary_matches(rs, key, len, req("GET", r->new_req));
        if (m != r->match) TEST_FAIL_("row \"%s\": %d, want %d (key \"%s\")", r->name, m, r->match, key);
    }
    /* s4.1: Vary: * matches nothing, whatever key was kept */
    arena_reset(&A);
    ASSERT_EQ(cp_vary_matches(resp(200, "Vary: *"), "", 0, req("GET", "")), 0);
    /* a key built for a different Vary does not match */
    ASSERT_EQ(cp_vary_matches(resp(200, "Vary: Accept"), "", 0, req("GET", "")), 0);
}

/* ================================================================================================ */
/* s4.3.1 cp_conditional                                                                              */

static void test_conditional(void)
{
    arena_reset(&A);
    /* s4.3.1: both validators; the client's own conditionals are replaced */
    struct http_msg *fwd = req("GET", "If-None-Match: \"client\"\nIf-Modified-Since: @-5\nIf-Match: \"m\"\n"
                                      "Range: bytes=0-1\nIf-Range: \"v1\"\nAccept: */*");
    struct http_msg *stored = resp(200, "ETag: \"v1\"\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\nDate: @0");
    ASSERT_EQ(cp_conditional(stored, fwd, &A), 2);
    ASSERT_STR_EQ(field(fwd, "If-None-Match"), "\"v1\"");
    ASSERT_STR_EQ(field(fwd, "If-Modified-Since"), "Sun, 06 Nov 1994 08:49:37 GMT");
    ASSERT_STR_EQ(field(fwd, "If-Match"), "\"m\""); /* for the origin, left alone */
    ASSERT_STR_EQ(field(fwd, "Range"), "bytes=0-1");
    ASSERT_STR_EQ(field(fwd, "If-Range"), "\"v1\"");
    ASSERT_STR_EQ(field(fwd, "Accept"), "*/*");

    /* RFC 9110 s13.1.2: a weak entity-tag may be sent in If-None-Match */
    fwd = req("GET", "");
    ASSERT_EQ(cp_conditional(resp(200, "ETag: W/\"w\""), fwd, &A), 1);
    ASSERT_STR_EQ(field(fwd, "If-None-Match"), "W/\"w\"");
    ASSERT(field(fwd, "If-Modified-Since") == NULL);

    /* RFC 9110 s13.1.3: the Last-Modified value exactly as received, obsolete format included */
    fwd = req("GET", "");
    ASSERT_EQ(cp_conditional(resp(200, "Last-Modified: Sunday, 06-Nov-94 08:49:37 GMT"), fwd, &A), 1);
    ASSERT_STR_EQ(field(fwd, "If-Modified-Since"), "Sunday, 06-Nov-94 08:49:37 GMT");
    ASSERT(field(fwd, "If-None-Match") == NULL);

    /* no usable validator: unconditional, and the client's conditionals are gone (s4.3.2) */
    fwd = req("GET", "If-None-Match: \"client\"\nIf-Modified-Since: @-5");
    ASSERT_EQ(cp_conditional(resp(200, "ETag: unquoted\nLast-Modified: yesterday\nDate: @0"), fwd, &A), 0);
    ASSERT(field(fwd, "If-None-Match") == NULL);
    ASSERT(field(fwd, "If-Modified-Since") == NULL);

    /* s4.3.1: not the Date: If-Modified-Since only from Last-Modified */
    fwd = req("GET", "");
    ASSERT_EQ(cp_conditional(resp(200, "Date: @0"), fwd, &A), 0);
    ASSERT(field(fwd, "If-Modified-Since") == NULL);

    /* arena overflow */
    struct arena tiny;
    ASSERT_EQ(arena_init(&tiny, 16, 16), 0);
    struct http_msg m;
    http_msg_init(&m, 1);
    ASSERT_EQ(cp_conditional(resp(200, "ETag: \"v1\""), &m, &tiny), -ENOMEM);
    arena_free(&tiny);
}

/* ================================================================================================ */
/* s4.3.4 cp_select_304                                                                               */

struct select_row {
    const char *name;
    const char *upd;       /* 304 fields */
    const char *stored[3]; /* up to three stored responses; NULL ends */
    size_t n_sel;
    size_t sel[3];
};

static const struct select_row select_rows[] = {
    {"s4.3.4 strong ETag selects the stored response with it",
     "ETag: \"b\"",
     {"ETag: \"a\"\nDate: @0", "ETag: \"b\"\nDate: @0", "ETag: \"c\"\nDate: @0"},
     1,
     {1}},
    {"s4.3.4 strong ETag selects all stored responses with it",
     "ETag: \"b\"",
     {"ETag: \"b\"\nDate: @0", "ETag: \"a\"\nDate: @0", "ETag: \"b\"\nDate: @5"},
     2,
     {0, 2}},
    {"s4.3.4 strong ETag matching none: update none", "ETag: \"z\"", {"ETag: \"a\"", "ETag: \"b\""}, 0, {0}},
    {"s4.3.4 strong ETag never selects a weak stored tag", "ETag: \"a\"", {"ETag: W/\"a\""}, 0, {0}},
    {"s4.3.4 strong ETag rule ignores Last-Modified",
     "ETag: \"z\"\nLast-Modified: @-100",
     {"ETag: \"a\"\nLast-Modified: @-100"},
     0,
     {0}},
    {"s4.3.4 weak ETag selects the most recent match",
     "ETag: W/\"a\"",
     {"ETag: W/\"a\"\nDate: @-10", "ETag: W/\"a\"\nDate: @-5", "ETag: W/\"b\"\nDate: @0"},
     1,
     {1}},
    {"s4.3.4 weak ETag matches a strong stored tag (weak comparison)", "ETag: W/\"a\"", {"ETag: \"a\""}, 1, {0}},
    {"s4.3.4 weak ETag matching none", "ETag: W/\"q\"", {"ETag: W/\"a\""}, 0, {0}},
    {"s4.3.4 Last-Modified only: the most recent stored response with it",
     "Last-Modified: @-100",
     {"Last-Modified: @-100\nDate: @-1", "Last-Modified: @-200\nDate: @0", "Last-Modified: @-100\nDate: @-50"},
     1,
     {0}},
    {"s4.3.4 Last-Modified only, none equal", "Last-Modified: @-100", {"Last-Modified: @-101"}, 0, {0}},
    {"s4.3.4 no validator, one stored without validator", "Date: @0", {"Date: @-50"}, 1, {0}},
    {"s4.3.4 no validator, the one stored has a validator", "Date: @0", {"ETag: \"a\""}, 0, {0}},
    {"s4.3.4 no validator, several stored", "Date: @0", {"Date: @-5", "Date: @-6"}, 0, {0}},
    {"s4.3.4 unreadable ETag in the 304 updates nothing", "ETag: broken", {"Date: @-50"}, 0, {0}},
    {"s4.3.4 unreadable Last-Modified in the 304 updates nothing", "Last-Modified: soon", {"Date: @-50"}, 0, {0}},
};

static void test_select_304_table(void)
{
    for (size_t i = 0; i < sizeof(select_rows) / sizeof(select_rows[0]); i++) {
        const struct select_row *r = &select_rows[i];
        arena_reset(&A);
        struct cp_stored st[3];
        size_t n = 0;
        while (n < 3 && r->stored[n] != NULL) {
            st[n] = (struct cp_stored){resp(200, r->stored[n]), T0 - 1, T0, NULL, 0, 0, NULL};
            n++;
        }
        size_t sel[3] = {99, 99, 99};
        size_t k = cp_select_304(resp(304, r->upd), st, n, sel);
        if (k != r->n_sel) TEST_FAIL_("row \"%s\": %zu selected, want %zu", r->name, k, r->n_sel);
        for (size_t j = 0; j < k; j++)
            if (sel[j] != r->sel[j]) TEST_FAIL_("row \"%s\": sel[%zu] = %zu, want %zu", r->name, j, sel[j], r->sel[j]);
    }
}

/* ================================================================================================ */
/* s3.2 cp_merge_304                                                                                 */

static void test_merge_304(void)
{
    arena_reset(&A);
    struct http_msg *stored = resp(200, "Date: @0\n"
                                        "Cache-Control: max-age=10\n"
                                        "ETag: \"v1\"\n"
                                        "Content-Length: 5\n"
                                        "Content-Type: text/plain\n"
                                        "Content-Encoding: gzip\n"
                                        "X-Old: a\n"
                                        "Link: </a>\n"
                                        "Link: </b>\n"
                                        "Age: 30");
    stored->reason = "OK";
    stored->reason_len = 2;
    stored->framing = HTTP_BODY_LENGTH;
    stored->content_length = 5;
    struct http_msg *upd = resp(304, "Date: @100\n"
                                     "Cache-Control: max-age=60\n"
                                     "ETag: \"v1\"\n"
                                     "X-New: 1\n"
                                     "Link: </c>\n"
                                     "Content-Length: 0\n"
                                     "Content-Range: bytes */5\n"
                                     "Connection: close, X-Conn\n"
                                     "X-Conn: hop\n"
                                     "Keep-Alive: timeout=5\n"
                                     "Transfer-Encoding: chunked\n"
                                     "Proxy-Authenticate: Basic\n"
                                     "Content-Encoding: br");
    struct http_msg out;
    ASSERT_EQ(cp_merge_304(stored, upd, T0 + 101, &out, &A), 0);

    /* status line and framing are the stored response's */
    ASSERT_EQ(out.status, 200);
    ASSERT_MEM_STR_EQ(out.reason, out.reason_len, "OK");
    ASSERT_EQ(out.framing, HTTP_BODY_LENGTH);
    ASSERT_EQ(out.content_length, 5);
    /* s3.2: fields in the 304 replace the stored ones */
    char want[HTTP_DATE_BUFSZ];
    http_date_format(T0 + 100, want);
    ASSERT_STR_EQ(field(&out, "Date"), want);
    ASSERT_STR_EQ(field(&out, "Cache-Control"), "max-age=60");
    ASSERT_STR_EQ(field(&out, "ETag"), "\"v1\"");
    ASSERT_STR_EQ(field(&out, "X-New"), "1");
    ASSERT_STR_EQ(field(&out, "Link"), "</c>"); /* all stored lines of a name are replaced */
    /* s3.2: Content-Encoding is updated by a cache that stores content as received */
    ASSERT_STR_EQ(field(&out, "Content-Encoding"), "br");
    /* fields the 304 does not mention are kept */
    ASSERT_STR_EQ(field(&out, "Content-Type"), "text/plain");
    ASSERT_STR_EQ(field(&out, "X-Old"), "a");
    /* s3.2 exceptions: Content-Length, Content-Range, and s3.1's (hop-by-hop, Connection-named,
     * proxy-specific) */
    ASSERT_STR_EQ(field(&out, "Content-Length"), "5");
    ASSERT(field(&out, "Content-Range") == NULL);
    ASSERT(field(&out, "Connection") == NULL);
    ASSERT(field(&out, "X-Conn") == NULL);
    ASSERT(field(&out, "Keep-Alive") == NULL);
    ASSERT(field(&out, "Transfer-Encoding") == NULL);
    ASSERT(field(&out, "Proxy-Authenticate") == NULL);
    /* s4.2: the old Age is obsolete after validation */
    ASSERT(field(&out, "Age") == NULL);

    /* RFC 9110 s6.6.1: a 304 without Date gets the time it was received; an Age it brings is kept */
    arena_reset(&A);
    stored = resp(200, "Date: @0\nETag: \"v1\"\nAge: 30");
    ASSERT_EQ(cp_merge_304(stored, resp(304, "ETag: \"v1\"\nAge: 3"), T0 + 50, &out, &A), 0);
    http_date_format(T0 + 50, want);
    ASSERT_STR_EQ(field(&out, "Date"), want);
    ASSERT_STR_EQ(field(&out, "Age"), "3");

    /* s3.1 / s5.2.2.7: a private="..." in the update removes those fields, stored or new */
    arena_reset(&A);
    stored = resp(200, "Date: @0\nX-Secret: s\nX-Keep: k");
    ASSERT_EQ(
        cp_merge_304(stored, resp(304, "Date: @1\nCache-Control: private=\"X-Secret, X-Token\"\nX-Token: t"), T0 + 1, &out, &A), 0);
    ASSERT(field(&out, "X-Secret") == NULL);
    ASSERT(field(&out, "X-Token") == NULL);
    ASSERT_STR_EQ(field(&out, "X-Keep"), "k");

    /* the result is a normal message: the policy reads it */
    arena_reset(&A);
    stored = resp(200, "Date: @0\nCache-Control: max-age=10");
    ASSERT_EQ(cp_merge_304(stored, resp(304, "Date: @100\nCache-Control: max-age=60"), T0 + 100, &out, &A), 0);
    struct cp_limits lim = lim_default();
    ASSERT_EQ(cp_freshness_lifetime(&out, T0 + 100, &lim, NULL), 60);
    ASSERT_EQ(cp_current_age(&out, T0 + 99, T0 + 100, T0 + 110), 11);
    /* a 304 that brings no-store makes the merged response unstorable */
    ASSERT_EQ(cp_merge_304(stored, resp(304, "Cache-Control: no-store"), T0 + 100, &out, &A), 0);
    ASSERT_EQ(cp_storable(req("GET", ""), &out, 0), CP_NS_NO_STORE);

    /* arena overflow is reported */
    struct arena tiny;
    ASSERT_EQ(arena_init(&tiny, 32, 32), 0);
    ASSERT_EQ(cp_merge_304(stored, resp(304, "Date: @100"), T0, &out, &tiny), -ENOMEM);
    arena_free(&tiny);
}

/* ================================================================================================ */
/* s4.3.5 cp_head_freshen                                                                             */

struct head_row {
    const char *name;
    const char *stored;
    uint64_t body_len;
    int status;
    const char *head;
    enum cp_head_verdict want;
};

static const struct head_row head_rows[] = {
    {"s4.3.5 only a 200 freshens", "ETag: \"a\"", 5, 404, "ETag: \"a\"", CP_HEAD_IGNORE},
    {"s4.3.5 only a 200 freshens (304)", "ETag: \"a\"", 5, 304, "ETag: \"a\"", CP_HEAD_IGNORE},
    {"s4.3.5 same ETag and Content-Length: update", "ETag: \"a\"", 5, 200, "ETag: \"a\"\nContent-Length: 5", CP_HEAD_UPDATE},
    {"s4.3.5 different ETag: stale", "ETag: \"a\"", 5, 200, "ETag: \"b\"", CP_HEAD_STALE},
    {"s4.3.5 weak versus strong form of a tag: stale", "ETag: \"a\"", 5, 200, "ETag: W/\"a\"", CP_HEAD_STALE},
    {"s4.3.5 ETag received but none stored: stale", "Date: @0", 5, 200, "ETag: \"a\"", CP_HEAD_STALE},
    {"s4.3.5 Content-Length differs: stale", "ETag: \"a\"", 5, 200, "ETag: \"a\"\nContent-Length: 6", CP_HEAD_STALE},
    {"s4.3.5 malformed Content-Length: stale", "ETag: \"a\"", 5, 200, "ETag: \"a\"\nContent-Length: 5x", CP_HEAD_STALE},
    {"s4.3.5 same Last-Modified: update", "Last-Modified: @-100", 5, 200, "Last-Modified: @-100", CP_HEAD_UPDATE},
    {"s4.3.5 different Last-Modified: stale", "Last-Modified: @-100", 5, 200, "Last-Modified: @-99", CP_HEAD_STALE},
    {"s4.3.5 all received validators must match", "ETag: \"a\"\nLast-Modified: @-100", 5, 200, "ETag: \"a\"\nLast-Modified: @-99",
     CP_HEAD_STALE},
    {"s4.3.5 only received validators are compared", "ETag: \"a\"\nLast-Modified: @-100", 5, 200, "ETag: \"a\"", CP_HEAD_UPDATE},
    {"s4.3.5 no validators, matching Content-Length: update", "Date: @0", 5, 200, "Content-Length: 5", CP_HEAD_UPDATE},
};

static void test_head_freshen_table(void)
{
    for (size_t i = 0; i < sizeof(head_rows) / sizeof(head_rows[0]); i++) {
        const struct head_row *r = &head_rows[i];
        arena_reset(&A);
        enum cp_head_verdict v = cp_head_freshen(resp(200, r->stored), r->body_len, resp(r->status, r->head));
        if (v != r->want) TEST_FAIL_("row \"%s\": %d, want %d", r->name, v, r->want);
    }
    /* s4.3.5: an update uses s3.2 like a 304, so Content-Length never changes */
    arena_reset(&A);
    struct http_msg out;
    ASSERT_EQ(cp_merge_304(resp(200, "Content-Length: 5\nETag: \"a\""), resp(200, "Content-Length: 5\nETag: \"a\"\nX-H: 1"), T0,
                           &out, &A),
              0);
    ASSERT_STR_EQ(field(&out, "Content-Length"), "5");
    ASSERT_STR_EQ(field(&out, "X-H"), "1");
}

/* ================================================================================================ */
/* RFC 9110 s13 cp_eval_conditionals                                                                  */

struct cond_row {
    const char *name;
    const char *method;
    const char *req;
    int status;
    const char *stored;
    enum cp_cond_result want;
};

#define S_ETAG_LM "ETag: \"v1\"\nLast-Modified: @-100\nDate: @0"

static const struct cond_row cond_rows[] = {
    {"s13.1.2 If-None-Match matches: 304", "GET", "If-None-Match: \"v1\"", 200, S_ETAG_LM, CP_COND_NOT_MODIFIED},
    {"s13.1.2 If-None-Match among several: 304", "GET", "If-None-Match: \"x\", \"v1\"", 200, S_ETAG_LM, CP_COND_NOT_MODIFIED},
    {"s13.1.2 weak comparison: W/ in the request", "GET", "If-None-Match: W/\"v1\"", 200, S_ETAG_LM, CP_COND_NOT_MODIFIED},
    {"s13.1.2 weak comparison: weak stored tag", "GET", "If-None-Match: \"w\"", 200, "ETag: W/\"w\"", CP_COND_NOT_MODIFIED},
    {"s13.1.2 If-None-Match does not match: 200", "GET", "If-None-Match: \"v0\"", 200, S_ETAG_LM, CP_COND_NONE},
    {"s13.1.2 If-None-Match: * with a representation: 304", "GET", "If-None-Match: *", 200, S_ETAG_LM, CP_COND_NOT_MODIFIED},
    {"s13.1.2 If-None-Match: * without an ETag: 304", "GET", "If-None-Match: *", 200, "Date: @0", CP_COND_NOT_MODIFIED},
    {"s13.1.2 tags but no stored ETag: 200", "GET", "If-None-Match: \"v1\"", 200, "Date: @0", CP_COND_NONE},
    {"s13.1.2 malformed If-None-Match: 200", "GET", "If-None-Match: v1", 200, S_ETAG_LM, CP_COND_NONE},
    {"s13.1.2 HEAD: 304", "HEAD", "If-None-Match: \"v1\"", 200, S_ETAG_LM, CP_COND_NOT_MODIFIED},
    {"s13.2.2 If-None-Match takes precedence over If-Modified-Since", "GET", "If-None-Match: \"v0\"\nIf-Modified-Since: @0", 200,
     S_ETAG_LM, CP_COND_NONE},
    {"s13.2.2 If-None-Match true, If-Modified-Since ignored", "GET", "If-None-Match: \"v1\"\nIf-Modified-Since: @-500", 200,
     S_ETAG_LM, CP_COND_NOT_MODIFIED},
    {"s13.1.3 not modified since: 304", "GET", "If-Modified-Since: @-50", 200, S_ETAG_LM, CP_COND_NOT_MODIFIED},
    {"s13.1.3 modified at exactly that date: 304", "GET", "If-Modified-Since: @-100", 200, S_ETAG_LM, CP_COND_NOT_MODIFIED},
    {"s13.1.3 modified since: 200", "GET", "If-Modified-Since: @-101", 200, S_ETAG_LM, CP_COND_NONE},
    {"s13.1.3 obsolete date format accepted", "GET", "If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT", 200,
     "Last-Modified: Sun, 06 Nov 1994 08:49:37 GMT", CP_COND_NOT_MODIFIED},
    {"s13.1.3 invalid date ignored", "GET", "If-Modified-Since: yesterday", 200, S_ETAG_LM, CP_COND_NONE},
    {"s13.1.3 more than one member ignored", "GET", "If-Modified-Since: @0\nIf-Modified-Since: @-50", 200, S_ETAG_LM, CP_COND_NONE},
    {"s4.3.2 no Last-Modified: the stored Date is used", "GET", "If-Modified-Since: @0", 200, "Date: @-10", CP_COND_NOT_MODIFIED},
    {"s4.3.2 no Last-Modified: Date later than the condition", "GET", "If-Modified-Since: @-20", 200, "Date: @-10", CP_COND_NONE},
    {"s4.3.2 neither Last-Modified nor Date: the time received", "GET", "If-Modified-Since: @0", 200, "X: 1", CP_COND_NOT_MODIFIED},
    {"s4.3.2 neither Last-Modified nor Date: received later", "GET", "If-Modified-Since: @-1", 200, "X: 1", CP_COND_NONE},
    {"s13.1.3 If-Modified-Since only for GET and HEAD", "DELETE", "If-Modified-Since: @0", 200, S_ETAG_LM, CP_COND_NONE},
    {"s13.2.2 If-None-Match on other methods is not the cache's to answer", "POST", "If-None-Match: \"v1\"", 200, S_ETAG_LM,
     CP_COND_NONE},
    {"s4.3.2 only stored 200 and 206 responses", "GET", "If-None-Match: \"v1\"", 404, S_ETAG_LM, CP_COND_NONE},
    {"s4.3.2 If-Match is not applicable to a cache", "GET", "If-Match: \"nope\"", 200, S_ETAG_LM, CP_COND_NONE},
    {"s4.3.2 If-Unmodified-Since is not applicable to a cache", "GET", "If-Unmodified-Since: @-1000", 200, S_ETAG_LM, CP_COND_NONE},
    {"s13.2.2 no preconditions", "GET", "", 200, S_ETAG_LM, CP_COND_NONE},
};

static void test_eval_conditionals_table(void)
{
    for (size_t i = 0; i < sizeof(cond_rows) / sizeof(cond_rows[0]); i++) {
        const struct cond_row *r = &cond_rows[i];
        arena_reset(&A);
        enum cp_cond_result c = cp_eval_conditionals(req(r->method, r->req), resp(r->status, r->stored), T0, T0 + 10);
        if (c != r->want) TEST_FAIL_("row \"%s\": %d, want %d", r->name, c, r->want);
    }
}

static void test_304_keeps(void)
{
    arena_reset(&A);
    /* RFC 9110 s15.4.5 */
    struct http_msg *m = resp(200, "Content-Location: /a\nDate: @0\nETag: \"a\"\nVary: Accept\nCache-Control: max-age=1\n"
                                   "Expires: @1\nLast-Modified: @-5\nContent-Type: text/plain\nContent-Length: 5\nX: y");
    static const int keep[] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
    ASSERT_EQ(m->n_fields, sizeof(keep) / sizeof(keep[0]));
    for (size_t i = 0; i < m->n_fields; i++)
        if (cp_304_keeps(m, &m->fields[i]) != keep[i]) TEST_FAIL_("s15.4.5: %s kept %d", m->fields[i].name, !keep[i]);
    /* "Last-Modified might be useful if the response does not have an ETag field" */
    m = resp(200, "Last-Modified: @-5\nDate: @0");
    ASSERT_EQ(cp_304_keeps(m, &m->fields[0]), 1);
}

/* ================================================================================================ */
/* s4.4 invalidation                                                                                 */

struct inval_row {
    const char *name;
    const char *method;
    int status;
    int with_location, with_content_location;
    const char *location_origin, *content_location_origin;
    size_t n;
    const char *uris[3];
};

#define ORIGIN "http://a.example:80"

static const struct inval_row inval_rows[] = {
    {"s4.4 POST 201: target, Location and Content-Location of the same origin",
     "POST",
     201,
     1,
     1,
     ORIGIN,
     ORIGIN,
     3,
     {"http://a.example/t", "http://a.example/loc", "http://a.example/cl"}},
    {"s4.4 PUT 204: target", "PUT", 204, 0, 0, NULL, NULL, 1, {"http://a.example/t"}},
    {"s4.4 DELETE 200: target", "DELETE", 200, 0, 0, NULL, NULL, 1, {"http://a.example/t"}},
    {"s4.4 PATCH 303 (3xx is non-error)", "PATCH", 303, 1, 0, ORIGIN, NULL, 2, {"http://a.example/t", "http://a.example/loc"}},
    {"s4.4 unknown method counts as unsafe", "PURGE", 200, 0, 0, NULL, NULL, 1, {"http://a.example/t"}},
    {"s4.4 Location of another origin MUST NOT be invalidated",
     "POST",
     201,
     1,
     1,
     "http://b.example:80",
     "http://a.example:8080",
     1,
     {"http://a.example/t"}},
    {"s4.4 error status: nothing", "POST", 500, 1, 1, ORIGIN, ORIGIN, 0, {NULL}},
    {"s4.4 4xx status: nothing", "DELETE", 404, 0, 0, NULL, NULL, 0, {NULL}},
    {"s4.4 1xx is not a final non-error response", "POST", 100, 0, 0, NULL, NULL, 0, {NULL}},
    {"s4.4 safe method: nothing", "GET", 200, 1, 1, ORIGIN, ORIGIN, 0, {NULL}},
    {"s4.4 HEAD is safe", "HEAD", 200, 0, 0, NULL, NULL, 0, {NULL}},
    {"s4.4 OPTIONS is safe", "OPTIONS", 200, 0, 0, NULL, NULL, 0, {NULL}},
};

static void test_invalidation_table(void)
{
    for (size_t i = 0; i < sizeof(inval_rows) / sizeof(inval_rows[0]); i++) {
        const struct inval_row *r = &inval_rows[i];
        arena_reset(&A);
        struct cp_uri target = {"http://a.example/t", 18, ORIGIN, strlen(ORIGIN)};
        struct cp_uri loc = {"http://a.example/loc", 20, r->location_origin, r->location_origin ? strlen(r->location_origin) : 0};
        struct cp_uri cl = {"http://a.example/cl", 19, r->content_location_origin,
                            r->content_location_origin ? strlen(r->content_location_origin) : 0};
        struct cp_uri out[3];
        size_t n = cp_invalidation_targets(req(r->method, ""), r->status, &target, r->with_location ? &loc : NULL,
                                           r->with_content_location ? &cl : NULL, out);
        if (n != r->n) TEST_FAIL_("row \"%s\": %zu targets, want %zu", r->name, n, r->n);
        for (size_t k = 0; k < n; k++)
            ASSERT_MEM_STR_EQ(out[k].uri, out[k].uri_len, r->uris[k]);
    }

    /* no duplicates when Location or Content-Location is the target itself */
    struct cp_uri target = {"http://a.example/t", 18, ORIGIN, strlen(ORIGIN)};
    struct cp_uri out[3];
    ASSERT_EQ(cp_invalidation_targets(req("POST", ""), 200, &target, &target, &target, out), 1);
    struct cp_uri no_uri = {NULL, 0, ORIGIN, strlen(ORIGIN)};
    ASSERT_EQ(cp_invalidation_targets(req("POST", ""), 200, &target, &no_uri, NULL, out), 1);
}

int main(void)
{
    ASSERT_EQ(arena_init(&A, 1 << 16, 1 << 22), 0);
    RUN_TEST(test_status_classes);
    RUN_TEST(test_storable_table);
    RUN_TEST(test_store_reasons);
    RUN_TEST(test_prepare_for_storage);
    RUN_TEST(test_freshness_table);
    RUN_TEST(test_freshness_limits);
    RUN_TEST(test_age_formula_table);
    RUN_TEST(test_current_age_from_fields);
    RUN_TEST(test_decide_table);
    RUN_TEST(test_decide_outputs);
    RUN_TEST(test_reusable_until_and_request_limits);
    RUN_TEST(test_decide_stored_state);
    RUN_TEST(test_variant_key_table);
    RUN_TEST(test_variant_key_limits);
    RUN_TEST(test_vary_matches_table);
    RUN_TEST(test_conditional);
    RUN_TEST(test_select_304_table);
    RUN_TEST(test_merge_304);
    RUN_TEST(test_head_freshen_table);
    RUN_TEST(test_eval_conditionals_table);
    RUN_TEST(test_304_keeps);
    RUN_TEST(test_invalidation_table);
    arena_free(&A);
    return 0;
}
