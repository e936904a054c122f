#include "http/http_parse.h"
#include "http/http_uri.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

struct http_parser {
    llhttp_t ll;
    llhttp_settings_t settings; /* llhttp keeps a pointer to it: it must live as long as the parser */
    enum http_parse_kind kind;
    struct http_parse_limits limits;
    struct http_parse_callbacks cb;
    void *data;

    struct http_msg *msg; /* the message being filled; belongs to the caller */
    struct arena *arena;
    struct http_msg *trailers;
    int head_done; /* fields after this are trailers */
    int in_message;

    /* Joins a field name and value (or a target, or a reason) split across reads. Bounded by
     * limits.max_head_bytes. name_len marks where the name ends inside it. */
    char *acc;
    size_t acc_len, acc_cap;
    size_t name_len;
    size_t head_bytes;
    size_t n_fields;

    /* A head or trailer section is being read: every line of it is checked for leading whitespace
     * (obs-fold) as the bytes go by; after_lf says the last such byte ended a line. */
    int in_section;
    int after_lf;
    /* A message event llhttp reported from inside its callbacks, run once execute() knows where llhttp
     * stopped (see run_event()). */
    enum { EV_NONE, EV_HEAD, EV_LAST_CHUNK, EV_DONE } event;
    size_t ext_value_len; /* bytes of the chunk-extension value being read */
    size_t ext_bytes;     /* bytes of chunk extensions on the current chunk line */

    int err_status;
    const char *err_reason;
};

static struct http_parser *P(llhttp_t *ll)
{
    return ll->data;
}

/* Records our own failure; llhttp stops with HPE_USER and we keep the status and text. */
static int fail(struct http_parser *p, int status, const char *reason)
{
    if (p->err_status == 0) {
        p->err_status = status;
        p->err_reason = reason;
    }
    return HPE_USER;
}

static int acc_append(struct http_parser *p, const char *at, size_t len, int too_big_status, const char *too_big)
{
    p->head_bytes += len;
    if (p->head_bytes > p->limits.max_head_bytes)
        return fail(p, too_big_status, too_big);
    if (p->acc_len + len > p->acc_cap) {
        size_t cap = p->acc_cap ? p->acc_cap : 256;
        while (cap < p->acc_len + len)
            cap *= 2;
        char *n = realloc(p->acc, cap);
        if (n == NULL)
            return fail(p, 500, "out of memory parsing the message head");
        p->acc = n;
        p->acc_cap = cap;
    }
    /* llhttp also reports empty spans (the target of "CONNECT \n"), possibly before acc exists:
     * NULL + 0 and memcpy(NULL, ..., 0) are undefined behaviour. */
    if (len > 0)
        memcpy(p->acc + p->acc_len, at, len);
    p->acc_len += len;
    return 0;
}

static int head_too_big_status(const struct http_parser *p)
{
    /* RFC 6585 s5: 431 for a request whose header fields are too large. For a response the caller
     * turns any error into 502. */
    return p->kind == HTTP_PARSE_REQUEST ? 431 : 502;
}

static const char *head_too_big_reason(const struct http_parser *p)
{
    return p->kind == HTTP_PARSE_REQUEST ? "request header too large" : "response header too large";
}

/* The status for a malformed message: 400 to a client, 502 for what an upstream sent. */
static int bad_status(const struct http_parser *p)
{
    return p->kind == HTTP_PARSE_REQUEST ? 400 : 502;
}

static int on_message_begin(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    p->msg = p->cb.on_begin(p->data, &p->arena);
    if (p->msg == NULL)
        return fail(p, 500, "cannot allocate a message");
    http_msg_init(p->msg, p->kind == HTTP_PARSE_REQUEST);
    p->trailers = NULL;
    p->head_done = 0;
    p->in_message = 1;
    p->acc_len = 0;
    p->name_len = 0;
    p->head_bytes = 0;
    p->n_fields = 0;
    p->ext_bytes = 0;
    return 0;
}

static int on_url(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    if (p->acc_len + len > p->limits.max_target)
        return fail(p, 414, "request-target too long");
    return acc_append(p, at, len, head_too_big_status(p), head_too_big_reason(p));
}

