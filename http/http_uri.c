/* Request-target parsing and URI normalisation; see http_uri.h for the contract.
 *
 * Grammar (RFC 9112 s3.2, RFC 9110 s4.1/s4.2.1, RFC 3986 s3):
 *   request-target = origin-form / absolute-form / authority-form / asterisk-form
 *   origin-form    = absolute-path [ "?" query ]          absolute-path = 1*( "/" segment )
 *   absolute-form  = "http://" authority path-abempty [ "?" query ]
 *   authority-form = uri-host ":" port
 *   pchar          = unreserved / pct-encoded / sub-delims / ":" / "@"
 *   query          = *( pchar / "/" / "?" )
 * Anything outside that grammar is rejected, including the characters RFC 3986 never allows raw
 * ('"', '<', '>', '\', '^', '`', '{', '|', '}'): a backslash in particular is read as '/' by some
 * servers, and a target that means one thing to us and another to the origin is how caches get
 * poisoned (RFC 9112 s11.2).
 */
#include "http/http_uri.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>

/* Reason strings, one per rule, shared by every path that enforces it. */
static const char R_EMPTY[] = "empty request-target";
static const char R_CTL[] = "whitespace or control character in request-target";
static const char R_NONASCII[] = "non-ASCII byte in request-target (must be percent-encoded)";
static const char R_FRAGMENT[] = "fragment in request-target";
static const char R_CHAR[] = "character not allowed in request-target";
static const char R_PCT[] = "malformed percent-encoding in request-target";
static const char R_FORM[] = "request-target is not origin-form, absolute-form or \"*\"";
static const char R_SCHEME[] = "unsupported scheme";
static const char R_HTTPS[] = "https in absolute-form is not supported: use CONNECT";
static const char R_NO_AUTHORITY[] = "absolute-form without \"//\" authority";
static const char R_USERINFO[] = "userinfo in URI not allowed";
static const char R_MISSING_HOST[] = "missing host";
static const char R_HOST[] = "invalid host";
static const char R_HOST_PCT[] = "percent-encoding in host not allowed";
static const char R_HOST_LONG[] = "host too long";
static const char R_IPV4[] = "invalid IPv4 address";
static const char R_IPV6[] = "invalid IPv6 literal";
static const char R_PORT[] = "invalid port";
static const char R_CONNECT[] = "CONNECT requires host:port";

static const char SLASH[] = "/";

static int fail(const char **why, const char *reason, int rc)
{
    if (why) *why = reason;
    return rc;
}

static int is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(unsigned char c)
{
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* RFC 3986 s2.3 */
static int is_unreserved(unsigned char c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 s2.2 */
static int is_sub_delim(unsigned char c)
{
    switch (c) {
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=':
        return 1;
    default:
        return 0;
    }
}

/* RFC 3986 s3.3, without pct-encoded (handled by the caller, which must look ahead). */
static int is_pchar_literal(unsigned char c)
{
    return is_unreserved(c) || is_sub_delim(c) || c == ':' || c == '@';
}

/* First pass over the whole target: bytes that may never appear raw anywhere in a request-target.
 * RFC 9112 s3.2 forbids whitespace; RFC 3986 s2 allows only printable US-ASCII; a '#' starts a fragment,
 * which is not part of a request-target (RFC 9112 s3.2, RFC 9110 s4.2.5). */
static int check_bytes(const char *t, size_t len, const char **why)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c == 0x7f) return fail(why, R_CTL, -EINVAL);
        if (c >= 0x80) return fail(why, R_NONASCII, -EINVAL);
    }
    if (memchr(t, '#', len) != NULL) return fail(why, R_FRAGMENT, -EINVAL);
    return 0;
}

/* Validates path-abempty [ "?" query ] (the caller has checked that a non-empty span starts with '/' or
 * '?'). Percent-escapes must be complete: "%zz" or a trailing "%4" would be decoded differently by
 * different recipients (RFC 3986 s2.1). */
