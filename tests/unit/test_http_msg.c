/* The message model (http/http_msg.h): the field vector and its lookups, list-token matching and
 * method names. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_msg.h"
#include "test_util.h"

static void add(struct http_msg *m, struct arena *a, const char *name, const char *value)
{
    ASSERT_EQ(http_msg_add(m, a, name, strlen(name), value, strlen(value)), 0);
}

/* All live fields as "name: value\n" lines, in order. */
static const char *dump(const struct http_msg *m, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < m->n_fields; i++) {
        const struct http_field *f = &m->fields[i];
        if (f->flags & HTTP_FIELD_REMOVED) continue;
        n += (size_t)snprintf(buf + n, size - n, "%s: %s\n", f->name, f->value);
        ASSERT(n < size);
    }
    return buf;
}

static void test_init(void)
{
    struct http_msg m;
    memset(&m, 0x5a, sizeof(m));
    http_msg_init(&m, 1);
    ASSERT_EQ(m.is_request, 1);
    ASSERT_EQ(m.version_major, 1);
    ASSERT_EQ(m.version_minor, 1);
    ASSERT_UEQ(m.n_fields, 0);
    ASSERT(m.fields == NULL);
    ASSERT_EQ(m.framing, HTTP_BODY_NONE);
    ASSERT(http_msg_find(&m, "host") == NULL);
    ASSERT_UEQ(http_msg_count(&m, "host"), 0);
    ASSERT_UEQ(http_msg_remove(&m, "host"), 0);
    ASSERT_EQ(http_msg_has_token(&m, "connection", "close"), 0);
    http_msg_init(&m, 0);
    ASSERT_EQ(m.is_request, 0);
}

/* RFC 9110 s5.1: field names are case-insensitive; the stored name keeps the case it came in. */
static void test_add_find_case_insensitive(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 512, 1 << 16), 0);
    struct http_msg m;
    http_msg_init(&m, 1);
    add(&m, &a, "Host", "example.com");
    add(&m, &a, "X-Mixed-CASE", "v");
    /* Name and value are copied: a counted name that is not NUL-terminated stays counted. */
    char scratch[] = "Acceptable";
    ASSERT_EQ(http_msg_add(&m, &a, scratch, 6, "text/html;x", 9), 0);
    memset(scratch, 'Z', sizeof(scratch) - 1);

    static const char *const host_names[] = {"host", "HOST", "Host", "hOsT"};
    for (size_t i = 0; i < 4; i++) {
        const struct http_field *f = http_msg_find(&m, host_names[i]);
        ASSERT(f != NULL);
        ASSERT_STR_EQ(f->name, "Host");
        ASSERT_MEM_STR_EQ(f->value, f->value_len, "example.com");
    }
    const struct http_field *f = http_msg_find(&m, "x-mixed-case");
    ASSERT(f != NULL);
    ASSERT_STR_EQ(f->name, "X-Mixed-CASE");
    f = http_msg_find(&m, "accept");
    ASSERT(f != NULL);
    ASSERT_STR_EQ(f->name, "Accept");
    ASSERT_UEQ(f->name_len, 6);
    ASSERT_STR_EQ(f->value, "text/html");
    ASSERT_UEQ(f->value_len, 9);
    /* A prefix or an extension of a name is another name. */
    ASSERT(http_msg_find(&m, "hos") == NULL);
    ASSERT(http_msg_find(&m, "hostx") == NULL);
    ASSERT(http_msg_find(&m, "") == NULL);

    ASSERT(http_name_eq("Content-Length", 14, "content-length"));
    ASSERT(!http_name_eq("Content-Length", 13, "content-length"));
    ASSERT(!http_name_eq("Content-Lengthy", 15, "content-length"));
    ASSERT(http_name_eq("", 0, ""));
    arena_free(&a);
}

