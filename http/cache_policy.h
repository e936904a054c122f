/* RFC 9111 (HTTP Caching) for a *shared* cache, as pure functions.
 *
 * Inputs are message heads (struct http_msg), times and limits; outputs are plain structs, enums and
 * static reason strings. Nothing here reads a clock, a global, a connection or the store: every time is
 * an argument (int64_t seconds since the epoch), so each rule can be tested with a table.
 *
 * Where a function produces header fields it writes them into a caller-supplied arena (see arena.h:
 * on overflow it fails with -ENOMEM and the arena's sticky flag is set).
 *
 * The life of a cached object, and the function for each step:
 *   request arrives        cp_decide()                      s4, s4.2, s4.2.4, s5.2.1
 *     HIT                  cp_eval_conditionals()           RFC 9110 s13.2.2, RFC 9111 s4.3.2
 *                          http_range_for_request()         RFC 9110 s14 (http_range.h)
 *     REVALIDATE           cp_conditional()                 s4.3.1
 *       304 arrives        cp_select_304(), cp_merge_304()  s4.3.4, s3.2
 *     MISS / full reply    cp_storable(), cp_prepare_for_storage(), cp_variant_key()   s3, s3.1, s4.1
 *   HEAD 200 from origin   cp_head_freshen(), cp_merge_304()                        s4.3.5
 *   unsafe method done     cp_invalidation_targets()                                s4.4
 *
 * Section numbers without a prefix are RFC 9111.
 */
#ifndef LARDER_CACHE_POLICY_H
#define LARDER_CACHE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "http/arena.h"
#include "http/http_cache_control.h"
#include "http/http_msg.h"

/* ------------------------------------------------------------------------------------------------ */
/* Limits (from configuration)                                                                       */

struct cp_limits {
    /* s4.2.2: heuristic freshness is heuristic_percent % of (Date - Last-Modified), at most
     * heuristic_max seconds. Defaults: 10 %, 86400 s. 0 % disables heuristics; above 100 counts as 100. */
    unsigned heuristic_percent;
    int64_t heuristic_max;
    /* s4.2.4: a disconnected cache may serve a stale response unless a directive forbids it. Seconds of
     * staleness we accept when the origin fails and neither side sent stale-if-error. Default 0 (off). */
    int64_t stale_if_error_default;
};

/* Fills *l with the defaults above. */
void cp_limits_default(struct cp_limits *l);

/* ------------------------------------------------------------------------------------------------ */
/* Status codes                                                                                      */

/* RFC 9110 s15.1: heuristically cacheable status codes (200 203 204 206 300 301 308 404 405 410 414
 * 501). */
int cp_status_heuristic(int status);
/* Status codes this cache "understands" for s3 and s5.2.2.3 (must-understand): the final codes of RFC
 * 9110 s15 whose caching behaviour we implement. 206 and 304 are not among them: we never store
 * partial content (s3.3, s3.4) and a 304 is not a representation. */
int cp_status_understood(int status);

/* ------------------------------------------------------------------------------------------------ */
/* Storing (s3)                                                                                      */

enum cp_store_verdict {
    CP_STORE_OK = 0,
    CP_NS_METHOD,          /* s3: only responses to GET are stored (HEAD only freshens, s4.3.5) */
    CP_NS_INCOMPLETE,      /* s3.3: the body was not received completely */
    CP_NS_NOT_FINAL,       /* s3: 1xx status */
    CP_NS_PARTIAL,         /* s3.3, s3.4: 206 is never stored as an object */
    CP_NS_NOT_MODIFIED,    /* 304: s4.3.4 updates stored responses instead */
    CP_NS_MUST_UNDERSTAND, /* s3, s5.2.2.3: must-understand with a status we do not understand */
    CP_NS_NO_STORE,        /* s5.2.2.5: response no-store (and no must-understand override) */
    CP_NS_NO_STORE_REQ,    /* s5.2.1.5: request no-store */
    CP_NS_PRIVATE,         /* s5.2.2.7: unqualified private; a shared cache MUST NOT store */
    CP_NS_AUTHORIZATION,   /* s3.5: Authorization without must-revalidate, public or s-maxage */
    CP_NS_VARY_STAR,       /* s4.1: "Vary: *" can never be selected, so storing it is useless */
    CP_NS_NOT_CACHEABLE,   /* s3: no public, Expires, max-age, s-maxage, nor a heuristically cacheable status */
};

