/* HTTP-date parsing and formatting (RFC 9110 s5.6.7, RFC 9111 s4.2, s5.3). */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "http/arena.h"
#include "http/http_date.h"
#include "http/http_msg.h"
#include "test_util.h"

/* 2024-01-01T00:00:00Z: the "now" for two-digit years. */
#define NOW_2024 INT64_C(1704067200)

struct parse_row {
    const char *name;
    const char *in;
    int64_t now;
    int rc;
    int64_t t;
};

static const struct parse_row parse_rows[] = {
    {"s5.6.7 IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", NOW_2024, 0, 784111777},
    {"s5.6.7 obsolete RFC 850 format", "Sunday, 06-Nov-94 08:49:37 GMT", NOW_2024, 0, 784111777},
    {"s5.6.7 asctime format, space-padded day", "Sun Nov  6 08:49:37 1994", NOW_2024, 0, 784111777},
    {"s5.6.7 asctime format, two-digit day", "Wed Nov 16 08:49:37 1994", NOW_2024, 0, 784111777 + 10 * 86400},
    {"s4.2 cache matches names and GMT case-insensitively", "sUN, 06 nov 1994 08:49:37 gmt", NOW_2024, 0, 784111777},
    {"s4.2 RFC 850 case-insensitive", "SUNDAY, 06-NOV-94 08:49:37 GMT", NOW_2024, 0, 784111777},
    {"s5.6.7 robustness: leading and trailing OWS", " \tSun, 06 Nov 1994 08:49:37 GMT \t", NOW_2024, 0, 784111777},
    {"s5.6.7 robustness: RFC 822 two-digit year in IMF layout", "Sun, 06 Nov 94 08:49:37 GMT", NOW_2024, 0, 784111777},
    {"s5.6.7 robustness: four-digit year in RFC 850 layout", "Sunday, 06-Nov-1994 08:49:37 GMT", NOW_2024, 0, 784111777},
    {"s5.6.7 epoch", "Thu, 01 Jan 1970 00:00:00 GMT", NOW_2024, 0, 0},
    {"s5.6.7 before the epoch", "Wed, 31 Dec 1969 23:59:59 GMT", NOW_2024, 0, -1},
    {"s5.6.7 far past", "Mon, 01 Jan 1601 00:00:00 GMT", NOW_2024, 0, INT64_C(-11644473600)},
    {"s5.6.7 last representable day", "Fri, 31 Dec 9999 23:59:59 GMT", NOW_2024, 0, INT64_C(253402300799)},
    {"s5.6.7 leap day in a year divisible by 400", "Tue, 29 Feb 2000 12:00:00 GMT", NOW_2024, 0, 951825600},
    {"s5.6.7 leap day in 2024", "Thu, 29 Feb 2024 00:00:00 GMT", NOW_2024, 0, 1709164800},
    {"s4.2 leap second reads as the second before", "Sat, 31 Dec 2016 23:59:60 GMT", NOW_2024, 0, 1483228799},
    {"s5.6.7 RFC 850 year 46 years ahead stays in the future", "Monday, 01-Jan-70 00:00:00 GMT", NOW_2024, 0, INT64_C(3155760000)},
    {"s5.6.7 RFC 850 year over 50 years ahead is the past century", "Wednesday, 01-Jan-75 00:00:00 GMT", NOW_2024, 0, 157766400},
    {"s5.6.7 RFC 850 year 00 near 2024 is 2000", "Saturday, 01-Jan-00 00:00:00 GMT", NOW_2024, 0, 946684800},
    {"s5.6.7 RFC 850 century pivot moves with now", "Saturday, 01-Jan-00 00:00:00 GMT", INT64_C(4102444800) /* 2100 */, 0,
     INT64_C(4102444800)},
    /* Garbage: RFC 9111 s5.3 says callers treat it as "already expired". */
    {"s5.3 the value 0 is invalid", "0", NOW_2024, -EINVAL, 0},
    {"s5.3 empty is invalid", "", NOW_2024, -EINVAL, 0},
    {"s5.3 -1 is invalid", "-1", NOW_2024, -EINVAL, 0},
    {"s4.2 zone other than GMT is invalid (UTC)", "Sun, 06 Nov 1994 08:49:37 UTC", NOW_2024, -EINVAL, 0},
    {"s4.2 zone other than GMT is invalid (+0000)", "Sun, 06 Nov 1994 08:49:37 +0000", NOW_2024, -EINVAL, 0},
    {"s5.6.7 missing zone", "Sun, 06 Nov 1994 08:49:37", NOW_2024, -EINVAL, 0},
    {"s5.6.7 trailing garbage", "Sun, 06 Nov 1994 08:49:37 GMT x", NOW_2024, -EINVAL, 0},
    {"s5.6.7 asctime with a zone", "Sun Nov  6 08:49:37 1994 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 unknown day name", "Foo, 06 Nov 1994 08:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 unknown month", "Sun, 06 Xyz 1994 08:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 missing SP after comma", "Sun,06 Nov 1994 08:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 IMF day must be two digits", "Sun, 6 Nov 1994 08:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 three-digit year", "Sun, 06 Nov 994 08:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 February 30 does not exist", "Sun, 30 Feb 1994 08:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 1900 is not a leap year", "Thu, 29 Feb 1900 00:00:00 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 day 0", "Sun, 00 Nov 1994 08:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 hour 24", "Sun, 06 Nov 1994 24:00:00 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 minute 60", "Sun, 06 Nov 1994 08:60:00 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 second 61", "Sun, 06 Nov 1994 08:00:61 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 one-digit hour", "Sun, 06 Nov 1994 8:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 RFC 850 mixed separators", "Sunday, 06-Nov 94 08:49:37 GMT", NOW_2024, -EINVAL, 0},
    {"s5.6.7 asctime two spaces before two-digit day", "Sun Nov  16 08:49:37 1994", NOW_2024, -EINVAL, 0},
    {"s5.6.7 asctime two-digit year", "Sun Nov  6 08:49:37 94", NOW_2024, -EINVAL, 0},
    {"s5.6.7 date list (two dates)", "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", NOW_2024, -EINVAL, 0},
};