static int on_url_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    p->msg->target = arena_strndup(p->arena, p->acc, p->acc_len);
    p->msg->target_len = p->acc_len;
    p->acc_len = 0;
    return p->msg->target ? 0 : fail(p, 431, "request header too large for the transaction arena");
}

static int on_status(llhttp_t *ll, const char *at, size_t len)
{
    return acc_append(P(ll), at, len, 502, "status line too long");
}

static int on_status_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    /* RFC 9112 s4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ); control bytes are relayed to
     * nobody and stored nowhere. */
    for (size_t i = 0; i < p->acc_len; i++) {
        unsigned char c = (unsigned char)p->acc[i];
        if ((c < 0x20 && c != '	') || c == 0x7f)
            return fail(p, 502, "control character in the reason phrase");
    }
    p->msg->reason = arena_strndup(p->arena, p->acc, p->acc_len);
    p->msg->reason_len = p->acc_len;
    p->acc_len = 0;
    return p->msg->reason ? 0 : fail(p, 502, "status line too long");
}

static int on_header_field(llhttp_t *ll, const char *at, size_t len)
{
    return acc_append(P(ll), at, len, head_too_big_status(P(ll)), head_too_big_reason(P(ll)));
}

static int on_header_field_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    p->name_len = p->acc_len;
    if (++p->n_fields > p->limits.max_fields)
        return fail(p, head_too_big_status(p), "too many header fields");
    return 0;
}

static int on_header_value(llhttp_t *ll, const char *at, size_t len)
{
    return acc_append(P(ll), at, len, head_too_big_status(P(ll)), head_too_big_reason(P(ll)));
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static int on_header_value_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    const char *name = p->acc;
    size_t name_len = p->name_len;
    /* Before any arithmetic on acc: with neither name nor value it is still NULL. */
    if (name_len == 0)
        return fail(p, 400, "empty header field name");
    const char *v = p->acc + p->name_len;
    size_t vlen = p->acc_len - p->name_len;
    /* RFC 9110 s5.5: leading and trailing whitespace is not part of the field value. */
    while (vlen > 0 && is_ows(v[0])) {
        v++;
        vlen--;
    }
    while (vlen > 0 && is_ows(v[vlen - 1]))
        vlen--;
    struct http_msg *target = p->msg;
    if (p->head_done) {
        if (p->trailers == NULL) {
            p->trailers = arena_alloc(p->arena, sizeof(*p->trailers));
            if (p->trailers == NULL)
                return fail(p, 500, "cannot allocate trailers");
            http_msg_init(p->trailers, p->kind == HTTP_PARSE_REQUEST);
        }
        target = p->trailers;
    }
    if (http_msg_add(target, p->arena, name, name_len, v, vlen) != 0)
        return fail(p, head_too_big_status(p), "header fields exceed the transaction arena");
    p->acc_len = 0;
    p->name_len = 0;
    /* Each field costs a little beyond its bytes (": " and CRLF), as on the wire. */
    p->head_bytes += 4;
    return 0;
}

/* RFC 9112 s6.1: the only transfer coding larder forwards is a single "chunked". A request with
 * anything else is refused: 501 when a coding is merely unknown to us, 400 when the field is
 * malformed or chunked is not the final coding (which makes the length undeterminable). */
static int check_request_transfer_encoding(struct http_parser *p, const struct http_msg *m)
{
    size_t n = http_msg_count(m, "transfer-encoding");
    if (n == 0)
        return 0;
    if (m->version_major == 1 && m->version_minor == 0)
        return fail(p, 400, "Transfer-Encoding in an HTTP/1.0 request");
    const struct http_field *f = http_msg_find(m, "transfer-encoding");
    if (n == 1 && f->value_len == 7 && strncasecmp(f->value, "chunked", 7) == 0)
        return 0;
    static const char *const known[] = {"gzip", "x-gzip", "deflate", "compress", "x-compress", "identity", "chunked"};
    for (; f != NULL; f = http_msg_find_next(m, f)) {
        const char *s = f->value, *end = f->value + f->value_len;
        while (s < end) {
            while (s < end && (is_ows(*s) || *s == ','))
                s++;
            const char *t = s;
            while (s < end && *s != ',' && *s != ';' && !is_ows(*s))
                s++;
            size_t tl = (size_t)(s - t);
            int is_known = 0;
            for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
                if (tl == strlen(known[i]) && strncasecmp(t, known[i], tl) == 0)
                    is_known = 1;
            if (tl > 0 && !is_known)
                return fail(p, 501, "unsupported transfer coding");
            while (s < end && *s != ',')
                s++;
        }
    }
    return fail(p, 400, "Transfer-Encoding other than a single chunked coding");
}

