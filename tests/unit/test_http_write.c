/* Serialising a head (http/http_write.h): hop-by-hop fields stay behind (RFC 9110 s7.6.1), the rest
 * go out in order, extras follow, and the size computed first is exactly what is written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_msg.h"
#include "http/http_write.h"
#include "test_util.h"

/* Fields from "Name: value" lines separated by '\n'. A line starting with '-' adds the field and marks
 * it removed. */
static void fill(struct http_msg *m, struct arena *a, const char *spec)
{
    for (const char *p = spec; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        int removed = p[0] == '-';
        const char *name = p + removed;
        const char *colon = memchr(name, ':', len - (size_t)removed);
        ASSERT(colon != NULL);
        const char *v = colon + 1, *end = p + len;
        while (v < end && *v == ' ')
            v++;
        ASSERT_EQ(http_msg_add(m, a, name, (size_t)(colon - name), v, (size_t)(end - v)), 0);
        if (removed) m->fields[m->n_fields - 1].flags |= HTTP_FIELD_REMOVED;
        p = nl ? nl + 1 : NULL;
    }
}

/* Writes the head into a buffer of exactly http_head_size() bytes (so ASan sees any overrun), checks
 * the two agree, and returns it NUL-terminated in out. */
static void write_head(const char *start, const struct http_msg *m, const struct http_extra_field *extra, size_t n_extra, char *out,
                       size_t out_size)
{
    size_t size = http_head_size(start, m, extra, n_extra);
    char *buf = malloc(size);
    ASSERT(buf != NULL);
    size_t n = http_head_write(buf, start, m, extra, n_extra);
    ASSERT_UEQ(n, size);
    ASSERT(n < out_size);
    memcpy(out, buf, n);
    out[n] = '\0';
    free(buf);
}

struct hop_row {
    const char *name;
    const char *fields;
    const char *want; /* fields written, CRLF-terminated */
};

static const struct hop_row hop_rows[] = {
    {"s7.6.1 Connection itself is hop-by-hop", "Connection: close\nAccept: */*", "Accept: */*\r\n"},
    {"s7.6.1 fields named by Connection are hop-by-hop",
     "X-A: 1\nConnection: X-Foo, x-bar\nX-Foo: 2\nAccept: 3\nX-BAR: 4\nX-Baz: 5", "X-A: 1\r\nAccept: 3\r\nX-Baz: 5\r\n"},
    {"s7.6.1 a field named by a later Connection field", "X-Foo: 1\nA: 2\nConnection: a\nConnection: x-foo", ""},
    {"s7.6.1 connection options with OWS and empty elements", "Connection: ,\t x-a ,, x-b ,\nX-A: 1\nX-B: 2\nX-C: 3", "X-C: 3\r\n"},
    {"s7.6.1 connection options are case-insensitive", "CONNECTION: X-LOUD\nx-loud: 1\nX-Quiet: 2", "X-Quiet: 2\r\n"},
    {"s7.6.1 an option naming no field removes nothing else", "Connection: keep-alive, close\nHost: h", "Host: h\r\n"},
    {"s7.6.1 Keep-Alive", "Keep-Alive: timeout=5\nA: 1", "A: 1\r\n"},
    {"s7.6.1 Proxy-Connection", "Proxy-Connection: keep-alive\nA: 1", "A: 1\r\n"},
    {"s7.6.1 TE", "TE: trailers\nA: 1", "A: 1\r\n"},
    {"s6.6.2 Trailer announces fields of this hop's chunked coding", "Trailer: X-Sum\nA: 1", "A: 1\r\n"},
    {"s7.6.1 Transfer-Encoding", "Transfer-Encoding: chunked\nA: 1", "A: 1\r\n"},
    {"s7.8 Upgrade", "Upgrade: websocket\nA: 1", "A: 1\r\n"},
    {"s11.7.2 Proxy-Authorization is for this proxy",
     "Proxy-Authorization: Basic eA==\nAuthorization: Basic eQ==", "Authorization: Basic eQ==\r\n"},
    {"s11.7.1 Proxy-Authenticate is for this proxy", "Proxy-Authenticate: Basic\nWWW-Authenticate: Basic",
     "WWW-Authenticate: Basic\r\n"},
    {"s7.6.1 names are matched case-insensitively", "keep-alive: 1\nTRANSFER-ENCODING: chunked\nupgrade: h2c\nB: 2", "B: 2\r\n"},
    {"s7.6.1 a similar name is another field", "Keep-Alives: 1\nX-Upgrade: 2\nTEE: 3",
     "Keep-Alives: 1\r\nX-Upgrade: 2\r\nTEE: 3\r\n"},
    {"s5.3 end-to-end fields keep their order and duplicates",
     "Cache-Control: a\nVia: 1.0 x\nCache-Control: b\nContent-Length: 5\nSet-Cookie: c=1\nSet-Cookie: d=2",
     "Cache-Control: a\r\nVia: 1.0 x\r\nCache-Control: b\r\nContent-Length: 5\r\nSet-Cookie: c=1\r\nSet-Cookie: d=2\r\n"},
    {"removed fields are not written", "A: 1\n-B: 2\nC: 3\n-Connection: x-d\nX-D: 4", "A: 1\r\nC: 3\r\nX-D: 4\r\n"},
    {"s5.5 an empty field value is written empty", "X-Empty: \nA: 1", "X-Empty: \r\nA: 1\r\n"},
    {"s7.6.1 every fixed hop-by-hop field at once",
     "Connection: close\nKeep-Alive: 1\nProxy-Connection: close\nTE: trailers\nTrailer: X\nTransfer-Encoding: chunked\n"
     "Upgrade: h2c\nProxy-Authorization: x\nProxy-Authenticate: y",
     ""},
};

