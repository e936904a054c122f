/* Unit tests for http/http_uri: request-target forms (RFC 9112 s3.2), http URI rules (RFC 9110 s4.2),
 * normalisation for cache keys (RFC 9110 s4.2.3, RFC 3986 s6.2.2) and the writers built on them. */
#include "http/http_uri.h"

#include <errno.h>
#include <string.h>

#include "test_util.h"

/* The reasons are part of the contract (they end up in 400 bodies), so the tests spell them out. */
#define W_EMPTY "empty request-target"
#define W_CTL "whitespace or control character in request-target"
#define W_NONASCII "non-ASCII byte in request-target (must be percent-encoded)"
#define W_FRAGMENT "fragment in request-target"
#define W_CHAR "character not allowed in request-target"
#define W_PCT "malformed percent-encoding in request-target"
#define W_FORM "request-target is not origin-form, absolute-form or \"*\""
#define W_SCHEME "unsupported scheme"
#define W_HTTPS "https in absolute-form is not supported: use CONNECT"
#define W_NO_AUTH "absolute-form without \"//\" authority"
#define W_USERINFO "userinfo in URI not allowed"
#define W_MISSING_HOST "missing host"
#define W_HOST "invalid host"
#define W_HOST_PCT "percent-encoding in host not allowed"
#define W_HOST_LONG "host too long"
#define W_IPV4 "invalid IPv4 address"
#define W_IPV6 "invalid IPv6 literal"
#define W_PORT "invalid port"
#define W_CONNECT "CONNECT requires host:port"

/* Flags for the expected host kind. */
#define K_NAME 0
#define K_V4 1
#define K_V6 2

struct ok_case {
    const char *name;
    const char *target;
    int connect;
    enum uri_form form;
    const char *scheme;
    const char *host;
    int kind;
    unsigned port;
    int port_explicit;
    int path_empty;
    const char *pq; /* NULL: expect (NULL, 0) */
};

