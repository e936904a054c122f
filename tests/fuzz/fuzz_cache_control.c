/* libFuzzer target: the field parsers of http/http_cache_control.h and http/http_date.h.
 *
 * Input: lines separated by '\n'. The first byte of a line picks the field name (Cache-Control, Pragma,
 * ETag, If-None-Match, If-Match, Age, Vary, Date, Expires, Last-Modified, ...), the rest is its value.
 * A line holding a byte no parsed field value can hold (a control other than HTAB, or DEL) is
 * skipped, and values are trimmed of OWS, as http_parse.c delivers them. The fields make up both a
 * request and a response. The first 8 bytes, read as a big-endian int64, are also a time to format.
 *
 * Invariants (abort() when broken):
 *   - http_cc_parse(): bits for valued/invalid directives are among the present ones; values are
 *     delta-seconds in [0, 2^31] (max-stale may be "any"); no-cache / private field lists point inside
 *     a Cache-Control value, hold only tokens, and http_cc_list_has() finds each of them; Pragma counts
 *     only in a request without Cache-Control (RFC 9111 s5.4);
 *   - http_field_list_next() yields non-empty, trimmed elements inside the value and always advances;
 *   - entity tags: a parsed tag lies inside its value, weak and strong comparison agree with their
 *     definitions (RFC 9110 s8.8.3.2), and printing a tag parses back to it; list matching stays in
 *     range and a strong match is also a weak one;
 *   - Age is in [0, 2^31];
 *   - dates: whatever http_date_parse() accepts, http_date_format() prints as an IMF-fixdate that
 *     parses back to the same time and prints the same; any int64 time formats as -ERANGE or as a
 *     date that parses back to it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_cache_control.h"
#include "http/http_date.h"
#include "http/http_msg.h"

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                                           \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

static const char *const names[] = {
    "Cache-Control", "Pragma", "ETag",    "If-None-Match", "If-Match",      "Age",
    "Vary",          "Date",   "Expires", "Last-Modified", "cache-control", "If-Modified-Since",
};
#define N_NAMES (sizeof(names) / sizeof(names[0]))

/* "Now" values: today, the epoch, and 2100 (two-digit years pick their century from it). */
static const int64_t nows[] = {INT64_C(1700000000), 0, INT64_C(4102444800)};

/* Year 0000-01-01 and 9999-12-31T23:59:59, the range IMF-fixdate can print. */
#define T_MIN INT64_C(-62167219200)
#define T_MAX INT64_C(253402300799)

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_list_walk(const char *v, size_t len)
{
    const char *pos = v, *end = v + len, *e;
    size_t n, count = 0;
    for (;;) {
        const char *before = pos;
        if (!http_field_list_next(&pos, end, &e, &n)) {
            CHECK(pos == end);
            break;
        }
        CHECK(pos > before && pos <= end);
        CHECK(e >= v && e + n <= end && n > 0);
        CHECK(!is_ows(e[0]) && !is_ows(e[n - 1]) && e[0] != ',');
        CHECK(++count <= len);
    }
    int tok = len > 0;
    for (size_t i = 0; i < len; i++)
        tok &= is_tchar((unsigned char)v[i]);
    CHECK(http_is_token(v, len) == tok);
}

/* Does [p, p+n) lie inside the value of a Cache-Control field of m? */
static int inside_cc_value(const struct http_msg *m, const char *p, size_t n)
{
    for (const struct http_field *f = http_msg_find(m, "Cache-Control"); f != NULL; f = http_msg_find_next(m, f))
        if (p >= f->value && p + n <= f->value + f->value_len) return 1;
    return 0;
}

static void check_cc_list(const struct http_msg *m, const struct http_cc_list *l)
{
    CHECK(l->n <= HTTP_CC_LIST_MAX);
    for (unsigned i = 0; i < l->n; i++) {
        CHECK(inside_cc_value(m, l->span[i].p, l->span[i].len));
        const char *pos = l->span[i].p, *end = pos + l->span[i].len, *e;
        size_t n, count = 0;
        while (http_field_list_next(&pos, end, &e, &n)) {
            CHECK(http_is_token(e, n));
            CHECK(http_cc_list_has(l, e, n));
            count++;
        }
        CHECK(count > 0);
    }
}