/* Set in cp_storable() flags when the body was cut short (reset, short Content-Length, no last chunk). */
#define CP_STORE_INCOMPLETE 0x1u

/* May this shared cache store `resp`, the response to `req`? (s3, s3.5, s5.2.2.3, s5.2.2.5, s5.2.2.7)
 * Call it when the head arrives (flags 0) and again when the body ends (CP_STORE_INCOMPLETE if it was
 * truncated). Returns CP_STORE_OK or the first reason not to store; cp_store_reason() names it. */
enum cp_store_verdict cp_storable(const struct http_msg *req, const struct http_msg *resp, unsigned flags);

/* Short text for logs, e.g. "response no-store (s5.2.2.5)". Never NULL. */
const char *cp_store_reason(enum cp_store_verdict v);

/* Edits a storable response head into the form to store (s3.1): marks removed (HTTP_FIELD_REMOVED) the
 * hop-by-hop fields (Connection and the fields it names, Keep-Alive, Proxy-Connection, TE, Trailer,
 * Transfer-Encoding, Upgrade: the stored body is de-chunked), the proxy-specific fields
 * (Proxy-Authenticate, Proxy-Authentication-Info, Proxy-Authorization), and the fields named by
 * private="..." (s5.2.2.7). Adds Date = response_time when Date is absent or invalid (RFC 9110 s6.6.1).
 * 0, -ENOMEM, or -ERANGE (response_time beyond year 9999). */
int cp_prepare_for_storage(struct http_msg *resp, int64_t response_time, struct arena *a);

/* ------------------------------------------------------------------------------------------------ */
/* Freshness and age (s4.2)                                                                          */

enum cp_fresh_source {
    CP_FRESH_NONE = 0,  /* no explicit expiry and no usable heuristic: lifetime 0 */
    CP_FRESH_S_MAXAGE,  /* s5.2.2.10 (shared cache) */
    CP_FRESH_MAX_AGE,   /* s5.2.2.1 */
    CP_FRESH_EXPIRES,   /* s5.3, relative to Date (or response_time when Date is absent or invalid) */
    CP_FRESH_HEURISTIC, /* s4.2.2 */
    CP_FRESH_INVALID,   /* invalid or conflicting max-age/s-maxage/Expires: stale (s4.2.1, s5.3) */
};

/* s4.2.1, first match of: s-maxage, max-age, Expires - Date, heuristic (s4.2.2: heuristic_percent of
 * Date - Last-Modified, capped at heuristic_max, only for heuristically cacheable statuses or "public",
 * and only when there is no explicit expiry). Invalid or conflicting values give 0 (stale). Returns
 * seconds in [0, 2^31]; *source (may be NULL) says which rule applied. */
int64_t cp_freshness_lifetime(const struct http_msg *resp, int64_t response_time, const struct cp_limits *lim,
                              enum cp_fresh_source *source);

/* s4.2.3, exactly:
 *   apparent_age = max(0, response_time - date_value)
 *   response_delay = response_time - request_time
 *   corrected_age_value = age_value + response_delay
 *   corrected_initial_age = max(apparent_age, corrected_age_value)
 *   resident_time = now - response_time
 *   current_age = corrected_initial_age + resident_time
 * with response_delay and resident_time floored at 0 (a clock stepping backwards must not make a
 * response younger) and the result capped at 2^31 (s1.3). */
int64_t cp_age_formula(int64_t age_value, int64_t date_value, int64_t request_time, int64_t response_time, int64_t now);