/* The head is complete: validates it and decides the framing. 0, or HPE_USER with the failure
 * recorded. Runs from run_event(), with llhttp paused just after the head. */
static int check_head(struct http_parser *p)
{
    llhttp_t *ll = &p->ll;
    struct http_msg *m = p->msg;
    m->version_major = ll->http_major;
    m->version_minor = ll->http_minor;

    if (p->kind == HTTP_PARSE_REQUEST) {
        /* RFC 9112 s2.3: we speak 1.0 and 1.1; anything else gets 505. */
        if (!(m->version_major == 1 && (m->version_minor == 0 || m->version_minor == 1)))
            return fail(p, 505, "HTTP version not supported");
        const char *name = llhttp_method_name((llhttp_method_t)ll->method);
        m->method_name = name;
        m->method_len = strlen(name);
        m->method = http_method_from_name(name, m->method_len);
        if (m->target == NULL)
            return fail(p, 400, "missing request-target");
        /* RFC 9112 s3.2: exactly one Host in an HTTP/1.1 request; several are refused in any version. */
        size_t hosts = http_msg_count(m, "host");
        if (hosts > 1)
            return fail(p, 400, "more than one Host header field");
        if (hosts == 0 && m->version_minor == 1)
            return fail(p, 400, "HTTP/1.1 request without Host");
        /* RFC 9112 s3.2: "a Host header field with an invalid field value" gets a 400. */
        const struct http_field *host = http_msg_find(m, "host");
        if (host != NULL && !http_uri_host_field_valid(host->value, host->value_len))
            return fail(p, 400, "invalid Host header field");
        int rc = check_request_transfer_encoding(p, m);
        if (rc != 0)
            return rc;
        /* The adapter and llhttp must agree on the framing: a Transfer-Encoding we accept as "chunked"
         * (after trimming, say) that llhttp did not take as chunked would leave the body unparsed and
         * its bytes read as the next request (RFC 9112 s11.2). */
        if (http_msg_count(m, "transfer-encoding") > 0 && !(ll->flags & F_CHUNKED))
            return fail(p, 400, "Transfer-Encoding not understood as chunked");
        if (m->method == HTTP_METHOD_CONNECT) {
            /* RFC 9110 s9.3.6: a CONNECT request has no content; what follows the head is the tunnel's,
             * whatever Content-Length says (llhttp stops there too). */
            m->framing = HTTP_BODY_NONE;
        } else if (ll->flags & F_CHUNKED) {
            m->framing = HTTP_BODY_CHUNKED;
        } else if (ll->flags & F_CONTENT_LENGTH) {
            m->framing = ll->content_length ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
            m->content_length = ll->content_length;
        } else {
            /* RFC 9112 s6.3 item 7: a request with neither has no body. */
            m->framing = HTTP_BODY_NONE;
        }
        m->expect_continue = http_msg_has_token(m, "expect", "100-continue");
    } else {
        if (m->version_major != 1)
            return fail(p, 502, "upstream spoke an unsupported HTTP version");
        m->status = ll->status_code;
        /* RFC 9112 s4: status-code = 3DIGIT, and RFC 9110 s15 gives no class to one below 100; llhttp
         * takes "20". Codes 600 to 999 go through: a client treats them as 5xx (RFC 9110 s15). */
        if (m->status < 100)
            return fail(p, 502, "malformed status line");
        /* RFC 9110 s15.2.2: larder never forwards Upgrade (s7.8), so a switch is not one it asked for
         * and the bytes after it are not HTTP. */
        if (m->status == 101)
            return fail(p, 502, "unexpected protocol switch from upstream");
        if (m->reason == NULL) {
            m->reason = "";
            m->reason_len = 0;
        }
        if ((m->status >= 100 && m->status < 200) || m->status == 204 || m->status == 304) {
            /* RFC 9112 s6.3 item 1: no content, whatever the fields say. llhttp 8 would read a body
             * after a 1xx, 204 or 304 that carries Content-Length (a 304 often does, RFC 9110 s8.6). */
            m->framing = HTTP_BODY_NONE;
            ll->flags |= F_SKIPBODY;
        } else if (ll->flags & F_CHUNKED) {
            m->framing = HTTP_BODY_CHUNKED;
        } else if (ll->flags & F_TRANSFER_ENCODING) {
            /* RFC 9112 s6.3 item 4: a response whose final coding is not chunked runs to the close. */
            m->framing = HTTP_BODY_EOF;
        } else if (ll->flags & F_CONTENT_LENGTH) {
            m->framing = HTTP_BODY_LENGTH;
            m->content_length = ll->content_length;
        } else {
            m->framing = HTTP_BODY_EOF; /* RFC 9112 s6.3 item 8 */
        }
    }
    m->keep_alive = llhttp_should_keep_alive(ll);
    return 0;
}

