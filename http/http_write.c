#include "http/http_write.h"

#include <string.h>
#include <strings.h>

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Marks every live field called name[0..len) as hop-by-hop. */
static void mark_named(struct http_msg *m, const char *name, size_t len)
{
    for (size_t i = 0; i < m->n_fields; i++) {
        struct http_field *f = &m->fields[i];
        if (f->name_len == len && strncasecmp(f->name, name, len) == 0)
            f->flags |= HTTP_FIELD_HOP;
    }
}

/* The fields that are hop-by-hop whatever Connection says (RFC 9110 s7.6.1, s7.8, s10.1.4, s11.7;
 * RFC 9112 s6.1, s9.6 for Keep-Alive and Proxy-Connection). Sorted out by length first: one pass
 * over the fields instead of one per name. */
static int always_hop(const char *n, size_t len)
{
    switch (len) {
    case 2:
        return strncasecmp(n, "te", 2) == 0;
    case 7:
        return strncasecmp(n, "trailer", 7) == 0 || strncasecmp(n, "upgrade", 7) == 0;
    case 10:
        return strncasecmp(n, "connection", 10) == 0 || strncasecmp(n, "keep-alive", 10) == 0;
    case 16:
        return strncasecmp(n, "proxy-connection", 16) == 0;
    case 17:
        return strncasecmp(n, "transfer-encoding", 17) == 0;
    case 18:
        return strncasecmp(n, "proxy-authenticate", 18) == 0;
    case 19:
        return strncasecmp(n, "proxy-authorization", 19) == 0;
    default:
        return 0;
    }
}

void http_mark_hop_by_hop(struct http_msg *m)
{
    /* RFC 9110 s7.6.1: every field named in Connection is for this hop only. Marking does not change
     * values, so the Connection fields can be walked while marking. */
    for (size_t i = 0; i < m->n_fields; i++) {
        struct http_field *f = &m->fields[i];
        if (always_hop(f->name, f->name_len))
            f->flags |= HTTP_FIELD_HOP;
        if (f->flags & HTTP_FIELD_REMOVED || !http_name_eq(f->name, f->name_len, "connection"))
            continue;
        const char *s = f->value, *end = f->value + f->value_len;
        while (s < end) {
            while (s < end && (is_ows(*s) || *s == ','))
                s++;
            const char *t = s;
            while (s < end && *s != ',' && !is_ows(*s))
                s++;
            if (s > t)
                mark_named(m, t, (size_t)(s - t));
        }
    }
}

static int skipped(const struct http_field *f)
{
    return (f->flags & (HTTP_FIELD_HOP | HTTP_FIELD_REMOVED)) != 0;
}

size_t http_head_size(const char *start_line, const struct http_msg *m, const struct http_extra_field *extra,
                      size_t n_extra)
{
    size_t n = strlen(start_line) + 2;
    for (size_t i = 0; m != NULL && i < m->n_fields; i++)
        if (!skipped(&m->fields[i]))
            n += m->fields[i].name_len + 2 + m->fields[i].value_len + 2;
    for (size_t i = 0; i < n_extra; i++)
        n += strlen(extra[i].name) + 2 + strlen(extra[i].value) + 2;
    return n + 2;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

size_t http_head_write(char *buf, const char *start_line, const struct http_msg *m, const struct http_extra_field *extra,
                       size_t n_extra)
{
    char *p = buf;
    p = put(p, start_line, strlen(start_line));
    p = put(p, "\r\n", 2);
    for (size_t i = 0; m != NULL && i < m->n_fields; i++) {
        const struct http_field *f = &m->fields[i];
        if (skipped(f))
            continue;
        p = put(p, f->name, f->name_len);
        p = put(p, ": ", 2);
        p = put(p, f->value, f->value_len);
        p = put(p, "\r\n", 2);
    }
    for (size_t i = 0; i < n_extra; i++) {
        p = put(p, extra[i].name, strlen(extra[i].name));
        p = put(p, ": ", 2);
        p = put(p, extra[i].value, strlen(extra[i].value));
        p = put(p, "\r\n", 2);
    }
    p = put(p, "\r\n", 2);
    return (size_t)(p - buf);
}

const char *http_reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}