/* cp_age_formula() on a stored response: age_value from its Age field (0 if absent or invalid), date_value
 * from its Date field (response_time if absent or invalid, RFC 9110 s6.6.1). */
int64_t cp_current_age(const struct http_msg *resp, int64_t request_time, int64_t response_time, int64_t now);

/* ------------------------------------------------------------------------------------------------ */
/* Vary (s4.1)                                                                                       */

/* cp_variant_key() returns this (positive, not an error) when the response has "Vary: *". */
#define CP_VARY_STAR 1
/* Most distinct field names a Vary may list before we refuse to build a key (-E2BIG: do not store). */
#define CP_VARY_MAX_FIELDS 32

/* The secondary cache key (s4.1): for each field name listed in resp's Vary (lower-cased, duplicates
 * dropped, sorted), "name" then either ":" and the request's value or "!" when the request lacks that
 * field (absent only matches absent, s4.1), then "\n". The value is every field line of that name
 * combined with "," (RFC 9110 s5.3), each list member trimmed of OWS and empty members dropped, runs of
 * OWS inside a member (outside quoted-strings) collapsed to one SP (s4.1: "adding or removing
 * whitespace, where allowed"). A response without Vary gives the empty key.
 * Returns 0 with *key (NUL-terminated, in the arena) and *key_len; CP_VARY_STAR; -E2BIG (too many
 * fields); -EINVAL (a Vary member is not a token, or a request value holds a control character);
 * -ENOMEM. */
int cp_variant_key(const struct http_msg *resp, const struct http_msg *req, struct arena *a, const char **key, size_t *key_len);

/* s4.1: does `req` select the stored response `resp`, which was stored under `key`? Compares without
 * allocating. 1 yes, 0 no ("Vary: *" never matches; nor does a key we cannot build). */
int cp_vary_matches(const struct http_msg *resp, const char *key, size_t key_len, const struct http_msg *req);

/* ------------------------------------------------------------------------------------------------ */
/* Deciding what to do with a request (s4)                                                           */

/* What cp_decide() needs from a stored response that depends neither on the request nor on the clock:
 * its Cache-Control, "Vary: *", the Age and Date values and the freshness lifetime. A caller that
 * keeps a decoded head across requests (proxy/cache_hot.h) computes it once with cp_summarize() and
 * passes it along, so that a hit does not parse Cache-Control and dates again. Pointers in cc point
 * into resp's field values. */
struct cp_resp_summary {
    struct http_cc cc;
    int vary_star;
    int age_invalid;    /* an Age field that is not delta-seconds (s5.1: then stale) */
    int64_t age_value;  /* s4.2.3: Age, 0 if absent or invalid */
    int64_t date_value; /* s4.2.3: Date, or response_time if absent or invalid */
    int64_t lifetime;   /* s4.2.1 */
    enum cp_fresh_source source;
};
void cp_summarize(const struct http_msg *resp, int64_t response_time, const struct cp_limits *lim, struct cp_resp_summary *out);

/* Until when (exclusive, seconds) `resp`, received at response_time for a request sent at
 * request_time, may be reused without validation by a request without limits of its own: while its
 * freshness lifetime exceeds its current age (s4.2), judged at `now`. 0 when it is not fresh at `now`,
 * or never may be (unqualified no-cache, s5.2.2.4). */
int64_t cp_reusable_until(const struct http_msg *resp, int64_t request_time, int64_t response_time, int64_t now,
                          const struct cp_limits *lim);

/* A stored response as the caller loaded it. */
struct cp_stored {
    const struct http_msg *resp; /* stored status and header fields */
    int64_t request_time;        /* s4.2.3, of the exchange that produced or last validated it */
    int64_t response_time;       /* s4.2.3, idem */
    const char *variant_key;     /* cp_variant_key() of the request it was stored for; NULL: not checked */
    size_t variant_key_len;
    int invalidated; /* s4.4: marked invalid; needs validation before reuse */
    /* Optional: cp_summarize(resp, response_time, lim) with the lim given to cp_decide; NULL: computed
     * there. Same decisions either way. */
    const struct cp_resp_summary *summary;
};