static int on_headers_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    p->head_done = 1;
    /* The head is checked and handed on from execute(), once llhttp has stopped right after it and
     * every byte of it has been looked at (scan_section()). */
    p->event = EV_HEAD;
    return HPE_PAUSED;
}

static int on_body(llhttp_t *ll, const char *at, size_t len)
{
    struct http_parser *p = P(ll);
    if (len == 0)
        return 0; /* llhttp closes an open span with nothing in it when it is run on no bytes */
    int rc = p->cb.on_body(p->data, at, len);
    if (rc < 0)
        return fail(p, 500, "body refused by the handler");
    return rc == HTTP_PARSE_CB_PAUSE ? HPE_PAUSED : 0;
}

static int on_chunk_header(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    p->ext_bytes = 0; /* the limit is per chunk line */
    if (ll->content_length != 0)
        return 0;
    /* The last chunk: a trailer section follows (RFC 9112 s7.1.2), read with the head's rules. */
    p->event = EV_LAST_CHUNK;
    return HPE_PAUSED;
}

/* RFC 9112 s7.1.1 lets a recipient limit chunk extensions; nobody needs kilobytes of them, and
 * unbounded ones make a slow, memory-free way to keep a connection busy. */
static int count_ext(struct http_parser *p, size_t len)
{
    p->ext_bytes += len;
    return p->ext_bytes > HTTP_PARSE_MAX_CHUNK_EXT ? fail(p, bad_status(p), "chunk extensions too long") : 0;
}

static int on_chunk_extension_name(llhttp_t *ll, const char *at, size_t len)
{
    (void)at;
    return count_ext(P(ll), len);
}

/* RFC 9112 s7.1.1: chunk-ext-val = token / quoted-string; llhttp 8 accepts "name=" with nothing. */
static int on_chunk_extension_value(llhttp_t *ll, const char *at, size_t len)
{
    (void)at;
    P(ll)->ext_value_len += len;
    return count_ext(P(ll), len);
}

static int on_chunk_extension_value_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    size_t n = p->ext_value_len;
    p->ext_value_len = 0;
    return n > 0 ? 0 : fail(p, bad_status(p), "malformed chunked coding");
}

static int on_message_complete(llhttp_t *ll)
{
    struct http_parser *p = P(ll);
    p->in_message = 0;
    /* on_done runs from execute() (or finish()), after the trailer section has been checked. */
    p->event = EV_DONE;
    return HPE_PAUSED;
}

struct http_parser *http_parser_new(enum http_parse_kind kind, const struct http_parse_limits *limits,
                                    const struct http_parse_callbacks *cb, void *data)
{
    struct http_parser *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->kind = kind;
    p->limits = *limits;
    p->cb = *cb;
    p->data = data;
    llhttp_settings_init(&p->settings);
    p->settings.on_message_begin = on_message_begin;
    p->settings.on_url = on_url;
    p->settings.on_url_complete = on_url_complete;
    p->settings.on_status = on_status;
    p->settings.on_status_complete = on_status_complete;
    p->settings.on_header_field = on_header_field;
    p->settings.on_header_field_complete = on_header_field_complete;
    p->settings.on_header_value = on_header_value;
    p->settings.on_header_value_complete = on_header_value_complete;
    p->settings.on_headers_complete = on_headers_complete;
    p->settings.on_body = on_body;
    p->settings.on_chunk_header = on_chunk_header;
    p->settings.on_chunk_extension_name = on_chunk_extension_name;
    p->settings.on_chunk_extension_value = on_chunk_extension_value;
    p->settings.on_chunk_extension_value_complete = on_chunk_extension_value_complete;
    p->settings.on_message_complete = on_message_complete;
    http_parser_reset(p);
    return p;
}

