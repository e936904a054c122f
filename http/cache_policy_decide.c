/* RFC 9111 s4: may a stored response be reused for this request, and if not, what next. */
#include "http/cache_policy.h"

#include <errno.h>
#include <string.h>

const char *cp_action_name(enum cp_action a)
{
    switch (a) {
    case CP_MISS:
        return "MISS";
    case CP_HIT:
        return "HIT";
    case CP_REVALIDATE:
        return "REVALIDATE";
    case CP_PASS:
        return "PASS";
    }
    return "?";
}

static void set(struct cp_decision *out, enum cp_action action, const char *reason)
{
    out->action = action;
    out->reason = reason;
}

static int64_t max3(int64_t a, int64_t b, int64_t c)
{
    int64_t m = a > b ? a : b;
    return m > c ? m : c;
}

/* cp_decide() for a stored response that Vary selects and that is not "Vary: *": freshness, age and
 * the request's and response's directives. rq is the request's Cache-Control. */
static void decide_stored(const struct http_cc *rq, const struct cp_stored *stored, const struct cp_resp_summary *sum,
                          int64_t now, const struct cp_limits *lim, struct cp_decision *out)
{
    int only_if_cached = (rq->present & HTTP_CC_ONLY_IF_CACHED) != 0;
    int no_store = (rq->present & HTTP_CC_NO_STORE) != 0;
    const struct http_cc *rs = &sum->cc;
    int64_t lifetime = sum->lifetime;
    if (sum->age_invalid) lifetime = 0; /* s5.1: an invalid Age SHOULD make the response stale */
    int64_t age = cp_age_formula(sum->age_value, sum->date_value, stored->request_time, stored->response_time, now);
    out->age = age;
    out->lifetime = lifetime;
    if (sum->source == CP_FRESH_HEURISTIC) out->flags |= CP_F_HEURISTIC;

    int fresh = lifetime > age; /* s4.2: response_is_fresh = (freshness_lifetime > current_age) */
    int64_t staleness = age - lifetime;
    /* s4.2.4: these forbid serving the response stale, even when the client or RFC 5861 allow it. */
    int stale_forbidden = (rs->present & (HTTP_CC_MUST_REVALIDATE | HTTP_CC_PROXY_REVALIDATE | HTTP_CC_S_MAXAGE)) != 0;

    if (stored->invalidated) {
        set(out, CP_REVALIDATE, "invalidated (s4.4)");
    } else if (rs->present & HTTP_CC_NO_CACHE) {
        set(out, CP_REVALIDATE, "response no-cache (s5.2.2.4)");
    } else if (rq->present & (HTTP_CC_NO_CACHE | HTTP_CC_NO_CACHE_FIELDS)) {
        set(out, CP_REVALIDATE,
            (rq->present & HTTP_CC_FROM_PRAGMA) ? "request Pragma: no-cache (s5.4)" : "request no-cache (s5.2.1.4)");
    } else if ((rq->present & HTTP_CC_MAX_AGE) && ((rq->invalid & HTTP_CC_MAX_AGE) || age > rq->max_age)) {
        /* s5.2.1.1; an unreadable value is taken as max-age=0, the restrictive reading */
        set(out, CP_REVALIDATE, "older than request max-age (s5.2.1.1)");
    } else if ((rq->present & HTTP_CC_MIN_FRESH) && !(rq->invalid & HTTP_CC_MIN_FRESH) && lifetime - age < rq->min_fresh) {
        /* s5.2.1.3: wants freshness_lifetime >= current_age + min-fresh */
        set(out, CP_REVALIDATE, "not fresh enough for request min-fresh (s5.2.1.3)");
    } else if (fresh) {
        set(out, CP_HIT, "fresh");
    } else if (!stale_forbidden && (rq->present & HTTP_CC_MAX_STALE) && !(rq->invalid & HTTP_CC_MAX_STALE) &&
               staleness <= rq->max_stale) {
        set(out, CP_HIT, "stale within request max-stale (s5.2.1.2)");
        out->flags |= CP_F_STALE;
    } else {
        set(out, CP_REVALIDATE, stale_forbidden ? "stale, must revalidate (s4.2.4)" : "stale");
        /* RFC 5861 s3 */
        if (!stale_forbidden && (rs->present & HTTP_CC_STALE_WHILE_REVALIDATE) &&
            !(rs->invalid & HTTP_CC_STALE_WHILE_REVALIDATE) && staleness <= rs->stale_while_revalidate)
            out->flags |= CP_F_SWR;
    }

    if (out->action == CP_HIT && (rs->present & HTTP_CC_NO_CACHE_FIELDS)) {
        /* s5.2.2.4: reusable without validation only without the listed fields */
        out->flags |= CP_F_STRIP;
        out->strip = rs->no_cache_fields;
    }

    if (out->action == CP_REVALIDATE && !stored->invalidated && !(rs->present & HTTP_CC_NO_CACHE) &&
        !(stale_forbidden && !fresh)) {
        /* RFC 5861 s4 (response or request stale-if-error) and s4.2.4 (a disconnected cache, by
         * configuration): while the response is fresh, or stale by no more than the allowance, it may
         * stand in for an origin failure (s4.3.3). Never when a directive forbids serving it stale, nor
         * after s4.4 invalidation ("mandatory validation"). A fresh response revalidated only because
         * the client asked (no-cache, max-age, min-fresh: advisory, s5.2.1) remains usable. */
        int64_t allow =
            max3((rs->present & HTTP_CC_STALE_IF_ERROR) && !(rs->invalid & HTTP_CC_STALE_IF_ERROR) ? rs->stale_if_error : 0,
                 (rq->present & HTTP_CC_STALE_IF_ERROR) && !(rq->invalid & HTTP_CC_STALE_IF_ERROR) ? rq->stale_if_error : 0,
                 lim->stale_if_error_default > 0 ? lim->stale_if_error_default : 0);
        if (fresh || (allow > 0 && staleness <= allow)) {
            out->flags |= CP_F_STALE_IF_ERROR;
            out->stale_if_error_until = now + (allow - staleness);
        }
    }

    if (only_if_cached && out->action == CP_REVALIDATE && (out->flags & CP_F_SWR)) {
        /* s5.2.1.7 with RFC 5861 s3: the origin allows this stale response, the client wants no
         * origin contact: serve it as it is. */
        set(out, CP_HIT, "stale-while-revalidate with only-if-cached");
        out->flags = (out->flags & ~(unsigned)(CP_F_SWR | CP_F_STALE_IF_ERROR)) | CP_F_STALE;
    }
    if (out->action == CP_HIT && no_store) out->reason = "request no-store, served from cache (s5.2.1.5)";
}