enum cp_action {
    CP_MISS = 0,   /* fetch (unconditionally), then maybe store */
    CP_HIT,        /* answer from the stored response without contacting the origin */
    CP_REVALIDATE, /* send a conditional request (cp_conditional()) and use / update the stored response */
    CP_PASS,       /* forward; do not look at or change the cache (the response may still trigger s4.4) */
};

/* Flags in struct cp_decision.flags. */
enum {
    CP_F_STALE = 1u << 0,          /* HIT on a stale response (request max-stale, s5.2.1.2, or RFC 5861 s3
                                      with only-if-cached) */
    CP_F_SWR = 1u << 1,            /* REVALIDATE: RFC 5861 s3 stale-while-revalidate lets the caller send the
                                      stale response now and revalidate in the background */
    CP_F_STALE_IF_ERROR = 1u << 2, /* REVALIDATE or PASS: if the origin cannot be reached or answers 500, 502, 503
                                      or 504 before .stale_if_error_until, the stored response may be sent
                                      instead (RFC 5861 s4; s4.2.4, s4.3.3) */
    CP_F_ONLY_IF_CACHED = 1u << 3, /* s5.2.1.7: the request cannot be satisfied from the cache: reply 504
                                      and do not contact the origin (action says what would have happened) */
    CP_F_NO_STORE = 1u << 4,       /* s5.2.1.5: request no-store; never store or update from this exchange
                                      (set with any action, including HIT) */
    CP_F_STRIP = 1u << 5,          /* HIT: remove the fields named in .strip before sending (s5.2.2.4) */
    CP_F_HEURISTIC = 1u << 6,      /* the freshness lifetime is heuristic (s4.2.2) */
};

struct cp_decision {
    enum cp_action action;
    unsigned flags;               /* CP_F_* */
    const char *reason;           /* static text for logs and Cache-Status detail */
    int64_t age;                  /* current_age of the stored response (s4.2.3); 0 when none */
    int64_t lifetime;             /* its freshness_lifetime (s4.2.1); 0 when none */
    int64_t stale_if_error_until; /* with CP_F_STALE_IF_ERROR: absolute time, see above */
    /* The request itself limits reuse of a stored response: no-cache (or Pragma: no-cache), max-age
     * or min-fresh (s5.2.1). Set for every method and action; a caller that offers a response other
     * than through cp_decide (single flight's complete flights) must not offer it then. */
    int request_limits_reuse;
    /* With CP_F_STRIP: the no-cache="..." field names (s5.2.2.4). Points into stored->resp. */
    struct http_cc_list strip;
};

/* What to do with request `req` given the stored response `stored` (NULL when nothing is stored for
 * its key) at time `now` (s4, s4.1, s4.2, s4.2.4, s5.2.1, s5.2.2, RFC 5861):
 *  - methods other than GET and HEAD: PASS (s4: unsafe methods are written through; we store only GET).
 *  - nothing stored, or Vary does not select it: MISS.
 *  - stored response "Vary: *", or marked invalid (s4.4): REVALIDATE / MISS.
 *  - response no-cache (unqualified), request no-cache or Pragma: no-cache, request max-age exceeded,
 *    request min-fresh not met: REVALIDATE.
 *  - fresh: HIT (with CP_F_STRIP for response no-cache="fields").
 *  - stale: HIT|CP_F_STALE within request max-stale, else REVALIDATE, unless must-revalidate,
 *    proxy-revalidate or s-maxage forbids serving it stale (s4.2.4, s5.2.2.2, s5.2.2.8, s5.2.2.10): those
 *    also cancel max-stale, stale-while-revalidate and stale-if-error.
 *  - request no-store: a HIT is still allowed (s5.2.1.5: "does not apply to the already stored
 *    response"); anything else becomes PASS with CP_F_NO_STORE.
 *  - only-if-cached: anything but a HIT sets CP_F_ONLY_IF_CACHED (reply 504).
 * Invalid request directives are read in the restrictive direction (max-age as 0; max-stale, min-fresh
 * and stale-if-error ignored). Never fails. */