static int check_path_query(const char *p, size_t len, const char **why)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') {
            if (len - i < 3) return fail(why, R_PCT, -EINVAL);
            if (hex_val((unsigned char)p[i + 1]) < 0 || hex_val((unsigned char)p[i + 2]) < 0) return fail(why, R_PCT, -EINVAL);
            i += 2;
        } else if (c != '/' && c != '?' && !is_pchar_literal(c)) {
            /* '?' starts the query; a later '?' is query data (RFC 3986 s3.4), so both are fine. */
            return fail(why, R_CHAR, -EINVAL);
        }
    }
    return 0;
}

/* Port (RFC 3986 s3.2.3: *DIGIT). Empty means "use the default" (RFC 9110 s4.2.1: "If the port
 * subcomponent is empty or not given, TCP port 80 ... is the default"); the caller decides whether empty
 * is allowed. Port 0 cannot be connected to, so it is refused. */
static int parse_port(const char *p, size_t len, uint16_t *port, const char **why)
{
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit((unsigned char)p[i])) return fail(why, R_PORT, -EINVAL);
        v = v * 10 + (unsigned long)(p[i] - '0');
        if (v > 65535) return fail(why, R_PORT, -EINVAL);
    }
    if (v == 0) return fail(why, R_PORT, -EINVAL);
    *port = (uint16_t)v;
    return 0;
}

/* Is the last dot-separated label of a reg-name numeric (all digits, or "0x" + hex)? Such a name is an
 * IPv4 address to inet_aton()-style resolvers, which also accept "127.1", "0x7f.0.0.1" or "2130706433";
 * we insist on strict dotted-quad for those instead of letting a resolver reinterpret them. */
static int last_label_numeric(const char *h, size_t len)
{
    if (len > 0 && h[len - 1] == '.') len--; /* "1.2.3.4." still ends in a numeric label */
    size_t start = len;
    while (start > 0 && h[start - 1] != '.')
        start--;
    const char *l = h + start;
    size_t n = len - start;
    if (n == 0) return 0;
    if (n >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
        for (size_t i = 2; i < n; i++)
            if (hex_val((unsigned char)l[i]) < 0) return 0;
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)l[i])) return 0;
    return 1;
}

/* IP-literal = "[" IPv6address "]" (RFC 3986 s3.2.2). IPvFuture and RFC 6874 zone identifiers are
 * refused: we could not connect to them. The address is stored in RFC 5952 canonical text so that
 * "[::0001]" and "[::1]" make the same cache key and pool key. */
static int parse_ipv6(const char *p, size_t len, struct http_uri *u, const char **why)
{
    char tmp[INET6_ADDRSTRLEN];
    struct in6_addr a;
    if (len == 0 || len >= sizeof(tmp)) return fail(why, R_IPV6, -EINVAL);
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET6, tmp, &a) != 1) return fail(why, R_IPV6, -EINVAL);
    if (inet_ntop(AF_INET6, &a, u->host, sizeof(u->host)) == NULL) return fail(why, R_IPV6, -EINVAL);
    u->host_is_ipv6 = 1;
    return 0;
}

/* reg-name = *( unreserved / pct-encoded / sub-delims ) (RFC 3986 s3.2.2), minus pct-encoded: a
 * percent-encoded host would have to be decoded before DNS, and two spellings of one host must not
 * make two cache keys or smuggle a '.' or ':' past a filter. Lower-cased (RFC 9110 s4.2.3). */
static int parse_reg_name(const char *p, size_t len, struct http_uri *u, const char **why)
{
    if (len == 0) return fail(why, R_MISSING_HOST, -EINVAL);
    if (len > HTTP_URI_HOST_MAX) return fail(why, R_HOST_LONG, -EINVAL);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '%') return fail(why, R_HOST_PCT, -EINVAL);
        if (!is_unreserved(c) && !is_sub_delim(c)) return fail(why, R_HOST, -EINVAL);
        u->host[i] = (char)to_lower(c);
    }
    u->host[len] = '\0';
    if (last_label_numeric(u->host, len)) {
        struct in_addr a;
        if (inet_pton(AF_INET, u->host, &a) != 1) return fail(why, R_IPV4, -EINVAL);
        u->host_is_ipv4 = 1;
    }
    return 0;
}

