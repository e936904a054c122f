/* The llhttp adapter (http/http_parse.h).
 *
 * Every table row is parsed in several ways that must agree byte for byte on what the callbacks saw:
 * in one piece; split in two at every byte position; one byte at a time; and, for each of those, with
 * every callback asking to pause (the feeder resumes and re-feeds from *consumed, as the proxy does).
 * What the callbacks saw is written down as text (see struct rec) and compared with the row.
 * Each piece is copied into its own heap buffer that is freed right after the call, so ASan catches
 * the adapter keeping a pointer into input it no longer owns.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_msg.h"
#include "http/http_parse.h"
#include "test_util.h"

/* ---- the recorder: callbacks write what they see into a transcript ---- */

#define OUT_MAX 16384
#define BODY_MAX 8192

/* How the callbacks answer. */
#define F_PAUSE 0x1   /* every callback returns HTTP_PARSE_CB_PAUSE */
#define F_NO_BODY 0x2 /* on_head returns HTTP_PARSE_CB_NO_BODY for final responses (the request was HEAD) */
#define F_FINISH 0x4  /* after the last byte, call http_parser_finish() (the peer closed) */

struct rec {
    int flags;
    struct arena arena;
    struct http_msg *msg;
    char out[OUT_MAX];
    size_t out_len;
    char body[BODY_MAX];
    size_t body_len;
    int pause_pending; /* a callback asked to pause; no other callback may run before execute returns */
    int stopped;       /* ERROR or UPGRADE seen: feed nothing more */
    size_t pos;        /* bytes consumed so far, over all pieces */
    struct http_parser *p;
};

static void out(struct rec *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(struct rec *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->out + r->out_len, OUT_MAX - r->out_len, fmt, ap);
    va_end(ap);
    ASSERT(n >= 0 && (size_t)n < OUT_MAX - r->out_len);
    r->out_len += (size_t)n;
}

/* Bytes as C-like text: printable ASCII as is, everything else as \xHH. */
static void out_bytes(struct rec *r, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            out(r, "%c", c);
        else
            out(r, "\\x%02x", c);
    }
}

static const char *framing_name(enum http_framing f)
{
    switch (f) {
    case HTTP_BODY_NONE:
        return "none";
    case HTTP_BODY_LENGTH:
        return "length";
    case HTTP_BODY_CHUNKED:
        return "chunked";
    case HTTP_BODY_EOF:
        return "eof";
    }
    return "?";
}

static void check_no_pause_pending(struct rec *r, const char *what)
{
    if (r->pause_pending) TEST_FAIL_("%s ran after a callback asked to pause; transcript so far:\n%s", what, r->out);
}

static int answer(struct rec *r)
{
    if (r->flags & F_PAUSE) {
        r->pause_pending = 1;
        return HTTP_PARSE_CB_PAUSE;
    }
    return 0;
}

static void out_fields(struct rec *r, const struct http_msg *m, const char *prefix)
{
    for (size_t i = 0; i < m->n_fields; i++) {
        const struct http_field *f = &m->fields[i];
        ASSERT_EQ(f->flags, 0);
        ASSERT_UEQ(strlen(f->name), f->name_len);
        out(r, "%s", prefix);
        out_bytes(r, f->name, f->name_len);
        out(r, ": ");
        out_bytes(r, f->value, f->value_len);
        out(r, "\n");
    }
}

static struct http_msg *cb_begin(void *data, struct arena **arena)
{
    struct rec *r = data;
    check_no_pause_pending(r, "on_begin");
    ASSERT(r->msg == NULL);
    r->msg = arena_alloc(&r->arena, sizeof(*r->msg));
    ASSERT(r->msg != NULL);
    memset(r->msg, 0xee, sizeof(*r->msg)); /* the parser must initialise it */
    *arena = &r->arena;
    r->body_len = 0;
    ASSERT(http_parser_in_message(r->p) == 0);
    return r->msg;
}

static int cb_head(void *data, struct http_msg *m)
{
    struct rec *r = data;
    check_no_pause_pending(r, "on_head");
    ASSERT(m == r->msg);
    ASSERT(http_parser_in_message(r->p));
    if (m->is_request) {
        ASSERT_UEQ(strlen(m->method_name), m->method_len);
        ASSERT_EQ(m->method, http_method_from_name(m->method_name, m->method_len));
        out(r, "req %s ", m->method_name);
        out_bytes(r, m->target, m->target_len);
        out(r, " HTTP/%d.%d\n", m->version_major, m->version_minor);
    } else {
        out(r, "resp %d \"", m->status);
        out_bytes(r, m->reason, m->reason_len);
        out(r, "\" HTTP/%d.%d\n", m->version_major, m->version_minor);
    }
    out_fields(r, m, " ");
    out(r, " framing=%s", framing_name(m->framing));
    if (m->framing == HTTP_BODY_LENGTH) out(r, " cl=%llu", (unsigned long long)m->content_length);
    out(r, " ka=%d", m->keep_alive);
    if (m->is_request) out(r, " continue=%d", m->expect_continue);
    out(r, "\n");
    if ((r->flags & F_NO_BODY) && !m->is_request && m->status >= 200) return HTTP_PARSE_CB_NO_BODY;
    return answer(r);
}

static int cb_body(void *data, const char *at, size_t len)
{
    struct rec *r = data;
    check_no_pause_pending(r, "on_body");
    ASSERT(r->msg != NULL);
    if (len == 0) out(r, "empty on_body\n"); /* pointless for the caller; never expected */
    ASSERT(r->body_len + len <= BODY_MAX);
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return answer(r);
}

static int cb_done(void *data, struct http_msg *trailers)
{
    struct rec *r = data;
    check_no_pause_pending(r, "on_done");
    ASSERT(r->msg != NULL);
    if (r->body_len > 0) {
        out(r, "body \"");
        out_bytes(r, r->body, r->body_len);
        out(r, "\"\n");
        r->body_len = 0;
    }
    if (trailers != NULL) {
        ASSERT(trailers->n_fields > 0);
        out_fields(r, trailers, "trailer ");
    }
    out(r, "done\n");
    r->msg = NULL;
    return answer(r);
}

static const struct http_parse_callbacks CB = {cb_begin, cb_head, cb_body, cb_done};

static const struct http_parse_limits LIMITS = {.max_head_bytes = 4096, .max_fields = 32, .max_target = 512};

static void rec_init(struct rec *r, enum http_parse_kind kind, int flags, const struct http_parse_limits *lim)
{
    memset(r, 0, sizeof(*r));
    r->flags = flags;
    ASSERT_EQ(arena_init(&r->arena, 4096, 1 << 20), 0);
    r->p = http_parser_new(kind, lim ? lim : &LIMITS, &CB, r);
    ASSERT(r->p != NULL);
}

static void rec_free(struct rec *r)
{
    http_parser_free(r->p);
    arena_free(&r->arena);
}

/* Feeds one piece the way the proxy does: execute, and on PAUSED resume and go on from *consumed. */
static void feed(struct rec *r, const char *data, size_t len)
{
    char *buf = malloc(len ? len : 1);
    ASSERT(buf != NULL);
    memcpy(buf, data, len);
    size_t off = 0;
    int idle = 0, resumed = 0;
    /* After a pause that fell on the last byte, execute on no bytes lets the parser go on as far as
     * it can without input (to the end of a message without a body, say). */
    while ((off < len || resumed) && !r->stopped) {
        resumed = 0;
        size_t consumed = (size_t)-1;
        enum http_parse_status st = http_parser_execute(r->p, buf + off, len - off, &consumed);
        if (consumed > len - off) TEST_FAIL_("execute consumed %zu of %zu bytes (status %d)", consumed, len - off, st);
        off += consumed;
        r->pos += consumed;
        idle = consumed == 0 ? idle + 1 : 0;
        if (idle > 8) {
            out(r, "no progress at byte %zu (status %d)\n", r->pos, st);
            r->stopped = 1;
            break;
        }
        switch (st) {
        case HTTP_PARSE_OK:
            ASSERT_EQ(r->pause_pending, 0);
            ASSERT_UEQ(off, len);
            break;
        case HTTP_PARSE_PAUSED:
            if (!r->pause_pending) TEST_FAIL_("PAUSED at byte %zu though no callback asked for it", r->pos);
            r->pause_pending = 0;
            http_parser_resume(r->p);
            resumed = 1;
            break;
        case HTTP_PARSE_UPGRADE:
            r->pause_pending = 0;
            out(r, "upgrade @%zu\n", r->pos);
            r->stopped = 1;
            break;
        case HTTP_PARSE_ERROR:
            out(r, "error %d %s\n", http_parser_error_status(r->p), http_parser_error_reason(r->p));
            r->stopped = 1;
            break;
        }
    }
    free(buf);
}

