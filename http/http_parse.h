/* HTTP/1.x message parser: the one adapter around llhttp.
 *
 * Feeds bytes as they arrive and reports each message as a head (parsed into a struct http_msg in the
 * caller's arena), then body bytes, then completion with optional trailers. Field names and values
 * split across reads are joined here, in a buffer owned by the parser and bounded by the head limit,
 * so callers always see whole fields.
 *
 * Beyond llhttp's own strictness (it refuses Content-Length with Transfer-Encoding, duplicate
 * Content-Length, bare CR, obs-fold and control bytes in strict mode) the adapter enforces what a
 * proxy must, at head completion:
 *   - RFC 9112 s6.1: Transfer-Encoding in a request must be exactly "chunked" (501 for an unknown
 *     coding, 400 otherwise) and must not appear in an HTTP/1.0 request (s6.1 last paragraph);
 *   - RFC 9112 s3.2: an HTTP/1.1 request needs exactly one Host field;
 *   - RFC 9112 s2.6: only HTTP/1.0 and HTTP/1.1 are spoken here (505 otherwise);
 *   - limits on head bytes, field count and target length (431 / 414).
 *
 * Ownership: the parser is heap-allocated by http_parser_new() and freed by http_parser_free(). The
 * message it fills and the arena belong to the caller (returned by the on_begin callback). Body
 * pointers handed to on_body point into the caller's input buffer and are valid only during the call.
 */
#ifndef LARDER_HTTP_PARSE_H
#define LARDER_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "http/arena.h"
#include "http/http_msg.h"

enum http_parse_kind { HTTP_PARSE_REQUEST, HTTP_PARSE_RESPONSE };

/* Results of http_parser_execute(). Errors are negative and carry a status to answer with. */
enum http_parse_status {
    HTTP_PARSE_OK = 0,      /* every byte consumed */
    HTTP_PARSE_PAUSED = 1,  /* a callback asked to pause; *consumed tells where; call http_parser_resume() */
    HTTP_PARSE_UPGRADE = 2, /* CONNECT head complete: bytes after *consumed belong to the tunnel */
    HTTP_PARSE_ERROR = -1,  /* malformed or refused; see http_parser_error_status() and _reason() */
};

/* Chunk extensions allowed on one chunk line, in bytes (RFC 9112 s7.1.1 lets a recipient limit them). */
#define HTTP_PARSE_MAX_CHUNK_EXT 4096

/* Returned by callbacks to stop the parser right after the current event. */
#define HTTP_PARSE_CB_PAUSE 1
/* Returned by on_head to say "this message has no body" (response to HEAD, as llhttp wants it told). */
#define HTTP_PARSE_CB_NO_BODY 2

struct http_parse_limits {
    size_t max_head_bytes; /* request or status line plus all fields */
    size_t max_fields;
    size_t max_target; /* request-target length (414 above it) */
};

struct http_parse_callbacks {
    /* A new message starts. Return the message to fill and the arena to allocate it in; NULL fails the
     * parse with 500 (the caller could not allocate). */
    struct http_msg *(*on_begin)(void *data, struct arena **arena);
    /* The head is complete and validated; msg->framing says how the body is delimited. Return 0,
     * HTTP_PARSE_CB_PAUSE, HTTP_PARSE_CB_NO_BODY, or a negative value to fail the message (500). */
    int (*on_head)(void *data, struct http_msg *msg);
    /* Body bytes, de-chunked. 0 or HTTP_PARSE_CB_PAUSE; negative fails. */
    int (*on_body)(void *data, const char *at, size_t len);
    /* The message is complete. trailers is NULL when there were none; it lives in the same arena as the
     * head. 0 or HTTP_PARSE_CB_PAUSE; negative fails. */
    int (*on_done)(void *data, struct http_msg *trailers);
};

struct http_parser;

struct http_parser *http_parser_new(enum http_parse_kind kind, const struct http_parse_limits *limits,
                                    const struct http_parse_callbacks *cb, void *data);
void http_parser_free(struct http_parser *p);

/* Parses len bytes. *consumed tells how many were taken (all of them unless PAUSED/UPGRADE/ERROR). */
enum http_parse_status http_parser_execute(struct http_parser *p, const char *buf, size_t len, size_t *consumed);
/* After PAUSED: allow execute() to continue. */
void http_parser_resume(struct http_parser *p);
/* The peer closed the connection: completes a close-delimited response body. HTTP_PARSE_OK when the
 * message ended cleanly (or none was in progress), HTTP_PARSE_ERROR when it was cut short. */
enum http_parse_status http_parser_finish(struct http_parser *p);
/* Is a message partly received (head or body started but not complete)? */
int http_parser_in_message(const struct http_parser *p);
/* Has any byte of the current message's head been seen? */
int http_parser_head_started(const struct http_parser *p);

/* After HTTP_PARSE_ERROR: the HTTP status to answer with (400, 413, 414, 431, 501, 505, 500) and a
 * one-line reason for the client and the log. */
int http_parser_error_status(const struct http_parser *p);
const char *http_parser_error_reason(const struct http_parser *p);

/* Reset to parse a new stream (a connection reused from the pool). */
void http_parser_reset(struct http_parser *p);

#endif