void cp_decide(const struct http_msg *req, const struct cp_stored *stored, int64_t now, const struct cp_limits *lim,
               struct cp_decision *out);

/* "HIT", "MISS", "REVALIDATE", "PASS". */
const char *cp_action_name(enum cp_action a);

/* ------------------------------------------------------------------------------------------------ */
/* Validation (s4.3)                                                                                 */

/* s4.3.1: turns `fwd` (the request about to be forwarded, in arena `a`) into a validation request for
 * the stored response `stored`. The client's own If-None-Match and If-Modified-Since are removed first:
 * the cache evaluates them itself against the validated response (s4.3.2, cp_eval_conditionals()). Then
 * adds If-None-Match with the stored ETag (weak ones too: RFC 9110 s13.1.2 compares weakly) and
 * If-Modified-Since with the stored Last-Modified value exactly as received (RFC 9110 s13.1.3), each only
 * when present and valid. Returns the number of validators added (0: the request is unconditional, so
 * treat it as a MISS) or -ENOMEM. If-Match, If-Unmodified-Since, Range and If-Range are left alone. */
int cp_conditional(const struct http_msg *stored, struct http_msg *fwd, struct arena *a);

/* s4.3.4: which of the stored responses `stored[0..n)` (of one cache key) a 304 `upd` applies to.
 *  1. If upd has a strong ETag: every stored response whose ETag matches it by strong comparison; if none
 *     does, none may be updated.
 *  2. Else if it has a weak ETag or a Last-Modified: the most recent (by Date, else response_time) stored
 *     response whose ETag matches weakly, or, without an ETag in upd, whose Last-Modified is equal.
 *     (Last-Modified is treated as weak here: proving it strong needs the s8.8.2.2 clock argument.)
 *  3. Else, when n == 1 and that response has no validator either: it.
 * Writes the chosen indexes to sel[] (room for n) and returns their count (0: do not update; fetch a full
 * response). */
size_t cp_select_304(const struct http_msg *upd, const struct cp_stored *stored, size_t n, size_t *sel);

/* s3.2 via s4.3.4 and s4.3.5: builds in `out` (initialised here, fields copied into `a`) the stored
 * response `stored` updated with the header fields of `upd` (a 304, or a 200 to HEAD): every field name
 * present in upd replaces all stored lines of that name, except those s3.2 keeps: the ones excepted from
 * storage in s3.1 (hop-by-hop, Connection-named, Proxy-Authenticate, Proxy-Authentication-Info,
 * Proxy-Authorization), Content-Length, and Content-Range (processed by the recipient). Content-Encoding
 * IS updated (s3.2 lets only caches that store decoded content skip it; we store bytes as received).
 * Then: a Date is added when upd has none (RFC 9110 s6.6.1, with upd_response_time); the stored Age is
 * dropped unless upd brings one (s4.2: age counts from the last validation, and cp_stored.request_time /
 * response_time must be those of the validation); fields named by the merged private="..." are removed
 * (s3.1). Status, reason, version and framing come from `stored`.
 * The caller should then re-check cp_storable() on the result (a 304 may bring no-store) and store it
 * with the validation's request_time/response_time. 0 or -ENOMEM. */
int cp_merge_304(const struct http_msg *stored, const struct http_msg *upd, int64_t upd_response_time, struct http_msg *out,
                 struct arena *a);

enum cp_head_verdict {
    CP_HEAD_IGNORE = 0, /* not a 200: leave the stored response alone */
    CP_HEAD_UPDATE,     /* validators (and Content-Length) agree: update with cp_merge_304() */
    CP_HEAD_STALE,      /* they disagree: consider the stored response stale (mark it invalid) */
};