/* RFC 9110 s5.3: several fields with one name form a list, in order; find_next walks it. */
static void test_find_next_and_count(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 512, 1 << 16), 0);
    struct http_msg m;
    http_msg_init(&m, 0);
    add(&m, &a, "Cache-Control", "max-age=1");
    add(&m, &a, "Via", "1.1 a");
    add(&m, &a, "cache-control", "no-transform");
    add(&m, &a, "Date", "x");
    add(&m, &a, "CACHE-CONTROL", "public");

    static const char *const want[] = {"max-age=1", "no-transform", "public"};
    size_t i = 0;
    for (const struct http_field *f = http_msg_find(&m, "Cache-Control"); f != NULL; f = http_msg_find_next(&m, f)) {
        ASSERT(i < 3);
        ASSERT_STR_EQ(f->value, want[i]);
        i++;
    }
    ASSERT_UEQ(i, 3);
    ASSERT_UEQ(http_msg_count(&m, "cache-control"), 3);
    ASSERT_UEQ(http_msg_count(&m, "via"), 1);
    ASSERT_UEQ(http_msg_count(&m, "age"), 0);
    /* find_next from the last one ends the walk. */
    const struct http_field *date = http_msg_find(&m, "date");
    ASSERT(date != NULL);
    ASSERT(http_msg_find_next(&m, date) == NULL);
    arena_free(&a);
}

/* Removal marks fields dead: lookups, counts and later removals skip them; the others keep their order. */
static void test_remove(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 512, 1 << 16), 0);
    struct http_msg m;
    http_msg_init(&m, 1);
    add(&m, &a, "A", "1");
    add(&m, &a, "Accept", "x");
    add(&m, &a, "B", "2");
    add(&m, &a, "ACCEPT", "y");
    add(&m, &a, "C", "3");
    ASSERT_UEQ(http_msg_remove(&m, "accept"), 2);
    ASSERT(http_msg_find(&m, "Accept") == NULL);
    ASSERT_UEQ(http_msg_count(&m, "accept"), 0);
    ASSERT_EQ(http_msg_has_token(&m, "accept", "x"), 0);
    ASSERT_UEQ(http_msg_remove(&m, "accept"), 0);
    ASSERT_UEQ(http_msg_remove(&m, "nothing"), 0);
    char buf[256];
    ASSERT_STR_EQ(dump(&m, buf, sizeof(buf)), "A: 1\nB: 2\nC: 3\n");
    /* find_next skips a removed field in the middle of a list. */
    add(&m, &a, "L", "first");
    add(&m, &a, "L", "gone");
    add(&m, &a, "L", "third");
    m.fields[m.n_fields - 2].flags |= HTTP_FIELD_REMOVED;
    const struct http_field *f = http_msg_find(&m, "l");
    ASSERT_STR_EQ(f->value, "first");
    f = http_msg_find_next(&m, f);
    ASSERT(f != NULL);
    ASSERT_STR_EQ(f->value, "third");
    ASSERT_UEQ(http_msg_count(&m, "l"), 2);
    arena_free(&a);
}

/* set replaces every field of that name with one, placed at the end. */
static void test_set(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 512, 1 << 16), 0);
    struct http_msg m;
    http_msg_init(&m, 0);
    add(&m, &a, "Age", "1");
    add(&m, &a, "ETag", "\"a\"");
    add(&m, &a, "age", "2");
    ASSERT_EQ(http_msg_set(&m, &a, "Age", "30", 2), 0);
    ASSERT_UEQ(http_msg_count(&m, "AGE"), 1);
    char buf[256];
    ASSERT_STR_EQ(dump(&m, buf, sizeof(buf)), "ETag: \"a\"\nAge: 30\n");
    /* The value is counted: only value_len bytes are taken. */
    ASSERT_EQ(http_msg_set(&m, &a, "X-New", "abcdef", 3), 0);
    ASSERT_STR_EQ(http_msg_find(&m, "x-new")->value, "abc");
    ASSERT_UEQ(http_msg_find(&m, "x-new")->value_len, 3);
    arena_free(&a);
}

/* The vector starts at 16 and grows in the arena; growing keeps every earlier field intact. */
static void test_growth_past_16_fields(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 256, 1 << 20), 0);
    struct http_msg m;
    http_msg_init(&m, 1);
    enum { N = 100 };
    for (int i = 0; i < N; i++) {
        char name[16], value[16];
        snprintf(name, sizeof(name), "X-F%d", i);
        snprintf(value, sizeof(value), "v%d", i * 7);
        add(&m, &a, name, value);
        ASSERT_UEQ(m.n_fields, (size_t)i + 1);
        ASSERT(m.cap_fields >= m.n_fields);
    }
    for (int i = 0; i < N; i++) {
        char name[16], value[16];
        snprintf(name, sizeof(name), "x-f%d", i);
        snprintf(value, sizeof(value), "v%d", i * 7);
        const struct http_field *f = http_msg_find(&m, name);
        ASSERT(f != NULL);
        ASSERT(f == &m.fields[i]);
        ASSERT_STR_EQ(f->value, value);
        ASSERT_EQ(f->flags, 0);
    }
    arena_free(&a);
}

