/* RFC 9111 s3: which responses a shared cache may store, and in what form (s3.1). */
#include "http/cache_policy.h"

#include <errno.h>

#include "http/http_date.h"

void cp_limits_default(struct cp_limits *l)
{
    l->heuristic_percent = 10; /* s4.2.2: "A typical setting of this fraction might be 10%." */
    l->heuristic_max = 86400;  /* one day, as most caches do */
    l->stale_if_error_default = 0;
}

int cp_status_heuristic(int status)
{
    switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
        return 1;
    default:
        return 0;
    }
}

int cp_status_understood(int status)
{
    if ((status >= 200 && status <= 205) || (status >= 400 && status <= 417) || (status >= 500 && status <= 505)) return 1;
    switch (status) {
    case 300:
    case 301:
    case 302:
    case 303:
    case 307:
    case 308:
    case 421:
    case 422:
    case 426:
        return 1;
    default:
        return 0; /* includes 206 and 304: see the header */
    }
}

const char *cp_store_reason(enum cp_store_verdict v)
{
    switch (v) {
    case CP_STORE_OK:
        return "storable";
    case CP_NS_METHOD:
        return "request method is not GET (s3)";
    case CP_NS_INCOMPLETE:
        return "incomplete response (s3.3)";
    case CP_NS_NOT_FINAL:
        return "status is not a valid final status (s3)";
    case CP_NS_PARTIAL:
        return "206 partial content is not stored (s3.3)";
    case CP_NS_NOT_MODIFIED:
        return "304 updates, is not stored (s4.3.4)";
    case CP_NS_MUST_UNDERSTAND:
        return "must-understand with a status not understood (s5.2.2.3)";
    case CP_NS_NO_STORE:
        return "response no-store (s5.2.2.5)";
    case CP_NS_NO_STORE_REQ:
        return "request no-store (s5.2.1.5)";
    case CP_NS_PRIVATE:
        return "response private (s5.2.2.7)";
    case CP_NS_AUTHORIZATION:
        return "Authorization without public, s-maxage or must-revalidate (s3.5)";
    case CP_NS_VARY_STAR:
        return "Vary: * (s4.1)";
    case CP_NS_NOT_CACHEABLE:
        return "no explicit freshness and status not heuristically cacheable (s3)";
    }
    return "unknown";
}

enum cp_store_verdict cp_storable(const struct http_msg *req, const struct http_msg *resp, unsigned flags)
{
    /* s3: "the request method is understood by the cache". We store GET only: a HEAD response has no
     * body to serve GETs with, and s4.3.5 covers what it may do instead. */
    if (req->method != HTTP_METHOD_GET) return CP_NS_METHOD;
    if (flags & CP_STORE_INCOMPLETE) return CP_NS_INCOMPLETE;
    /* s3: "the response status code is final"; RFC 9110 s15: values outside 100..599 are invalid. */
    if (resp->status < 200 || resp->status > 599) return CP_NS_NOT_FINAL;
    if (resp->status == 206) return CP_NS_PARTIAL;
    if (resp->status == 304) return CP_NS_NOT_MODIFIED;

    struct http_cc cc;
    http_cc_parse(resp, &cc);
    if (cc.present & HTTP_CC_MUST_UNDERSTAND) {
        /* s5.2.2.3: store only if we understand the status; then no-store is to be ignored, because
         * must-understand + no-store is how origins say "only caches that understand this code". */
        if (!cp_status_understood(resp->status)) return CP_NS_MUST_UNDERSTAND;
    } else if (cc.present & HTTP_CC_NO_STORE) {
        return CP_NS_NO_STORE;
    }

    struct http_cc rcc;
    http_cc_parse(req, &rcc);
    if (rcc.present & HTTP_CC_NO_STORE) return CP_NS_NO_STORE_REQ;

    /* s3, s5.2.2.7: a shared cache never stores an unqualified private response; the qualified form is
     * storable without the named fields (cp_prepare_for_storage()). */
    if (cc.present & HTTP_CC_PRIVATE) return CP_NS_PRIVATE;

