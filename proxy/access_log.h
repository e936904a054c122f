/* The access log in Squid's native format (squid.conf logformat "squid"), so existing analysers
 * (calamaris, sarg, lightsquid, goaccess --log-format=SQUID) read it unchanged:
 *
 *   %ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
 *   1764302400.123     12 127.0.0.1 TCP_MISS/200 1234 GET http://origin.test/a - HIER_DIRECT/127.0.0.1 text/plain
 */
#ifndef LARDER_PROXY_ACCESS_LOG_H
#define LARDER_PROXY_ACCESS_LOG_H

#include <stdint.h>

#include "proxy/log.h"

struct access_entry {
    uint64_t end_ms;       /* milliseconds since the epoch */
    uint64_t elapsed_ms;
    const char *client;    /* client IP */
    const char *result;    /* TCP_MISS, TCP_HIT, TCP_TUNNEL, TCP_DENIED, NONE ... */
    int status;            /* 0 when no response was sent */
    uint64_t bytes;        /* bytes sent to the client, head included */
    const char *method;
    const char *url;
    const char *hierarchy; /* HIER_DIRECT, HIER_NONE */
    const char *peer;      /* upstream IP or "-" */
    const char *type;      /* Content-Type or "-" */
};

/* The longest line access_log_format writes: fields are cut to bounded lengths (URL 4096 bytes, type
 * 256, method 64, the plain strings 256 each). */
#define ACCESS_LINE_MAX (4096 + 256 + 64 + 5 * 256 + 3 * 20 + 64)

/* One line, newline included, into out (room for ACCESS_LINE_MAX bytes). Returns its length. Pure. */
size_t access_log_format(char *out, const struct access_entry *e);

/* One loop's lines, written with one write(2) per loop iteration (access_log_flush from a check
 * handle) instead of one per request: on small hits that write was a system call per response, and
 * Squid buffers its log too. A line is at most one loop iteration late. Ownership: embedded in the
 * loop's context; lf is shared and outlives it. */
struct access_log_buf {
    struct log_file *lf;
    char *data;
    size_t len, cap;
};

int access_log_buf_init(struct access_log_buf *b, struct log_file *lf, size_t cap);
/* Flushes, then frees. */
void access_log_buf_free(struct access_log_buf *b);
void access_log_append(struct access_log_buf *b, const struct access_entry *e);
void access_log_flush(struct access_log_buf *b);

#endif