static const struct ok_case ok_cases[] = {
    /* origin-form */
    {"RFC 9112 s3.2.1 origin-form root", "/", 0, URI_FORM_ORIGIN, "", "", K_NAME, 0, 0, 0, "/"},
    {"RFC 9112 s3.2.1 origin-form with query", "/where?q=now", 0, URI_FORM_ORIGIN, "", "", K_NAME, 0, 0, 0, "/where?q=now"},
    {"RFC 9110 s4.1 absolute-path may start with //", "//double/slash", 0, URI_FORM_ORIGIN, "", "", K_NAME, 0, 0, 0,
     "//double/slash"},
    {"RFC 3986 s3.4 query may hold ? and /", "/a?b?c/d", 0, URI_FORM_ORIGIN, "", "", K_NAME, 0, 0, 0, "/a?b?c/d"},
    {"RFC 3986 s3.3 every pchar allowed in path", "/a:b@c!$&'()*+,;=-._~", 0, URI_FORM_ORIGIN, "", "", K_NAME, 0, 0, 0,
     "/a:b@c!$&'()*+,;=-._~"},
    {"RFC 3986 s2.1 well-formed percent-encoding", "/%7Efoo%2f?x=%41%e2", 0, URI_FORM_ORIGIN, "", "", K_NAME, 0, 0, 0,
     "/%7Efoo%2f?x=%41%e2"},
    {"RFC 3986 s3.4 empty query kept", "/?", 0, URI_FORM_ORIGIN, "", "", K_NAME, 0, 0, 0, "/?"},
    /* absolute-form */
    {"RFC 9112 s3.2.2 absolute-form", "http://www.example.org/pub/WWW/TheProject.html", 0, URI_FORM_ABSOLUTE, "http",
     "www.example.org", K_NAME, 80, 0, 0, "/pub/WWW/TheProject.html"},
    {"RFC 9112 s3.2.2 absolute-form with query", "http://www.example.org/where?q=now", 0, URI_FORM_ABSOLUTE, "http",
     "www.example.org", K_NAME, 80, 0, 0, "/where?q=now"},
    {"RFC 9110 s4.2.3 scheme and host lower-cased", "HTTP://Example.COM/A", 0, URI_FORM_ABSOLUTE, "http", "example.com", K_NAME, 80,
     0, 0, "/A"},
    {"RFC 3986 s3.1 scheme is case-insensitive", "hTtP://h/", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 80, 0, 0, "/"},
    {"RFC 9112 s3.2.1 empty path becomes /", "http://h", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 80, 0, 1, "/"},
    {"RFC 9112 s3.2.1 empty path with query", "http://h?q", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 80, 0, 1, "?q"},
    {"RFC 9110 s4.2.1 explicit port", "http://h:8080/x", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 8080, 1, 0, "/x"},
    {"RFC 9110 s4.2.1 empty port means 80", "http://h:/x", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 80, 0, 0, "/x"},
    {"RFC 9110 s4.2.1 explicit default port", "http://h:80/", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 80, 1, 0, "/"},
    {"RFC 3986 s3.2.3 port with leading zeros", "http://h:0080/", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 80, 1, 0, "/"},
    {"RFC 3986 s3.2.3 highest port", "http://h:65535/", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 65535, 1, 0, "/"},
    {"RFC 3986 s3.2.3 port then empty path with query", "http://h:81?q", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 81, 1, 1, "?q"},
    {"RFC 3986 s3.2.2 IPv6 literal with port", "http://[::1]:8080/x", 0, URI_FORM_ABSOLUTE, "http", "::1", K_V6, 8080, 1, 0, "/x"},
    {"RFC 3986 s3.2.2 IPv6 literal canonicalised (RFC 5952)", "http://[2001:DB8::0001]/", 0, URI_FORM_ABSOLUTE, "http",
     "2001:db8::1", K_V6, 80, 0, 0, "/"},
    {"RFC 3986 s3.2.2 IPv6 with embedded IPv4", "http://[::ffff:192.0.2.1]/", 0, URI_FORM_ABSOLUTE, "http", "::ffff:192.0.2.1",
     K_V6, 80, 0, 0, "/"},
    {"RFC 3986 s3.2.2 IPv6 literal with empty port", "http://[::1]:/", 0, URI_FORM_ABSOLUTE, "http", "::1", K_V6, 80, 0, 0, "/"},
    {"RFC 3986 s3.2.2 IPv4 literal", "http://192.0.2.1:8000/", 0, URI_FORM_ABSOLUTE, "http", "192.0.2.1", K_V4, 8000, 1, 0, "/"},
    {"RFC 3986 s3.2.2 reg-name with unreserved and sub-delims", "http://a_b-c~d.Example!$&'()*+,;=/", 0, URI_FORM_ABSOLUTE, "http",
     "a_b-c~d.example!$&'()*+,;=", K_NAME, 80, 0, 0, "/"},
    {"RFC 3986 s3.2.2 digits inside a name are not IPv4", "http://123.example/", 0, URI_FORM_ABSOLUTE, "http", "123.example",
     K_NAME, 80, 0, 0, "/"},
    {"RFC 3986 s3.3 @ in path is not userinfo", "http://h/a@b", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 80, 0, 0, "/a@b"},
    {"RFC 3986 s3.3 percent-encoded space in path", "http://h/p%20q", 0, URI_FORM_ABSOLUTE, "http", "h", K_NAME, 80, 0, 0,
     "/p%20q"},
    /* authority-form */
    {"RFC 9112 s3.2.3 authority-form", "www.example.com:443", 1, URI_FORM_AUTHORITY, "", "www.example.com", K_NAME, 443, 1, 0,
     NULL},
    {"RFC 9112 s3.2.3 authority-form host lower-cased", "WWW.Example.COM:80", 1, URI_FORM_AUTHORITY, "", "www.example.com", K_NAME,
     80, 1, 0, NULL},
    {"RFC 9112 s3.2.3 authority-form IPv6", "[::1]:443", 1, URI_FORM_AUTHORITY, "", "::1", K_V6, 443, 1, 0, NULL},
    {"RFC 9112 s3.2.3 authority-form IPv4", "127.0.0.1:8443", 1, URI_FORM_AUTHORITY, "", "127.0.0.1", K_V4, 8443, 1, 0, NULL},
    /* asterisk-form */
    {"RFC 9112 s3.2.4 asterisk-form", "*", 0, URI_FORM_ASTERISK, "", "", K_NAME, 0, 0, 0, NULL},
};

static void test_parse_accepts(void)
{
    for (size_t i = 0; i < sizeof(ok_cases) / sizeof(ok_cases[0]); i++) {
        const struct ok_case *c = &ok_cases[i];
        struct http_uri u;
        const char *why = "not cleared";
        fprintf(stderr, "  case: %s\n", c->name);
        int rc = http_uri_parse(c->target, strlen(c->target), c->connect, &u, &why);
        ASSERT_EQ(rc, 0);
        ASSERT(why == NULL);
        ASSERT_EQ(u.form, c->form);
        ASSERT_STR_EQ(u.scheme, c->scheme);
        ASSERT_STR_EQ(u.host, c->host);
        ASSERT_EQ(u.host_is_ipv6, c->kind == K_V6);
        ASSERT_EQ(u.host_is_ipv4, c->kind == K_V4);
        ASSERT_UEQ(u.port, c->port);
        ASSERT_EQ(u.port_explicit, c->port_explicit);
        ASSERT_EQ(u.path_empty, c->path_empty);
        if (c->pq == NULL) {
            ASSERT(u.path_and_query == NULL);
            ASSERT_UEQ(u.path_and_query_len, 0);
        } else {
            ASSERT_MEM_STR_EQ(u.path_and_query, u.path_and_query_len, c->pq);
        }
    }
}