void http_parser_reset(struct http_parser *p)
{
    llhttp_init(&p->ll, p->kind == HTTP_PARSE_REQUEST ? HTTP_REQUEST : HTTP_RESPONSE, &p->settings);
    p->ll.data = p;
    p->msg = NULL;
    p->trailers = NULL;
    p->head_done = 0;
    p->in_message = 0;
    p->acc_len = 0;
    p->in_section = 1;
    p->after_lf = 0;
    p->event = EV_NONE;
    p->ext_value_len = 0;
    p->err_status = 0;
    p->err_reason = NULL;
}

void http_parser_free(struct http_parser *p)
{
    if (p == NULL)
        return;
    free(p->acc);
    free(p);
}

/* Maps llhttp's own refusals to a status and a reason a person can act on. */
static void set_llhttp_error(struct http_parser *p, llhttp_errno_t e)
{
    int bad = bad_status(p);
    switch (e) {
    case HPE_UNEXPECTED_CONTENT_LENGTH:
        /* llhttp uses this code for both; the flags tell which it met. */
        if (p->ll.flags & F_TRANSFER_ENCODING)
            fail(p, bad, "Content-Length together with Transfer-Encoding");
        else
            fail(p, bad, "duplicate Content-Length");
        break;
    case HPE_INVALID_CONTENT_LENGTH:
        fail(p, bad, "invalid Content-Length");
        break;
    case HPE_INVALID_TRANSFER_ENCODING:
        fail(p, bad, "invalid Transfer-Encoding");
        break;
    case HPE_INVALID_CHUNK_SIZE:
        fail(p, bad, "invalid chunk size");
        break;
    case HPE_INVALID_METHOD:
        fail(p, bad, "unknown or malformed method");
        break;
    case HPE_INVALID_VERSION: {
        /* RFC 9110 s15.6.6: a well-formed version with a major number other than 1 is 505, not 400.
         * llhttp has parsed both digits when it says "Invalid HTTP version" (not "Invalid major ..."). */
        const char *why = llhttp_get_error_reason(&p->ll);
        if (p->kind == HTTP_PARSE_REQUEST && p->ll.http_major != 1 && why != NULL &&
            strcmp(why, "Invalid HTTP version") == 0)
            fail(p, 505, "HTTP version not supported");
        else
            fail(p, bad, "malformed HTTP version");
        break;
    }
    case HPE_INVALID_URL:
        fail(p, bad, "malformed request-target");
        break;
    case HPE_INVALID_HEADER_TOKEN:
        fail(p, bad, "invalid character in a header field");
        break;
    case HPE_INVALID_STATUS:
        fail(p, bad, "malformed status line");
        break;
    case HPE_CR_EXPECTED:
    case HPE_LF_EXPECTED:
        fail(p, bad, "malformed line ending");
        break;
    case HPE_STRICT:
        /* Strict-mode refusals: a CR without LF, or broken chunk framing (CRLF after the data,
         * chunk extension syntax). */
        if (p->head_done && p->msg != NULL && p->msg->framing == HTTP_BODY_CHUNKED)
            fail(p, bad, "malformed chunked coding");
        else
            fail(p, bad, "malformed line ending");
        break;
    case HPE_UNEXPECTED_SPACE:
        fail(p, bad, "unexpected whitespace");
        break;
    case HPE_INVALID_EOF_STATE:
        fail(p, bad, "connection closed in the middle of a message");
        break;
    default:
        fail(p, bad, "malformed HTTP message");
        break;
    }
}

/* RFC 9112 s5.2: a field line that starts with whitespace is obs-fold, which llhttp 8 accepts (it
 * joins the lines, or drops an empty first one). A proxy must refuse it (or rewrite it, which would
 * change what the sender meant). RFC 9112 s2.2 forbids whitespace before the first field line too. */