static void test_hop_by_hop(void)
{
    for (size_t r = 0; r < sizeof(hop_rows) / sizeof(hop_rows[0]); r++) {
        const struct hop_row *row = &hop_rows[r];
        struct arena a;
        ASSERT_EQ(arena_init(&a, 1024, 1 << 16), 0);
        struct http_msg m;
        http_msg_init(&m, 1);
        fill(&m, &a, row->fields);
        http_mark_hop_by_hop(&m);
        char out[2048], want[2048];
        write_head("GET /x HTTP/1.1", &m, NULL, 0, out, sizeof(out));
        snprintf(want, sizeof(want), "GET /x HTTP/1.1\r\n%s\r\n", row->want);
        if (strcmp(out, want) != 0) TEST_FAIL_("%s:\n--- got\n%s--- want\n%s", row->name, out, want);
        /* Marking twice changes nothing. */
        http_mark_hop_by_hop(&m);
        write_head("GET /x HTTP/1.1", &m, NULL, 0, out, sizeof(out));
        if (strcmp(out, want) != 0) TEST_FAIL_("%s (marked twice):\n--- got\n%s--- want\n%s", row->name, out, want);
        arena_free(&a);
    }
}

/* Marking sets the flag and nothing else: the field stays findable for the proxy's own use. */
static void test_hop_mark_keeps_fields_readable(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 1024, 1 << 16), 0);
    struct http_msg m;
    http_msg_init(&m, 1);
    fill(&m, &a, "Connection: close\nTransfer-Encoding: chunked\nHost: h");
    http_mark_hop_by_hop(&m);
    ASSERT_EQ(m.fields[0].flags, HTTP_FIELD_HOP);
    ASSERT_EQ(m.fields[1].flags, HTTP_FIELD_HOP);
    ASSERT_EQ(m.fields[2].flags, 0);
    ASSERT(http_msg_find(&m, "connection") != NULL);
    ASSERT(http_msg_has_token(&m, "transfer-encoding", "chunked"));
    arena_free(&a);
}