struct bad_case {
    const char *name;
    const char *target;
    size_t len; /* 0: strlen(target) */
    int connect;
    int rc;
    const char *why;
};

static const struct bad_case bad_cases[] = {
    /* whole-target byte rules */
    {"RFC 9112 s3.2 empty request-target", "", 0, 0, -EINVAL, W_EMPTY},
    {"RFC 9112 s3.2 empty authority-form", "", 0, 1, -EINVAL, W_EMPTY},
    {"RFC 9112 s3.2 no whitespace: SP", "/a b", 0, 0, -EINVAL, W_CTL},
    {"RFC 9112 s3.2 no whitespace: HTAB", "/a\tb", 0, 0, -EINVAL, W_CTL},
    {"RFC 9112 s11.1 no CR LF in target", "/a\r\nX-Injected: 1", 0, 0, -EINVAL, W_CTL},
    {"RFC 9112 s3.2 NUL inside the target", "/a\0b", 4, 0, -EINVAL, W_CTL},
    {"RFC 3986 s2 DEL is a control", "/a\x7f", 0, 0, -EINVAL, W_CTL},
    {"RFC 3986 s2 non-ASCII must be percent-encoded", "/caf\xc3\xa9", 0, 0, -EINVAL, W_NONASCII},
    {"RFC 3986 s2 non-ASCII in host", "http://ex\xc3\xa4mple.com/", 0, 0, -EINVAL, W_NONASCII},
    {"RFC 9112 s3.2 whitespace in host", "http://ex ample/", 0, 0, -EINVAL, W_CTL},
    {"RFC 9110 s4.2.5 fragment in origin-form", "/a#frag", 0, 0, -EINVAL, W_FRAGMENT},
    {"RFC 9110 s4.2.5 fragment in absolute-form", "http://h/#x", 0, 0, -EINVAL, W_FRAGMENT},
    {"RFC 9110 s4.2.5 fragment right after host", "http://h#x", 0, 0, -EINVAL, W_FRAGMENT},
    /* path and query grammar */
    {"RFC 3986 s2.1 percent followed by non-hex", "/a%zz", 0, 0, -EINVAL, W_PCT},
    {"RFC 3986 s2.1 truncated percent-encoding", "/a%4", 0, 0, -EINVAL, W_PCT},
    {"RFC 3986 s2.1 lone percent at end", "/a%", 0, 0, -EINVAL, W_PCT},
    {"RFC 3986 s2.1 escape cut short by the target length", "/a%41", 4, 0, -EINVAL, W_PCT},
    {"RFC 3986 s2.1 bad percent-encoding in query", "/?q=%g0", 0, 0, -EINVAL, W_PCT},
    {"RFC 3986 s2.1 bad percent-encoding in absolute-form", "http://h/%4g", 0, 0, -EINVAL, W_PCT},
    {"RFC 3986 s2 backslash not allowed", "/a\\b", 0, 0, -EINVAL, W_CHAR},
    {"RFC 3986 s2 pipe not allowed in query", "http://h/?a|b", 0, 0, -EINVAL, W_CHAR},
    {"RFC 3986 s2 angle brackets not allowed", "/<script>", 0, 0, -EINVAL, W_CHAR},
    /* which form */
    {"RFC 9112 s3.2 bare host is no form for GET", "example.com/", 0, 0, -EINVAL, W_FORM},
    {"RFC 9112 s3.2.4 asterisk-form is only \"*\"", "**", 0, 0, -EINVAL, W_FORM},
    {"RFC 9112 s3.2.4 asterisk-form has no path", "*/", 0, 0, -EINVAL, W_FORM},
    {"RFC 3986 s3.1 scheme must start with a letter", "1http://h/", 0, 0, -EINVAL, W_FORM},
    {"RFC 3986 s3.1 scheme must end with ':'", "http//h/", 0, 0, -EINVAL, W_FORM},
    /* scheme */
    {"RFC 9110 s4.2.2 https absolute-form cannot be served", "https://h/", 0, 0, -EPROTONOSUPPORT, W_HTTPS},
    {"RFC 9110 s4.2.2 https scheme case-insensitive", "HTTPS://h/", 0, 0, -EPROTONOSUPPORT, W_HTTPS},
    {"RFC 9110 s4.2 ftp scheme unsupported", "ftp://h/", 0, 0, -EPROTONOSUPPORT, W_SCHEME},
    {"RFC 9110 s4.2 scheme prefix is not http", "httpx://h/", 0, 0, -EPROTONOSUPPORT, W_SCHEME},
    {"RFC 9110 s4.2 authority-form for GET is an unknown scheme", "example.com:80", 0, 0, -EPROTONOSUPPORT, W_SCHEME},
    /* authority */
    {"RFC 9110 s4.2.1 http URI needs //", "http:/h", 0, 0, -EINVAL, W_NO_AUTH},
    {"RFC 9110 s4.2.1 http URI needs // (opaque)", "http:h", 0, 0, -EINVAL, W_NO_AUTH},
    {"RFC 9110 s4.2.1 scheme only", "http:", 0, 0, -EINVAL, W_NO_AUTH},
    {"RFC 9110 s4.2.1 empty host", "http://", 0, 0, -EINVAL, W_MISSING_HOST},
    {"RFC 9110 s4.2.1 empty host before path", "http:///a", 0, 0, -EINVAL, W_MISSING_HOST},
    {"RFC 9110 s4.2.1 empty host before port", "http://:80/", 0, 0, -EINVAL, W_MISSING_HOST},
    {"RFC 9110 s4.2.1 empty host before query", "http://?q", 0, 0, -EINVAL, W_MISSING_HOST},
    {"RFC 9110 s4.2.4 userinfo rejected", "http://user@h/", 0, 0, -EINVAL, W_USERINFO},
    {"RFC 9110 s4.2.4 user:password rejected", "http://user:pw@h/", 0, 0, -EINVAL, W_USERINFO},
    {"RFC 9110 s4.2.4 userinfo hiding the real host", "http://good.example@evil.example/", 0, 0, -EINVAL, W_USERINFO},
    {"RFC 9110 s4.2.4 userinfo in authority-form", "user@h:443", 0, 1, -EINVAL, W_USERINFO},
    {"RFC 3986 s3.2.2 no percent-encoding in host", "http://h%41/", 0, 0, -EINVAL, W_HOST_PCT},
    {"RFC 3986 s3.2.2 encoded @ in host", "http://good.example%40evil/", 0, 0, -EINVAL, W_HOST_PCT},
    {"RFC 3986 s3.2.2 backslash in host", "http://evil\\good/", 0, 0, -EINVAL, W_HOST},
    {"RFC 3986 s3.2.2 bracket in reg-name", "http://h[x]/", 0, 0, -EINVAL, W_HOST},
    {"RFC 3986 s3.2.2 caret in host", "http://h^/", 0, 0, -EINVAL, W_HOST},
    /* IPv4 spellings an inet_aton resolver would accept */
    {"RFC 3986 s3.2.2 short IPv4 refused", "http://127.1/", 0, 0, -EINVAL, W_IPV4},
    {"RFC 3986 s3.2.2 hex IPv4 refused", "http://0x7f000001/", 0, 0, -EINVAL, W_IPV4},
    {"RFC 3986 s3.2.2 hex IPv4 label refused", "http://0x7f.0.0.1/", 0, 0, -EINVAL, W_IPV4},
    {"RFC 3986 s3.2.2 decimal IPv4 refused", "http://2130706433/", 0, 0, -EINVAL, W_IPV4},
    {"RFC 3986 s3.2.2 IPv4 octet > 255", "http://1.2.3.256/", 0, 0, -EINVAL, W_IPV4},
    {"RFC 3986 s3.2.2 IPv4 octet with leading zero (octal)", "http://010.0.0.1/", 0, 0, -EINVAL, W_IPV4},
    {"RFC 3986 s3.2.2 IPv4 with trailing dot", "http://1.2.3.4./", 0, 0, -EINVAL, W_IPV4},
    {"RFC 3986 s3.2.2 numeric last label", "http://example.123/", 0, 0, -EINVAL, W_IPV4},
    /* IPv6 */
    {"RFC 3986 s3.2.2 unterminated IPv6 literal", "http://[::1/", 0, 0, -EINVAL, W_IPV6},
    {"RFC 3986 s3.2.2 bad IPv6 digits", "http://[::g]/", 0, 0, -EINVAL, W_IPV6},
    {"RFC 3986 s3.2.2 empty IPv6 literal", "http://[]/", 0, 0, -EINVAL, W_IPV6},
    {"RFC 3986 s3.2.2 IPvFuture refused", "http://[v1.fe]/", 0, 0, -EINVAL, W_IPV6},
    {"RFC 6874 zone identifier refused", "http://[fe80::1%25eth0]/", 0, 0, -EINVAL, W_IPV6},
    {"RFC 3986 s3.2.2 junk after IPv6 literal", "http://[::1]x/", 0, 0, -EINVAL, W_IPV6},
    {"RFC 3986 s3.2.2 IPv4 in brackets", "http://[127.0.0.1]/", 0, 0, -EINVAL, W_IPV6},
    {"RFC 3986 s3.2.2 unbracketed IPv6", "http://::1/", 0, 0, -EINVAL, W_MISSING_HOST},
    /* port */
    {"RFC 3986 s3.2.3 non-numeric port", "http://h:abc/", 0, 0, -EINVAL, W_PORT},
    {"RFC 3986 s3.2.3 negative port", "http://h:-1/", 0, 0, -EINVAL, W_PORT},
    {"RFC 3986 s3.2.3 port above 65535", "http://h:65536/", 0, 0, -EINVAL, W_PORT},
    {"RFC 3986 s3.2.3 port that overflows", "http://h:99999999999999999999999/", 0, 0, -EINVAL, W_PORT},
    {"RFC 3986 s3.2.3 port 0 refused", "http://h:0/", 0, 0, -EINVAL, W_PORT},
    {"RFC 3986 s3.2.3 port 00 refused", "http://h:00/", 0, 0, -EINVAL, W_PORT},
    {"RFC 3986 s3.2.3 two ports", "http://h:80:90/", 0, 0, -EINVAL, W_PORT},
    {"RFC 3986 s3.2.3 bad port after IPv6", "http://[::1]:x/", 0, 0, -EINVAL, W_PORT},
    /* authority-form */
    {"RFC 9112 s3.2.3 CONNECT without port", "www.example.com", 0, 1, -EINVAL, W_CONNECT},
    {"RFC 9112 s3.2.3 CONNECT with empty port", "www.example.com:", 0, 1, -EINVAL, W_CONNECT},
    {"RFC 9112 s3.2.3 CONNECT IPv6 without port", "[::1]", 0, 1, -EINVAL, W_CONNECT},
    {"RFC 9112 s3.2.3 CONNECT with absolute-form", "http://h:443", 0, 1, -EINVAL, W_CONNECT},
    {"RFC 9112 s3.2.3 CONNECT with origin-form", "/", 0, 1, -EINVAL, W_CONNECT},
    {"RFC 9112 s3.2.3 CONNECT with query", "h:443?x", 0, 1, -EINVAL, W_CONNECT},
    {"RFC 9112 s3.2.3 CONNECT with asterisk", "*", 0, 1, -EINVAL, W_CONNECT},
    {"RFC 9112 s3.2.3 CONNECT to port 0", "h:0", 0, 1, -EINVAL, W_PORT},
    {"RFC 9112 s3.2.3 CONNECT to port above 65535", "h:70000", 0, 1, -EINVAL, W_PORT},
    {"RFC 9112 s3.2.3 CONNECT without host", ":443", 0, 1, -EINVAL, W_MISSING_HOST},
    {"RFC 9112 s3.2.3 CONNECT to numeric non-IPv4", "127.1:443", 0, 1, -EINVAL, W_IPV4},
};