/* An arena that runs out makes add fail with -ENOMEM and leaves the message as it was. */
static void test_add_arena_overflow(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 1024, 1024), 0);
    struct http_msg m;
    http_msg_init(&m, 1);
    add(&m, &a, "Host", "h");
    char big[2048];
    memset(big, 'v', sizeof(big));
    ASSERT_EQ(http_msg_add(&m, &a, "X-Big", 5, big, sizeof(big)), -ENOMEM);
    ASSERT_EQ(arena_overflowed(&a), 1);
    ASSERT_UEQ(m.n_fields, 1);
    ASSERT(http_msg_find(&m, "x-big") == NULL);
    ASSERT_STR_EQ(http_msg_find(&m, "host")->value, "h");
    /* A full vector that cannot grow fails the same way. */
    struct arena small;
    /* Room for the first vector of 16 and 16 one-byte names and values, each rounded to the alignment. */
    const size_t al = _Alignof(max_align_t);
    size_t vec = (16 * sizeof(struct http_field) + al - 1) / al * al;
    ASSERT_EQ(arena_init(&small, 64, vec + 16 * 2 * al), 0);
    struct http_msg m2;
    http_msg_init(&m2, 1);
    int rc = 0, added = 0;
    while ((rc = http_msg_add(&m2, &small, "N", 1, "v", 1)) == 0)
        added++;
    ASSERT_EQ(rc, -ENOMEM);
    ASSERT_EQ(added, 16);
    ASSERT_UEQ(m2.n_fields, 16);
    arena_free(&small);
    arena_free(&a);
}

/* ---- list tokens (RFC 9110 s5.6.1) ---- */

struct token_row {
    const char *name;
    const char *values[3]; /* up to three fields called "Connection" */
    const char *token;
    int want;
};

static const struct token_row token_rows[] = {
    {"s5.6.1 a single element", {"close"}, "close", 1},
    {"s5.6.1 tokens compare case-insensitively", {"Keep-Alive"}, "keep-alive", 1},
    {"s7.6.1 connection options are case-insensitive", {"UPGRADE"}, "upgrade", 1},
    {"s5.6.1 element in the middle of a list", {"keep-alive, Upgrade, te"}, "upgrade", 1},
    {"s5.6.1 element at the end", {"a,b,c"}, "c", 1},
    {"s5.6.1 OWS around elements", {"a ,\t close\t , b"}, "close", 1},
    {"s5.6.1 empty elements are ignored", {",, ,close,,"}, "close", 1},
    {"s5.6.1 the list may span several fields", {"a, b", "c", "close"}, "close", 1},
    {"s5.6.1 a prefix is another token", {"closed"}, "close", 0},
    {"s5.6.1 a suffix is another token", {"x-close"}, "close", 0},
    {"s5.6.1 the token itself longer than the element", {"clos"}, "close", 0},
    {"s5.6.1 empty field value has no elements", {""}, "close", 0},
    {"s5.6.1 only separators", {" , ,\t"}, "close", 0},
    {"s5.6.1 a parameterised element is not the bare token", {"close;q=1"}, "close", 0},
    {"s5.6.1 inner whitespace is part of the element", {"clo se"}, "close", 0},
    {"s5.6.1 absent field", {NULL}, "close", 0},
    {"s5.6.4 a comma inside a quoted string does not end the element", {"foo=\"a, close\""}, "close", 0},
    {"s5.6.4 a quoted string spanning several commas", {"foo=\"a,close,b\", bar"}, "close", 0},
    {"s5.6.4 an element after a quoted string", {"foo=\"a, b\", close"}, "close", 1},
    {"s5.6.4 an escaped quote does not end the quoted string", {"foo=\"a\\\", close\""}, "close", 0},
    {"s5.6.4 an unterminated quoted string runs to the end", {"foo=\"a, close"}, "close", 0},
};