/* Extras are written after the message's fields, in the order given; the start line goes first. */
static void test_extras_appended(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 1024, 1 << 16), 0);
    struct http_msg m;
    http_msg_init(&m, 0);
    fill(&m, &a, "Content-Type: text/plain\nConnection: close\nETag: \"x\"");
    http_mark_hop_by_hop(&m);
    const struct http_extra_field extra[] = {
        {"Content-Length", "5"},
        {"Connection", "keep-alive"},
        {"Via", "1.1 larder"},
    };
    char out[1024];
    write_head("HTTP/1.1 200 OK", &m, extra, 3, out, sizeof(out));
    ASSERT_STR_EQ(out, "HTTP/1.1 200 OK\r\n"
                       "Content-Type: text/plain\r\n"
                       "ETag: \"x\"\r\n"
                       "Content-Length: 5\r\n"
                       "Connection: keep-alive\r\n"
                       "Via: 1.1 larder\r\n"
                       "\r\n");
    /* No message at all: start line, extras, blank line. */
    write_head("HTTP/1.1 100 Continue", NULL, NULL, 0, out, sizeof(out));
    ASSERT_STR_EQ(out, "HTTP/1.1 100 Continue\r\n\r\n");
    write_head("0", NULL, extra + 2, 1, out, sizeof(out));
    ASSERT_STR_EQ(out, "0\r\nVia: 1.1 larder\r\n\r\n");
    arena_free(&a);
}

/* The size matches what is written for messages of every shape, including big ones. */
static void test_size_equals_written(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 4096, 1 << 20), 0);
    struct http_msg m;
    http_msg_init(&m, 1);
    static char big[5000];
    memset(big, 'b', sizeof(big) - 1);
    char *out = malloc(1 << 20);
    ASSERT(out != NULL);
    for (int i = 0; i < 60; i++) {
        char name[32];
        snprintf(name, sizeof(name), "X-Field-%d", i);
        size_t vlen = (size_t)(i * 83) % sizeof(big);
        ASSERT_EQ(http_msg_add(&m, &a, name, strlen(name), big, vlen), 0);
        if (i % 5 == 0) m.fields[m.n_fields - 1].flags |= HTTP_FIELD_REMOVED;
        if (i % 7 == 0) m.fields[m.n_fields - 1].flags |= HTTP_FIELD_HOP;
        const struct http_extra_field extra[] = {{"Via", "1.1 x"}, {"X-Empty", ""}};
        size_t n_extra = (size_t)i % 3;
        write_head("POST http://example.com/ HTTP/1.1", &m, extra, n_extra, out, 1 << 20);
        /* Count by hand what should be there. */
        size_t want = strlen("POST http://example.com/ HTTP/1.1") + 2 + 2;
        for (size_t k = 0; k < m.n_fields; k++)
            if (m.fields[k].flags == 0) want += m.fields[k].name_len + 2 + m.fields[k].value_len + 2;
        for (size_t k = 0; k < n_extra; k++)
            want += strlen(extra[k].name) + 2 + strlen(extra[k].value) + 2;
        ASSERT_UEQ(strlen(out), want);
    }
    free(out);
    arena_free(&a);
}

struct reason_row {
    int status;
    const char *want;
};

static const struct reason_row reason_rows[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {413, "Content Too Large"}, /* RFC 9110 s15.5.14 renamed it */
    {414, "URI Too Long"},
    {417, "Expectation Failed"},
    {431, "Request Header Fields Too Large"}, /* RFC 6585 s5 */
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
    {299, ""},
    {999, ""},
    {0, ""},
    {-1, ""},
};

/* RFC 9110 s15: the reason phrases of the status codes the proxy sends or sees most. */
static void test_reason_phrases(void)
{
    for (size_t r = 0; r < sizeof(reason_rows) / sizeof(reason_rows[0]); r++) {
        const char *got = http_reason_phrase(reason_rows[r].status);
        if (got == NULL || strcmp(got, reason_rows[r].want) != 0)
            TEST_FAIL_("reason phrase of %d: \"%s\", want \"%s\"", reason_rows[r].status, got ? got : "(null)",
                       reason_rows[r].want);
    }
}

int main(void)
{
    RUN_TEST(test_hop_by_hop);
    RUN_TEST(test_hop_mark_keeps_fields_readable);
    RUN_TEST(test_extras_appended);
    RUN_TEST(test_size_equals_written);
    RUN_TEST(test_reason_phrases);
    return 0;
}