static void test_parse_table(void)
{
    for (size_t i = 0; i < sizeof(parse_rows) / sizeof(parse_rows[0]); i++) {
        const struct parse_row *r = &parse_rows[i];
        int64_t t = 12345;
        int rc = http_date_parse(r->in, strlen(r->in), r->now, &t);
        if (rc != r->rc || (rc == 0 && t != r->t))
            TEST_FAIL_("row \"%s\": \"%s\" -> rc %d t %jd, want rc %d t %jd", r->name, r->in, rc, (intmax_t)t, r->rc,
                       (intmax_t)r->t);
        if (rc != 0) ASSERT_EQ(t, 12345); /* untouched on failure */
    }
}

static void test_parse_is_length_bounded(void)
{
    /* The input need not be NUL-terminated: only `len` bytes are read. */
    const char *s = "Sun, 06 Nov 1994 08:49:37 GMTxxxx";
    int64_t t;
    ASSERT_EQ(http_date_parse(s, HTTP_DATE_LEN, NOW_2024, &t), 0);
    ASSERT_EQ(t, 784111777);
    ASSERT_EQ(http_date_parse(s, HTTP_DATE_LEN - 1, NOW_2024, &t), -EINVAL);
    ASSERT_EQ(http_date_parse(NULL, 0, NOW_2024, &t), -EINVAL);
}

struct format_row {
    const char *name;
    int64_t t;
    int rc;
    const char *out;
};