static void finish_run(struct rec *r)
{
    if ((r->flags & F_FINISH) && !r->stopped) {
        enum http_parse_status st = http_parser_finish(r->p);
        r->pause_pending = 0; /* on_done of a close-delimited body may ask; after the close it means nothing */
        if (st == HTTP_PARSE_OK)
            out(r, "finish ok\n");
        else
            out(r, "finish error %d %s\n", http_parser_error_status(r->p), http_parser_error_reason(r->p));
    }
    if (r->body_len > 0) {
        out(r, "partial body \"");
        out_bytes(r, r->body, r->body_len);
        out(r, "\"\n");
    }
}

/* Parses input in every way listed at the top and checks each transcript against want. Prints the
 * first way that disagrees and returns 1, so that a table run reports every failing row. */
static int check_all_ways(const char *name, enum http_parse_kind kind, int flags, const struct http_parse_limits *lim,
                          const char *input, size_t len, const char *want)
{
    for (int pause = 0; pause <= 1; pause++) {
        int fl = flags | (pause ? F_PAUSE : 0);
        /* split == 0: one piece; 1..len-1: two pieces; len: byte by byte. */
        for (size_t split = 0; split <= len; split++) {
            struct rec r;
            rec_init(&r, kind, fl, lim);
            if (split == 0) {
                feed(&r, input, len);
            } else if (split < len) {
                feed(&r, input, split);
                feed(&r, input + split, len - split);
            } else {
                for (size_t i = 0; i < len; i++)
                    feed(&r, input + i, 1);
            }
            finish_run(&r);
            int same = strcmp(r.out, want) == 0;
            if (!same) {
                const char *how = split == 0 ? "in one piece" : split < len ? "split in two at byte" : "byte by byte";
                fprintf(stderr, "FAIL %s: parsed %s %zu%s:\n--- got\n%s--- want\n%s\n", name, how, split < len ? split : 0,
                        pause ? ", pausing in every callback" : "", r.out, want);
            }
            rec_free(&r);
            if (!same) return 1;
        }
    }
    return 0;
}

/* Every row of a table; fails after reporting all the rows that fail. */
#define CHECK_ROWS(rows, kind)                                                                                                     \
    do {                                                                                                                           \
        int failed_ = 0;                                                                                                           \
        for (size_t i_ = 0; i_ < sizeof(rows) / sizeof(rows[0]); i_++)                                                             \
            failed_ += check_all_ways(rows[i_].name, kind, rows[i_].flags, NULL, rows[i_].input, rows[i_].len, rows[i_].want);     \
        if (failed_) TEST_FAIL_("%d of %zu rows failed", failed_, sizeof(rows) / sizeof(rows[0]));                                 \
    } while (0)

#define CHECK_ALL_WAYS(...) ASSERT_EQ(check_all_ways(__VA_ARGS__), 0)

/* llhttp's C sources default to loose mode (LLHTTP_STRICT_MODE 0), which takes any byte after a CR
 * as if it were the LF, skips the two bytes after chunk data unseen, and lets spaces into field names:
 * request smuggling material (RFC 9112 s2.2, s5.1, s7.1). The build must define LLHTTP_STRICT_MODE=1
 * for the llhttp target. This runs first so that a loose build fails with that explanation. */
static void test_llhttp_is_strict(void)
{
    static const char *const probes[] = {
        "GET / HTTP/1.1\r\nHost: h\r\n\rX",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXX0\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        struct rec r;
        rec_init(&r, HTTP_PARSE_REQUEST, 0, NULL);
        feed(&r, probes[i], strlen(probes[i]));
        if (strstr(r.out, "error 400") == NULL)
            TEST_FAIL_("llhttp accepted a malformed request: it was built without LLHTTP_STRICT_MODE=1.\n"
                       "Add target_compile_definitions(llhttp PRIVATE LLHTTP_STRICT_MODE=1) to CMakeLists.txt.\n"
                       "Transcript:\n%s",
                       r.out);
        rec_free(&r);
    }
}

/* ---- requests ---- */

struct row {
    const char *name;
    const char *input;
    size_t len;
    int flags;
    const char *want;
};

#define IN(s) s, sizeof(s) - 1

