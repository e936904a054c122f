/* libFuzzer target: byte ranges (http/http_range.h).
 *
 * Input: 8 bytes of representation length (big-endian), then lines separated by '\n':
 *   line 0: a Range field value          line 1: a Content-Range field value
 *   line 2: an If-Range field value      line 3: the stored ETag
 *   line 4: the stored Last-Modified     line 5: the stored Date
 * Lines holding a control byte other than HTAB, or DEL, are left out of the messages (no parsed field
 * value holds one) but still go to the value parsers, which must survive any bytes.
 *
 * Invariants (abort() when broken):
 *   - http_range_eval(): PARTIAL has 1..HTTP_RANGE_MAX ranges, each first <= last < length, with at most
 *     HTTP_RANGE_MAX_OVERLAP of them overlapping another; UNSATISFIABLE and FULL have none; a reason is
 *     given exactly when a Range is ignored; the answer is the same on a copy without OWS around it;
 *   - every range formats as a Content-Range that http_content_range_parse() reads back to it, and
 *     the 416 form reads back as unsatisfied; formatting never writes past the size given;
 *   - http_content_range_parse(): what it accepts satisfies RFC 9110 s14.4 (first <= last <
 *     complete-length) and prints back to something it parses to the same values;
 *   - http_if_range_eval() is 1, 0 or -ENOENT, and -ENOENT exactly without If-Range;
 *     http_range_for_request() agrees with http_range_eval() when If-Range holds.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_msg.h"
#include "http/http_range.h"

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                                           \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

#define NOW INT64_C(1700000000)

static int field_ok(const char *v, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f) return 0;
    return 1;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Formats into a heap buffer of exactly `size` bytes (ASan guards it); returns the length or -ENOSPC. */
static int format_exact(const struct http_range *r, uint64_t complete, size_t size, char **out)
{
    char *buf = malloc(size ? size : 1);
    CHECK(buf != NULL);
    int n = r ? http_content_range_format(size ? buf : NULL, size, r, complete)
              : http_content_range_format_unsatisfied(size ? buf : NULL, size, complete);
    if (n >= 0) {
        CHECK((size_t)n < size && buf[n] == '\0' && strlen(buf) == (size_t)n);
        *out = buf;
    } else {
        CHECK(n == -ENOSPC);
        free(buf);
        *out = NULL;
    }
    return n;
}

static void check_formatted(const struct http_range *r, uint64_t complete)
{
    char *s;
    int n = format_exact(r, complete, 100, &s);
    CHECK(n > 0);
    struct http_content_range cr;
    int rc = http_content_range_parse(s, (size_t)n, &cr);
    if (r != NULL) {
        /* A range of a representation of `complete` bytes: s14.4 valid, so it must read back. */
        CHECK(rc == 0 && !cr.unsatisfied && cr.length_known);
        CHECK(cr.first == r->first && cr.last == r->last && cr.complete == complete);
    } else {
        CHECK(rc == 0 && cr.unsatisfied && cr.length_known && cr.complete == complete);
    }
    free(s);
    /* One byte short is -ENOSPC, never an overflow. */
    CHECK(format_exact(r, complete, (size_t)n, &s) == -ENOSPC);
    CHECK(format_exact(r, complete, (size_t)n + 1, &s) == n);
    free(s);
}

static void check_eval(const char *v, size_t len, uint64_t length)
{
    struct http_range_set set;
    memset(&set, 0xa5, sizeof(set));
    enum http_range_status st = http_range_eval(v, len, length, &set);
    switch (st) {
    case HTTP_RANGE_PARTIAL: {
        CHECK(set.n >= 1 && set.n <= HTTP_RANGE_MAX && set.why == NULL);
        size_t overlapping = 0;
        for (size_t i = 0; i < set.n; i++) {
            const struct http_range *r = &set.r[i];
            CHECK(r->first <= r->last && r->last < length);
            int ov = 0;
            for (size_t j = 0; j < set.n; j++)
                if (i != j && r->first <= set.r[j].last && set.r[j].first <= r->last) ov = 1;
            overlapping += (size_t)ov;
            check_formatted(r, length);
        }
        CHECK(overlapping <= HTTP_RANGE_MAX_OVERLAP);
        break;
    }
    case HTTP_RANGE_UNSATISFIABLE:
        CHECK(set.n == 0 && set.why == NULL && length > 0);
        check_formatted(NULL, length);
        break;
    case HTTP_RANGE_FULL:
        CHECK(set.n == 0 && set.why != NULL && set.why[0] != '\0');
        break;
    default:
        CHECK(0);
    }

    /* OWS around a field value is not part of it (RFC 9110 s5.5): the trimmed value says the same. */
    const char *s = v, *e = v + len;
    while (s < e && is_ows(*s))
        s++;
    while (e > s && is_ows(e[-1]))
        e--;
    struct http_range_set t;
    enum http_range_status st2 = http_range_eval(s, (size_t)(e - s), length, &t);
    CHECK(st2 == st && t.n == set.n);
    CHECK(set.n == 0 || memcmp(t.r, set.r, set.n * sizeof(set.r[0])) == 0);
}

