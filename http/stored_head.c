#include "http/stored_head.h"

#include <errno.h>
#include <string.h>

static int kept(const struct http_field *f)
{
    if (f->flags & (HTTP_FIELD_HOP | HTTP_FIELD_REMOVED))
        return 0;
    return !http_name_eq(f->name, f->name_len, "content-length") &&
           !http_name_eq(f->name, f->name_len, "transfer-encoding");
}

size_t stored_head_size(const struct http_msg *resp)
{
    size_t n = 0;
    for (size_t i = 0; i < resp->n_fields; i++)
        if (kept(&resp->fields[i]))
            n += resp->fields[i].name_len + 2 + resp->fields[i].value_len + 2;
    return n;
}

size_t stored_head_write(const struct http_msg *resp, char *buf)
{
    char *p = buf;
    for (size_t i = 0; i < resp->n_fields; i++) {
        const struct http_field *f = &resp->fields[i];
        if (!kept(f))
            continue;
        memcpy(p, f->name, f->name_len);
        p += f->name_len;
        *p++ = ':';
        *p++ = ' ';
        memcpy(p, f->value, f->value_len);
        p += f->value_len;
        *p++ = '\r';
        *p++ = '\n';
    }
    return (size_t)(p - buf);
}

/* Both parsers: validate each "Name: value\r\n" line, then add the field (copied, or in place). */
static int parse_lines(char *mut, const char *blob, size_t len, int status, struct arena *a, struct http_msg *out)
{
    http_msg_init(out, 0);
    out->status = status;
    out->framing = HTTP_BODY_LENGTH;
    out->keep_alive = 1;
    /* No fields. blob may then be NULL (store_record_decode() gives NULL for an empty field), and
     * NULL + 0 is undefined behaviour. */
    if (len == 0) return 0;
    const char *p = blob, *end = blob + len;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        if (eol == NULL || eol + 1 >= end || eol[1] != '\n')
            return -EINVAL;
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon == NULL || colon == p || colon + 1 >= eol + 1 || colon[1] != ' ')
            return -EINVAL;
        for (const char *q = p; q < eol; q++)
            if ((unsigned char)*q < 0x20 && *q != '\t')
                return -EINVAL;
        size_t name_len = (size_t)(colon - p), value_len = (size_t)(eol - colon - 2);
        int rc;
        if (mut != NULL) {
            /* The ':' and the '\r' become the strings' terminators. */
            mut[colon - blob] = '\0';
            mut[eol - blob] = '\0';
            rc = http_msg_add_ref(out, a, p, name_len, colon + 2, value_len);
        } else {
            rc = http_msg_add(out, a, p, name_len, colon + 2, value_len);
        }
        if (rc != 0)
            return -ENOMEM;
        p = eol + 2;
    }
    return 0;
}

int stored_head_parse(const char *blob, size_t len, int status, struct arena *a, struct http_msg *out)
{
    return parse_lines(NULL, blob, len, status, a, out);
}

int stored_head_parse_in_place(char *blob, size_t len, int status, struct arena *a, struct http_msg *out)
{
    return parse_lines(blob, blob, len, status, a, out);
}
