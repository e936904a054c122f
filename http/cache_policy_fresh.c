/* RFC 9111 s4.2.1-s4.2.3: freshness lifetime and current age. */
#include "http/cache_policy.h"

#include <errno.h>

#include "http/http_date.h"

static int64_t cap(int64_t v)
{
    if (v < 0) return 0;
    return v > HTTP_DELTA_MAX ? HTTP_DELTA_MAX : v;
}

/* max(0, a - b), capped at 2^31, without overflow for any inputs. */
static int64_t diff(int64_t a, int64_t b)
{
    int64_t d;
    if (a <= b) return 0;
    return __builtin_sub_overflow(a, b, &d) ? HTTP_DELTA_MAX : cap(d);
}

/* date_value: the Date field, or the time the response was received when it has none or an invalid one
 * (RFC 9110 s6.6.1). */
static int64_t date_value(const struct http_msg *resp, int64_t response_time)
{
    int64_t d;
    return http_date_field(resp, "Date", response_time, &d) == 0 ? d : response_time;
}

int64_t cp__freshness(const struct http_msg *resp, const struct http_cc *cc, int64_t response_time, const struct cp_limits *lim,
                      enum cp_fresh_source *source)
{
    enum cp_fresh_source dummy;
    if (source == NULL) source = &dummy;

    /* s4.2.1, first match. Invalid or conflicting values (s4.2.1: "either the first occurrence should be
     * used, or the response should be considered stale") are taken as stale: the cautious choice. */
    if (cc->present & HTTP_CC_S_MAXAGE) { /* shared cache */
        *source = (cc->invalid & HTTP_CC_S_MAXAGE) ? CP_FRESH_INVALID : CP_FRESH_S_MAXAGE;
        return *source == CP_FRESH_INVALID ? 0 : cap(cc->s_maxage);
    }
    if (cc->present & HTTP_CC_MAX_AGE) {
        *source = (cc->invalid & HTTP_CC_MAX_AGE) ? CP_FRESH_INVALID : CP_FRESH_MAX_AGE;
        return *source == CP_FRESH_INVALID ? 0 : cap(cc->max_age);
    }
    int64_t expires;
    int rc = http_date_field(resp, "Expires", response_time, &expires);
    if (rc == -EINVAL) {
        /* s5.3: "A cache recipient MUST interpret invalid date formats, especially the value "0", as
         * representing a time in the past (i.e., "already expired")." */
        *source = CP_FRESH_INVALID;
        return 0;
    }
    int64_t date = date_value(resp, response_time);
    if (rc == 0) {
        *source = CP_FRESH_EXPIRES;
        return diff(expires, date);
    }

    /* s4.2.2: heuristics only without explicit expiry (established above), and only for heuristically
     * cacheable statuses or responses marked public. */
    *source = CP_FRESH_NONE;
    if (lim->heuristic_percent == 0 || !(cp_status_heuristic(resp->status) || (cc->present & HTTP_CC_PUBLIC))) return 0;
    int64_t lm;
    if (http_date_field(resp, "Last-Modified", response_time, &lm) < 0 || lm >= date) return 0;
    *source = CP_FRESH_HEURISTIC;
    /* diff() caps the interval at 2^31 s, so the product cannot overflow. */
    int64_t h = diff(date, lm) * (int64_t)(lim->heuristic_percent > 100 ? 100 : lim->heuristic_percent) / 100;
    if (h > lim->heuristic_max) h = lim->heuristic_max;
    return cap(h);
}

int64_t cp_freshness_lifetime(const struct http_msg *resp, int64_t response_time, const struct cp_limits *lim,
                              enum cp_fresh_source *source)
{
    struct http_cc cc;
    http_cc_parse(resp, &cc);
    return cp__freshness(resp, &cc, response_time, lim, source);
}

int64_t cp_age_formula(int64_t age_value, int64_t date_value, int64_t request_time, int64_t response_time, int64_t now)
{
    /* Every operand is clamped to [0, 2^31] first, so no sum below can overflow int64_t whatever the
     * inputs (s1.3: an overflow must never turn into a negative age). */
    age_value = cap(age_value);
    int64_t apparent_age = diff(response_time, date_value);
    int64_t response_delay = diff(response_time, request_time);
    int64_t corrected_age_value = age_value + response_delay;
    int64_t corrected_initial_age = apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
    int64_t resident_time = diff(now, response_time);
    return cap(corrected_initial_age + resident_time);
}

void cp_summarize(const struct http_msg *resp, int64_t response_time, const struct cp_limits *lim, struct cp_resp_summary *out)
{
    http_cc_parse(resp, &out->cc);
    out->vary_star = http_vary_has_star(resp);
    out->lifetime = cp__freshness(resp, &out->cc, response_time, lim, &out->source);
    int rc = http_age_get(resp, &out->age_value);
    out->age_invalid = rc == -EINVAL;
    if (rc < 0) out->age_value = 0;
    out->date_value = date_value(resp, response_time);
}

int64_t cp_reusable_until(const struct http_msg *resp, int64_t request_time, int64_t response_time, int64_t now,
                          const struct cp_limits *lim)
{
    struct cp_resp_summary sum;
    cp_summarize(resp, response_time, lim, &sum);
    if (sum.cc.present & HTTP_CC_NO_CACHE)
        return 0;
    int64_t age = cp_age_formula(sum.age_value, sum.date_value, request_time, response_time, now);
    return sum.lifetime > age ? now + (sum.lifetime - age) : 0;
}

int64_t cp_current_age(const struct http_msg *resp, int64_t request_time, int64_t response_time, int64_t now)
{
    int64_t age_value;
    if (http_age_get(resp, &age_value) < 0)
        age_value = 0; /* s4.2.3: "0, if not available"; cp_decide() treats an invalid Age as stale */
    return cp_age_formula(age_value, date_value(resp, response_time), request_time, response_time, now);
}
