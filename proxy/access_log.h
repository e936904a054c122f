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
    double end_time;       /* seconds since the epoch, with milliseconds */
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

void access_log_write(struct log_file *lf, const struct access_entry *e);

#endif