static const struct format_row format_rows[] = {
    {"s5.6.7 IMF-fixdate example", 784111777, HTTP_DATE_LEN, "Sun, 06 Nov 1994 08:49:37 GMT"},
    {"s5.6.7 epoch", 0, HTTP_DATE_LEN, "Thu, 01 Jan 1970 00:00:00 GMT"},
    {"s5.6.7 before the epoch", -1, HTTP_DATE_LEN, "Wed, 31 Dec 1969 23:59:59 GMT"},
    {"s5.6.7 leap day", 951825600, HTTP_DATE_LEN, "Tue, 29 Feb 2000 12:00:00 GMT"},
    {"s5.6.7 year 2038 and beyond", INT64_C(2147483648), HTTP_DATE_LEN, "Tue, 19 Jan 2038 03:14:08 GMT"},
    {"s5.6.7 year 0", INT64_C(-62167219200), HTTP_DATE_LEN, "Sat, 01 Jan 0000 00:00:00 GMT"},
    {"s5.6.7 year 9999", INT64_C(253402300799), HTTP_DATE_LEN, "Fri, 31 Dec 9999 23:59:59 GMT"},
    {"year 10000 cannot be written in 4 digits", INT64_C(253402300800), -ERANGE, NULL},
    {"negative year cannot be written", INT64_C(-62167219201), -ERANGE, NULL},
    /* Found by tests/fuzz/fuzz_cache_control: the day arithmetic overflowed (UBSan) before the year
     * was checked. */
    {"the earliest int64 time is out of range, without overflow", INT64_MIN, -ERANGE, NULL},
    {"the latest int64 time is out of range, without overflow", INT64_MAX, -ERANGE, NULL},
};

static void test_format_table(void)
{
    for (size_t i = 0; i < sizeof(format_rows) / sizeof(format_rows[0]); i++) {
        const struct format_row *r = &format_rows[i];
        char buf[HTTP_DATE_BUFSZ];
        int rc = http_date_format(r->t, buf);
        if (rc != r->rc || (rc > 0 && strcmp(buf, r->out) != 0))
            TEST_FAIL_("row \"%s\": rc %d \"%s\", want rc %d \"%s\"", r->name, rc, rc > 0 ? buf : "", r->rc, r->out ? r->out : "");
    }
}

/* Our calendar against the C library's gmtime_r() (which reads no clock and, unlike timegm's inverse,
 * no time zone) over every day of 1900..2200, and a round trip through format and parse. */
static void test_calendar_against_gmtime(void)
{
    for (int64_t days = -25567; days <= 84000; days++) {
        int64_t y;
        unsigned m, d;
        http_date_civil_from_days(days, &y, &m, &d);
        ASSERT_EQ(http_date_days_from_civil(y, m, d), days);
        time_t tt = (time_t)(days * 86400 + 3661);
        struct tm tm;
        ASSERT(gmtime_r(&tt, &tm) != NULL);
        ASSERT_EQ(y, tm.tm_year + 1900);
        ASSERT_EQ(m, tm.tm_mon + 1);
        ASSERT_EQ(d, tm.tm_mday);

        char buf[HTTP_DATE_BUFSZ];
        ASSERT_EQ(http_date_format(days * 86400 + 3661, buf), HTTP_DATE_LEN);
        int64_t back;
        ASSERT_EQ(http_date_parse(buf, HTTP_DATE_LEN, NOW_2024, &back), 0);
        ASSERT_EQ(back, days * 86400 + 3661);
        char want[HTTP_DATE_BUFSZ];
        strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm); /* C locale: the test never calls setlocale */
        ASSERT_STR_EQ(buf, want);
    }
}

static void test_days_from_civil_known(void)
{
    ASSERT_EQ(http_date_days_from_civil(1970, 1, 1), 0);
    ASSERT_EQ(http_date_days_from_civil(2000, 3, 1), 11017);
    ASSERT_EQ(http_date_days_from_civil(1969, 12, 31), -1);
    ASSERT_EQ(http_date_days_from_civil(0, 3, 1), -719468);
    ASSERT_EQ(http_date_days_from_civil(-1, 12, 31), -719529);
}

static void add(struct http_msg *m, struct arena *a, const char *name, const char *value)
{
    ASSERT_EQ(http_msg_add(m, a, name, strlen(name), value, strlen(value)), 0);
}

