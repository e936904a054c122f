/* The HTTP/1.x message model: one request or response head, as parsed or as about to be written.
 *
 * Every string (method, target, reason, field names and values) lives in the transaction's arena and
 * is NUL-terminated, with its length kept beside it; nothing here calls malloc. The field vector is
 * in arrival order, as RFC 9110 s5.3 requires for fields that may be combined.
 *
 * Field names keep the case they arrived in (some peers care) and are compared case-insensitively
 * (RFC 9110 s5.1).
 */
#ifndef LARDER_HTTP_MSG_H
#define LARDER_HTTP_MSG_H

#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <stdint.h>

#include "http/arena.h"

/* Methods the proxy treats specially; everything else is HTTP_METHOD_OTHER and forwarded by name. */
enum http_method {
    HTTP_METHOD_OTHER = 0,
    HTTP_METHOD_GET,
    HTTP_METHOD_HEAD,
    HTTP_METHOD_POST,
    HTTP_METHOD_PUT,
    HTTP_METHOD_DELETE,
    HTTP_METHOD_CONNECT,
    HTTP_METHOD_OPTIONS,
    HTTP_METHOD_TRACE,
    HTTP_METHOD_PATCH,
};

/* How the body of a message is delimited (RFC 9112 s6.3). */
enum http_framing {
    HTTP_BODY_NONE = 0, /* no body at all (HEAD response, 1xx, 204, 304, request without CL/TE) */
    HTTP_BODY_LENGTH,   /* Content-Length bytes */
    HTTP_BODY_CHUNKED,  /* chunked transfer coding, maybe with trailers */
    HTTP_BODY_EOF,      /* response delimited by the connection closing */
};

/* Flags on one field. */
#define HTTP_FIELD_HOP 0x1     /* hop-by-hop: never forwarded (RFC 9110 s7.6.1) */
#define HTTP_FIELD_REMOVED 0x2 /* logically deleted; skipped by lookups and the writer */

struct http_field {
    const char *name;
    const char *value; /* with leading and trailing whitespace already removed (RFC 9110 s5.5) */
    uint32_t name_len;
    uint32_t value_len;
    uint32_t flags;
};

struct http_msg {
    int is_request;
    int version_major, version_minor; /* 1.0 or 1.1 */

    /* Request line. */
    enum http_method method;
    const char *method_name;
    size_t method_len;
    const char *target; /* request-target exactly as received */
    size_t target_len;

    /* Status line. */
    int status;
    const char *reason;
    size_t reason_len;

    struct http_field *fields; /* arena-allocated; grows by doubling inside the arena */
    size_t n_fields;
    size_t cap_fields;

    /* Framing, filled in by the parser (RFC 9112 s6). */
    enum http_framing framing;
    uint64_t content_length; /* valid when framing == HTTP_BODY_LENGTH */
    int keep_alive;          /* the peer allows the connection to persist after this message */
    int expect_continue;     /* request carried "Expect: 100-continue" */
};

void http_msg_init(struct http_msg *m, int is_request);

/* Appends a field, copying name and value into the arena. 0 or -ENOMEM (arena overflow). */
int http_msg_add(struct http_msg *m, struct arena *a, const char *name, size_t name_len, const char *value,
                 size_t value_len);
/* Appends a field that points at name and value instead of copying them (only the field array is in
 * the arena): they must be NUL-terminated at their lengths and outlive m. 0 or -ENOMEM. */
int http_msg_add_ref(struct http_msg *m, struct arena *a, const char *name, size_t name_len, const char *value,
                     size_t value_len);
/* Removes every field with this name, then adds one. 0 or -ENOMEM. */
int http_msg_set(struct http_msg *m, struct arena *a, const char *name, const char *value, size_t value_len);
/* Marks every field with this name removed; returns how many were. */
size_t http_msg_remove(struct http_msg *m, const char *name);

/* The first live field called name[0..len), or NULL. */
const struct http_field *http_msg_find_n(const struct http_msg *m, const char *name, size_t len);
/* The first live field with this name, or NULL. Inline so that strlen of a literal is a constant. */
static inline const struct http_field *http_msg_find(const struct http_msg *m, const char *name)
{
    return http_msg_find_n(m, name, strlen(name));
}
/* The next live field with the same name after `prev`, or NULL. */
const struct http_field *http_msg_find_next(const struct http_msg *m, const struct http_field *prev);
/* Number of live fields with this name. */
size_t http_msg_count(const struct http_msg *m, const char *name);

/* Does any comma-separated element of any field with this name equal `token` (case-insensitive)?
 * Used for Connection, Transfer-Encoding, Cache-Control directives without arguments. */
int http_msg_has_token(const struct http_msg *m, const char *name, const char *token);

/* Copies m into dst with a field vector of its own (in the arena), so that marking or adding fields
 * in one leaves the other as it was; strings are shared. 0 or -ENOMEM. */
int http_msg_clone(struct http_msg *dst, const struct http_msg *m, struct arena *a);

/* Like http_msg_clone, but every string is copied into the arena too: the copy outlives the
 * original's arena. 0 or -ENOMEM. */
int http_msg_clone_deep(struct http_msg *dst, const struct http_msg *m, struct arena *a);

enum http_method http_method_from_name(const char *name, size_t len);

/* Case-insensitive ASCII comparison of a counted string with a C string. Inline: with a literal b the
 * length is a constant and most comparisons end at the length check (the cache policy compares every
 * stored field with lists of names). */
static inline int http_name_eq(const char *a, size_t a_len, const char *b)
{
    size_t b_len = strlen(b);
    return a_len == b_len && strncasecmp(a, b, a_len) == 0;
}

#endif
