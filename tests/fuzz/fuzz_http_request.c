/* libFuzzer target: the request side of the proxy, from bytes off a client socket to the head sent
 * upstream.
 *
 * Input: byte 0 is a control byte, the rest is what a client sends (any number of pipelined requests).
 *   - the split point of the second run: (byte0 * len) / 255;
 *   - bit 0x01: small limits (512-byte head, 8 fields, 64-byte target, 4 KiB arena) instead of the
 *     proxy's defaults (64 KiB, 100 fields, 8192-byte target, txn arena);
 *   - bits 0x02 / 0x04 / 0x08: on_head / on_body / on_done sometimes answer HTTP_PARSE_CB_PAUSE, and the
 *     driver resumes as the proxy does when the client drains;
 *   - bit 0x10: a third run, one byte per read.
 *
 * Each run copies every read into its own malloc'd buffer, so ASan sees the adapter read past a read or
 * keep a pointer into an old one. Invariants (abort() when broken):
 *   - every run produces the same transcript of heads, bodies, trailers, upgrades and errors: how the
 *     bytes were split into reads must not change what was parsed;
 *   - errors carry one of the documented statuses and a reason;
 *   - each head is well formed (NUL-terminated strings, trimmed values, framing consistent);
 *   - the request-target: http_uri_parse() agrees with http_uri_is_origin_form(); normalize is
 *     idempotent (parse(normalize(u)) normalises to the same bytes, with the same host and port); Host,
 *     authority and origin-form outputs parse back to the same host/port and a valid origin-form; every
 *     writer returns -ENOSPC, inside the buffer, when given one byte too few;
 *   - the head rebuilt for upstream (hop-by-hop fields marked, Host from the URI, Via; RFC 9112 s11.2)
 *     is exactly http_head_size() bytes and parses back to the same method, target and fields.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_msg.h"
#include "http/http_parse.h"
#include "http/http_uri.h"
#include "http/http_write.h"

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                                           \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

enum {
    CTL_SMALL_LIMITS = 0x01,
    CTL_PAUSE_HEAD = 0x02,
    CTL_PAUSE_BODY = 0x04,
    CTL_PAUSE_DONE = 0x08,
    CTL_BYTEWISE = 0x10,
};

/* ---- transcript of parser events, compared between runs ---- */

struct transcript {
    unsigned char *p;
    size_t len, cap;
};

static void t_put(struct transcript *t, const void *s, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n)
            cap *= 2;
        t->p = realloc(t->p, cap);
        CHECK(t->p != NULL);
        t->cap = cap;
    }
    if (n > 0) memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void t_u64(struct transcript *t, char tag, uint64_t v)
{
    t_put(t, &tag, 1);
    t_put(t, &v, sizeof(v));
}

static void t_str(struct transcript *t, char tag, const char *s, size_t n)
{
    t_u64(t, tag, n);
    t_put(t, s, n);
}

/* ---- one run of the parser over the input ---- */

struct run {
    unsigned ctl;
    struct arena arena; /* the transaction arena: reset for every message, like a new txn */
    struct http_msg msg;
    struct transcript log;
    struct transcript body; /* body bytes of the current message, logged whole at its end */
    unsigned n_msgs, n_body;
    int pause_pending; /* a callback asked to pause: no other may run before execute() returns */
};