static int scan_section(struct http_parser *p, const char *s, const char *end)
{
    if (s == end)
        return 0;
    /* Only the byte after a LF matters, so hop from LF to LF (memchr) rather than look at every byte:
     * this ran at 10 instructions a byte over every head. after_lf carries a LF that ended the last
     * buffer over to the next one. */
    if (p->after_lf && (*s == ' ' || *s == '\t'))
        return fail(p, bad_status(p), "obsolete line folding");
    for (;;) {
        const char *lf = memchr(s, '\n', (size_t)(end - s));
        if (lf == NULL) {
            p->after_lf = 0;
            return 0;
        }
        if (lf + 1 == end) {
            p->after_lf = 1;
            return 0;
        }
        if (lf[1] == ' ' || lf[1] == '\t')
            return fail(p, bad_status(p), "obsolete line folding");
        s = lf + 1;
    }
}

/* Runs a message event llhttp reported while it was paused just after it, so that every byte up to
 * here has been checked. Returns 0 to go on, HTTP_PARSE_CB_PAUSE when the caller asked to stop, or
 * a negative value (the failure is recorded). */
static int run_event(struct http_parser *p)
{
    int ev = p->event;
    p->event = EV_NONE;
    int rc = 0;
    switch (ev) {
    case EV_HEAD:
        p->in_section = 0;
        if (check_head(p) != 0)
            return -1;
        rc = p->cb.on_head(p->data, p->msg);
        if (rc < 0) {
            fail(p, p->kind == HTTP_PARSE_REQUEST ? 500 : 502, "message refused by the handler");
            return -1;
        }
        if (rc == HTTP_PARSE_CB_NO_BODY) {
            /* What llhttp does when on_headers_complete returns 1. */
            p->msg->framing = HTTP_BODY_NONE;
            p->ll.flags |= F_SKIPBODY;
            rc = 0;
        }
        break;
    case EV_LAST_CHUNK:
        p->in_section = 1;
        p->after_lf = 1; /* the last-chunk line just ended */
        break;
    case EV_DONE:
        p->in_section = 1;
        p->after_lf = 0;
        rc = p->cb.on_done(p->data, p->trailers);
        p->msg = NULL;
        p->trailers = NULL;
        if (rc < 0) {
            fail(p, 500, "message refused by the handler");
            return -1;
        }
        break;
    default:
        break;
    }
    return rc == HTTP_PARSE_CB_PAUSE ? HTTP_PARSE_CB_PAUSE : 0;
}

enum http_parse_status http_parser_execute(struct http_parser *p, const char *buf, size_t len, size_t *consumed)
{
    *consumed = 0;
    /* A parser that stopped stays stopped until resumed (or reset): llhttp would report the old
     * position, and nothing of this buffer has been read. */
    if (p->err_status != 0)
        return HTTP_PARSE_ERROR;
    switch (llhttp_get_errno(&p->ll)) {
    case HPE_OK:
        break;
    case HPE_PAUSED:
        return HTTP_PARSE_PAUSED;
    case HPE_PAUSED_UPGRADE:
        return HTTP_PARSE_UPGRADE;
    case HPE_CLOSED_CONNECTION:
        *consumed = len; /* see below */
        return HTTP_PARSE_OK;
    default:
        set_llhttp_error(p, llhttp_get_errno(&p->ll));
        return HTTP_PARSE_ERROR;
    }

