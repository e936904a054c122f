/* Byte range requests (RFC 9110 s14) served from a complete stored representation: parsing Range and
 * evaluating it against the representation length, the If-Range precondition (RFC 9110 s13.1.5), and
 * Content-Range parsing and formatting (RFC 9110 s14.4).
 *
 * Pure: no allocation (results are fixed-size structs the caller owns), no clock.
 */
#ifndef LARDER_HTTP_RANGE_H
#define LARDER_HTTP_RANGE_H

#include <stddef.h>
#include <stdint.h>

#include "http/http_msg.h"

/* RFC 9110 s14.2 lets a server ignore a Range that looks like abuse; ours are:
 * more range-specs than HTTP_RANGE_MAX, more than HTTP_RANGE_MAX_OVERLAP ranges that overlap another
 * ("a ranges-specifier with more than two overlapping ranges"), or more than HTTP_RANGE_MAX_UNORDERED
 * ranges not in ascending order ("many small ranges that are not listed in ascending order"). */
#define HTTP_RANGE_MAX 100
#define HTTP_RANGE_MAX_OVERLAP 2
#define HTTP_RANGE_MAX_UNORDERED 16

/* One satisfiable byte range, inclusive at both ends, resolved against the representation length. */
struct http_range {
    uint64_t first, last;
};

struct http_range_set {
    size_t n; /* satisfiable ranges, in request order (unsatisfiable ones dropped) */
    struct http_range r[HTTP_RANGE_MAX];
    const char *why; /* static text saying why the Range was ignored, for logs; NULL otherwise */
};

enum http_range_status {
    HTTP_RANGE_FULL = 0,      /* no Range, or one we ignore (invalid, unknown unit, abusive, If-Range false):
                                 send the whole representation with 200 */
    HTTP_RANGE_PARTIAL,       /* send 206 with set->r[0..n) (multipart/byteranges when n > 1) */
    HTTP_RANGE_UNSATISFIABLE, /* send 416 with "Content-Range: bytes * / length" (s14.4, s15.5.17) */
};

/* Evaluates one Range field value (ranges-specifier, RFC 9110 s14.1.1) against a representation of
 * `length` bytes (s14.1.2). Unit "bytes" only (case-insensitive, s14.1); any other unit, any invalid
 * range-spec (last-pos < first-pos, garbage), or the limits above mean HTTP_RANGE_FULL (s14.2: a server
 * MAY ignore such a Range). Huge numbers saturate instead of overflowing (s14.1.2). An int-range is
 * satisfiable when first-pos < length; a suffix-range when its length is non-zero. A zero-length
 * representation ignores Range (s14.2: MAY ignore when the representation has no content). */
enum http_range_status http_range_eval(const char *value, size_t len, uint64_t length, struct http_range_set *out);

/* The If-Range precondition (RFC 9110 s13.1.5) of request `req` against the stored response `resp`.
 * An entity-tag must match resp's ETag by strong comparison. An HTTP-date must equal resp's
 * Last-Modified exactly and be a strong validator: by s8.8.2.2 the cache entry's Date must be at least
 * one second after Last-Modified. Returns 1 (true: honour Range), 0 (false: ignore Range, send 200),
 * or -ENOENT when the request has no If-Range. `now` only serves to read two-digit years. */
int http_if_range_eval(const struct http_msg *req, const struct http_msg *resp, int64_t now);

/* Everything RFC 9110 s13.2.2 step 5 and s14.2 say about a Range on a request answered from a complete
 * stored response `resp` of `length` bytes: only for GET; a request with several Range lines is
 * ignored; If-Range false means 200. Call it only after the other preconditions did not yield 304
 * (s14.2: "Range is ignored when a conditional GET would result in a 304"). */
enum http_range_status http_range_for_request(const struct http_msg *req, const struct http_msg *resp, uint64_t length, int64_t now,
                                              struct http_range_set *out);

/* Content-Range (RFC 9110 s14.4) as received, e.g. in a 206 from upstream. */
struct http_content_range {
    int unsatisfied;      /* "bytes * / complete": first/last unset */
    int length_known;     /* complete-length is not "*" */
    uint64_t first, last; /* inclusive */
    uint64_t complete;    /* valid when length_known */
};

/* Parses "bytes first-last/complete", "bytes first-last/ *" or "bytes * /complete" (no spaces around
 * the slash). -EINVAL for anything else, and for the invalid forms of s14.4 (last < first, or complete
 * <= last): a recipient MUST NOT then recombine the content with a stored representation. */
int http_content_range_parse(const char *v, size_t len, struct http_content_range *out);

/* "bytes first-last/complete" into buf, NUL-terminated. Returns the length or -ENOSPC. */
int http_content_range_format(char *buf, size_t size, const struct http_range *r, uint64_t complete);
/* "bytes * /complete" (without the space) for a 416 (RFC 9110 s14.4). Returns the length or -ENOSPC. */
int http_content_range_format_unsatisfied(char *buf, size_t size, uint64_t complete);

#endif