/* Every callback answers through this, which records a pause. */
static int answer(struct run *r, int pause)
{
    CHECK(!r->pause_pending);
    r->pause_pending = pause;
    return pause ? HTTP_PARSE_CB_PAUSE : 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void check_field(const struct http_field *f)
{
    CHECK(f->name != NULL && f->value != NULL);
    CHECK(f->name_len > 0);
    CHECK(f->name[f->name_len] == '\0' && f->value[f->value_len] == '\0');
    CHECK(memchr(f->name, ':', f->name_len) == NULL);
    for (size_t i = 0; i < f->name_len; i++)
        CHECK((unsigned char)f->name[i] > 0x20);
    for (size_t i = 0; i < f->value_len; i++)
        CHECK(f->value[i] != '\r' && f->value[i] != '\n' && f->value[i] != '\0');
    /* RFC 9110 s5.5: OWS around the value is not part of it. */
    CHECK(f->value_len == 0 || (!is_ows(f->value[0]) && !is_ows(f->value[f->value_len - 1])));
}

static void log_fields(struct transcript *t, const struct http_msg *m)
{
    t_u64(t, 'n', m->n_fields);
    for (size_t i = 0; i < m->n_fields; i++) {
        check_field(&m->fields[i]);
        CHECK(m->fields[i].flags == 0);
        t_str(t, 'f', m->fields[i].name, m->fields[i].name_len);
        t_str(t, 'v', m->fields[i].value, m->fields[i].value_len);
    }
}

/* Writes a head into a buffer of exactly http_head_size() bytes (ASan guards its end) and checks the
 * writer agrees with the size. The caller frees the result. */
static char *write_head(const char *start, const struct http_msg *m, const struct http_extra_field *extra, size_t n_extra,
                        size_t *len)
{
    size_t size = http_head_size(start, m, extra, n_extra);
    char *buf = malloc(size);
    CHECK(buf != NULL);
    size_t n = http_head_write(buf, start, m, extra, n_extra);
    CHECK(n == size);
    CHECK(n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
    CHECK(memcmp(buf, start, strlen(start)) == 0);
    *len = n;
    return buf;
}

/* ---- request-target checks ---- */

/* Calls a URI writer with a heap buffer of exactly `cap` bytes, so an overflow is an ASan report.
 * Returns the writer's result; *out gets a copy of the output when it fits (caller frees). */
typedef int (*uri_writer)(const struct http_uri *, char *, size_t);

static int write_exact(uri_writer w, const struct http_uri *u, size_t cap, char **out)
{
    char *buf = malloc(cap ? cap : 1);
    CHECK(buf != NULL);
    int rc = w(u, cap ? buf : NULL, cap);
    if (rc >= 0) {
        CHECK((size_t)rc < cap && buf[rc] == '\0' && strlen(buf) == (size_t)rc);
        if (out != NULL) {
            *out = buf;
            return rc;
        }
    }
    free(buf);
    if (out != NULL) *out = NULL;
    return rc;
}

/* A writer's output must fit in rc + 1 bytes, and anything smaller is -ENOSPC (with no write outside). */
static char *check_writer(uri_writer w, const struct http_uri *u)
{
    char *s;
    int rc = write_exact(w, u, 20000, &s);
    if (rc < 0) {
        CHECK(rc == -EINVAL);
        return NULL;
    }
    free(s);
    CHECK(write_exact(w, u, (size_t)rc, NULL) == -ENOSPC);
    CHECK(write_exact(w, u, 0, NULL) == -ENOSPC);
    int rc2 = write_exact(w, u, (size_t)rc + 1, &s);
    CHECK(rc2 == rc);
    return s;
}

static void check_same_host(const struct http_uri *a, const struct http_uri *b)
{
    CHECK(strcmp(a->host, b->host) == 0);
    CHECK(a->host_is_ipv6 == b->host_is_ipv6 && a->host_is_ipv4 == b->host_is_ipv4);
    CHECK(a->port == b->port);
}

static void check_uri(const struct http_msg *m, const struct http_uri *u, int connect)
{
    CHECK(memchr(u->host, '\0', sizeof(u->host)) != NULL);
    for (const char *h = u->host; *h; h++)
        CHECK(!(*h >= 'A' && *h <= 'Z')); /* RFC 9110 s4.2.3: lower-cased */
    switch (u->form) {
    case URI_FORM_ORIGIN:
        CHECK(!connect && u->host[0] == '\0' && u->port == 0);
        CHECK(u->path_and_query == m->target && u->path_and_query_len == m->target_len);
        break;
    case URI_FORM_ABSOLUTE:
        CHECK(!connect && strcmp(u->scheme, "http") == 0 && u->host[0] != '\0' && u->port != 0);
        CHECK(u->path_and_query != NULL && u->path_and_query_len > 0);
        CHECK(u->path_and_query[0] == '/' || u->path_and_query[0] == '?');
        CHECK(u->path_and_query[0] == '/' || u->path_empty);
        if (!(u->path_and_query_len == 1 && u->path_empty))
            CHECK(u->path_and_query >= m->target && u->path_and_query + u->path_and_query_len == m->target + m->target_len);
        CHECK(memchr(u->path_and_query, '#', u->path_and_query_len) == NULL);
        break;
    case URI_FORM_AUTHORITY:
        CHECK(connect && u->host[0] != '\0' && u->port != 0 && u->port_explicit);
        CHECK(u->path_and_query == NULL && u->path_and_query_len == 0);
        break;
    case URI_FORM_ASTERISK:
        CHECK(!connect && m->target_len == 1 && m->target[0] == '*');
        break;
    default:
        CHECK(0);
    }

    /* The cache key: normalising is idempotent, and keeps the destination. */
    char *norm = check_writer(http_uri_normalize, u);
    CHECK((norm != NULL) == (u->form == URI_FORM_ABSOLUTE));
    if (norm != NULL) {
        size_t n = strlen(norm);
        struct http_uri u2;
        const char *why;
        CHECK(http_uri_parse(norm, n, 0, &u2, &why) == 0);
        CHECK(u2.form == URI_FORM_ABSOLUTE);
        check_same_host(u, &u2);
        char *norm2 = check_writer(http_uri_normalize, &u2);
        CHECK(norm2 != NULL && strcmp(norm, norm2) == 0);
        free(norm2);
        free(norm);
    }

    /* Host sent upstream (RFC 9112 s3.2.2) names the same host and port. */
    char *host = check_writer(http_uri_host_header, u);
    CHECK((host != NULL) == (u->host[0] != '\0'));
    if (host != NULL) {
        size_t n = strlen(host);
        char *abs = malloc(n + 9);
        CHECK(abs != NULL);
        memcpy(abs, "http://", 7);
        memcpy(abs + 7, host, n);
        abs[7 + n] = '/';
        struct http_uri u2;
        CHECK(http_uri_parse(abs, n + 8, 0, &u2, NULL) == 0);
        check_same_host(u, &u2);
        free(abs);
        free(host);
    }

    /* The pool key "host:port" reads back as the authority-form of a CONNECT to the same place. */
    char *auth = check_writer(http_uri_authority, u);
    CHECK((auth != NULL) == (u->host[0] != '\0'));
    if (auth != NULL) {
        struct http_uri u2;
        CHECK(http_uri_parse(auth, strlen(auth), 1, &u2, NULL) == 0);
        CHECK(u2.form == URI_FORM_AUTHORITY);
        check_same_host(u, &u2);
        free(auth);
    }

    /* The target sent upstream is a valid origin-form (RFC 9112 s3.2.1); path_and_query_len + 2 bytes are
     * always enough, as the header promises. */
    char *of = check_writer(http_uri_origin_form, u);
    CHECK((of != NULL) == (u->form == URI_FORM_ABSOLUTE || u->form == URI_FORM_ORIGIN));
    if (of != NULL) {
        size_t n = strlen(of);
        CHECK(n <= u->path_and_query_len + 1);
        CHECK(http_uri_is_origin_form(of, n));
        free(of);
        char *s;
        CHECK(write_exact(http_uri_origin_form, u, u->path_and_query_len + 2, &s) == (int)n);
        free(s);
    }
}

/* ---- the rebuilt head parses back to what was meant ---- */

struct reparse {
    struct arena arena;
    struct http_msg msg;
    int heads;
};

static struct http_msg *rp_begin(void *data, struct arena **a)
{
    struct reparse *r = data;
    *a = &r->arena;
    return &r->msg;
}

static int rp_head(void *data, struct http_msg *m)
{
    (void)m;
    ((struct reparse *)data)->heads++;
    return HTTP_PARSE_CB_PAUSE; /* only the head matters */
}

static int rp_body(void *data, const char *at, size_t len)
{
    (void)data, (void)at, (void)len;
    return 0;
}

static int rp_done(void *data, struct http_msg *trailers)
{
    (void)data, (void)trailers;
    return 0;
}

static void check_reparse(const char *head, size_t len, const struct http_msg *fwd, const char *method, const char *target,
                          const struct http_extra_field *extra, size_t n_extra)
{
    struct reparse r;
    memset(&r, 0, sizeof(r));
    CHECK(arena_init(&r.arena, 8192, 1u << 24) == 0);
    struct http_parse_limits lim = {1u << 24, 1u << 20, 1u << 24};
    struct http_parse_callbacks cb = {rp_begin, rp_head, rp_body, rp_done};
    struct http_parser *p = http_parser_new(HTTP_PARSE_REQUEST, &lim, &cb, &r);
    CHECK(p != NULL);
    size_t consumed;
    enum http_parse_status st = http_parser_execute(p, head, len, &consumed);
    if (st == HTTP_PARSE_ERROR || r.heads != 1) {
        fprintf(stderr, "rebuilt head refused (%d %s):\n%.*s\n", http_parser_error_status(p), http_parser_error_reason(p), (int)len,
                head);
        CHECK(0);
    }
    CHECK(consumed == len);
    const struct http_msg *m = &r.msg;
    CHECK(strcmp(m->method_name, method) == 0);
    CHECK(m->target_len == strlen(target) && memcmp(m->target, target, m->target_len) == 0);
    CHECK(m->version_major == 1 && m->version_minor == 1);
    size_t k = 0;
    for (size_t i = 0; i < fwd->n_fields; i++) {
        const struct http_field *f = &fwd->fields[i];
        if (f->flags & (HTTP_FIELD_HOP | HTTP_FIELD_REMOVED)) continue;
        CHECK(k < m->n_fields);
        const struct http_field *g = &m->fields[k++];
        CHECK(g->name_len == f->name_len && memcmp(g->name, f->name, f->name_len) == 0);
        CHECK(g->value_len == f->value_len && memcmp(g->value, f->value, f->value_len) == 0);
    }
    for (size_t i = 0; i < n_extra; i++) {
        CHECK(k < m->n_fields);
        const struct http_field *g = &m->fields[k++];
        CHECK(g->name_len == strlen(extra[i].name) && memcmp(g->name, extra[i].name, g->name_len) == 0);
        CHECK(g->value_len == strlen(extra[i].value) && memcmp(g->value, extra[i].value, g->value_len) == 0);
    }
    CHECK(k == m->n_fields);
    http_parser_free(p);
    arena_free(&r.arena);
}

/* What proxy/txn_fetch.c does before sending a request upstream. */
static void forward_head(struct run *r, const struct http_msg *m, const struct http_uri *u)
{
    struct http_msg fwd;
    if (http_msg_clone(&fwd, m, &r->arena) != 0) {
        CHECK(arena_overflowed(&r->arena));
        return;
    }
    CHECK(fwd.n_fields == m->n_fields);
    char *target;
    if (m->method == HTTP_METHOD_OPTIONS && u->path_empty && u->path_and_query[0] == '/') {
        target = strdup("*"); /* RFC 9112 s3.2.4 */
    } else {
        target = malloc(u->path_and_query_len + 2);
        CHECK(target != NULL);
        CHECK(http_uri_origin_form(u, target, u->path_and_query_len + 2) > 0);
    }
    char host[HTTP_URI_HOST_MAX + 16];
    CHECK(http_uri_host_header(u, host, sizeof(host)) > 0);
    http_mark_hop_by_hop(&fwd);
    http_msg_remove(&fwd, "host");
    http_msg_remove(&fwd, "content-length");
    /* The original is untouched by marks on the clone. */
    for (size_t i = 0; i < m->n_fields; i++)
        CHECK(m->fields[i].flags == 0);
    for (size_t i = 0; i < fwd.n_fields; i++) {
        const struct http_field *f = &fwd.fields[i];
        if (http_name_eq(f->name, f->name_len, "connection") || http_name_eq(f->name, f->name_len, "transfer-encoding") ||
            http_name_eq(f->name, f->name_len, "upgrade") || http_name_eq(f->name, f->name_len, "te") ||
            http_name_eq(f->name, f->name_len, "host"))
            CHECK(f->flags & (HTTP_FIELD_HOP | HTTP_FIELD_REMOVED));
    }
    CHECK(http_msg_find(&fwd, "host") == NULL && http_msg_count(&fwd, "content-length") == 0);

    char *start = arena_printf(&r->arena, "%.*s %s HTTP/1.1", (int)m->method_len, m->method_name, target);
    if (start == NULL) {
        CHECK(arena_overflowed(&r->arena));
        free(target);
        return;
    }
    char via[64], clen[32];
    snprintf(via, sizeof(via), "%d.%d larder", m->version_major, m->version_minor);
    struct http_extra_field extra[4];
    size_t n = 0;
    extra[n++] = (struct http_extra_field){"Host", host};
    if (m->framing == HTTP_BODY_LENGTH) {
        snprintf(clen, sizeof(clen), "%llu", (unsigned long long)m->content_length);
        extra[n++] = (struct http_extra_field){"Content-Length", clen};
    } else if (m->framing == HTTP_BODY_CHUNKED) {
        extra[n++] = (struct http_extra_field){"Transfer-Encoding", "chunked"};
    }
    extra[n++] = (struct http_extra_field){"Via", via};
    size_t len;
    char *head = write_head(start, &fwd, extra, n, &len);
    check_reparse(head, len, &fwd, m->method_name, target, extra, n);
    free(head);
    free(target);
}

static void process_request(struct run *r, struct http_msg *m)
{
    CHECK(m->is_request);
    CHECK(m->version_major == 1 && (m->version_minor == 0 || m->version_minor == 1));
    CHECK(m->method_name != NULL && strlen(m->method_name) == m->method_len && m->method_len > 0);
    CHECK(m->method == http_method_from_name(m->method_name, m->method_len));
    CHECK(m->target != NULL && m->target[m->target_len] == '\0');
    CHECK(m->framing == HTTP_BODY_NONE || m->framing == HTTP_BODY_LENGTH || m->framing == HTTP_BODY_CHUNKED);
    CHECK(m->framing != HTTP_BODY_LENGTH || m->content_length > 0);
    CHECK(m->method != HTTP_METHOD_CONNECT || m->framing == HTTP_BODY_NONE);
    /* RFC 9112 s3.2: one Host at most, and exactly one in HTTP/1.1. */
    size_t hosts = http_msg_count(m, "host");
    CHECK(hosts <= 1 && (m->version_minor == 0 || hosts == 1));

    int connect = m->method == HTTP_METHOD_CONNECT;
    struct http_uri u;
    const char *why = "unset";
    int rc = http_uri_parse(m->target, m->target_len, connect, &u, &why);
    if (rc != 0) {
        CHECK(rc == -EINVAL || rc == -EPROTONOSUPPORT);
        CHECK(why != NULL && why[0] != '\0');
        static const struct http_uri zero;
        CHECK(memcmp(&u, &zero, sizeof(u)) == 0);
    } else {
        CHECK(why == NULL);
    }
    if (!connect) CHECK(http_uri_is_origin_form(m->target, m->target_len) == (rc == 0 && u.form == URI_FORM_ORIGIN));
    if (rc != 0) return;
    check_uri(m, &u, connect);
    if (u.form == URI_FORM_ABSOLUTE) forward_head(r, m, &u);
}

static struct http_msg *on_begin(void *data, struct arena **arena)
{
    struct run *r = data;
    CHECK(!r->pause_pending);
    arena_reset(&r->arena);
    CHECK(r->body.len == 0);
    r->n_msgs++;
    *arena = &r->arena;
    return &r->msg;
}

static int on_head(void *data, struct http_msg *m)
{
    struct run *r = data;
    CHECK(!r->pause_pending);
    CHECK(m == &r->msg);
    t_str(&r->log, 'M', m->method_name ? m->method_name : "", m->method_name ? m->method_len : 0);
    t_str(&r->log, 'T', m->target ? m->target : "", m->target ? m->target_len : 0);
    t_u64(&r->log, 'V', (uint64_t)(m->version_major * 10 + m->version_minor));
    t_u64(&r->log, 'F', m->framing);
    t_u64(&r->log, 'L', m->content_length);
    t_u64(&r->log, 'K', (uint64_t)m->keep_alive);
    t_u64(&r->log, 'X', (uint64_t)m->expect_continue);
    log_fields(&r->log, m);
    process_request(r, m);
    return answer(r, (r->ctl & CTL_PAUSE_HEAD) && (r->n_msgs & 1));
}

static int on_body(void *data, const char *at, size_t len)
{
    struct run *r = data;
    CHECK(!r->pause_pending);
    CHECK(len > 0);
    t_put(&r->body, at, len); /* how the bytes were cut into calls is not part of the message */
    r->n_body++;
    return answer(r, (r->ctl & CTL_PAUSE_BODY) && r->n_body % 3 == 1);
}

static int on_done(void *data, struct http_msg *trailers)
{
    struct run *r = data;
    CHECK(!r->pause_pending);
    t_str(&r->log, 'B', (const char *)r->body.p, r->body.len);
    r->body.len = 0;
    t_put(&r->log, "D", 1);
    if (trailers != NULL) {
        log_fields(&r->log, trailers);
        /* The trailer section as proxy/txn_fetch.c forwards it. */
        http_mark_hop_by_hop(trailers);
        size_t len;
        free(write_head("0", trailers, NULL, 0, &len));
    }
    return answer(r, (r->ctl & CTL_PAUSE_DONE) && (r->n_msgs & 2));
}

static void check_error(const struct http_parser *p)
{
    int st = http_parser_error_status(p);
    CHECK(st == 400 || st == 413 || st == 414 || st == 431 || st == 500 || st == 501 || st == 505);
    const char *why = http_parser_error_reason(p);
    CHECK(why != NULL && why[0] != '\0');
}

/* Feeds one read, resuming after every pause. 1: the parser takes more input; 0: it stopped. */
static int feed(struct run *r, struct http_parser *p, const char *buf, size_t len, size_t base)
{
    size_t off = 0;
    unsigned stalls = 0;
    for (;;) {
        size_t consumed = SIZE_MAX;
        enum http_parse_status st = http_parser_execute(p, buf + off, len - off, &consumed);
        CHECK(consumed <= len - off);
        CHECK(!r->pause_pending || st == HTTP_PARSE_PAUSED); /* a pause asked for is reported */
        r->pause_pending = 0;
        off += consumed;
        switch (st) {
        case HTTP_PARSE_OK:
            CHECK(off == len);
            return 1;
        case HTTP_PARSE_PAUSED:
            stalls = consumed == 0 ? stalls + 1 : 0;
            CHECK(stalls < 16); /* resuming must make progress */
            http_parser_resume(p);
            continue;
        case HTTP_PARSE_UPGRADE:
            t_u64(&r->log, 'U', base + off);
            return 0;
        case HTTP_PARSE_ERROR:
            check_error(p);
            /* Which error wins may depend on where reads end (a limit seen on a partial span before a bad
             * byte after it); that an error happened, and where in the message stream, may not. */
            t_put(&r->log, "E", 1);
            return 0;
        default:
            CHECK(0);
        }
    }
}

/* Parses in[0..n) in reads of at most `chunk` bytes after a first read of `first` bytes. */
static void run(struct run *r, unsigned ctl, const char *in, size_t n, size_t first, size_t chunk)
{
    memset(r, 0, sizeof(*r));
    r->ctl = ctl;
    struct http_parse_limits lim;
    size_t arena_limit;
    if (ctl & CTL_SMALL_LIMITS) {
        lim = (struct http_parse_limits){512, 8, 64};
        arena_limit = 4096;
    } else {
        lim = (struct http_parse_limits){65536, 100, 8192};
        arena_limit = 65536 * 4 + 1024 * 1024;
    }
    CHECK(arena_init(&r->arena, 8192, arena_limit) == 0);
    struct http_parse_callbacks cb = {on_begin, on_head, on_body, on_done};
    struct http_parser *p = http_parser_new(HTTP_PARSE_REQUEST, &lim, &cb, r);
    CHECK(p != NULL);
    size_t off = 0;
    int more = 1;
    for (int reads = 0; more; reads++) {
        size_t len = reads == 0 ? first : chunk;
        if (len > n - off) len = n - off;
        char *buf = malloc(len ? len : 1);
        CHECK(buf != NULL);
        memcpy(buf, in + off, len);
        more = feed(r, p, buf, len, off);
        free(buf);
        off += len;
        if (off == n) break;
    }
    if (more) {
        t_u64(&r->log, 'I', (uint64_t)http_parser_in_message(p));
        t_u64(&r->log, 'S', (uint64_t)http_parser_head_started(p));
        t_str(&r->log, 'P', (const char *)r->body.p, r->body.len);
    }
    free(r->body.p);
    http_parser_free(p);
    arena_free(&r->arena);
}

static void compare(const struct run *a, const struct run *b)
{
    if (a->log.len != b->log.len || (a->log.len && memcmp(a->log.p, b->log.p, a->log.len) != 0)) {
        fprintf(stderr, "transcripts differ: %zu vs %zu bytes\n", a->log.len, b->log.len);
        CHECK(0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned ctl = data[0];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;

    struct run whole, split;
    run(&whole, ctl, in, n, n, n);
    run(&split, ctl, in, n, ctl * n / 255, n);
    compare(&whole, &split);
    free(split.log.p);
    if ((ctl & CTL_BYTEWISE) && n <= 2048) {
        struct run bytes;
        run(&bytes, ctl, in, n, 1, 1);
        compare(&whole, &bytes);
        free(bytes.log.p);
    }
    free(whole.log.p);
    return 0;
}
