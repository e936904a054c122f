/* Parsing the caching-related fields into plain structs: Cache-Control and Pragma (RFC 9111 s5.2, s5.4),
 * entity tags for ETag / If-None-Match / If-Match (RFC 9110 s8.8.3, s13.1.1, s13.1.2), Age
 * (RFC 9111 s5.1) and Vary (RFC 9110 s12.5.5), plus the comma-separated list walker they share
 * (RFC 9110 s5.6.1).
 *
 * Nothing here allocates: results point into the message's field values (so they live as long as the
 * message's arena) or are numbers. Nothing reads a clock.
 */
#ifndef LARDER_HTTP_CACHE_CONTROL_H
#define LARDER_HTTP_CACHE_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "http/http_msg.h"

/* RFC 9111 s1.3: a delta-seconds too big to represent, or an overflowing calculation, is taken as 2^31. */
#define HTTP_DELTA_MAX INT64_C(2147483648)
/* max-stale without a value: "will accept a stale response of any age" (RFC 9111 s5.2.1.2). */
#define HTTP_CC_ANY INT64_MAX

/* ---- comma-separated lists (RFC 9110 s5.6.1) ---- */

/* Walks one element of a #list: skips empty elements and OWS, never splits inside a quoted-string.
 * Returns 1 and sets *elem and *elem_len (trimmed of OWS) or 0 at the end of the list. *pos advances. */
int http_field_list_next(const char **pos, const char *end, const char **elem, size_t *elem_len);

/* 1 if `s` is a non-empty token (RFC 9110 s5.6.2), else 0. */
int http_is_token(const char *s, size_t len);

/* ---- Cache-Control (RFC 9111 s5.2) ---- */

/* Field names listed as the argument of no-cache="..." or private="..." (RFC 9111 s5.2.2.4, s5.2.2.7):
 * spans that point into the field value (valid as long as the message), each itself a comma-separated
 * list of field names. A directive given more often than fits is recorded as its unqualified form
 * instead (more restrictive, so safe). */
#define HTTP_CC_LIST_MAX 4
struct http_cc_list {
    unsigned n;
    struct {
        const char *p;
        uint32_t len;
    } span[HTTP_CC_LIST_MAX];
};

/* Directive bits for struct http_cc.present and .invalid. */
enum {
    HTTP_CC_MAX_AGE = 1u << 0,                /* s5.2.1.1, s5.2.2.1 */
    HTTP_CC_S_MAXAGE = 1u << 1,               /* s5.2.2.10 */
    HTTP_CC_MAX_STALE = 1u << 2,              /* s5.2.1.2 (value HTTP_CC_ANY when given without one) */
    HTTP_CC_MIN_FRESH = 1u << 3,              /* s5.2.1.3 */
    HTTP_CC_STALE_WHILE_REVALIDATE = 1u << 4, /* RFC 5861 s3 */
    HTTP_CC_STALE_IF_ERROR = 1u << 5,         /* RFC 5861 s4 */
    HTTP_CC_NO_CACHE = 1u << 6,               /* unqualified no-cache: s5.2.1.4, s5.2.2.4 */
    HTTP_CC_NO_CACHE_FIELDS = 1u << 7,        /* no-cache="field, ..." (response): see .no_cache_fields */
    HTTP_CC_NO_STORE = 1u << 8,               /* s5.2.1.5, s5.2.2.5 */
    HTTP_CC_NO_TRANSFORM = 1u << 9,           /* s5.2.1.6, s5.2.2.6 */
    HTTP_CC_ONLY_IF_CACHED = 1u << 10,        /* s5.2.1.7 */
    HTTP_CC_MUST_REVALIDATE = 1u << 11,       /* s5.2.2.2 */
    HTTP_CC_PROXY_REVALIDATE = 1u << 12,      /* s5.2.2.8 */
    HTTP_CC_MUST_UNDERSTAND = 1u << 13,       /* s5.2.2.3 */
    HTTP_CC_PRIVATE = 1u << 14,               /* unqualified private: s5.2.2.7 */
    HTTP_CC_PRIVATE_FIELDS = 1u << 15,        /* private="field, ..." : see .private_fields */
    HTTP_CC_PUBLIC = 1u << 16,                /* s5.2.2.9 */
    HTTP_CC_FROM_PRAGMA = 1u << 17,           /* HTTP_CC_NO_CACHE came from "Pragma: no-cache" (s5.4) */
    HTTP_CC_FIELD_PRESENT = 1u << 18,         /* at least one Cache-Control field line was present */
};