static void test_has_token(void)
{
    for (size_t r = 0; r < sizeof(token_rows) / sizeof(token_rows[0]); r++) {
        const struct token_row *row = &token_rows[r];
        struct arena a;
        ASSERT_EQ(arena_init(&a, 512, 1 << 16), 0);
        struct http_msg m;
        http_msg_init(&m, 1);
        add(&m, &a, "Host", "close"); /* another field's value never matches */
        for (size_t i = 0; i < 3 && row->values[i] != NULL; i++) {
            add(&m, &a, i % 2 ? "CONNECTION" : "Connection", row->values[i]);
            add(&m, &a, "X-Between", "close");
        }
        int got = http_msg_has_token(&m, "connection", row->token);
        if (got != row->want) TEST_FAIL_("%s: has_token(%s) = %d, want %d", row->name, row->token, got, row->want);
        arena_free(&a);
    }
}

/* A token in a removed field does not count. */
static void test_has_token_skips_removed(void)
{
    struct arena a;
    ASSERT_EQ(arena_init(&a, 512, 1 << 16), 0);
    struct http_msg m;
    http_msg_init(&m, 1);
    add(&m, &a, "Connection", "close");
    ASSERT_EQ(http_msg_has_token(&m, "Connection", "close"), 1);
    http_msg_remove(&m, "connection");
    ASSERT_EQ(http_msg_has_token(&m, "Connection", "close"), 0);
    arena_free(&a);
}

/* ---- methods (RFC 9110 s9.1: the method token is case-sensitive) ---- */

struct method_row {
    const char *name;
    const char *text;
    size_t len;
    enum http_method want;
};

static const struct method_row method_rows[] = {
    {"s9.3.1 GET", "GET", 3, HTTP_METHOD_GET},
    {"s9.3.2 HEAD", "HEAD", 4, HTTP_METHOD_HEAD},
    {"s9.3.3 POST", "POST", 4, HTTP_METHOD_POST},
    {"s9.3.4 PUT", "PUT", 3, HTTP_METHOD_PUT},
    {"s9.3.5 DELETE", "DELETE", 6, HTTP_METHOD_DELETE},
    {"s9.3.6 CONNECT", "CONNECT", 7, HTTP_METHOD_CONNECT},
    {"s9.3.7 OPTIONS", "OPTIONS", 7, HTTP_METHOD_OPTIONS},
    {"s9.3.8 TRACE", "TRACE", 5, HTTP_METHOD_TRACE},
    {"RFC 5789 PATCH", "PATCH", 5, HTTP_METHOD_PATCH},
    {"s9.1 methods are case-sensitive: get", "get", 3, HTTP_METHOD_OTHER},
    {"s9.1 methods are case-sensitive: Head", "Head", 4, HTTP_METHOD_OTHER},
    {"s9.1 an unregistered method is forwarded by name", "PROPFIND", 8, HTTP_METHOD_OTHER},
    {"s9.1 the length decides: GETX counted as 3 is GET", "GETX", 3, HTTP_METHOD_GET},
    {"s9.1 the length decides: GETX counted as 4 is not GET", "GETX", 4, HTTP_METHOD_OTHER},
    {"s9.1 a prefix of a method is not the method", "CONNEC", 6, HTTP_METHOD_OTHER},
    {"s9.1 empty", "", 0, HTTP_METHOD_OTHER},
};

static void test_method_names(void)
{
    for (size_t r = 0; r < sizeof(method_rows) / sizeof(method_rows[0]); r++) {
        const struct method_row *row = &method_rows[r];
        enum http_method got = http_method_from_name(row->text, row->len);
        if (got != row->want)
            TEST_FAIL_("%s: http_method_from_name(\"%.*s\") = %d, want %d", row->name, (int)row->len, row->text, got, row->want);
    }
}

int main(void)
{
    RUN_TEST(test_init);
    RUN_TEST(test_add_find_case_insensitive);
    RUN_TEST(test_find_next_and_count);
    RUN_TEST(test_remove);
    RUN_TEST(test_set);
    RUN_TEST(test_growth_past_16_fields);
    RUN_TEST(test_add_arena_overflow);
    RUN_TEST(test_has_token);
    RUN_TEST(test_has_token_skips_removed);
    RUN_TEST(test_method_names);
    return 0;
}
