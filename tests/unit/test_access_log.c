/* Unit tests for proxy/access_log (Squid's native "squid" logformat) and http/http_fmt.h, which it is
 * written with: the line must stay what existing log analysers parse. */
#include <stdint.h>
#include <string.h>

#include "http/http_fmt.h"
#include "proxy/access_log.h"
#include "test_util.h"

static void test_fmt(void)
{
    char b[64];
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_u64(b, 0) - b), "0");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_u64(b, 18446744073709551615u) - b), "18446744073709551615");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_i64(b, INT64_MIN) - b), "-9223372036854775808");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_i64(b, -42) - b), "-42");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_u64_pad(b, 12, 6, ' ') - b), "    12");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_u64_pad(b, 1234567, 6, ' ') - b), "1234567");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_u64_pad(b, 7, 3, '0') - b), "007");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_u64_pad(b, 0, 3, '0') - b), "000");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_hex(b, 0) - b), "0");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_hex(b, 0x3ffff) - b), "3ffff");
    ASSERT_MEM_STR_EQ(b, (size_t)(fmt_hex(b, UINT64_MAX) - b), "ffffffffffffffff");
}

static void test_line(void)
{
    char line[ACCESS_LINE_MAX];
    struct access_entry e = {
        .end_ms = 1764302400123, .elapsed_ms = 12, .client = "127.0.0.1", .result = "TCP_MISS", .status = 200,
        .bytes = 1234, .method = "GET", .url = "http://origin.test/a", .hierarchy = "HIER_DIRECT", .peer = "127.0.0.1",
        .type = "text/plain",
    };
    size_t n = access_log_format(line, &e);
    ASSERT_MEM_STR_EQ(line, n,
                      "1764302400.123     12 127.0.0.1 TCP_MISS/200 1234 GET http://origin.test/a - HIER_DIRECT/127.0.0.1 "
                      "text/plain\n");
    /* Milliseconds keep their zeros; no response yet is status 000; empty fields are "-". */
    struct access_entry z = {.end_ms = 5007, .elapsed_ms = 0, .status = 0, .method = "", .url = NULL, .type = ""};
    n = access_log_format(line, &z);
    ASSERT_MEM_STR_EQ(line, n, "5.007      0 - NONE/000 0 - - - HIER_NONE/- -\n");
}

/* Nothing in a field may add a space or a line: analysers split on spaces, and a hostile URL must not
 * forge a log line. */
static void test_escapes_and_bounds(void)
{
    char line[ACCESS_LINE_MAX];
    struct access_entry e = {.end_ms = 1000, .client = "::1", .result = "TCP_HIT", .status = 200, .method = "GET",
                             .url = "http://h/a b\r\n1.0 0 evil%", .hierarchy = "HIER_NONE", .peer = "-",
                             .type = "text/html; charset=\x7f"};
    size_t n = access_log_format(line, &e);
    ASSERT_MEM_STR_EQ(line, n,
                      "1.000      0 ::1 TCP_HIT/200 0 GET http://h/a%20b%0D%0A1.0%200%20evil%25 - HIER_NONE/- "
                      "text/html;%20charset=%7F\n");
    /* A URL of 10,000 escaped bytes is cut at 4096 bytes, whole escapes only, and the line stays in bounds. */
    static char big[10001];
    memset(big, ' ', 10000);
    e.url = big;
    n = access_log_format(line, &e);
    ASSERT(n <= ACCESS_LINE_MAX);
    ASSERT(line[n - 1] == '\n');
    ASSERT(memchr(line, '\n', n - 1) == NULL);
    const char *u = strstr(line, "GET ") + 4;
    const char *sp = strchr(u, ' ');
    ASSERT_EQ(sp - u, 4095); /* 1365 escapes of 3 bytes */
}

int main(void)
{
    test_fmt();
    test_line();
    test_escapes_and_bounds();
    printf("test_access_log: ok\n");
    return 0;
}
