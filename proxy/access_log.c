#include "proxy/access_log.h"

#include <stdlib.h>
#include <string.h>

#include "http/http_fmt.h"

/* Longest field copies: an escaped byte takes 3. */
#define URL_MAX 4096
#define TYPE_MAX 256
#define METHOD_MAX 64

/* Bytes a field may not hold as they are: controls, space, DEL and beyond, and '%' itself. */
static int needs_escape(unsigned char c)
{
    return c <= 0x20 || c >= 0x7f || c == '%';
}

/* Squid writes URL and type as they are but never lets a space split a field: escape what would.
 * At most `cap` bytes are written (a longer value is cut, never mid-escape). Runs of bytes that need
 * nothing are copied whole: this runs for every request, and byte-by-byte bounds checks made it the
 * largest single item of a cache hit. */
static char *put_field(char *p, size_t cap, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    if (s == NULL || *s == '\0')
        s = "-";
    char *end = p + cap;
    for (;;) {
        size_t n = 0;
        while (s[n] != '\0' && !needs_escape((unsigned char)s[n]))
            n++;
        if (n > (size_t)(end - p))
            n = (size_t)(end - p);
        memcpy(p, s, n);
        p += n;
        s += n;
        if (*s == '\0' || p == end || end - p < 3)
            return p;
        unsigned char c = (unsigned char)*s++;
        *p++ = '%';
        *p++ = hex[c >> 4];
        *p++ = hex[c & 15];
    }
}

static char *put_str(char *p, const char *s, const char *dflt)
{
    if (s == NULL || *s == '\0')
        s = dflt;
    size_t n = strnlen(s, 256);
    memcpy(p, s, n);
    return p + n;
}

size_t access_log_format(char *out, const struct access_entry *e)
{
    char *p = out;
    p = fmt_u64(p, e->end_ms / 1000);
    *p++ = '.';
    p = fmt_u64_pad(p, e->end_ms % 1000, 3, '0');
    *p++ = ' ';
    p = fmt_u64_pad(p, e->elapsed_ms, 6, ' ');
    *p++ = ' ';
    p = put_str(p, e->client, "-");
    *p++ = ' ';
    p = put_str(p, e->result, "NONE");
    *p++ = '/';
    p = fmt_u64_pad(p, e->status >= 0 && e->status < 1000 ? (uint64_t)e->status : 0, 3, '0');
    *p++ = ' ';
    p = fmt_u64(p, e->bytes);
    *p++ = ' ';
    p = put_field(p, METHOD_MAX, e->method);
    *p++ = ' ';
    p = put_field(p, URL_MAX, e->url);
    p = fmt_str(p, " - ", 3);
    p = put_str(p, e->hierarchy, "HIER_NONE");
    *p++ = '/';
    p = put_str(p, e->peer, "-");
    *p++ = ' ';
    p = put_field(p, TYPE_MAX, e->type);
    *p++ = '\n';
    return (size_t)(p - out);
}

int access_log_buf_init(struct access_log_buf *b, struct log_file *lf, size_t cap)
{
    b->lf = lf;
    b->len = 0;
    b->cap = cap < ACCESS_LINE_MAX * 2 ? ACCESS_LINE_MAX * 2 : cap;
    b->data = malloc(b->cap);
    return b->data != NULL ? 0 : -1;
}

void access_log_flush(struct access_log_buf *b)
{
    if (b->len == 0)
        return;
    /* Whole lines only, in one write: with O_APPEND, lines from several loops never interleave. */
    log_file_write(b->lf, b->data, b->len);
    b->len = 0;
}

void access_log_buf_free(struct access_log_buf *b)
{
    if (b->data == NULL)
        return;
    access_log_flush(b);
    free(b->data);
    b->data = NULL;
}

void access_log_append(struct access_log_buf *b, const struct access_entry *e)
{
    if (b->lf == NULL || b->lf->fd < 0)
        return;
    if (b->data == NULL) {
        /* No buffer (out of memory at start): one write per line, as before buffering. */
        char line[ACCESS_LINE_MAX];
        log_file_write(b->lf, line, access_log_format(line, e));
        return;
    }
    if (b->cap - b->len < ACCESS_LINE_MAX)
        access_log_flush(b);
    b->len += access_log_format(b->data + b->len, e);
}
