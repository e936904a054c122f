/* Serialising a message head for the wire.
 *
 * What goes out is always rebuilt from the parsed message, never the received bytes (RFC 9112 s11.2:
 * re-serialising is what keeps a proxy from passing on ambiguous framing). Fields marked hop-by-hop
 * or removed are skipped; the caller adds its own fields (framing, Via, Host) as extras, which are
 * written after the message's fields.
 *
 * The caller sizes the output with http_head_size() and owns the buffer it passes to http_head_write().
 */
#ifndef LARDER_HTTP_WRITE_H
#define LARDER_HTTP_WRITE_H

#include <stddef.h>

#include "http/http_msg.h"

struct http_extra_field {
    const char *name;
    const char *value;
};

/* Marks the fields that apply to one connection only (RFC 9110 s7.6.1): Connection and every field
 * it names, Keep-Alive, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
 * Transfer-Encoding and Upgrade. Content-Length is left alone: the caller decides on framing. */
void http_mark_hop_by_hop(struct http_msg *m);

/* Bytes needed for start line + fields + extras + final CRLF (no NUL). */
size_t http_head_size(const char *start_line, const struct http_msg *m, const struct http_extra_field *extra,
                      size_t n_extra);
/* Writes the head into buf (which has at least http_head_size() bytes); returns the bytes written. */
size_t http_head_write(char *buf, const char *start_line, const struct http_msg *m, const struct http_extra_field *extra,
                       size_t n_extra);

/* Standard reason phrase for a status code, "" when unknown. */
const char *http_reason_phrase(int status);

#endif