static void check_cc(const struct http_msg *m)
{
    struct http_cc cc;
    http_cc_parse(m, &cc);
    CHECK((cc.valued & ~cc.present) == 0);
    CHECK((cc.invalid & ~cc.present) == 0);
    CHECK((cc.present >> 19) == 0);
    const uint32_t deltas = HTTP_CC_MAX_AGE | HTTP_CC_S_MAXAGE | HTTP_CC_MAX_STALE | HTTP_CC_MIN_FRESH |
                            HTTP_CC_STALE_WHILE_REVALIDATE | HTTP_CC_STALE_IF_ERROR;
    CHECK((cc.valued & ~deltas) == 0 && (cc.invalid & ~deltas) == 0);
    const struct {
        uint32_t bit;
        int64_t v;
    } vals[] = {{HTTP_CC_MAX_AGE, cc.max_age},
                {HTTP_CC_S_MAXAGE, cc.s_maxage},
                {HTTP_CC_MIN_FRESH, cc.min_fresh},
                {HTTP_CC_STALE_WHILE_REVALIDATE, cc.stale_while_revalidate},
                {HTTP_CC_STALE_IF_ERROR, cc.stale_if_error}};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        if (cc.valued & vals[i].bit) CHECK(vals[i].v >= 0 && vals[i].v <= HTTP_DELTA_MAX);
    if (cc.valued & HTTP_CC_MAX_STALE) CHECK((cc.max_stale >= 0 && cc.max_stale <= HTTP_DELTA_MAX) || cc.max_stale == HTTP_CC_ANY);

    int has_cc = http_msg_find(m, "Cache-Control") != NULL;
    CHECK(!!(cc.present & HTTP_CC_FIELD_PRESENT) == has_cc);
    if (cc.present & HTTP_CC_FROM_PRAGMA)
        CHECK(m->is_request && !has_cc && (cc.present & HTTP_CC_NO_CACHE) && http_msg_has_token(m, "Pragma", "no-cache"));
    if (!has_cc) CHECK((cc.present & ~(uint32_t)(HTTP_CC_NO_CACHE | HTTP_CC_FROM_PRAGMA)) == 0);
    CHECK(!!(cc.present & HTTP_CC_NO_CACHE_FIELDS) == (cc.no_cache_fields.n > 0));
    CHECK(!!(cc.present & HTTP_CC_PRIVATE_FIELDS) == (cc.private_fields.n > 0));
    check_cc_list(m, &cc.no_cache_fields);
    check_cc_list(m, &cc.private_fields);
}

static void check_etag_value(const char *v, size_t len)
{
    struct http_etag t;
    if (http_etag_parse(v, len, &t) != 0) return;
    CHECK(t.tag > v && t.tag + t.len < v + len);
    CHECK(t.tag[-1] == '"' && t.tag[t.len] == '"');
    CHECK(http_etag_weak_eq(&t, &t));
    CHECK(http_etag_strong_eq(&t, &t) == !t.weak);
    for (uint32_t i = 0; i < t.len; i++)
        CHECK(t.tag[i] != '"');
    /* Print it again, both ways, and read it back. */
    char *buf = malloc(t.len + 4);
    CHECK(buf != NULL);
    for (int weak = 0; weak < 2; weak++) {
        size_t n = 0;
        if (weak) {
            buf[n++] = 'W';
            buf[n++] = '/';
        }
        buf[n++] = '"';
        memcpy(buf + n, t.tag, t.len);
        n += t.len;
        buf[n++] = '"';
        struct http_etag u;
        CHECK(http_etag_parse(buf, n, &u) == 0);
        CHECK(u.weak == weak && http_etag_weak_eq(&t, &u));
        CHECK(http_etag_strong_eq(&t, &u) == (!weak && !t.weak));
    }
    free(buf);
}

static void check_etags(const struct http_msg *m)
{
    struct http_etag cur;
    int rc = http_etag_get(m, &cur);
    CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL);
    CHECK((rc == -ENOENT) == (http_msg_find(m, "ETag") == NULL));
    static const char *const lists[] = {"If-None-Match", "If-Match"};
    for (size_t i = 0; i < 2; i++) {
        int present = http_msg_find(m, lists[i]) != NULL;
        int none = http_etag_list_match(m, lists[i], NULL, 1);
        CHECK(none == 0 || none == 1 || none == -EINVAL || none == -ENOENT);
        CHECK((none == -ENOENT) == !present);
        if (rc != 0) continue;
        int strong = http_etag_list_match(m, lists[i], &cur, 0);
        int weak = http_etag_list_match(m, lists[i], &cur, 1);
        CHECK(strong == 0 || strong == 1 || strong == -EINVAL || strong == -ENOENT);
        CHECK(weak == 0 || weak == 1 || weak == -EINVAL || weak == -ENOENT);
        /* Validity does not depend on the comparison; a strong match is a weak match; "*" matches all. */
        CHECK((strong < 0) == (weak < 0) && (strong < 0) == (none < 0));
        if (strong == 1) CHECK(weak == 1);
        if (none == 1) CHECK(strong == 1 && weak == 1);
    }
}