static void test_parse_rejects(void)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *c = &bad_cases[i];
        struct http_uri u;
        const char *why = NULL;
        fprintf(stderr, "  case: %s\n", c->name);
        memset(&u, 0xa5, sizeof(u));
        int rc = http_uri_parse(c->target, c->len ? c->len : strlen(c->target), c->connect, &u, &why);
        ASSERT_EQ(rc, c->rc);
        ASSERT_STR_EQ(why, c->why);
        /* A failed parse leaves nothing half-filled behind. */
        ASSERT_EQ(u.form, 0);
        ASSERT_STR_EQ(u.host, "");
        ASSERT_UEQ(u.port, 0);
        ASSERT(u.path_and_query == NULL);
        /* why is optional. */
        ASSERT_EQ(http_uri_parse(c->target, c->len ? c->len : strlen(c->target), c->connect, &u, NULL), c->rc);
    }
}

/* RFC 3986 s2 / RFC 9112 s3.2: every byte outside printable US-ASCII is refused wherever it appears. */
static void test_parse_rejects_every_bad_byte(void)
{
    static const char *const templates[][2] = {
        {"/a", "b"},                 /* origin-form path */
        {"/?q=", "1"},               /* origin-form query */
        {"http://ho", "st/"},        /* host */
        {"http://h:8", "0/"},        /* port */
        {"http://h/p", "?q"},        /* absolute-form path */
        {"www.example.com:44", "3"}, /* authority-form (with connect=1 below) */
    };
    for (size_t t = 0; t < sizeof(templates) / sizeof(templates[0]); t++) {
        for (unsigned b = 0; b < 256; b++) {
            if (b > 0x20 && b < 0x7f) continue;
            char buf[64];
            size_t n1 = strlen(templates[t][0]), n2 = strlen(templates[t][1]);
            memcpy(buf, templates[t][0], n1);
            buf[n1] = (char)b;
            memcpy(buf + n1 + 1, templates[t][1], n2);
            struct http_uri u;
            const char *why = NULL;
            int rc = http_uri_parse(buf, n1 + 1 + n2, t == 5, &u, &why);
            if (rc != -EINVAL) TEST_FAIL_("template %zu byte 0x%02x: rc %d", t, b, rc);
            ASSERT_STR_EQ(why, b >= 0x80 ? W_NONASCII : W_CTL);
        }
    }
}

