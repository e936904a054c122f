/* RFC 9111 s4.4: which URIs to invalidate after an unsafe request. */
#include "http/cache_policy.h"

#include <string.h>

static int is_safe(enum http_method m)
{
    /* RFC 9110 s9.2.1. HTTP_METHOD_OTHER counts as unsafe: s4.4 includes "methods whose safety is
     * unknown". */
    return m == HTTP_METHOD_GET || m == HTTP_METHOD_HEAD || m == HTTP_METHOD_OPTIONS || m == HTTP_METHOD_TRACE;
}

static int same(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && memcmp(a, b, a_len) == 0;
}

static void add(const struct cp_uri *u, const struct cp_uri *target, struct cp_uri out[3], size_t *n)
{
    if (u == NULL || u->uri == NULL) return;
    /* "MUST NOT trigger an invalidation ... if the origin ... differs from that of the target URI",
     * which keeps one site from flushing another's objects. */
    if (!same(u->origin, u->origin_len, target->origin, target->origin_len)) return;
    for (size_t i = 0; i < *n; i++)
        if (same(out[i].uri, out[i].uri_len, u->uri, u->uri_len)) return;
    out[(*n)++] = *u;
}

size_t cp_invalidation_targets(const struct http_msg *req, int status, const struct cp_uri *target, const struct cp_uri *location,
                               const struct cp_uri *content_location, struct cp_uri out[3])
{
    /* "A non-error response is one with a 2xx (Successful) or 3xx (Redirection) status code." */
    if (is_safe(req->method) || status < 200 || status > 399 || target == NULL || target->uri == NULL) return 0;
    size_t n = 0;
    out[n++] = *target;                     /* MUST */
    add(location, target, out, &n);         /* MAY */
    add(content_location, target, out, &n); /* MAY */
    return n;
}
