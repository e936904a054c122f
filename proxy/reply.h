/* Responses larder writes itself: errors with a one-line reason, the metrics page, OPTIONS/TRACE
 * answers. Each is a complete message queued on the client's output queue. */
#ifndef LARDER_PROXY_REPLY_H
#define LARDER_PROXY_REPLY_H

#include <stddef.h>

#include "proxy/outq.h"

struct reply_opts {
    int keep_alive;          /* else "Connection: close" */
    int client_http10;       /* keep-alive must then be announced */
    int head_only;           /* HEAD: no body bytes, Content-Length still says how many */
    const char *via_name;    /* visible_hostname */
    const char *content_type;
    const char *extra;       /* extra header lines, each ending in CRLF, or NULL */
};

/* Queues status + body. Returns the bytes queued (head + body), or a negative errno. */
long reply_send(struct outq *q, int status, const char *body, size_t body_len, const struct reply_opts *o);
/* An error: body "larder: <reason>\n", text/plain. */
long reply_error(struct outq *q, int status, const char *reason, const struct reply_opts *o);

#endif