/* RFC 3986 s3.3/s3.4: the printable characters accepted in a path segment are exactly pchar plus '/' and
 * '?'. This sweeps all of them so a table typo in the classifier cannot hide. */
static void test_path_charset(void)
{
    const char *allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?";
    for (unsigned b = 0x21; b < 0x7f; b++) {
        char buf[8] = {'/', 'x', (char)b, 'y'};
        struct http_uri u;
        const char *why = NULL;
        int rc = http_uri_parse(buf, 4, 0, &u, &why);
        const char *expect_why = strchr(allowed, (int)b) ? NULL : b == '%' ? W_PCT : b == '#' ? W_FRAGMENT : W_CHAR;
        if ((rc == 0) != (expect_why == NULL)) TEST_FAIL_("path char '%c': rc %d (%s)", (char)b, rc, why ? why : "ok");
        if (expect_why) ASSERT_STR_EQ(why, expect_why);
        ASSERT_EQ(http_uri_is_origin_form(buf, 4), expect_why == NULL);
    }
}

/* RFC 3986 s3.2.2: reg-name characters are unreserved / sub-delims (pct-encoded refused by us). */
static void test_host_charset(void)
{
    const char *allowed = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=";
    for (unsigned b = 0x21; b < 0x7f; b++) {
        if (b == '/' || b == '?' || b == ':' || b == '#' || b == '@' || b == '%')
            continue; /* delimiters, checked by their own rows */
        char buf[32];
        int n = snprintf(buf, sizeof(buf), "http://a%cb/", (char)b);
        struct http_uri u;
        const char *why = NULL;
        int rc = http_uri_parse(buf, (size_t)n, 0, &u, &why);
        int want_ok = strchr(allowed, (int)b) != NULL;
        if ((rc == 0) != want_ok) TEST_FAIL_("host char '%c': rc %d (%s)", (char)b, rc, why ? why : "ok");
        if (!want_ok) ASSERT_STR_EQ(why, W_HOST);
    }
}