/* authority = host [ ":" port ] with userinfo refused (RFC 9110 s4.2.4: "a recipient SHOULD parse for
 * userinfo and treat its presence as an error"; "http://good.example@evil.example/" is a phishing
 * classic). `connect` requires the port (RFC 9112 s3.2.3). */
static int parse_authority(const char *p, size_t len, int connect, struct http_uri *u, const char **why)
{
    if (memchr(p, '@', len) != NULL) return fail(why, R_USERINFO, -EINVAL);
    if (len == 0) return fail(why, connect ? R_CONNECT : R_MISSING_HOST, -EINVAL);

    const char *port = NULL; /* just after the ':' */
    int rc;
    if (p[0] == '[') {
        const char *close = memchr(p, ']', len);
        if (close == NULL) return fail(why, R_IPV6, -EINVAL);
        if ((rc = parse_ipv6(p + 1, (size_t)(close - p - 1), u, why)) != 0) return rc;
        const char *after = close + 1;
        if (after < p + len) {
            if (*after != ':') return fail(why, R_IPV6, -EINVAL);
            port = after + 1;
        }
    } else {
        const char *colon = memchr(p, ':', len);
        size_t host_len = colon ? (size_t)(colon - p) : len;
        if (host_len == 0) return fail(why, R_MISSING_HOST, -EINVAL);
        if ((rc = parse_reg_name(p, host_len, u, why)) != 0) return rc;
        if (colon) port = colon + 1;
    }

    size_t port_len = port ? (size_t)(p + len - port) : 0;
    if (port_len == 0) {
        if (connect) return fail(why, R_CONNECT, -EINVAL);
        u->port = 80; /* RFC 9110 s4.2.1: empty or absent port means 80 */
        return 0;
    }
    if ((rc = parse_port(port, port_len, &u->port, why)) != 0) return rc;
    u->port_explicit = 1;
    return 0;
}

static int parse_origin(const char *t, size_t len, struct http_uri *u, const char **why)
{
    /* absolute-path = 1*( "/" segment ): must start with '/' (RFC 9110 s4.1). */
    if (len == 0 || t[0] != '/') return fail(why, R_FORM, -EINVAL);
    int rc = check_path_query(t, len, why);
    if (rc != 0) return rc;
    u->form = URI_FORM_ORIGIN;
    u->path_and_query = t;
    u->path_and_query_len = len;
    return 0;
}

static int parse_absolute(const char *t, size_t len, struct http_uri *u, const char **why)
{
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" (RFC 3986 s3.1) */
    size_t i = 0;
    if (!is_alpha((unsigned char)t[0])) return fail(why, R_FORM, -EINVAL);
    while (i < len && (is_alpha((unsigned char)t[i]) || is_digit((unsigned char)t[i]) || t[i] == '+' || t[i] == '-' || t[i] == '.'))
        i++;
    if (i == len || t[i] != ':') return fail(why, R_FORM, -EINVAL);
    size_t scheme_len = i;

    /* Schemes are case-insensitive (RFC 3986 s3.1). Only http: this proxy speaks plain TCP upstream and
     * cannot originate TLS, so an https target can only be tunnelled with CONNECT. */
    if (scheme_len == 5 && strncasecmp(t, "https", 5) == 0) return fail(why, R_HTTPS, -EPROTONOSUPPORT);
    if (scheme_len != 4 || strncasecmp(t, "http", 4) != 0) return fail(why, R_SCHEME, -EPROTONOSUPPORT);

    /* http-URI = "http" "://" authority path-abempty [ "?" query ] (RFC 9110 s4.2.1) */
    const char *p = t + scheme_len + 1;
    const char *end = t + len;
    if (end - p < 2 || p[0] != '/' || p[1] != '/') return fail(why, R_NO_AUTHORITY, -EINVAL);
    p += 2;
    const char *auth = p;
    while (p < end && *p != '/' && *p != '?')
        p++;
    int rc = parse_authority(auth, (size_t)(p - auth), 0, u, why);
    if (rc != 0) return rc;
    if ((rc = check_path_query(p, (size_t)(end - p), why)) != 0) return rc;

    u->form = URI_FORM_ABSOLUTE;
    memcpy(u->scheme, "http", 5);
    if (p == end) {
        /* RFC 9112 s3.2.1: an empty path is sent as "/". */
        u->path_empty = 1;
        u->path_and_query = SLASH;
        u->path_and_query_len = 1;
    } else {
        u->path_empty = (*p == '?');
        u->path_and_query = p;
        u->path_and_query_len = (size_t)(end - p);
    }
    return 0;
}

