#include "proxy/reply.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "http/http_write.h"

long reply_send(struct outq *q, int status, const char *body, size_t body_len, const struct reply_opts *o)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n"
                     "Via: 1.1 %s\r\n"
                     "%s%s\r\n",
                     status, http_reason_phrase(status), o->content_type ? o->content_type : "text/plain; charset=utf-8",
                     body_len, o->via_name ? o->via_name : "larder",
                     !o->keep_alive ? "Connection: close\r\n" : (o->client_http10 ? "Connection: keep-alive\r\n" : ""),
                     o->extra ? o->extra : "");
    if (n < 0 || (size_t)n >= sizeof(head))
        return -EOVERFLOW;
    int rc = outq_push_copy(q, head, (size_t)n);
    if (rc == 0 && !o->head_only && body_len > 0)
        rc = outq_push_copy(q, body, body_len);
    if (rc != 0)
        return rc;
    outq_flush(q);
    return n + (o->head_only ? 0 : (long)body_len);
}

long reply_error(struct outq *q, int status, const char *reason, const struct reply_opts *o)
{
    char body[512];
    int n = snprintf(body, sizeof(body), "larder: %s\n", reason);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n >= sizeof(body))
        n = sizeof(body) - 1;
    return reply_send(q, status, body, (size_t)n, o);
}