/* Host length limit: 255 octets accepted, 256 refused (and never overflows host[]). */
static void test_host_length(void)
{
    char buf[300];
    struct http_uri u;
    const char *why = NULL;
    for (size_t hl = 254; hl <= 257; hl++) {
        memcpy(buf, "http://", 7);
        memset(buf + 7, 'a', hl);
        memcpy(buf + 7 + hl, "/", 1);
        int rc = http_uri_parse(buf, 7 + hl + 1, 0, &u, &why);
        if (hl <= HTTP_URI_HOST_MAX) {
            ASSERT_EQ(rc, 0);
            ASSERT_UEQ(strlen(u.host), hl);
        } else {
            ASSERT_EQ(rc, -EINVAL);
            ASSERT_STR_EQ(why, W_HOST_LONG);
        }
    }
}

/* path_and_query is a view into the caller's buffer, not a copy. */
static void test_path_points_into_input(void)
{
    const char *t = "http://h/x?y";
    struct http_uri u;
    ASSERT_EQ(http_uri_parse(t, strlen(t), 0, &u, NULL), 0);
    ASSERT(u.path_and_query == t + 8);
    ASSERT_UEQ(u.path_and_query_len, 4);
    /* Only `len` bytes are read: a longer buffer is cut where the caller says. */
    ASSERT_EQ(http_uri_parse(t, 9, 0, &u, NULL), 0);
    ASSERT_MEM_STR_EQ(u.path_and_query, u.path_and_query_len, "/");
}

struct norm_case {
    const char *name;
    const char *target;
    int connect;
    int rc;
    const char *want;
};