    const char *pos = buf, *end = buf + len;
    for (;;) {
        llhttp_errno_t e = llhttp_execute(&p->ll, pos, (size_t)(end - pos));
        const char *stop = end;
        if (e != HPE_OK) {
            stop = llhttp_get_error_pos(&p->ll);
            if (stop == NULL || stop < pos || stop > end)
                stop = end;
        }
        *consumed = (size_t)(stop - buf);
        /* llhttp's own refusal, when it has one, is the better reason. */
        int refused = e != HPE_OK && e != HPE_PAUSED && e != HPE_PAUSED_UPGRADE;
        if (p->in_section && !refused && scan_section(p, pos, stop) != 0)
            return HTTP_PARSE_ERROR;
        pos = stop;
        switch (e) {
        case HPE_OK:
            return HTTP_PARSE_OK;
        case HPE_PAUSED:
            if (p->event == EV_NONE)
                return HTTP_PARSE_PAUSED; /* on_body asked */
            int rc = run_event(p);
            if (rc < 0)
                return HTTP_PARSE_ERROR;
            if (rc == HTTP_PARSE_CB_PAUSE)
                return HTTP_PARSE_PAUSED; /* llhttp stays paused until http_parser_resume() */
            llhttp_resume(&p->ll);
            continue;
        case HPE_PAUSED_UPGRADE:
            if (p->kind == HTTP_PARSE_REQUEST && p->ll.method == HTTP_CONNECT)
                return HTTP_PARSE_UPGRADE;
            if (p->kind == HTTP_PARSE_REQUEST) {
                /* An Upgrade request that is not CONNECT: larder strips Upgrade (hop-by-hop, RFC 9110
                 * s7.8), so the connection simply goes on as HTTP/1.1. */
                llhttp_resume_after_upgrade(&p->ll);
                continue;
            }
            fail(p, 502, "unexpected protocol switch from upstream");
            return HTTP_PARSE_ERROR;
        case HPE_CLOSED_CONNECTION:
            /* Strict llhttp refuses bytes after a message that closes the connection (Connection:
             * close, or HTTP/1.0). They are not part of a message: RFC 9112 s9.6 says not to process
             * further requests, and the proxy closes after answering. Drop them. */
            *consumed = len;
            return HTTP_PARSE_OK;
        default:
            if (e != HPE_USER || p->err_status == 0)
                set_llhttp_error(p, e);
            return HTTP_PARSE_ERROR;
        }
    }
}

void http_parser_resume(struct http_parser *p)
{
    llhttp_resume(&p->ll);
}

enum http_parse_status http_parser_finish(struct http_parser *p)
{
    /* Paused by the caller (back-pressure, at a head, after a message) or by us: the peer is gone, so
     * there is nothing more to wait for. llhttp_finish() does nothing at all while paused, and judges
     * by a state llhttp only reaches by running on, so run it on no bytes first: that takes it past a
     * completed head or message to where the end of input is either expected or not. */
    for (int guard = 0; guard < 8; guard++) {
        if (p->err_status != 0)
            return HTTP_PARSE_ERROR;
        switch (llhttp_get_errno(&p->ll)) {
        case HPE_OK:
            break;
        case HPE_PAUSED:
            llhttp_resume(&p->ll);
            break;
        case HPE_PAUSED_UPGRADE:
        case HPE_CLOSED_CONNECTION:
            return HTTP_PARSE_OK;
        default:
            set_llhttp_error(p, llhttp_get_errno(&p->ll));
            return HTTP_PARSE_ERROR;
        }
        size_t consumed;
        enum http_parse_status st = http_parser_execute(p, "", 0, &consumed);
        if (st == HTTP_PARSE_ERROR)
            return HTTP_PARSE_ERROR;
        if (st == HTTP_PARSE_UPGRADE)
            return HTTP_PARSE_OK;
        if (st == HTTP_PARSE_OK)
            break;
    }
    llhttp_errno_t e = llhttp_finish(&p->ll);
    if (e == HPE_PAUSED && p->event == EV_DONE) {
        /* A close-delimited body ended: deliver the message (a pause asked for now changes nothing). */
        return run_event(p) < 0 ? HTTP_PARSE_ERROR : HTTP_PARSE_OK;
    }
    if (e == HPE_OK || e == HPE_PAUSED)
        return HTTP_PARSE_OK;
    if (e != HPE_USER || p->err_status == 0)
        set_llhttp_error(p, e);
    return HTTP_PARSE_ERROR;
}

int http_parser_in_message(const struct http_parser *p)
{
    return p->in_message;
}

int http_parser_head_started(const struct http_parser *p)
{
    return p->in_message && !p->head_done;
}

int http_parser_error_status(const struct http_parser *p)
{
    return p->err_status ? p->err_status : 400;
}

const char *http_parser_error_reason(const struct http_parser *p)
{
    return p->err_reason ? p->err_reason : "malformed HTTP message";
}