int http_uri_parse(const char *target, size_t len, int method_is_connect, struct http_uri *out, const char **why)
{
    struct http_uri u;
    memset(&u, 0, sizeof(u));
    memset(out, 0, sizeof(*out));
    if (why) *why = NULL;

    int rc;
    if (len == 0) return fail(why, R_EMPTY, -EINVAL);
    if ((rc = check_bytes(target, len, why)) != 0) return rc;

    if (method_is_connect) {
        /* RFC 9110 s9.3.6: CONNECT uses authority-form only; the port is mandatory (RFC 9112 s3.2.3). */
        if (memchr(target, '/', len) != NULL || memchr(target, '?', len) != NULL) return fail(why, R_CONNECT, -EINVAL);
        rc = parse_authority(target, len, 1, &u, why);
        u.form = URI_FORM_AUTHORITY;
    } else if (len == 1 && target[0] == '*') {
        u.form = URI_FORM_ASTERISK;
        rc = 0;
    } else if (target[0] == '/') {
        rc = parse_origin(target, len, &u, why);
    } else {
        rc = parse_absolute(target, len, &u, why);
    }
    if (rc != 0) return rc;
    *out = u;
    return 0;
}

int http_uri_is_origin_form(const char *t, size_t len)
{
    struct http_uri u;
    memset(&u, 0, sizeof(u));
    if (len == 0 || t[0] != '/') return 0;
    return check_bytes(t, len, NULL) == 0 && parse_origin(t, len, &u, NULL) == 0;
}

/* Bounded output: every write is checked, and overflow is sticky so the caller checks once at the end. */
struct out {
    char *buf;
    size_t cap;
    size_t len;
    int overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->overflow || n >= o->cap - o->len) { /* keep one byte for the NUL */
        o->overflow = 1;
        return;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_char(struct out *o, char c)
{
    put(o, &c, 1);
}

static void put_port(struct out *o, uint16_t port)
{
    char tmp[6];
    size_t n = sizeof(tmp);
    unsigned v = port;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(o, tmp + n, sizeof(tmp) - n);
}

static void put_host(struct out *o, const struct http_uri *u)
{
    if (u->host_is_ipv6) put_char(o, '[');
    put_str(o, u->host);
    if (u->host_is_ipv6) put_char(o, ']');
}

static int finish(struct out *o)
{
    if (o->cap == 0) return -ENOSPC;
    o->buf[o->len] = '\0'; /* put() always leaves room for it */
    if (o->overflow || o->len > INT_MAX) return -ENOSPC;
    return (int)o->len;
}

static uint16_t default_port(const struct http_uri *u)
{
    if (strcmp(u->scheme, "http") == 0) return 80;
    if (strcmp(u->scheme, "https") == 0) return 443;
    return 0; /* authority-form has no scheme, hence no default */
}

/* RFC 3986 s6.2.2.1 and s6.2.2.2: "%7e" is "~" (unreserved: decode), "%2f" is "%2F" (reserved: keep
 * encoded, upper-case the hex). Nothing else is touched; the grammar was validated by the parser. */
static void put_normalized_path(struct out *o, const char *p, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '%' && len - i >= 3) {
            int hi = hex_val((unsigned char)p[i + 1]), lo = hex_val((unsigned char)p[i + 2]);
            if (hi >= 0 && lo >= 0) {
                unsigned char c = (unsigned char)(hi * 16 + lo);
                if (is_unreserved(c)) {
                    put_char(o, (char)c);
                } else {
                    char enc[3] = {'%', hex[hi], hex[lo]};
                    put(o, enc, 3);
                }
                i += 2;
                continue;
            }
        }
        put_char(o, p[i]);
    }
}