static const struct norm_case norm_cases[] = {
    {"RFC 3986 s6.2.2 case, default port, decode unreserved, upper-case hex", "HTTP://Example.COM:80/a%7e%2f", 0, 0,
     "http://example.com/a~%2F"},
    {"RFC 9110 s4.2.3 IPv6 host bracketed, explicit port kept", "http://[::1]:8080/x", 0, 0, "http://[::1]:8080/x"},
    {"RFC 9110 s4.2.3 query unchanged", "http://h/?q", 0, 0, "http://h/?q"},
    {"RFC 9110 s4.2.3 empty path is /", "http://h", 0, 0, "http://h/"},
    {"RFC 9110 s4.2.3 empty path with query", "http://h?q", 0, 0, "http://h/?q"},
    {"RFC 9110 s4.2.3 example 1", "http://example.com:80/~smith/home.html", 0, 0, "http://example.com/~smith/home.html"},
    {"RFC 9110 s4.2.3 example 2", "http://EXAMPLE.com/%7Esmith/home.html", 0, 0, "http://example.com/~smith/home.html"},
    {"RFC 9110 s4.2.3 example 3", "http://EXAMPLE.com:/%7esmith/home.html", 0, 0, "http://example.com/~smith/home.html"},
    {"RFC 3986 s6.2.2.2 every unreserved class decoded", "http://h/%41%42%7a%30%2D%2e%5F", 0, 0, "http://h/ABz0-._"},
    {"RFC 3986 s6.2.2.1 non-ASCII escapes upper-cased", "http://h/%e2%82%ac", 0, 0, "http://h/%E2%82%AC"},
    {"RFC 3986 s6.2.2.2 reserved escapes stay encoded in query", "http://h/?a=%3d%3D&b=%20", 0, 0, "http://h/?a=%3D%3D&b=%20"},
    {"RFC 3986 s6.2.2.2 encoded percent stays encoded", "http://h/%25%32%35", 0, 0, "http://h/%2525"},
    {"RFC 3986 s6.2.3 empty query kept", "http://h/?", 0, 0, "http://h/?"},
    {"RFC 3986 s6.2.2.3 dot-segments deliberately kept", "http://h/a/../b/./c", 0, 0, "http://h/a/../b/./c"},
    {"RFC 9110 s4.2.3 non-default port kept", "http://h:8080", 0, 0, "http://h:8080/"},
    {"RFC 9110 s4.2.3 port leading zeros dropped", "http://h:08080/", 0, 0, "http://h:8080/"},
    {"RFC 9110 s4.2.3 IPv6 canonical and default port omitted", "http://[2001:DB8::0001]:80/", 0, 0, "http://[2001:db8::1]/"},
    {"RFC 9110 s4.2.3 path case preserved", "http://h/ABC?DEF", 0, 0, "http://h/ABC?DEF"},
    {"RFC 9110 s4.2.3 origin-form has no absolute URI", "/x", 0, -EINVAL, NULL},
    {"RFC 9110 s4.2.3 authority-form has no absolute URI", "h:443", 1, -EINVAL, NULL},
    {"RFC 9110 s4.2.3 asterisk-form has no absolute URI", "*", 0, -EINVAL, NULL},
};

static void test_normalize(void)
{
    for (size_t i = 0; i < sizeof(norm_cases) / sizeof(norm_cases[0]); i++) {
        const struct norm_case *c = &norm_cases[i];
        struct http_uri u;
        char buf[256];
        fprintf(stderr, "  case: %s\n", c->name);
        ASSERT_EQ(http_uri_parse(c->target, strlen(c->target), c->connect, &u, NULL), 0);
        int rc = http_uri_normalize(&u, buf, sizeof(buf));
        if (c->want == NULL) {
            ASSERT_EQ(rc, c->rc);
        } else {
            ASSERT_EQ(rc, (int)strlen(c->want));
            ASSERT_STR_EQ(buf, c->want);
        }
    }
}

/* A writer that reports -ENOSPC for a buffer one byte too small, fits exactly with room for the NUL, and
 * never writes at all into a zero-length buffer. */
typedef int (*writer_fn)(const struct http_uri *, char *, size_t);

static void check_writer_bounds(writer_fn fn, const struct http_uri *u, const char *want)
{
    size_t n = strlen(want);
    char buf[300];
    memset(buf, 'Z', sizeof(buf));
    ASSERT_EQ(fn(u, buf, n + 1), (int)n);
    ASSERT_STR_EQ(buf, want);
    ASSERT_EQ(buf[n + 1], 'Z');

    memset(buf, 'Z', sizeof(buf));
    ASSERT_EQ(fn(u, buf, n), -ENOSPC);
    ASSERT(memchr(buf, '\0', n) != NULL); /* truncated, but still a C string */
    ASSERT_EQ(buf[n], 'Z');

    memset(buf, 'Z', sizeof(buf));
    ASSERT_EQ(fn(u, buf, 0), -ENOSPC);
    ASSERT_EQ(buf[0], 'Z');
}

static void test_writers_respect_buffer_size(void)
{
    struct http_uri u;
    const char *t = "HTTP://Example.COM:8080/a%7e?b";
    ASSERT_EQ(http_uri_parse(t, strlen(t), 0, &u, NULL), 0);
    check_writer_bounds(http_uri_normalize, &u, "http://example.com:8080/a~?b");
    check_writer_bounds(http_uri_host_header, &u, "example.com:8080");
    check_writer_bounds(http_uri_authority, &u, "example.com:8080");
    check_writer_bounds(http_uri_origin_form, &u, "/a%7e?b");

    t = "http://[::1]?q";
    ASSERT_EQ(http_uri_parse(t, strlen(t), 0, &u, NULL), 0);
    check_writer_bounds(http_uri_normalize, &u, "http://[::1]/?q");
    check_writer_bounds(http_uri_host_header, &u, "[::1]");
    check_writer_bounds(http_uri_authority, &u, "[::1]:80");
    check_writer_bounds(http_uri_origin_form, &u, "/?q");
}

struct writer_case {
    const char *name;
    const char *target;
    int connect;
    const char *host_header; /* NULL: -EINVAL */
    const char *authority;   /* NULL: -EINVAL */
    const char *origin_form; /* NULL: -EINVAL */
};

