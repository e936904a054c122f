#include "http/http_range.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http/http_cache_control.h"
#include "http/http_date.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* 1*DIGIT saturating at UINT64_MAX (RFC 9110 s14.1.2: "prevent parsing errors due to integer conversion
 * overflows"): a first-pos that large is simply unsatisfiable, a last-pos that large means "to the end".
 * Returns the digit count. */
static size_t digits_sat(const char *p, const char *end, uint64_t *out)
{
    size_t n = 0;
    uint64_t v = 0;
    while (p + n < end && is_digit(p[n])) {
        unsigned d = (unsigned)(p[n] - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
        n++;
    }
    *out = v;
    return n;
}

/* A range-spec before resolution. */
struct spec {
    int suffix;    /* "-N": last N bytes */
    int open;      /* "N-": from N to the end */
    uint64_t a, b; /* first-pos / last-pos, or suffix-length in a */
};

/* int-range = first-pos "-" [ last-pos ]; suffix-range = "-" suffix-length. 0 or -EINVAL. */
static int parse_spec(const char *p, size_t len, struct spec *s)
{
    const char *end = p + len;
    memset(s, 0, sizeof(*s));
    if (p < end && *p == '-') {
        s->suffix = 1;
        size_t n = digits_sat(p + 1, end, &s->a);
        return n > 0 && p + 1 + n == end ? 0 : -EINVAL;
    }
    size_t n = digits_sat(p, end, &s->a);
    if (n == 0 || p + n >= end || p[n] != '-') return -EINVAL;
    p += n + 1;
    if (p == end) {
        s->open = 1;
        return 0;
    }
    n = digits_sat(p, end, &s->b);
    if (n == 0 || p + n != end) return -EINVAL;
    return s->b < s->a ? -EINVAL : 0; /* s14.1.1: an int-range with last-pos < first-pos is invalid */
}

static enum http_range_status ignore(struct http_range_set *out, const char *why)
{
    out->n = 0;
    out->why = why;
    return HTTP_RANGE_FULL;
}

/* Ranges involved in an overlap with another one (s14.2, "overlapping ranges"). n <= HTTP_RANGE_MAX, so
 * the quadratic scan costs at most ~5000 comparisons. */
static size_t count_overlapping(const struct http_range *r, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (i != j && r[i].first <= r[j].last && r[j].first <= r[i].last) {
                count++;
                break;
            }
    return count;
}

enum http_range_status http_range_eval(const char *value, size_t len, uint64_t length, struct http_range_set *out)
{
    const char *p = value, *end = value + len;
    out->n = 0;
    out->why = NULL;

    /* ranges-specifier = range-unit "=" range-set */
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    const char *eq = memchr(p, '=', (size_t)(end - p));
    if (eq == NULL || !http_is_token(p, (size_t)(eq - p))) return ignore(out, "malformed Range");
    if (!((size_t)(eq - p) == 5 && strncasecmp(p, "bytes", 5) == 0))
        return ignore(out, "range unit is not bytes");           /* s14.2: a proxy MAY discard an unknown unit */
    if (length == 0) return ignore(out, "empty representation"); /* s14.2: MAY ignore Range for zero-length content */

    const char *pos = eq + 1, *e;
    size_t elen, n_specs = 0;
    while (http_field_list_next(&pos, end, &e, &elen)) {
        struct spec s;
        if (++n_specs > HTTP_RANGE_MAX) return ignore(out, "too many ranges");
        if (parse_spec(e, elen, &s) < 0)
            return ignore(out, "invalid range-spec"); /* s14.1.1: one invalid spec invalidates the set */
        struct http_range r;
        if (s.suffix) {
            if (s.a == 0) continue; /* s14.1.2: a suffix-range is satisfiable only with a non-zero length */
            r.first = s.a >= length ? 0 : length - s.a;
            r.last = length - 1;
        } else {
            if (s.a >= length) continue; /* s14.1.2: unsatisfiable unless first-pos < length */
            r.first = s.a;
            r.last = s.open || s.b >= length ? length - 1 : s.b;
        }
        out->r[out->n++] = r;
    }
    if (n_specs == 0) return ignore(out, "empty range-set");
    if (out->n == 0) return HTTP_RANGE_UNSATISFIABLE;
    if (count_overlapping(out->r, out->n) > HTTP_RANGE_MAX_OVERLAP) return ignore(out, "overlapping ranges");
    if (out->n > HTTP_RANGE_MAX_UNORDERED)
        for (size_t i = 1; i < out->n; i++)
            if (out->r[i].first < out->r[i - 1].first) return ignore(out, "many ranges out of order");
    return HTTP_RANGE_PARTIAL;
}

static int looks_like_etag(const char *v, size_t len)
{
    /* s13.1.5: "A valid entity-tag can be distinguished from a valid HTTP-date by examining the first
     * three characters for a DQUOTE." */
    for (size_t i = 0; i < len && i < 3; i++)
        if (v[i] == '"') return 1;
    return 0;
}

int http_if_range_eval(const struct http_msg *req, const struct http_msg *resp, int64_t now)
{
    const struct http_field *f = http_msg_find(req, "If-Range");
    if (f == NULL) return -ENOENT;
    if (http_msg_find_next(req, f) != NULL)
        return 0; /* a singleton field given twice cannot be trusted: send the whole representation */

    if (looks_like_etag(f->value, f->value_len)) {
        struct http_etag want, have;
        if (http_etag_parse(f->value, f->value_len, &want) < 0 || http_etag_get(resp, &have) < 0) return 0;
        return http_etag_strong_eq(&want, &have);
    }

    int64_t want, lm, date;
    if (http_date_parse(f->value, f->value_len, now, &want) < 0) return 0;
    if (http_date_field(resp, "Last-Modified", now, &lm) < 0 || http_date_field(resp, "Date", now, &date) < 0) return 0;
    /* s13.1.5: a date that is not a strong validator makes the condition false; s8.8.2.2: a cache may
     * deem Last-Modified strong when the entry's Date is at least one second after it. */
    if (date < lm + 1) return 0;
    return want == lm;
}

enum http_range_status http_range_for_request(const struct http_msg *req, const struct http_msg *resp, uint64_t length, int64_t now,
                                              struct http_range_set *out)
{
    out->n = 0;
    out->why = NULL;
    const struct http_field *f = http_msg_find(req, "Range");
    if (f == NULL) return HTTP_RANGE_FULL;
    /* s14.2: "GET is the only method for which range handling is defined". */
    if (req->method != HTTP_METHOD_GET) return ignore(out, "Range on a method other than GET");
    if (http_msg_find_next(req, f) != NULL) return ignore(out, "several Range fields");
    /* s13.2.2 step 5: If-Range false means ignore Range and send 200. */
    if (http_if_range_eval(req, resp, now) == 0) return ignore(out, "If-Range does not match");
    return http_range_eval(f->value, f->value_len, length, out);
}

/* Strict (non-saturating) 1*DIGIT for values an upstream sent us. Returns digits consumed, 0 on error. */
static size_t digits_strict(const char *p, const char *end, uint64_t *out)
{
    size_t n = 0;
    uint64_t v = 0;
    while (p + n < end && is_digit(p[n])) {
        unsigned d = (unsigned)(p[n] - '0');
        if (v > (UINT64_MAX - d) / 10) return 0;
        v = v * 10 + d;
        n++;
    }
    *out = v;
    return n;
}

int http_content_range_parse(const char *v, size_t len, struct http_content_range *out)
{
    const char *p = v, *end = v + len;
    size_t n;
    memset(out, 0, sizeof(*out));
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    /* Content-Range = range-unit SP ( range-resp / unsatisfied-range ) */
    if (end - p < 6 || strncasecmp(p, "bytes ", 6) != 0) return -EINVAL;
    p += 6;
    if (p < end && *p == '*') {
        out->unsatisfied = 1;
        p++;
    } else {
        if ((n = digits_strict(p, end, &out->first)) == 0) return -EINVAL;
        p += n;
        if (p >= end || *p++ != '-') return -EINVAL;
        if ((n = digits_strict(p, end, &out->last)) == 0) return -EINVAL;
        p += n;
        if (out->last < out->first) return -EINVAL;
    }
    if (p >= end || *p++ != '/') return -EINVAL;
    if (p < end && *p == '*' && p + 1 == end) {
        if (out->unsatisfied) return -EINVAL; /* unsatisfied-range = "*" "/" complete-length: the length is required */
        return 0;
    }
    if ((n = digits_strict(p, end, &out->complete)) == 0 || p + n != end) return -EINVAL;
    out->length_known = 1;
    if (!out->unsatisfied && out->complete <= out->last) return -EINVAL;
    return 0;
}

static int fit(int n, size_t size)
{
    return n < 0 || (size_t)n >= size ? -ENOSPC : n;
}

int http_content_range_format(char *buf, size_t size, const struct http_range *r, uint64_t complete)
{
    return fit(snprintf(buf, size, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, r->first, r->last, complete), size);
}

int http_content_range_format_unsatisfied(char *buf, size_t size, uint64_t complete)
{
    return fit(snprintf(buf, size, "bytes */%" PRIu64, complete), size);
}
