/* Integer formatting for the per-response hot path (Age, Content-Length, chunk sizes, log lines).
 * snprintf parses its format and goes through stdio's machinery on every call; on a small hit that
 * was about a fifth of larder's instructions. These write digits straight into the caller's buffer.
 *
 * Each returns a pointer just past what it wrote (no NUL). The caller guarantees room: at most 20
 * bytes for a decimal uint64_t, 16 for hex. */
#ifndef LARDER_HTTP_FMT_H
#define LARDER_HTTP_FMT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FMT_U64_MAX 20

static inline char *fmt_u64(char *p, uint64_t v)
{
    char tmp[FMT_U64_MAX];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static inline char *fmt_i64(char *p, int64_t v)
{
    if (v < 0) {
        *p++ = '-';
        return fmt_u64(p, (uint64_t)0 - (uint64_t)v);
    }
    return fmt_u64(p, (uint64_t)v);
}

/* Right-aligned in `width` columns, padded with `pad`: ' ' for "%6llu", '0' for "%03d". Wider numbers
 * are not cut. */
static inline char *fmt_u64_pad(char *p, uint64_t v, size_t width, char pad)
{
    char tmp[FMT_U64_MAX];
    char *end = fmt_u64(tmp, v);
    size_t n = (size_t)(end - tmp);
    for (size_t i = n; i < width; i++)
        *p++ = pad;
    memcpy(p, tmp, n);
    return p + n;
}

/* Lower-case hex without leading zeros, like "%zx" (chunk sizes, RFC 9112 s7.1). */
static inline char *fmt_hex(char *p, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static inline char *fmt_str(char *p, const char *s, size_t len)
{
    memcpy(p, s, len);
    return p + len;
}

/* Copies at most cap - 1 of len bytes into dst and terminates it (cap > 0): a field value cut to a
 * fixed buffer, like snprintf "%.*s" without the format. Returns the bytes copied. */
static inline size_t fmt_copy_cut(char *dst, size_t cap, const char *src, size_t len)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

#endif