/* The time any accepted date stands for prints as an IMF-fixdate that reads back the same. */
static void check_time_roundtrip(int64_t t, int64_t now)
{
    char buf[HTTP_DATE_BUFSZ];
    memset(buf, 'x', sizeof(buf));
    int rc = http_date_format(t, buf);
    if (t < T_MIN || t > T_MAX) {
        CHECK(rc == -ERANGE);
        return;
    }
    CHECK(rc == HTTP_DATE_LEN && buf[HTTP_DATE_LEN] == '\0' && strlen(buf) == HTTP_DATE_LEN);
    int64_t back;
    CHECK(http_date_parse(buf, HTTP_DATE_LEN, now, &back) == 0);
    CHECK(back == t);
    char again[HTTP_DATE_BUFSZ];
    CHECK(http_date_format(back, again) == HTTP_DATE_LEN && memcmp(buf, again, HTTP_DATE_BUFSZ) == 0);
    /* The calendar helpers are inverses. */
    int64_t days = t >= 0 ? t / 86400 : -((-(t + 1)) / 86400) - 1, year;
    unsigned month, day;
    http_date_civil_from_days(days, &year, &month, &day);
    CHECK(month >= 1 && month <= 12 && day >= 1 && day <= 31);
    CHECK(http_date_days_from_civil(year, month, day) == days);
}

static void check_date_value(const char *v, size_t len)
{
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        int64_t t = INT64_MIN;
        int rc = http_date_parse(v, len, nows[i], &t);
        CHECK(rc == 0 || rc == -EINVAL);
        if (rc != 0) continue;
        CHECK(t >= T_MIN && t <= T_MAX);
        check_time_roundtrip(t, nows[i]);
    }
}

static void check_message(const struct http_msg *m)
{
    check_cc(m);
    check_etags(m);
    int64_t age;
    int rc = http_age_get(m, &age);
    CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL);
    if (rc == 0) CHECK(age >= 0 && age <= HTTP_DELTA_MAX);
    int star = http_vary_has_star(m);
    CHECK(star == 0 || star == 1);
    static const char *const dates[] = {"Date", "Expires", "Last-Modified", "If-Modified-Since"};
    for (size_t i = 0; i < sizeof(dates) / sizeof(dates[0]); i++) {
        int64_t t;
        rc = http_date_field(m, dates[i], nows[0], &t);
        CHECK(rc == 0 || rc == -ENOENT || rc == -EINVAL);
        if (rc == 0) CHECK(t >= T_MIN && t <= T_MAX);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 8) {
        uint64_t u = 0;
        for (int i = 0; i < 8; i++)
            u = u << 8 | data[i];
        check_time_roundtrip((int64_t)u, nows[0]);
    }

    struct arena a;
    CHECK(arena_init(&a, 8192, 1u << 22) == 0);
    struct http_msg req, resp;
    http_msg_init(&req, 1);
    http_msg_init(&resp, 0);
    req.method = HTTP_METHOD_GET;
    resp.status = 200;
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        size_t len = (size_t)(line_end - p);
        if (len > 0) {
            const char *name = names[(unsigned char)p[0] % N_NAMES];
            const char *v = p + 1, *ve = line_end;
            int ok = 1;
            for (const char *q = v; q < ve; q++)
                if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) ok = 0;
            while (v < ve && is_ows(*v))
                v++;
            while (ve > v && is_ows(ve[-1]))
                ve--;
            if (ok) {
                size_t vl = (size_t)(ve - v);
                CHECK(http_msg_add(&req, &a, name, strlen(name), v, vl) == 0);
                CHECK(http_msg_add(&resp, &a, name, strlen(name), v, vl) == 0);
                check_list_walk(v, vl);
                struct http_cc one;
                memset(&one, 0, sizeof(one));
                http_cc_parse_value(&one, v, vl);
                CHECK((one.valued & ~one.present) == 0 && (one.invalid & ~one.present) == 0);
                check_etag_value(v, vl);
                check_date_value(v, vl);
            }
        }
        p = nl ? nl + 1 : end;
    }
    check_message(&req);
    check_message(&resp);
    arena_free(&a);
    return 0;
}