static void test_date_field(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 4096, 1 << 20), 0);
    struct http_msg m;
    int64_t t = 7;

    http_msg_init(&m, 0);
    ASSERT_EQ(http_date_field(&m, "Expires", NOW_2024, &t), -ENOENT); /* absent */

    add(&m, &a, "Expires", "Sun, 06 Nov 1994 08:49:37 GMT");
    ASSERT_EQ(http_date_field(&m, "expires", NOW_2024, &t), 0); /* names are case-insensitive */
    ASSERT_EQ(t, 784111777);

    /* s4.2.1: duplicate lines that agree are harmless, even in different formats */
    add(&m, &a, "Expires", "Sunday, 06-Nov-94 08:49:37 GMT");
    ASSERT_EQ(http_date_field(&m, "Expires", NOW_2024, &t), 0);

    /* s4.2.1: duplicates that disagree may be treated as stale: we report invalid */
    add(&m, &a, "Expires", "Mon, 07 Nov 1994 08:49:37 GMT");
    ASSERT_EQ(http_date_field(&m, "Expires", NOW_2024, &t), -EINVAL);

    http_msg_init(&m, 0);
    add(&m, &a, "Expires", "0"); /* s5.3 */
    ASSERT_EQ(http_date_field(&m, "Expires", NOW_2024, &t), -EINVAL);

    http_msg_init(&m, 0);
    add(&m, &a, "Date", "Sun, 06 Nov 1994 08:49:37 GMT");
    add(&m, &a, "Date", "garbage");
    ASSERT_EQ(http_date_field(&m, "Date", NOW_2024, &t), -EINVAL);

    arena_free(&a);
}

/* The exact IMF-fixdate is read by position (the fast path); any other spelling of the same instant
 * goes through the general parser. Both must agree, over a spread of instants, and a fixdate with
 * one byte wrong must be judged by the general parser alone. */
static void test_fast_path_agrees_with_general(void)
{
    for (int64_t t = -2208988800; t < 4102444800; t += 7776013) { /* 1900 .. 2100, ~90 days apart */
        char buf[HTTP_DATE_BUFSZ];
        ASSERT_EQ(http_date_format(t, buf), 29);
        int64_t fast = 0, general = 0;
        ASSERT_EQ(http_date_parse(buf, strlen(buf), 0, &fast), 0);
        ASSERT_EQ(fast, t);
        char low[HTTP_DATE_BUFSZ + 2];
        snprintf(low, sizeof(low), " %s", buf); /* leading OWS: not the exact form */
        for (char *p = low; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        ASSERT_EQ(http_date_parse(low, strlen(low), 0, &general), 0);
        ASSERT_EQ(general, t);
    }
    static const char *const bad[] = {
        "Sun, 06 Nov 1994 08:49:37 GMX", "Sun, 06 Nov 1994 08:49:37 gmx", "Sux, 06 Nov 1994 08:49:37 GMT",
        "Sun, 06 Nox 1994 08:49:37 GMT", "Sun, 0a Nov 1994 08:49:37 GMT", "Sun, 06 Nov 19a4 08:49:37 GMT",
        "Sun, 06 Nov 1994 08:49:3a GMT", "Sun, 31 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:49:37 GMT",
        "Sun, 06 Nov 1994 08-49:37 GMT", "Sun; 06 Nov 1994 08:49:37 GMT",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t v;
        if (http_date_parse(bad[i], strlen(bad[i]), 0, &v) != -EINVAL)
            TEST_FAIL_("accepted %s", bad[i]);
    }
}

int main(void)
{
    RUN_TEST(test_parse_table);
    RUN_TEST(test_parse_is_length_bounded);
    RUN_TEST(test_format_table);
    RUN_TEST(test_days_from_civil_known);
    RUN_TEST(test_calendar_against_gmtime);
    RUN_TEST(test_date_field);
    RUN_TEST(test_fast_path_agrees_with_general);
    return 0;
}