    /* s3.5: only these directives let a shared cache reuse a response to an authenticated request. */
    if (http_msg_find(req, "Authorization") != NULL &&
        !(cc.present & (HTTP_CC_MUST_REVALIDATE | HTTP_CC_PUBLIC | HTTP_CC_S_MAXAGE)))
        return CP_NS_AUTHORIZATION;

    if (http_vary_has_star(resp)) return CP_NS_VARY_STAR;

    /* s3: the response must contain at least one of public, Expires, max-age, s-maxage (shared cache), or
     * a heuristically cacheable status. (An invalid Expires or max-age still counts: it makes the
     * response stale, not unstorable, so it can be revalidated.) */
    if ((cc.present & (HTTP_CC_PUBLIC | HTTP_CC_MAX_AGE | HTTP_CC_S_MAXAGE)) || http_msg_find(resp, "Expires") != NULL ||
        cp_status_heuristic(resp->status))
        return CP_STORE_OK;
    return CP_NS_NOT_CACHEABLE;
}

void cp__conn_names(const struct http_msg *m, struct cp__conn_names *out)
{
    out->n = 0;
    out->overflow = 0;
    for (const struct http_field *f = http_msg_find(m, "Connection"); f != NULL; f = http_msg_find_next(m, f)) {
        const char *pos = f->value, *end = f->value + f->value_len, *e;
        size_t len;
        while (http_field_list_next(&pos, end, &e, &len)) {
            if (out->n == CP__CONN_NAMES_MAX) {
                out->overflow = 1;
                return;
            }
            out->name[out->n] = e;
            out->len[out->n++] = len;
        }
    }
}

int cp__excluded_field(const struct http_msg *m, const struct http_field *f, const struct cp__conn_names *cn)
{
    /* RFC 9110 s7.6.1 hop-by-hop fields (Trailer too: the stored body has no trailer section), and
     * s3.1's proxy-specific fields, which MUST NOT be stored. */
    static const char *const names[] = {
        "Connection",         "Keep-Alive",          "Proxy-Connection",          "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Authentication-Info",
    };
    if (f->flags & HTTP_FIELD_HOP) return 1;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (http_name_eq(f->name, f->name_len, names[i])) return 1;
    /* RFC 9110 s7.6.1: every field named in Connection is hop-by-hop too. */
    if (cn->overflow) return http_msg_has_token(m, "Connection", f->name);
    for (size_t i = 0; i < cn->n; i++)
        if (cn->len[i] == f->name_len && strncasecmp(cn->name[i], f->name, f->name_len) == 0) return 1;
    return 0;
}

int cp_prepare_for_storage(struct http_msg *resp, int64_t response_time, struct arena *a)
{
    struct http_cc cc;
    http_cc_parse(resp, &cc);
    /* Decide for every field first, then mark: marking Connection removed early would hide the names it
     * lists from the later checks. HTTP_FIELD_HOP serves as the provisional mark; it means "not stored"
     * anyway. */
    struct cp__conn_names conn;
    cp__conn_names(resp, &conn);
    for (size_t i = 0; i < resp->n_fields; i++) {
        struct http_field *f = &resp->fields[i];
        if (!(f->flags & HTTP_FIELD_REMOVED) &&
            (cp__excluded_field(resp, f, &conn) || http_cc_list_has(&cc.private_fields, f->name, f->name_len)))
            f->flags |= HTTP_FIELD_HOP;
    }
    for (size_t i = 0; i < resp->n_fields; i++)
        if (resp->fields[i].flags & HTTP_FIELD_HOP) resp->fields[i].flags |= HTTP_FIELD_REMOVED;

    /* RFC 9110 s6.6.1: a recipient with a clock MUST append a Date to a response it caches that lacks
     * one, and MAY replace an invalid one, with the time it was received. */
    int64_t date;
    if (http_date_field(resp, "Date", response_time, &date) < 0) {
        char buf[HTTP_DATE_BUFSZ];
        if (http_date_format(response_time, buf) < 0) return -ERANGE;
        if (http_msg_set(resp, a, "Date", buf, HTTP_DATE_LEN) < 0) return -ENOMEM;
    }
    return 0;
}