static const struct writer_case writer_cases[] = {
    {"RFC 9112 s3.2.2 Host from target, default port", "http://h/", 0, "h", "h:80", "/"},
    {"RFC 9112 s3.2.2 Host omits explicit default port", "http://h:80/", 0, "h", "h:80", "/"},
    {"RFC 9112 s3.2.2 Host keeps non-default port", "http://h:8080/x", 0, "h:8080", "h:8080", "/x"},
    {"RFC 9112 s3.2.2 Host for empty port", "http://h:/", 0, "h", "h:80", "/"},
    {"RFC 9112 s3.2.2 Host lower-cased", "http://EXAMPLE.org/", 0, "example.org", "example.org:80", "/"},
    {"RFC 9112 s3.2.2 Host for IPv6 bracketed", "http://[::1]/", 0, "[::1]", "[::1]:80", "/"},
    {"RFC 9112 s3.2.2 Host for IPv6 with port", "http://[::1]:81/", 0, "[::1]:81", "[::1]:81", "/"},
    {"RFC 9112 s3.2.1 origin-form sent for empty path", "http://h", 0, "h", "h:80", "/"},
    {"RFC 9112 s3.2.1 origin-form sent for empty path with query", "http://h?a=b", 0, "h", "h:80", "/?a=b"},
    {"RFC 9112 s3.2.1 origin-form is sent as received", "http://h/A%7e/./b?%2f", 0, "h", "h:80", "/A%7e/./b?%2f"},
    {"RFC 9112 s3.2.3 authority-form host and port", "h:443", 1, "h:443", "h:443", NULL},
    {"RFC 9112 s3.2.3 authority-form IPv6", "[::1]:443", 1, "[::1]:443", "[::1]:443", NULL},
    {"RFC 9112 s3.2.1 origin-form has no host", "/x?y", 0, NULL, NULL, "/x?y"},
    {"RFC 9112 s3.2.4 asterisk-form has no host", "*", 0, NULL, NULL, NULL},
};

static void check_writer(writer_fn fn, const struct http_uri *u, const char *want)
{
    char buf[128];
    int rc = fn(u, buf, sizeof(buf));
    if (want == NULL) {
        ASSERT_EQ(rc, -EINVAL);
    } else {
        ASSERT_EQ(rc, (int)strlen(want));
        ASSERT_STR_EQ(buf, want);
    }
}

static void test_writers(void)
{
    for (size_t i = 0; i < sizeof(writer_cases) / sizeof(writer_cases[0]); i++) {
        const struct writer_case *c = &writer_cases[i];
        struct http_uri u;
        fprintf(stderr, "  case: %s\n", c->name);
        ASSERT_EQ(http_uri_parse(c->target, strlen(c->target), c->connect, &u, NULL), 0);
        check_writer(http_uri_host_header, &u, c->host_header);
        check_writer(http_uri_authority, &u, c->authority);
        check_writer(http_uri_origin_form, &u, c->origin_form);
    }
}

struct origin_case {
    const char *name;
    const char *t;
    int want;
};

static const struct origin_case origin_cases[] = {
    {"RFC 9112 s3.2.1 root", "/", 1},
    {"RFC 9112 s3.2.1 path and query", "/where?q=now", 1},
    {"RFC 9112 s3.2.1 empty", "", 0},
    {"RFC 9112 s3.2.1 must start with /", "where", 0},
    {"RFC 9112 s3.2.2 absolute-form is not origin-form", "http://h/", 0},
    {"RFC 9112 s3.2.4 asterisk is not origin-form", "*", 0},
    {"RFC 9112 s3.2 whitespace", "/a b", 0},
    {"RFC 9110 s4.2.5 fragment", "/a#b", 0},
    {"RFC 3986 s2.1 bad percent-encoding", "/%x1", 0},
};

static void test_is_origin_form(void)
{
    for (size_t i = 0; i < sizeof(origin_cases) / sizeof(origin_cases[0]); i++) {
        const struct origin_case *c = &origin_cases[i];
        fprintf(stderr, "  case: %s\n", c->name);
        ASSERT_EQ(http_uri_is_origin_form(c->t, strlen(c->t)), c->want);
    }
}

int main(void)
{
    RUN_TEST(test_parse_accepts);
    RUN_TEST(test_parse_rejects);
    RUN_TEST(test_parse_rejects_every_bad_byte);
    RUN_TEST(test_path_charset);
    RUN_TEST(test_host_charset);
    RUN_TEST(test_host_length);
    RUN_TEST(test_path_points_into_input);
    RUN_TEST(test_normalize);
    RUN_TEST(test_writers_respect_buffer_size);
    RUN_TEST(test_writers);
    RUN_TEST(test_is_origin_form);
    return 0;
}