/* s4.3.5: a 200 response `head` to a HEAD request against a stored GET response `stored` whose body is
 * `stored_body_len` bytes (a response the caller found selectable for that request, s4.1). UPDATE when
 * every validator field head carries (ETag, Last-Modified) has the same value in stored, and head's
 * Content-Length, if any, equals stored_body_len; STALE otherwise. */
enum cp_head_verdict cp_head_freshen(const struct http_msg *stored, uint64_t stored_body_len, const struct http_msg *head);

/* ------------------------------------------------------------------------------------------------ */
/* Conditional requests answered by the cache (RFC 9110 s13, RFC 9111 s4.3.2)                       */

enum cp_cond_result {
    CP_COND_NONE = 0,     /* no applicable precondition, or it is true: send the response (200/206) */
    CP_COND_NOT_MODIFIED, /* send 304 with the fields cp_304_keeps() selects */
};

/* Evaluates the client's preconditions against the stored response it is about to receive (s4.3.2:
 * only for stored 200 and 206; If-Match and If-Unmodified-Since are "not applicable to a cache").
 * RFC 9110 s13.2.2: If-None-Match first ("*" or a weak match: 304 for GET and HEAD); only without it,
 * If-Modified-Since for GET and HEAD, ignored when invalid or a list (s13.1.3): 304 when the stored
 * Last-Modified (or, lacking one, its Date, or response_time; s4.3.2) is not later than the date given.
 * A malformed If-None-Match evaluates as true (send the response). */
enum cp_cond_result cp_eval_conditionals(const struct http_msg *req, const struct http_msg *stored, int64_t response_time,
                                         int64_t now);

/* RFC 9110 s15.4.5: 1 if field `f` of the stored response `resp` belongs in a 304 made from it:
 * Content-Location, Date, ETag, Vary, Cache-Control, Expires, and Last-Modified when there is no ETag. */
int cp_304_keeps(const struct http_msg *resp, const struct http_field *f);

/* ------------------------------------------------------------------------------------------------ */
/* Invalidation (s4.4)                                                                               */

/* A normalised absolute URI and its origin (scheme://host:port), both as the caller computed them. */
struct cp_uri {
    const char *uri;
    size_t uri_len;
    const char *origin;
    size_t origin_len;
};

/* s4.4: after a response with status `status` to `req`: when the method is unsafe or unknown (anything
 * but GET, HEAD, OPTIONS, TRACE) and the status is 2xx or 3xx, writes to out[] the target URI (MUST)
 * and the Location and Content-Location URIs (MAY; either may be NULL) whose origin equals the target's
 * (MUST NOT otherwise), without duplicates. Returns how many (0..3). */
size_t cp_invalidation_targets(const struct http_msg *req, int status, const struct cp_uri *target, const struct cp_uri *location,
                               const struct cp_uri *content_location, struct cp_uri out[3]);

/* ------------------------------------------------------------------------------------------------ */
/* Internal, shared between the cache_policy*.c files.                                               */

int64_t cp__freshness(const struct http_msg *resp, const struct http_cc *cc, int64_t response_time, const struct cp_limits *lim,
                      enum cp_fresh_source *source);
/* The field names a message's Connection lists (RFC 9110 s7.6.1), gathered once per message, so that
 * checking every field against them costs a few length compares instead of a scan of Connection per
 * field. The names point into m. */
#define CP__CONN_NAMES_MAX 8
struct cp__conn_names {
    size_t n;
    int overflow; /* more names than fit: cp__excluded_field scans Connection itself */
    const char *name[CP__CONN_NAMES_MAX];
    size_t len[CP__CONN_NAMES_MAX];
};
void cp__conn_names(const struct http_msg *m, struct cp__conn_names *out);
/* 1 if field f of m must never be stored or taken from an update (s3.1, s3.2): hop-by-hop, named in
 * m's Connection (cn, from cp__conn_names(m)), or proxy-specific. */
int cp__excluded_field(const struct http_msg *m, const struct http_field *f, const struct cp__conn_names *cn);

#endif