struct http_cc {
    uint32_t present; /* HTTP_CC_* bits seen */
    /* Delta-seconds directives whose argument was missing or not 1*DIGIT, or that were repeated with a
     * different value. RFC 9111 s4.2.1 encourages treating invalid freshness information as stale, and
     * lets duplicates be treated as stale; the policy (cache_policy.h) decides per directive. The value
     * field keeps the first valid occurrence. */
    uint32_t invalid;
    uint32_t valued; /* internal: delta-seconds directives that already hold a value */
    int64_t max_age, s_maxage, max_stale, min_fresh, stale_while_revalidate, stale_if_error; /* seconds, <= 2^31 */
    struct http_cc_list no_cache_fields, private_fields;
};

/* Parses every Cache-Control field line of `m` into *cc (several lines combine as one list, RFC 9110
 * s5.3). Directive names match case-insensitively; arguments may be token or quoted-string (s5.2);
 * unknown directives are skipped (s5.2.3), including their quoted arguments, which may hold commas.
 * For a request without any Cache-Control field, "Pragma: no-cache" sets HTTP_CC_NO_CACHE |
 * HTTP_CC_FROM_PRAGMA (RFC 9111 s5.4; RFC 7234 s5.4: Pragma is ignored when Cache-Control is present).
 * Never fails: a malformed element is skipped or marked in .invalid. */
void http_cc_parse(const struct http_msg *m, struct http_cc *cc);

/* Adds the directives of one Cache-Control field value to *cc (which the caller zeroed first). */
void http_cc_parse_value(struct http_cc *cc, const char *v, size_t len);

/* 1 if field name `name` is listed in `l` (case-insensitive, RFC 9111 s5.2.2.4), else 0. */
int http_cc_list_has(const struct http_cc_list *l, const char *name, size_t name_len);

/* ---- Entity tags (RFC 9110 s8.8.3) ---- */

/* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE. `tag` is the opaque part without the quotes. */
struct http_etag {
    const char *tag;
    uint32_t len;
    int weak;
};

/* Parses one entity-tag that must make up the whole of [s, s+len) apart from OWS. 0 or -EINVAL. */
int http_etag_parse(const char *s, size_t len, struct http_etag *out);
/* The ETag field of a response: 0, -ENOENT (absent), or -EINVAL (malformed or several different
 * lines: an entity-tag we cannot trust is treated as no validator). */
int http_etag_get(const struct http_msg *m, struct http_etag *out);
/* RFC 9110 s8.8.3.2 strong comparison: both strong and the opaque tags identical. */
int http_etag_strong_eq(const struct http_etag *a, const struct http_etag *b);
/* RFC 9110 s8.8.3.2 weak comparison: opaque tags identical, weakness ignored. */
int http_etag_weak_eq(const struct http_etag *a, const struct http_etag *b);

/* Evaluates a list-of-entity-tags field (If-None-Match, If-Match: "*" / 1#entity-tag) of `m` against
 * `cur`, over all its field lines. Returns 1 if the field is "*" or any listed tag matches `cur` (weak
 * comparison when `weak`, else strong; RFC 9110 s13.1.1, s13.1.2), 0 if none does, -ENOENT when the
 * field is absent, -EINVAL when it is malformed. `cur` may be NULL (no current entity-tag): then only
 * "*" matches. */
int http_etag_list_match(const struct http_msg *m, const char *field, const struct http_etag *cur, int weak);

/* ---- Age (RFC 9111 s5.1) ---- */

/* The first Age field line (s5.1: SHOULD use the first and discard the rest) as delta-seconds, capped at
 * 2^31 (s1.3). 0 and *out; -ENOENT when absent; -EINVAL when not a non-negative integer (s5.1: the
 * response SHOULD then be considered stale). */
int http_age_get(const struct http_msg *m, int64_t *out);

/* ---- Vary (RFC 9110 s12.5.5) ---- */

/* 1 if a Vary member of `m` is "*" (RFC 9111 s4.1: always fails to match), else 0. */
int http_vary_has_star(const struct http_msg *m);

#endif