static void check_content_range(const char *v, size_t len)
{
    struct http_content_range cr;
    if (http_content_range_parse(v, len, &cr) != 0) return;
    if (cr.unsatisfied) {
        CHECK(cr.length_known);
        check_formatted(NULL, cr.complete);
        return;
    }
    CHECK(cr.first <= cr.last);
    if (!cr.length_known) return;
    CHECK(cr.last < cr.complete); /* s14.4: otherwise invalid */
    struct http_range r = {cr.first, cr.last};
    check_formatted(&r, cr.complete);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8) return 0;
    uint64_t length = 0;
    for (int i = 0; i < 8; i++)
        length = length << 8 | data[i];
    const char *lines[6] = {NULL};
    size_t lens[6] = {0};
    const char *p = (const char *)data + 8, *end = (const char *)data + size;
    for (int i = 0; i < 6 && p <= end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        lines[i] = p;
        lens[i] = (size_t)((nl ? nl : end) - p);
        p = nl ? nl + 1 : end + 1;
    }
    if (lines[0] != NULL) {
        check_eval(lines[0], lens[0], length);
        /* Small lengths are where the edge cases are. */
        check_eval(lines[0], lens[0], length & 0xff);
        check_eval(lines[0], lens[0], length >> 56);
    }
    if (lines[1] != NULL) check_content_range(lines[1], lens[1]);

    struct arena a;
    CHECK(arena_init(&a, 4096, 1u << 20) == 0);
    struct http_msg req, resp;
    http_msg_init(&req, 1);
    http_msg_init(&resp, 0);
    req.method = HTTP_METHOD_GET;
    req.method_name = "GET";
    req.method_len = 3;
    resp.status = 200;
    static const char *const req_names[3] = {"Range", NULL, "If-Range"};
    static const char *const resp_names[6] = {NULL, NULL, NULL, "ETag", "Last-Modified", "Date"};
    for (int i = 0; i < 6; i++) {
        if (lines[i] == NULL || !field_ok(lines[i], lens[i])) continue;
        const char *v = lines[i], *e = v + lens[i];
        while (v < e && is_ows(*v))
            v++;
        while (e > v && is_ows(e[-1]))
            e--;
        if (i < 3 && req_names[i] != NULL)
            CHECK(http_msg_add(&req, &a, req_names[i], strlen(req_names[i]), v, (size_t)(e - v)) == 0);
        if (resp_names[i] != NULL) CHECK(http_msg_add(&resp, &a, resp_names[i], strlen(resp_names[i]), v, (size_t)(e - v)) == 0);
    }
    int ir = http_if_range_eval(&req, &resp, NOW);
    CHECK(ir == 1 || ir == 0 || ir == -ENOENT);
    CHECK((ir == -ENOENT) == (http_msg_find(&req, "If-Range") == NULL));

    struct http_range_set set;
    enum http_range_status st = http_range_for_request(&req, &resp, length, NOW, &set);
    CHECK(st == HTTP_RANGE_FULL || st == HTTP_RANGE_PARTIAL || st == HTTP_RANGE_UNSATISFIABLE);
    const struct http_field *range = http_msg_find(&req, "Range");
    if (range == NULL || ir == 0) {
        CHECK(st == HTTP_RANGE_FULL && set.n == 0);
    } else {
        struct http_range_set direct;
        CHECK(st == http_range_eval(range->value, range->value_len, length, &direct));
        CHECK(set.n == direct.n && (set.n == 0 || memcmp(set.r, direct.r, set.n * sizeof(set.r[0])) == 0));
    }
    for (size_t i = 0; i < set.n; i++)
        CHECK(set.r[i].first <= set.r[i].last && set.r[i].last < length);
    /* A method other than GET never gets ranges (RFC 9110 s14.2). */
    req.method = HTTP_METHOD_HEAD;
    CHECK(http_range_for_request(&req, &resp, length, NOW, &set) == HTTP_RANGE_FULL);
    arena_free(&a);
    return 0;
}
