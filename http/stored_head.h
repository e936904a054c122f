/* The stored form of a response head: the header field lines a cache keeps, as
 * "Name: value\r\n" repeated, ready to be written to a client after a status line.
 *
 * What is left out: fields marked hop-by-hop or removed (cp_prepare_for_storage() marks those of
 * RFC 9111 s3.1), and the framing fields Content-Length and Transfer-Encoding, because a stored body
 * is de-chunked and every response from the store gets the Content-Length (or Content-Range) of what
 * it actually sends. Age is kept: its value is an input of the age calculation (RFC 9111 s4.2.3) and
 * is replaced, not copied, when a response is served.
 *
 * Pure: no I/O, no clock. stored_head_parse() trusts nothing: a damaged blob is -EINVAL, never a crash.
 */
#ifndef LARDER_HTTP_STORED_HEAD_H
#define LARDER_HTTP_STORED_HEAD_H

#include <stddef.h>

#include "http/arena.h"
#include "http/http_msg.h"

/* Bytes stored_head_write() will write for resp. */
size_t stored_head_size(const struct http_msg *resp);
/* Writes the stored form into buf (stored_head_size() bytes); returns the length. */
size_t stored_head_write(const struct http_msg *resp, char *buf);
/* Rebuilds a response head (status, HTTP/1.1, fields in stored order) from a stored blob; field
 * strings are copied into the arena. 0, -EINVAL (malformed blob) or -ENOMEM. */
int stored_head_parse(const char *blob, size_t len, int status, struct arena *a, struct http_msg *out);
/* The same without copying the strings: the fields point into blob, which it modifies (each line's
 * ':' and CR become NUL) and which must outlive out. For a private copy of a record (a hit's lookup,
 * where copying every field was a tenth of the lookup). On -EINVAL blob may be partly modified. */
int stored_head_parse_in_place(char *blob, size_t len, int status, struct arena *a, struct http_msg *out);

#endif