static const struct row request_rows[] = {
    /* Accepted. */
    {"RFC 9112 s3 GET in origin-form", IN("GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"), 0,
     "req GET /index.html?q=1 HTTP/1.1\n"
     " Host: example.com\n"
     " Accept: */*\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9112 s3.2.2 absolute-form target", IN("GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"),
     0,
     "req GET http://example.com:8080/a/b?c=d HTTP/1.1\n"
     " Host: example.com:8080\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9112 s3.2.4 asterisk-form", IN("OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n"), 0,
     "req OPTIONS * HTTP/1.1\n"
     " Host: example.com\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9110 s9.1 a method larder does not name is kept by name", IN("PROPFIND /d HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
     "req PROPFIND /d HTTP/1.1\n"
     " Host: h\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9112 s3.2 HTTP/1.0 needs no Host; no keep-alive by default", IN("GET / HTTP/1.0\r\n\r\n"), 0,
     "req GET / HTTP/1.0\n"
     " framing=none ka=0 continue=0\n"
     "done\n"},
    {"RFC 9112 s9.3 HTTP/1.0 keep-alive", IN("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), 0,
     "req GET / HTTP/1.0\n"
     " Connection: Keep-Alive\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9112 s9.6 Connection: close", IN("GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, close\r\n\r\n"), 0,
     "req GET / HTTP/1.1\n"
     " Host: h\n"
     " Connection: foo, close\n"
     " framing=none ka=0 continue=0\n"
     "done\n"},
    {"RFC 9112 s5 / RFC 9110 s5.5 OWS around values is not part of them",
     IN("GET / HTTP/1.1\r\nHost:example.com\r\nX-A:   spaced out  \r\nX-B:\t\ttab\t \r\n\r\n"), 0,
     "req GET / HTTP/1.1\n"
     " Host: example.com\n"
     " X-A: spaced out\n"
     " X-B: tab\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9110 s5.5 empty field values", IN("GET / HTTP/1.1\r\nHost: h\r\nX-Empty:\r\nX-Blank:   \r\n\r\n"), 0,
     "req GET / HTTP/1.1\n"
     " Host: h\n"
     " X-Empty: \n"
     " X-Blank: \n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9110 s5.5 obs-text in a value is kept", IN("GET / HTTP/1.1\r\nHost: h\r\nX-Name: caf\xc3\xa9\r\n\r\n"), 0,
     "req GET / HTTP/1.1\n"
     " Host: h\n"
     " X-Name: caf\\xc3\\xa9\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9110 s5.3 repeated names stay separate and in order",
     IN("GET / HTTP/1.1\r\nAccept: a\r\nHost: h\r\naccept: b\r\nACCEPT: c\r\n\r\n"), 0,
     "req GET / HTTP/1.1\n"
     " Accept: a\n"
     " Host: h\n"
     " accept: b\n"
     " ACCEPT: c\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9112 s3.2 an empty Host is allowed", IN("GET / HTTP/1.1\r\nHost:\r\n\r\n"), 0,
     "req GET / HTTP/1.1\n"
     " Host: \n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9112 s6.2 Content-Length body", IN("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"), 0,
     "req POST /p HTTP/1.1\n"
     " Host: h\n"
     " Content-Length: 11\n"
     " framing=length cl=11 ka=1 continue=0\n"
     "body \"hello world\"\n"
     "done\n"},
    {"RFC 9112 s6.3 Content-Length: 0 is no body", IN("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"), 0,
     "req POST /p HTTP/1.1\n"
     " Host: h\n"
     " Content-Length: 0\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9110 s8.6 leading zeros in Content-Length", IN("PUT /p HTTP/1.1\r\nHost: h\r\nContent-Length: 003\r\n\r\nabc"), 0,
     "req PUT /p HTTP/1.1\n"
     " Host: h\n"
     " Content-Length: 003\n"
     " framing=length cl=3 ka=1 continue=0\n"
     "body \"abc\"\n"
     "done\n"},
    {"RFC 9112 s6.3 a body may hold any byte", IN("POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 8\r\n\r\n\r\n\x00\xff\r0\r\n"), 0,
     "req POST /p HTTP/1.1\n"
     " Host: h\n"
     " Content-Length: 8\n"
     " framing=length cl=8 ka=1 continue=0\n"
     "body \"\\x0d\\x0a\\x00\\xff\\x0d0\\x0d\\x0a\"\n"
     "done\n"},
    {"RFC 9112 s7.1 chunked body",
     IN("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nhello\r\n1\r\n \r\na\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n"),
     0,
     "req POST /c HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "body \"hello 0123456789abcdefghij\"\n"
     "done\n"},
    {"RFC 9112 s7.1 leading zeros in chunk sizes",
     IN("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0003\r\nabc\r\n000\r\n\r\n"), 0,
     "req POST /c HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "body \"abc\"\n"
     "done\n"},
    {"RFC 9112 s7.1 a chunk may hold CRLF",
     IN("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n\r\n\r\n\r\n0\r\n\r\n"), 0,
     "req POST /c HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "body \"\\x0d\\x0a\\x0d\\x0a\"\n"
     "done\n"},
    {"RFC 9112 s6.1 transfer-coding names are case-insensitive",
     IN("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), 0,
     "req POST /c HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: Chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "body \"ok\"\n"
     "done\n"},
    {"RFC 9112 s7.1.1 chunk extensions are parsed and ignored",
     IN("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        "3;name=value\r\nabc\r\n2;flag\r\nde\r\n1;q=\"quoted value\";r=s\r\nf\r\n0;last\r\n\r\n"),
     0,
     "req POST /c HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "body \"abcdef\"\n"
     "done\n"},
    {"RFC 9112 s7.1.2 trailer section",
     IN("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n"
        "3\r\nabc\r\n0\r\nX-Sum:  abc123 \r\nX-Other: 1\r\n\r\n"),
     0,
     "req POST /c HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " Trailer: X-Sum\n"
     " framing=chunked ka=1 continue=0\n"
     "body \"abc\"\n"
     "trailer X-Sum: abc123\n"
     "trailer X-Other: 1\n"
     "done\n"},
    {"RFC 9110 s10.1.1 Expect: 100-continue",
     IN("PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nhi"), 0,
     "req PUT /u HTTP/1.1\n"
     " Host: h\n"
     " Expect: 100-Continue\n"
     " Content-Length: 2\n"
     " framing=length cl=2 ka=1 continue=1\n"
     "body \"hi\"\n"
     "done\n"},
    {"RFC 9112 s2.2 a bare LF may end the request-line (recipients MAY accept it)", IN("GET / HTTP/1.1\nHost: h\r\n\r\n"), 0,
     "req GET / HTTP/1.1\n"
     " Host: h\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9112 s2.2 empty lines before a request-line are ignored", IN("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
     "req GET / HTTP/1.1\n"
     " Host: h\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9112 s9.3.2 pipelined requests in one buffer",
     IN("GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"
        "POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        "POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nT: v\r\n\r\n"
        "HEAD /4 HTTP/1.1\r\nHost: h\r\n\r\n"),
     0,
     "req GET /1 HTTP/1.1\n"
     " Host: h\n"
     " framing=none ka=1 continue=0\n"
     "done\n"
     "req POST /2 HTTP/1.1\n"
     " Host: h\n"
     " Content-Length: 3\n"
     " framing=length cl=3 ka=1 continue=0\n"
     "body \"abc\"\n"
     "done\n"
     "req POST /3 HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "body \"x\"\n"
     "trailer T: v\n"
     "done\n"
     "req HEAD /4 HTTP/1.1\n"
     " Host: h\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9110 s9.3.6 CONNECT: what follows the head is the tunnel's",
     IN("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01GET / HTTP/1.1\r\n"), 0,
     "req CONNECT example.com:443 HTTP/1.1\n"
     " Host: example.com:443\n"
     " framing=none ka=1 continue=0\n"
     "done\n"
     "upgrade @59\n"},
    {"RFC 9110 s9.3.6 CONNECT has no content, whatever Content-Length says",
     IN("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nContent-Length: 5\r\n\r\nhello"), 0,
     "req CONNECT example.com:443 HTTP/1.1\n"
     " Host: example.com:443\n"
     " Content-Length: 5\n"
     " framing=none ka=1 continue=0\n"
     "done\n"
     "upgrade @78\n"},
    {"RFC 9110 s7.8 Upgrade on a plain request: larder goes on speaking HTTP/1.1",
     IN("GET /chat HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
     0,
     "req GET /chat HTTP/1.1\n"
     " Host: h\n"
     " Upgrade: websocket\n"
     " Connection: Upgrade\n"
     " framing=none ka=1 continue=0\n"
     "done\n"
     "req GET /next HTTP/1.1\n"
     " Host: h\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},
    {"RFC 9110 s7.8 Upgrade on a request with a body",
     IN("POST /u HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\nContent-Length: 2\r\n\r\nok"
        "GET /next HTTP/1.1\r\nHost: h\r\n\r\n"),
     0,
     "req POST /u HTTP/1.1\n"
     " Host: h\n"
     " Upgrade: h2c\n"
     " Connection: Upgrade\n"
     " Content-Length: 2\n"
     " framing=length cl=2 ka=1 continue=0\n"
     "body \"ok\"\n"
     "done\n"
     "req GET /next HTTP/1.1\n"
     " Host: h\n"
     " framing=none ka=1 continue=0\n"
     "done\n"},

    /* Refused: framing (RFC 9112 s6). */
    {"RFC 9112 s6.1 Content-Length with Transfer-Encoding",
     IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 0,
     "error 400 Content-Length together with Transfer-Encoding\n"},
    {"RFC 9112 s6.1 Transfer-Encoding with Content-Length",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n"), 0,
     "error 400 Content-Length together with Transfer-Encoding\n"},
    {"RFC 9112 s6.3 two different Content-Length fields",
     IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"), 0,
     "error 400 duplicate Content-Length\n"},
    {"RFC 9112 s6.3 two equal Content-Length fields (refusing is allowed)",
     IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"), 0,
     "error 400 duplicate Content-Length\n"},
    {"RFC 9110 s8.6 Content-Length with a sign", IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\nhello"), 0,
     "error 400 invalid Content-Length\n"},
    {"RFC 9110 s8.6 negative Content-Length", IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"), 0,
     "error 400 invalid Content-Length\n"},
    {"RFC 9110 s8.6 Content-Length list of different values", IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1,2\r\n\r\nab"), 0,
     "error 400 invalid Content-Length\n"},
    {"RFC 9110 s8.6 Content-Length with inner space", IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1 2\r\n\r\n"), 0,
     "error 400 invalid Content-Length\n"},
    {"RFC 9110 s8.6 Content-Length in hex", IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\nhello"), 0,
     "error 400 invalid Content-Length\n"},
    {"RFC 9110 s8.6 empty Content-Length", IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n"), 0,
     "error 400 invalid Content-Length\n"},
    {"RFC 9110 s8.6 Content-Length beyond 2^64-1", IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n"),
     0, "error 400 invalid Content-Length\n"},
    {"RFC 9110 s8.6 Content-Length far beyond 2^64",
     IN("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999999999\r\n\r\n"), 0,
     "error 400 invalid Content-Length\n"},
    {"RFC 9112 s6.1 chunked not alone: gzip, chunked (a known coding: 400)",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 0,
     "error 400 Transfer-Encoding other than a single chunked coding\n"},
    {"RFC 9112 s6.1 chunked not last: chunked, gzip",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"), 0,
     "error 400 invalid Transfer-Encoding\n"},
    {"RFC 9112 s6.1 a known coding without chunked", IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n"), 0,
     "error 400 Transfer-Encoding other than a single chunked coding\n"},
    {"RFC 9112 s6.1 an unknown coding: 501", IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo\r\n\r\n"), 0,
     "error 501 unsupported transfer coding\n"},
    {"RFC 9112 s6.1 an unknown coding before chunked: 501",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n"), 0,
     "error 501 unsupported transfer coding\n"},
    {"RFC 9112 s6.1 chunked twice in one field",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"), 0,
     "error 400 invalid Transfer-Encoding\n"},
    {"RFC 9112 s6.1 Transfer-Encoding twice",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 0,
     "error 400 invalid Transfer-Encoding\n"},
    {"RFC 9112 s6.1 empty Transfer-Encoding", IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n"), 0,
     "error 400 Transfer-Encoding other than a single chunked coding\n"},
    {"RFC 9112 s6.1 Transfer-Encoding in an HTTP/1.0 request", IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     0, "error 400 Transfer-Encoding in an HTTP/1.0 request\n"},

    /* Refused: chunked coding (RFC 9112 s7.1). */
    {"RFC 9112 s7.1 chunk size that is not hex",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 invalid chunk size\n"},
    {"RFC 9112 s7.1 chunk size with a sign",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 invalid chunk size\n"},
    {"RFC 9112 s7.1 chunk size with 0x",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 invalid chunk size\n"},
    {"RFC 9112 s7.1 chunk size overflow",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 invalid chunk size\n"},
    {"RFC 9112 s7.1 chunk size line ended by LF alone",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 invalid chunk size\n"},
    {"RFC 9112 s7.1 chunk data must end in CRLF",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 malformed chunked coding\n"
     "partial body \"hello\"\n"},
    {"RFC 9112 s7.1 chunk data ended by LF alone",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 malformed chunked coding\n"
     "partial body \"hello\"\n"},
    {"RFC 9112 s7.1.1 chunk extension with '=' and no value",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\r\nhello\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 malformed chunked coding\n"},
    {"RFC 9112 s7.1.1 empty chunk extension",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;;\r\nhello\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 malformed chunked coding\n"},
    {"RFC 9112 s7.1.1 chunk extension with a space inside a token",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b c\r\nhello\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 malformed chunked coding\n"},
    {"RFC 9112 s7.1.1 unterminated quoted chunk extension",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"x\r\nhello\r\n0\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 malformed chunked coding\n"},
    {"RFC 9112 s7.1.2 obs-fold in a trailer",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: a\r\n b\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 obsolete line folding\n"},
    {"RFC 9112 s7.1.2 whitespace before the colon of a trailer",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T : a\r\n\r\n"), 0,
     "req POST / HTTP/1.1\n"
     " Host: h\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1 continue=0\n"
     "error 400 invalid character in a header field\n"},

    /* Refused: Host (RFC 9112 s3.2) and version (RFC 9112 s2.3, RFC 9110 s15.6.6). */
    {"RFC 9112 s3.2 HTTP/1.1 request without Host", IN("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"), 0,
     "error 400 HTTP/1.1 request without Host\n"},
    {"RFC 9112 s3.2 two Host fields", IN("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 0,
     "error 400 more than one Host header field\n"},
    {"RFC 9112 s3.2 two Host fields in HTTP/1.0", IN("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 0,
     "error 400 more than one Host header field\n"},
    {"RFC 9110 s15.6.6 HTTP/2.0 in an HTTP/1 request-line", IN("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), 0,
     "error 505 HTTP version not supported\n"},
    {"RFC 9110 s15.6.6 HTTP/3.0", IN("GET / HTTP/3.0\r\nHost: h\r\n\r\n"), 0, "error 505 HTTP version not supported\n"},
    {"RFC 9110 s15.6.6 HTTP/0.9", IN("GET / HTTP/0.9\r\nHost: h\r\n\r\n"), 0, "error 505 HTTP version not supported\n"},
    {"RFC 9112 s2.3 HTTP-name is case-sensitive", IN("GET / http/1.1\r\nHost: h\r\n\r\n"), 0, "error 400 malformed HTTP message\n"},
    {"RFC 9112 s2.3 one digit each side of the dot", IN("GET / HTTP/1.10\r\nHost: h\r\n\r\n"), 0,
     "error 400 malformed HTTP version\n"},
    {"RFC 9112 s2.3 version without minor", IN("GET / HTTP/1\r\nHost: h\r\n\r\n"), 0, "error 400 malformed HTTP version\n"},

    /* Refused: request-line (RFC 9112 s3). */
    /* Found by tests/fuzz/fuzz_http_request: llhttp reports the empty target as an empty span, which
     * reached acc_append() before its buffer existed (NULL + 0, a UBSan report). */
    {"RFC 9112 s3 request-line with an empty target and no version", IN("CONNECT \r\nHost: h\r\n\r\n"), 0,
     "error 505 HTTP version not supported\n"},
    {"RFC 9110 s9.1 methods are case-sensitive", IN("get / HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
     "error 400 unknown or malformed method\n"},
    {"RFC 9112 s3 whitespace after the HTTP-version", IN("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), 0,
     "error 400 malformed HTTP version\n"},
    {"RFC 9112 s3.2 a control byte in the target", IN("GET /a\x01z HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
     "error 400 malformed request-target\n"},
    {"RFC 9112 s3.2 a tab in the target", IN("GET /a\tz HTTP/1.1\r\nHost: h\r\n\r\n"), 0, "error 400 malformed request-target\n"},
    {"RFC 9112 s3.2 a form feed in the target", IN("GET /a\x0cz HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
     "error 400 malformed request-target\n"},
    {"RFC 3986 s2 a non-ASCII byte in the target", IN("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n"), 0,
     "error 400 malformed request-target\n"},

    /* Refused: field lines (RFC 9112 s5, s2.2). */
    {"RFC 9112 s5.2 obs-fold", IN("GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n b\r\n\r\n"), 0,
     "error 400 obsolete line folding\n"},
    {"RFC 9112 s5.2 obs-fold with a tab", IN("GET / HTTP/1.1\r\nHost: h\r\nX-Folded: a\r\n\tb\r\n\r\n"), 0,
     "error 400 obsolete line folding\n"},
    {"RFC 9112 s5.2 obs-fold after an empty first line", IN("GET / HTTP/1.1\r\nHost: h\r\nX-Folded:\r\n b\r\n\r\n"), 0,
     "error 400 obsolete line folding\n"},
    {"RFC 9112 s5.2 obs-fold continuing Transfer-Encoding",
     IN("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n0\r\n\r\n"), 0,
     "error 400 obsolete line folding\n"},
    {"RFC 9112 s5.1 whitespace between field name and colon", IN("GET / HTTP/1.1\r\nHost: h\r\nX-Name : v\r\n\r\n"), 0,
     "error 400 invalid character in a header field\n"},
    {"RFC 9112 s5.1 whitespace before the colon of Host", IN("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), 0,
     "error 400 invalid character in a header field\n"},
    {"RFC 9110 s5.1 whitespace inside a field name", IN("GET / HTTP/1.1\r\nHost: h\r\nX Name: v\r\n\r\n"), 0,
     "error 400 invalid character in a header field\n"},
    {"RFC 9110 s5.1 a delimiter in a field name", IN("GET / HTTP/1.1\r\nHost: h\r\nX(Name): v\r\n\r\n"), 0,
     "error 400 invalid character in a header field\n"},
    {"RFC 9110 s5.1 empty field name", IN("GET / HTTP/1.1\r\n: v\r\nHost: h\r\n\r\n"), 0, "error 400 empty header field name\n"},
    {"RFC 9110 s5.1 empty field name, empty value", IN("GET / HTTP/1.1\r\n: \r\nHost: h\r\n\r\n"), 0,
     "error 400 empty header field name\n"},
    {"RFC 9112 s2.2 whitespace before the first field line", IN("GET / HTTP/1.1\r\n Host: h\r\n\r\n"), 0,
     "error 400 unexpected whitespace\n"},
    {"RFC 9112 s2.2 bare CR in a field value", IN("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"), 0,
     "error 400 malformed line ending\n"},
    {"RFC 9112 s2.2 bare CR ending the head", IN("GET / HTTP/1.1\r\nHost: h\r\n\rX"), 0, "error 400 malformed line ending\n"},
    {"RFC 9110 s5.5 NUL in a field value", IN("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n"), 0,
     "error 400 invalid character in a header field\n"},
    {"RFC 9110 s5.5 a control byte in a field value", IN("GET / HTTP/1.1\r\nHost: h\r\nX: a\x01z\r\n\r\n"), 0,
     "error 400 invalid character in a header field\n"},
    {"RFC 9110 s5.5 DEL in a field value", IN("GET / HTTP/1.1\r\nHost: h\r\nX: a\x7fz\r\n\r\n"), 0,
     "error 400 invalid character in a header field\n"},
};

static void test_request_rows(void)
{
    CHECK_ROWS(request_rows, HTTP_PARSE_REQUEST);
}

/* ---- responses ---- */

static const struct row response_rows[] = {
    {"RFC 9112 s6.3 item 6 Content-Length body",
     IN("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"), 0,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Content-Type: text/plain\n"
     " Content-Length: 5\n"
     " framing=length cl=5 ka=1\n"
     "body \"hello\"\n"
     "done\n"},
    {"RFC 9112 s4 the reason phrase is kept as received", IN("HTTP/1.1 404 Nothing Here, Sorry\r\nContent-Length: 0\r\n\r\n"), 0,
     "resp 404 \"Nothing Here, Sorry\" HTTP/1.1\n"
     " Content-Length: 0\n"
     " framing=length cl=0 ka=1\n"
     "done\n"},
    {"RFC 9112 s4 an empty reason phrase", IN("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n"), 0,
     "resp 200 \"\" HTTP/1.1\n"
     " Content-Length: 0\n"
     " framing=length cl=0 ka=1\n"
     "done\n"},
    {"RFC 9112 s7.1 chunked body with trailers",
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n"),
     0,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1\n"
     "body \"Wikipedia in \\x0d\\x0a\\x0d\\x0achunks.\"\n"
     "trailer Expires: never\n"
     "trailer X-Sum: 1\n"
     "done\n"},
    {"RFC 9112 s6.3 item 8 close-delimited body ends at finish",
     IN("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until the close\r\n"), F_FINISH,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Content-Type: text/plain\n"
     " framing=eof ka=0\n"
     "body \"all of this until the close\\x0d\\x0a\"\n"
     "done\n"
     "finish ok\n"},
    {"RFC 9112 s6.3 item 8 an empty close-delimited body", IN("HTTP/1.1 200 OK\r\n\r\n"), F_FINISH,
     "resp 200 \"OK\" HTTP/1.1\n"
     " framing=eof ka=0\n"
     "done\n"
     "finish ok\n"},
    {"RFC 9112 s6.3 item 4 a final coding other than chunked runs to the close",
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b..."), F_FINISH,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Transfer-Encoding: gzip\n"
     " framing=eof ka=0\n"
     "body \"\\x1f\\x8b...\"\n"
     "done\n"
     "finish ok\n"},
    {"RFC 9112 s8 finish in the middle of a Content-Length body", IN("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello"),
     F_FINISH,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Content-Length: 10\n"
     " framing=length cl=10 ka=1\n"
     "finish error 502 connection closed in the middle of a message\n"
     "partial body \"hello\"\n"},
    {"RFC 9112 s8 finish in the middle of a chunked body",
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"), F_FINISH,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1\n"
     "finish error 502 connection closed in the middle of a message\n"
     "partial body \"hello\"\n"},
    {"RFC 9112 s8 finish in the middle of a head", IN("HTTP/1.1 200 OK\r\nContent-Le"), F_FINISH,
     "finish error 502 connection closed in the middle of a message\n"},
    {"RFC 9112 s8 finish after a complete message", IN("HTTP/1.1 204 No Content\r\n\r\n"), F_FINISH,
     "resp 204 \"No Content\" HTTP/1.1\n"
     " framing=none ka=1\n"
     "done\n"
     "finish ok\n"},
    {"RFC 9110 s15.2 1xx then the final response on one stream",
     IN("HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
     0,
     "resp 100 \"Continue\" HTTP/1.1\n"
     " framing=none ka=1\n"
     "done\n"
     "resp 103 \"Early Hints\" HTTP/1.1\n"
     " Link: </s.css>; rel=preload\n"
     " framing=none ka=1\n"
     "done\n"
     "resp 200 \"OK\" HTTP/1.1\n"
     " Content-Length: 2\n"
     " framing=length cl=2 ka=1\n"
     "body \"hi\"\n"
     "done\n"},
    {"RFC 9112 s6.3 item 1 a 1xx never has content, whatever its fields say",
     IN("HTTP/1.1 150 Odd\r\nContent-Length: 3\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
     0,
     "resp 150 \"Odd\" HTTP/1.1\n"
     " Content-Length: 3\n"
     " framing=none ka=1\n"
     "done\n"
     "resp 200 \"OK\" HTTP/1.1\n"
     " Content-Length: 2\n"
     " framing=length cl=2 ka=1\n"
     "body \"hi\"\n"
     "done\n"},
    {"RFC 9112 s6.3 item 1 204 with Content-Length has no content",
     IN("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"), 0,
     "resp 204 \"No Content\" HTTP/1.1\n"
     " Content-Length: 5\n"
     " framing=none ka=1\n"
     "done\n"
     "resp 200 \"OK\" HTTP/1.1\n"
     " Content-Length: 1\n"
     " framing=length cl=1 ka=1\n"
     "body \"x\"\n"
     "done\n"},
    {"RFC 9112 s6.3 item 1 304 with Content-Length has no content",
     IN("HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n"
        "HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
     0,
     "resp 304 \"Not Modified\" HTTP/1.1\n"
     " ETag: \"v1\"\n"
     " Content-Length: 100\n"
     " framing=none ka=1\n"
     "done\n"
     "resp 304 \"Not Modified\" HTTP/1.1\n"
     " Transfer-Encoding: chunked\n"
     " framing=none ka=1\n"
     "done\n"},
    {"RFC 9112 s6.3 item 1 response to HEAD: no content after Content-Length",
     IN("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        "HTTP/1.1 200 OK\r\n\r\n"),
     F_NO_BODY,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Content-Length: 1000\n"
     " framing=length cl=1000 ka=1\n"
     "done\n"
     "resp 200 \"OK\" HTTP/1.1\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1\n"
     "done\n"
     "resp 200 \"OK\" HTTP/1.1\n"
     " framing=eof ka=0\n"
     "done\n"},
    {"RFC 9112 s9.3 HTTP/1.0 response closes unless keep-alive", IN("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx"), 0,
     "resp 200 \"OK\" HTTP/1.0\n"
     " Content-Length: 1\n"
     " framing=length cl=1 ka=0\n"
     "body \"x\"\n"
     "done\n"},
    {"RFC 9112 s9.6 Connection: close on a response", IN("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"), 0,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Connection: close\n"
     " Content-Length: 1\n"
     " framing=length cl=1 ka=0\n"
     "body \"x\"\n"
     "done\n"},

    /* Refused: any error in a response becomes 502 for the client. */
    {"RFC 9112 s4 three-digit status code", IN("HTTP/1.1 2000 OK\r\n\r\n"), 0, "error 502 malformed status line\n"},
    {"RFC 9112 s4 status code missing", IN("HTTP/1.1 OK\r\n\r\n"), 0, "error 502 malformed status line\n"},
    {"RFC 9112 s4 two-digit status code", IN("HTTP/1.1 20 OK\r\n\r\n"), 0, "error 502 malformed status line\n"},
    {"RFC 9112 s2.3 malformed HTTP-name", IN("HTTX/1.1 200 OK\r\n\r\n"), 0, "error 502 malformed HTTP message\n"},
    {"RFC 9112 s2.3 HTTP/2.0 status line", IN("HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"), 0,
     "error 502 upstream spoke an unsupported HTTP version\n"},
    {"RFC 9112 s4 status code 0xx", IN("HTTP/1.1 099 Odd\r\n\r\n"), 0, "error 502 malformed status line\n"},
    {"RFC 9110 s15 codes above 599 are passed on (the client treats them as 5xx)",
     IN("HTTP/1.1 999 Request denied\r\nContent-Length: 0\r\n\r\n"), 0,
     "resp 999 \"Request denied\" HTTP/1.1\n"
     " Content-Length: 0\n"
     " framing=length cl=0 ka=1\n"
     "done\n"},
    {"RFC 9110 s15.2.2 101 though larder never asks to upgrade",
     IN("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n\x00\x00\x12\x04"), 0,
     "error 502 unexpected protocol switch from upstream\n"},
    {"RFC 9110 s15.2.2 101 without Connection: upgrade", IN("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n"), 0,
     "error 502 unexpected protocol switch from upstream\n"},
    {"RFC 9112 s6.3 item 3 Transfer-Encoding with Content-Length",
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"), 0,
     "error 502 Content-Length together with Transfer-Encoding\n"},
    {"RFC 9112 s6.3 item 5 two different Content-Length", IN("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
     0, "error 502 duplicate Content-Length\n"},
    {"RFC 9112 s5.1 whitespace before the colon in a response", IN("HTTP/1.1 200 OK\r\nX-A : 1\r\nContent-Length: 0\r\n\r\n"), 0,
     "error 502 invalid character in a header field\n"},
    {"RFC 9112 s5.2 obs-fold in a response", IN("HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\nContent-Length: 0\r\n\r\n"), 0,
     "error 502 obsolete line folding\n"},
    {"RFC 9112 s7.1 chunk data not followed by CRLF in a response",
     IN("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n"), 0,
     "resp 200 \"OK\" HTTP/1.1\n"
     " Transfer-Encoding: chunked\n"
     " framing=chunked ka=1\n"
     "error 502 malformed chunked coding\n"
     "partial body \"abc\"\n"},
};

static void test_response_rows(void)
{
    CHECK_ROWS(response_rows, HTTP_PARSE_RESPONSE);
}

/* ---- limits (RFC 9110 s15.5.15 414, RFC 6585 s5 431) ---- */

static void test_limits(void)
{
    char in[8192];
    struct http_parse_limits lim = {.max_head_bytes = 1024, .max_fields = 8, .max_target = 64};

    /* A target of exactly max_target is fine; one byte more is 414. */
    char target[128];
    memset(target, 'a', sizeof(target));
    target[0] = '/';
    int n = snprintf(in, sizeof(in), "GET %.*s HTTP/1.1\r\nHost: h\r\n\r\n", 64, target);
    char want[2048];
    snprintf(want, sizeof(want), "req GET %.*s HTTP/1.1\n Host: h\n framing=none ka=1 continue=0\ndone\n", 64, target);
    CHECK_ALL_WAYS("RFC 9112 s3 target at the limit", HTTP_PARSE_REQUEST, 0, &lim, in, (size_t)n, want);
    n = snprintf(in, sizeof(in), "GET %.*s HTTP/1.1\r\nHost: h\r\n\r\n", 65, target);
    CHECK_ALL_WAYS("RFC 9112 s3 / RFC 9110 s15.5.15 target over the limit: 414", HTTP_PARSE_REQUEST, 0, &lim, in, (size_t)n,
                   "error 414 request-target too long\n");

    /* max_fields fields are fine; one more is 431. */
    n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\n");
    size_t wl = (size_t)snprintf(want, sizeof(want), "req GET / HTTP/1.1\n Host: h\n");
    for (int i = 1; i < 8; i++) {
        n += snprintf(in + n, sizeof(in) - (size_t)n, "X-%d: %d\r\n", i, i);
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, " X-%d: %d\n", i, i);
    }
    int head_end = n;
    n += snprintf(in + n, sizeof(in) - (size_t)n, "\r\n");
    snprintf(want + wl, sizeof(want) - wl, " framing=none ka=1 continue=0\ndone\n");
    CHECK_ALL_WAYS("RFC 6585 s5 fields at the limit", HTTP_PARSE_REQUEST, 0, &lim, in, (size_t)n, want);
    n = head_end + snprintf(in + head_end, sizeof(in) - (size_t)head_end, "X-9: 9\r\n\r\n");
    CHECK_ALL_WAYS("RFC 6585 s5 one field over the limit: 431", HTTP_PARSE_REQUEST, 0, &lim, in, (size_t)n,
                   "error 431 too many header fields\n");

    /* A head larger than max_head_bytes: 431, in one big field or in the sum of several. */
    char big[2048];
    memset(big, 'v', sizeof(big));
    n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\nX-Big: %.*s\r\n\r\n", 1100, big);
    CHECK_ALL_WAYS("RFC 6585 s5 one field larger than the head limit: 431", HTTP_PARSE_REQUEST, 0, &lim, in, (size_t)n,
                   "error 431 request header too large\n");
    n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\nX-A: %.*s\r\nX-B: %.*s\r\nX-C: %.*s\r\n\r\n", 340, big, 340, big,
                 340, big);
    CHECK_ALL_WAYS("RFC 6585 s5 fields adding up to more than the head limit: 431", HTTP_PARSE_REQUEST, 0, &lim, in, (size_t)n,
                   "error 431 request header too large\n");
    /* A name alone can be too big too. */
    n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\nX-%.*s: 1\r\n\r\n", 1100, big);
    CHECK_ALL_WAYS("RFC 6585 s5 a field name larger than the head limit: 431", HTTP_PARSE_REQUEST, 0, &lim, in, (size_t)n,
                   "error 431 request header too large\n");
    /* The same limits bound a response head, which the proxy answers with 502. */
    n = snprintf(in, sizeof(in), "HTTP/1.1 200 OK\r\nX-Big: %.*s\r\n\r\n", 1100, big);
    CHECK_ALL_WAYS("RFC 9110 s15.6.3 a response head over the limit: 502", HTTP_PARSE_RESPONSE, 0, &lim, in, (size_t)n,
                   "error 502 response header too large\n");
}

/* The arena running out while a head is parsed fails the request cleanly (431), never crashes. */
static struct http_msg *small_arena_begin(void *data, struct arena **arena)
{
    struct arena *a = data;
    *arena = a;
    return arena_alloc(a, sizeof(struct http_msg));
}

static int never_called_head(void *data, struct http_msg *m)
{
    (void)data;
    (void)m;
    TEST_FAIL_("on_head must not run when the head did not fit");
    return -1;
}

static int no_body(void *data, const char *at, size_t len)
{
    (void)data;
    (void)at;
    (void)len;
    return 0;
}

static int no_done(void *data, struct http_msg *t)
{
    (void)data;
    (void)t;
    return 0;
}

static void test_arena_exhausted(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 256, 1024), 0);
    const struct http_parse_callbacks cb = {small_arena_begin, never_called_head, no_body, no_done};
    struct http_parser *p = http_parser_new(HTTP_PARSE_REQUEST, &LIMITS, &cb, &a);
    char in[4096];
    char big[1500];
    memset(big, 'v', sizeof(big));
    int n = snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: h\r\nX-Big: %.*s\r\n\r\n", (int)sizeof(big), big);
    size_t consumed;
    ASSERT_EQ(http_parser_execute(p, in, (size_t)n, &consumed), HTTP_PARSE_ERROR);
    ASSERT_EQ(http_parser_error_status(p), 431);
    ASSERT_EQ(arena_overflowed(&a), 1);
    http_parser_free(p);
    arena_free(&a);
}

/* ---- pausing, resuming and where *consumed points ---- */

/* A recorder whose callbacks pause only where a test asks. */
struct stepper {
    struct rec r;
    int pause_head, pause_body, pause_done;
    int head_rc;
    int n_begin, n_head, n_done;
};

static struct http_msg *st_begin(void *data, struct arena **arena)
{
    struct stepper *s = data;
    s->n_begin++;
    return cb_begin(&s->r, arena);
}

static int st_head(void *data, struct http_msg *m)
{
    struct stepper *s = data;
    s->n_head++;
    cb_head(&s->r, m);
    if (s->head_rc) return s->head_rc;
    return s->pause_head ? HTTP_PARSE_CB_PAUSE : 0;
}

static int st_body(void *data, const char *at, size_t len)
{
    struct stepper *s = data;
    cb_body(&s->r, at, len);
    return s->pause_body ? HTTP_PARSE_CB_PAUSE : 0;
}

static int st_done(void *data, struct http_msg *trailers)
{
    struct stepper *s = data;
    s->n_done++;
    cb_done(&s->r, trailers);
    return s->pause_done ? HTTP_PARSE_CB_PAUSE : 0;
}

static const struct http_parse_callbacks ST_CB = {st_begin, st_head, st_body, st_done};

static void st_init(struct stepper *s, enum http_parse_kind kind)
{
    memset(s, 0, sizeof(*s));
    ASSERT_EQ(arena_init(&s->r.arena, 4096, 1 << 20), 0);
    s->r.p = http_parser_new(kind, &LIMITS, &ST_CB, s);
    ASSERT(s->r.p != NULL);
}

static void st_free(struct stepper *s)
{
    rec_free(&s->r);
}

#define REQ1 "GET /first HTTP/1.1\r\nHost: h\r\n\r\n"
#define REQ2 "POST /second HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody"
#define REQ3 "GET /third HTTP/1.1\r\nHost: h\r\n\r\n"

/* RFC 9112 s9.3.2: pipelined requests are answered in order, so the proxy stops after each one. */
static void test_pipelined_pause_on_done(void)
{
    const char in[] = REQ1 REQ2 REQ3;
    const size_t len = sizeof(in) - 1;
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    s.pause_done = 1;
    size_t consumed = 0, off = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, in, len, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, strlen(REQ1));
    ASSERT_EQ(s.n_done, 1);
    ASSERT_EQ(s.n_begin, 1);
    ASSERT_EQ(http_parser_in_message(s.r.p), 0);
    off += consumed;

    /* Still paused: feeding again without resuming parses nothing and consumes nothing, even from
     * another buffer (llhttp only remembers where it stopped in the old one). */
    char *copy = strdup(in + off);
    ASSERT(copy != NULL);
    ASSERT_EQ(http_parser_execute(s.r.p, copy, len - off, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, 0);
    ASSERT_EQ(s.n_begin, 1);
    free(copy);

    http_parser_resume(s.r.p);
    ASSERT_EQ(http_parser_execute(s.r.p, in + off, len - off, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, strlen(REQ2));
    ASSERT_EQ(s.n_done, 2);
    off += consumed;

    http_parser_resume(s.r.p);
    ASSERT_EQ(http_parser_execute(s.r.p, in + off, len - off, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, strlen(REQ3));
    ASSERT_EQ(s.n_done, 3);

    /* Resumed with nothing more to read; a new read continues normally. */
    http_parser_resume(s.r.p);
    s.pause_done = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, REQ1, strlen(REQ1), &consumed), HTTP_PARSE_OK);
    ASSERT_UEQ(consumed, strlen(REQ1));
    ASSERT_EQ(s.n_done, 4);
    ASSERT_STR_EQ(s.r.out, "req GET /first HTTP/1.1\n Host: h\n framing=none ka=1 continue=0\ndone\n"
                           "req POST /second HTTP/1.1\n Host: h\n Content-Length: 4\n framing=length cl=4 ka=1 continue=0\n"
                           "body \"body\"\ndone\n"
                           "req GET /third HTTP/1.1\n Host: h\n framing=none ka=1 continue=0\ndone\n"
                           "req GET /first HTTP/1.1\n Host: h\n framing=none ka=1 continue=0\ndone\n");
    st_free(&s);
}

/* The proxy pauses at the head of a request with a body until it has somewhere to send the body. */
static void test_pause_on_head_with_body(void)
{
    const char in[] = REQ2 REQ3;
    const size_t len = sizeof(in) - 1;
    const size_t head_len = strlen(REQ2) - 4;
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    s.pause_head = 1;
    size_t consumed = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, in, len, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, head_len);
    ASSERT_EQ(s.n_head, 1);
    ASSERT_UEQ(s.r.body_len, 0);
    ASSERT_EQ(http_parser_in_message(s.r.p), 1);
    ASSERT_EQ(http_parser_head_started(s.r.p), 0);

    http_parser_resume(s.r.p);
    s.pause_head = 0;
    s.pause_done = 1;
    size_t off = consumed;
    ASSERT_EQ(http_parser_execute(s.r.p, in + off, len - off, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, 4);
    ASSERT_EQ(s.n_done, 1);
    ASSERT_STR_EQ(s.r.out, "req POST /second HTTP/1.1\n Host: h\n Content-Length: 4\n framing=length cl=4 ka=1 continue=0\n"
                           "body \"body\"\ndone\n");
    st_free(&s);
}

/* Back-pressure: on_body pausing stops right after the bytes it was given. */
static void test_pause_on_body(void)
{
    const char in[] = "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    const size_t len = sizeof(in) - 1;
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    s.pause_body = 1;
    size_t consumed = 0, off = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, in, len, &consumed), HTTP_PARSE_PAUSED);
    ASSERT(memcmp(in + consumed - 3, "abc", 3) == 0);
    off = consumed;
    http_parser_resume(s.r.p);
    ASSERT_EQ(http_parser_execute(s.r.p, in + off, len - off, &consumed), HTTP_PARSE_PAUSED);
    off += consumed;
    ASSERT(memcmp(in + off - 2, "de", 2) == 0);
    http_parser_resume(s.r.p);
    ASSERT_EQ(http_parser_execute(s.r.p, in + off, len - off, &consumed), HTTP_PARSE_OK);
    ASSERT_UEQ(off + consumed, len);
    ASSERT_EQ(s.n_done, 1);
    st_free(&s);
}

/* A pause on the last bytes of a body leaves the end of the message to the next execute(); when no
 * more bytes will come (the client waits for its answer), execute() on no bytes completes it. */
static void test_zero_length_execute_completes(void)
{
    const char in[] = "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nbody";
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    s.pause_body = 1;
    size_t consumed = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, in, sizeof(in) - 1, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, sizeof(in) - 1);
    ASSERT_EQ(s.n_done, 0);
    ASSERT_EQ(http_parser_in_message(s.r.p), 1);
    http_parser_resume(s.r.p);
    ASSERT_EQ(http_parser_execute(s.r.p, in + consumed, 0, &consumed), HTTP_PARSE_OK);
    ASSERT_UEQ(consumed, 0);
    ASSERT_EQ(s.n_done, 1);
    ASSERT_EQ(http_parser_in_message(s.r.p), 0);
    ASSERT_STR_EQ(s.r.out, "req POST / HTTP/1.1\n Host: h\n Content-Length: 4\n framing=length cl=4 ka=1 continue=0\n"
                           "body \"body\"\ndone\n");
    st_free(&s);
}

#define CONNECT_HEAD "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
#define TUNNEL "\x16\x03\x01\x00\x05hello"

/* RFC 9110 s9.3.6: after a CONNECT head the bytes are the tunnel's; the parser never reads them. */
static void test_connect_upgrade(void)
{
    const char in[] = CONNECT_HEAD TUNNEL;
    const size_t len = sizeof(in) - 1;
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    size_t consumed = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, in, len, &consumed), HTTP_PARSE_UPGRADE);
    ASSERT_UEQ(consumed, strlen(CONNECT_HEAD));
    ASSERT_EQ(s.n_head, 1);
    ASSERT_UEQ(s.r.body_len, 0);
    ASSERT(s.r.msg == NULL); /* the CONNECT message itself is complete */
    /* Feeding it more keeps answering UPGRADE without touching a byte. */
    ASSERT_EQ(http_parser_execute(s.r.p, in + consumed, len - consumed, &consumed), HTTP_PARSE_UPGRADE);
    ASSERT_UEQ(consumed, 0);
    ASSERT_EQ(s.n_begin, 1);
    st_free(&s);
}

/* The proxy pauses at a CONNECT head while it dials; resuming then reports the upgrade. */
static void test_connect_pause_on_head(void)
{
    const char in[] = CONNECT_HEAD TUNNEL;
    const size_t len = sizeof(in) - 1;
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    s.pause_head = 1;
    size_t consumed = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, in, len, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, strlen(CONNECT_HEAD));
    ASSERT_EQ(s.n_head, 1);
    ASSERT_EQ(s.r.msg->method, HTTP_METHOD_CONNECT);
    ASSERT_EQ(s.r.msg->framing, HTTP_BODY_NONE);
    http_parser_resume(s.r.p);
    size_t off = consumed;
    ASSERT_EQ(http_parser_execute(s.r.p, in + off, len - off, &consumed), HTTP_PARSE_UPGRADE);
    ASSERT_UEQ(consumed, 0);
    ASSERT_UEQ(s.r.body_len, 0);
    ASSERT_EQ(s.n_begin, 1);
    st_free(&s);
}

/* RFC 9112 s9.3: after a response the proxy stops; bytes after it are not part of any exchange. */
static void test_response_bytes_after_complete(void)
{
    const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    const char in[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 200 OK\r\n\r\nunasked";
    struct stepper s;
    st_init(&s, HTTP_PARSE_RESPONSE);
    s.pause_done = 1;
    size_t consumed = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, in, sizeof(in) - 1, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, sizeof(resp) - 1);
    ASSERT_EQ(s.n_done, 1);
    ASSERT_EQ(s.n_begin, 1);
    ASSERT_EQ(http_parser_in_message(s.r.p), 0);
    /* The peer closes now: nothing is in progress, so that is a clean end, and the response is not
     * delivered twice. */
    ASSERT_EQ(http_parser_finish(s.r.p), HTTP_PARSE_OK);
    ASSERT_EQ(s.n_begin, 1);
    ASSERT_EQ(s.n_done, 1);
    st_free(&s);
}

/* RFC 9112 s6.3 item 8: the close ends a close-delimited body even while the proxy has the parser
 * paused for back-pressure. */
static void test_finish_while_paused_in_body(void)
{
    const char in[] = "HTTP/1.1 200 OK\r\n\r\nsome body";
    struct stepper s;
    st_init(&s, HTTP_PARSE_RESPONSE);
    s.pause_body = 1;
    size_t consumed = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, in, sizeof(in) - 1, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_UEQ(consumed, sizeof(in) - 1);
    ASSERT_EQ(s.n_done, 0);
    ASSERT_EQ(http_parser_finish(s.r.p), HTTP_PARSE_OK);
    ASSERT_EQ(s.n_done, 1);
    ASSERT_EQ(http_parser_in_message(s.r.p), 0);
    st_free(&s);

    /* Paused at the head of a close-delimited response, then closed: an empty body. */
    st_init(&s, HTTP_PARSE_RESPONSE);
    s.pause_head = 1;
    ASSERT_EQ(http_parser_execute(s.r.p, in, sizeof(in) - 1 - 9, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_EQ(http_parser_finish(s.r.p), HTTP_PARSE_OK);
    ASSERT_EQ(s.n_done, 1);
    ASSERT_EQ(http_parser_in_message(s.r.p), 0);
    st_free(&s);

    /* Paused in a Content-Length body that is not complete: closing is an error. */
    st_init(&s, HTTP_PARSE_RESPONSE);
    s.pause_body = 1;
    const char cl[] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    ASSERT_EQ(http_parser_execute(s.r.p, cl, sizeof(cl) - 1, &consumed), HTTP_PARSE_PAUSED);
    ASSERT_EQ(http_parser_finish(s.r.p), HTTP_PARSE_ERROR);
    ASSERT_EQ(http_parser_error_status(s.r.p), 502);
    ASSERT_EQ(s.n_done, 0);
    st_free(&s);
}

/* An error is final: later input is not parsed, finish reports the error, and the status stays. */
static void test_error_is_sticky(void)
{
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    const char bad[] = "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n";
    size_t consumed = 0;
    ASSERT_EQ(http_parser_execute(s.r.p, bad, sizeof(bad) - 1, &consumed), HTTP_PARSE_ERROR);
    ASSERT_EQ(http_parser_error_status(s.r.p), 400);
    ASSERT_STR_EQ(http_parser_error_reason(s.r.p), "more than one Host header field");
    ASSERT_EQ(s.n_head, 0);
    ASSERT_EQ(http_parser_execute(s.r.p, REQ1, strlen(REQ1), &consumed), HTTP_PARSE_ERROR);
    ASSERT_UEQ(consumed, 0);
    ASSERT_EQ(s.n_begin, 1);
    ASSERT_EQ(http_parser_finish(s.r.p), HTTP_PARSE_ERROR);
    ASSERT_EQ(http_parser_error_status(s.r.p), 400);
    ASSERT_STR_EQ(http_parser_error_reason(s.r.p), "more than one Host header field");

    /* reset starts a new stream. */
    http_parser_reset(s.r.p);
    s.r.msg = NULL;
    ASSERT_EQ(http_parser_execute(s.r.p, REQ1, strlen(REQ1), &consumed), HTTP_PARSE_OK);
    ASSERT_UEQ(consumed, strlen(REQ1));
    ASSERT_EQ(s.n_done, 1);
    st_free(&s);
}

/* What the callbacks answer decides the status: the caller's failure is a 500 (502 for a response). */
static struct http_msg *null_begin(void *data, struct arena **arena)
{
    (void)data;
    (void)arena;
    return NULL;
}

static void test_callback_failures(void)
{
    const struct http_parse_callbacks cb = {null_begin, never_called_head, no_body, no_done};
    struct http_parser *p = http_parser_new(HTTP_PARSE_REQUEST, &LIMITS, &cb, NULL);
    size_t consumed;
    ASSERT_EQ(http_parser_execute(p, REQ1, strlen(REQ1), &consumed), HTTP_PARSE_ERROR);
    ASSERT_EQ(http_parser_error_status(p), 500);
    http_parser_free(p);

    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    s.head_rc = -1;
    ASSERT_EQ(http_parser_execute(s.r.p, REQ1, strlen(REQ1), &consumed), HTTP_PARSE_ERROR);
    ASSERT_EQ(http_parser_error_status(s.r.p), 500);
    ASSERT_EQ(s.n_done, 0);
    st_free(&s);

    st_init(&s, HTTP_PARSE_RESPONSE);
    s.head_rc = -1;
    const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    ASSERT_EQ(http_parser_execute(s.r.p, resp, sizeof(resp) - 1, &consumed), HTTP_PARSE_ERROR);
    ASSERT_EQ(http_parser_error_status(s.r.p), 502);
    st_free(&s);
}

/* The state queries the proxy uses for timeouts and connection reuse. */
static void test_message_state(void)
{
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    ASSERT_EQ(http_parser_in_message(s.r.p), 0);
    ASSERT_EQ(http_parser_head_started(s.r.p), 0);
    ASSERT_EQ(http_parser_error_status(s.r.p), 400); /* documented default */
    ASSERT(http_parser_error_reason(s.r.p) != NULL);
    size_t consumed;
    /* Empty lines before a request start nothing (RFC 9112 s2.2). */
    ASSERT_EQ(http_parser_execute(s.r.p, "\r\n", 2, &consumed), HTTP_PARSE_OK);
    ASSERT_EQ(http_parser_in_message(s.r.p), 0);
    ASSERT_EQ(http_parser_execute(s.r.p, "G", 1, &consumed), HTTP_PARSE_OK);
    ASSERT_EQ(http_parser_in_message(s.r.p), 1);
    ASSERT_EQ(http_parser_head_started(s.r.p), 1);
    const char rest[] = "ET / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n";
    ASSERT_EQ(http_parser_execute(s.r.p, rest, sizeof(rest) - 1, &consumed), HTTP_PARSE_OK);
    ASSERT_EQ(http_parser_in_message(s.r.p), 1);
    ASSERT_EQ(http_parser_head_started(s.r.p), 0);
    ASSERT_EQ(http_parser_execute(s.r.p, "ok", 2, &consumed), HTTP_PARSE_OK);
    ASSERT_EQ(http_parser_in_message(s.r.p), 0);
    ASSERT_EQ(http_parser_head_started(s.r.p), 0);
    ASSERT_EQ(s.n_done, 1);
    st_free(&s);
}

/* RFC 9112 s9.6: after a request with "close" the server processes nothing more on the connection;
 * what follows is dropped, not mistaken for a bad request. */
static void test_bytes_after_connection_close(void)
{
    struct stepper s;
    st_init(&s, HTTP_PARSE_REQUEST);
    const char in[] = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nGET /more HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t consumed;
    enum http_parse_status st = http_parser_execute(s.r.p, in, sizeof(in) - 1, &consumed);
    ASSERT_EQ(st, HTTP_PARSE_OK);
    ASSERT_UEQ(consumed, sizeof(in) - 1);
    ASSERT_EQ(s.n_done, 1);
    ASSERT_EQ(s.n_begin, 1);
    ASSERT_EQ(http_parser_execute(s.r.p, "garbage", 7, &consumed), HTTP_PARSE_OK);
    ASSERT_EQ(s.n_begin, 1);
    st_free(&s);
}

int main(void)
{
    RUN_TEST(test_llhttp_is_strict);
    RUN_TEST(test_request_rows);
    RUN_TEST(test_response_rows);
    RUN_TEST(test_limits);
    RUN_TEST(test_arena_exhausted);
    RUN_TEST(test_pipelined_pause_on_done);
    RUN_TEST(test_pause_on_head_with_body);
    RUN_TEST(test_pause_on_body);
    RUN_TEST(test_zero_length_execute_completes);
    RUN_TEST(test_connect_upgrade);
    RUN_TEST(test_connect_pause_on_head);
    RUN_TEST(test_response_bytes_after_complete);
    RUN_TEST(test_finish_while_paused_in_body);
    RUN_TEST(test_error_is_sticky);
    RUN_TEST(test_callback_failures);
    RUN_TEST(test_message_state);
    RUN_TEST(test_bytes_after_connection_close);
    return 0;
}