void cp_decide(const struct http_msg *req, const struct cp_stored *stored, int64_t now, const struct cp_limits *lim,
               struct cp_decision *out)
{
    memset(out, 0, sizeof(*out));
    struct http_cc rq;
    http_cc_parse(req, &rq);
    out->request_limits_reuse = (rq.present & (HTTP_CC_NO_CACHE | HTTP_CC_MAX_AGE | HTTP_CC_MIN_FRESH)) != 0;

    /* s4: unsafe methods MUST be written through; other safe methods are not stored by us (s3), so
     * there is nothing to reuse either. */
    if (req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD) {
        set(out, CP_PASS, "method not cacheable");
        return;
    }

    int only_if_cached = (rq.present & HTTP_CC_ONLY_IF_CACHED) != 0;
    int no_store = (rq.present & HTTP_CC_NO_STORE) != 0;
    if (no_store) out->flags |= CP_F_NO_STORE;

    if (stored == NULL || stored->resp == NULL) {
        set(out, CP_MISS, "not stored");
    } else if (stored->variant_key != NULL && !cp_vary_matches(stored->resp, stored->variant_key, stored->variant_key_len, req)) {
        /* s4.1: the stored response is not selected for this request (this covers "Vary: *"). */
        set(out, CP_MISS, "Vary does not match");
    } else {
        struct cp_resp_summary own;
        const struct cp_resp_summary *sum = stored->summary;
        if (sum == NULL) {
            cp_summarize(stored->resp, stored->response_time, lim, &own);
            sum = &own;
        }
        if (sum->vary_star)
            set(out, CP_MISS, "Vary: *");
        else
            decide_stored(&rq, stored, sum, now, lim, out);
    }

    if (only_if_cached && out->action != CP_HIT) {
        /* s5.2.1.7: respond from the cache or with 504 (Gateway Timeout). */
        out->flags |= CP_F_ONLY_IF_CACHED;
        out->flags &= ~(unsigned)(CP_F_SWR | CP_F_STALE_IF_ERROR);
        out->reason = "only-if-cached cannot be satisfied (s5.2.1.7)";
        return;
    }
    if (no_store && out->action != CP_HIT) {
        /* s5.2.1.5: nothing from this exchange may be stored, so neither a fill nor an update. */
        set(out, CP_PASS, "request no-store (s5.2.1.5)");
        out->flags &= ~(unsigned)CP_F_SWR;
    }
}
