/* Request-target and URI handling for a forward proxy (RFC 9112 s3.2, RFC 9110 s4.2, RFC 3986).
 *
 * This is a security boundary: the parsed host decides where the proxy connects, and the normalised
 * URI is the cache key. So the parser is strict and never autocorrects (RFC 9112 s3.2: a recipient
 * SHOULD NOT autocorrect an invalid request-line, "since [it] might be deliberately crafted to bypass
 * security filters along the request chain"). Every rejection comes with a static reason string fit
 * for a 400 body.
 *
 * Memory: nothing here allocates. http_uri_parse() copies the scheme and host into fixed arrays of
 * `struct http_uri` and leaves `path_and_query` pointing into the caller's input (or at a static "/"),
 * so the struct is valid for as long as the input buffer is. The writers (normalize, host header,
 * authority, origin-form) fill a caller buffer, NUL-terminate it and return the length, or -ENOSPC
 * when it does not fit (the buffer then holds an unspecified truncated string). Put those buffers in
 * the transaction arena when they must outlive a stack frame.
 *
 * Error codes: -EINVAL for a malformed or forbidden request-target, -EPROTONOSUPPORT for a scheme this
 * proxy cannot serve (anything but "http"; the caller may answer 400 or 501). *why always says which.
 */
#ifndef LARDER_HTTP_URI_H
#define LARDER_HTTP_URI_H

#include <stddef.h>
#include <stdint.h>

/* The four request-target forms of RFC 9112 s3.2. */
enum uri_form {
    URI_FORM_ORIGIN,    /* "/path?query"  s3.2.1: a request addressed to the proxy itself */
    URI_FORM_ABSOLUTE,  /* "http://host:port/path?query"  s3.2.2: what a client sends to a proxy */
    URI_FORM_AUTHORITY, /* "host:port"  s3.2.3: CONNECT only */
    URI_FORM_ASTERISK,  /* "*"  s3.2.4: server-wide OPTIONS only (the caller checks the method) */
};

/* Longest host we accept, without brackets (a DNS name is at most 253 octets in text form). */
#define HTTP_URI_HOST_MAX 255

struct http_uri {
    enum uri_form form;
    char scheme[8];                   /* "http" (lower-cased); empty for origin, authority and asterisk forms */
    char host[HTTP_URI_HOST_MAX + 1]; /* lower-cased reg-name, dotted-quad IPv4, or IPv6 WITHOUT brackets in
                                         RFC 5952 canonical text; empty for origin and asterisk forms */
    int host_is_ipv6;                 /* host is an IPv6 literal: bracket it when writing it into a URI or Host */
    int host_is_ipv4;                 /* host is a dotted-quad IPv4 literal: no DNS lookup needed */
    uint16_t port;                    /* explicit port, else the scheme default (80); 0 for origin/asterisk */
    int port_explicit;                /* the target carried a non-empty port (always true for authority-form) */
    int path_empty;                   /* absolute-form with an empty path, e.g. "http://h" or "http://h?q";
                                         with no query as well, an OPTIONS request goes upstream as "*" (RFC 9112 s3.2.4) */
    const char *path_and_query;       /* points into the input, or at a static "/" when absolute-form had neither
                                         path nor query. Starts with '/', except in the one case of an empty path
                                         followed by a query ("http://h?q"), where it is "?q": use
                                         http_uri_origin_form() to get the target to send upstream. Never
                                         contains a fragment (those are rejected). Empty (NULL, 0) for authority
                                         and asterisk forms. */
    size_t path_and_query_len;
};

/* Parses a request-target (RFC 9112 s3.2). `method_is_connect` selects authority-form (RFC 9112 s3.2.3,
 * RFC 9110 s9.3.6: "host:port", port mandatory) and is the only form accepted for CONNECT; for any other
 * method the target must be origin-form, absolute-form with scheme "http", or "*".
 *
 * Returns 0 and fills *out, or a negative error code (see top of file) with *out zeroed. *why (may be
 * NULL) receives NULL on success, or a static reason string on failure. `target` need not be
 * NUL-terminated; a NUL byte inside it is rejected like any control character. */
int http_uri_parse(const char *target, size_t len, int method_is_connect, struct http_uri *out, const char **why);

/* 1 if `t` is a valid origin-form request-target ("/" path ["?" query], RFC 9112 s3.2.1), else 0. Applies
 * exactly the checks http_uri_parse() applies to that form. */
int http_uri_is_origin_form(const char *t, size_t len);

/* The normalised absolute URI, used as the cache key and in logs (RFC 9110 s4.2.3, RFC 3986 s6.2.2 and
 * s6.2.3): lower-case scheme and host, default port omitted, empty path written as "/", percent-encoded
 * unreserved characters decoded, hex digits of the remaining percent-encodings upper-cased, IPv6 hosts
 * bracketed. An empty query ("?") is kept: RFC 3986 s6.2.3 does not license removing it.
 * Dot-segments are deliberately NOT removed: the origin receives the path as sent, and a key coarser than
 * what the origin sees ("/a/../b" and "/b" may be different resources to it) would let one request's
 * response be served for another.
 * Absolute-form only; -EINVAL for other forms. Returns the length written (without the NUL) or -ENOSPC. */
int http_uri_normalize(const struct http_uri *u, char *buf, size_t buf_len);

/* The Host field value to send upstream (RFC 9112 s3.2.2: a proxy MUST generate Host from the
 * request-target, not forward the received one): host, bracketed if IPv6, ":port" only when the port was
 * explicit and is not the scheme default. -EINVAL when the URI has no host (origin/asterisk forms). */
int http_uri_host_header(const struct http_uri *u, char *buf, size_t buf_len);

/* "host:port" with the port always present (IPv6 bracketed): the connection-pool key and the CONNECT
 * log target. -EINVAL when the URI has no host. */
int http_uri_authority(const struct http_uri *u, char *buf, size_t buf_len);

/* The origin-form request-target to send upstream for an absolute-form or origin-form URI (RFC 9112
 * s3.2.1: an empty path is sent as "/"). Bytes are copied as received, without normalisation. A buffer of
 * path_and_query_len + 2 bytes always suffices. -EINVAL for authority and asterisk forms. */
int http_uri_origin_form(const struct http_uri *u, char *buf, size_t buf_len);

/* 1 if a Host field value is syntactically valid (RFC 9112 s3.2: uri-host [":" port]), else 0. */
int http_uri_host_field_valid(const char *v, size_t n);

#endif