int http_uri_normalize(const struct http_uri *u, char *buf, size_t buf_len)
{
    if (u->form != URI_FORM_ABSOLUTE || u->host[0] == '\0') return -EINVAL;
    struct out o = {buf, buf_len, 0, 0};
    put_str(&o, u->scheme);
    put(&o, "://", 3);
    put_host(&o, u);
    if (u->port != default_port(u)) { /* RFC 9110 s4.2.3: the default port is omitted */
        put_char(&o, ':');
        put_port(&o, u->port);
    }
    if (u->path_and_query_len == 0 || u->path_and_query[0] != '/')
        put_char(&o, '/'); /* RFC 9110 s4.2.3: an empty path is equivalent to "/" */
    put_normalized_path(&o, u->path_and_query, u->path_and_query_len);
    return finish(&o);
}

int http_uri_host_header(const struct http_uri *u, char *buf, size_t buf_len)
{
    if (u->host[0] == '\0') return -EINVAL;
    struct out o = {buf, buf_len, 0, 0};
    put_host(&o, u);
    if (u->port_explicit && u->port != default_port(u)) {
        put_char(&o, ':');
        put_port(&o, u->port);
    }
    return finish(&o);
}

int http_uri_authority(const struct http_uri *u, char *buf, size_t buf_len)
{
    if (u->host[0] == '\0') return -EINVAL;
    struct out o = {buf, buf_len, 0, 0};
    put_host(&o, u);
    put_char(&o, ':');
    put_port(&o, u->port);
    return finish(&o);
}

int http_uri_origin_form(const struct http_uri *u, char *buf, size_t buf_len)
{
    if (u->form != URI_FORM_ABSOLUTE && u->form != URI_FORM_ORIGIN) return -EINVAL;
    struct out o = {buf, buf_len, 0, 0};
    if (u->path_and_query_len == 0 || u->path_and_query[0] != '/') put_char(&o, '/');
    put(&o, u->path_and_query, u->path_and_query_len);
    return finish(&o);
}

/* RFC 9112 s3.2 / RFC 9110 s7.2: Host = uri-host [ ":" port ], uri-host per RFC 3986 s3.2.2 (IP-literal,
 * IPv4address or reg-name, which may be empty). Only the syntax is checked here: a proxy routes by the
 * URI's authority and rewrites Host to match it, but a malformed Host still gets a 400. */
int http_uri_host_field_valid(const char *v, size_t n)
{
    size_t i = 0;
    if (n > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', n);
        if (close == NULL)
            return 0;
        size_t len = (size_t)(close - v) - 1;
        char buf[INET6_ADDRSTRLEN + 1];
        struct in6_addr a6;
        if (len == 0 || len >= sizeof(buf))
            return 0;
        memcpy(buf, v + 1, len);
        buf[len] = '\0';
        if (inet_pton(AF_INET6, buf, &a6) != 1)
            return 0;
        i = (size_t)(close - v) + 1;
    } else {
        for (; i < n && v[i] != ':'; i++) {
            unsigned char c = (unsigned char)v[i];
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     strchr("-._~!$&'()*+,;=%", c) != NULL;
            if (!ok || c == '\0')
                return 0;
        }
    }
    if (i == n)
        return 1;
    if (v[i] != ':')
        return 0;
    size_t digits = 0;
    for (i++; i < n; i++, digits++)
        if (v[i] < '0' || v[i] > '9' || digits >= 5)
            return 0;
    return 1;
}
