#include "http/http_msg.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

void http_msg_init(struct http_msg *m, int is_request)
{
    memset(m, 0, sizeof(*m));
    m->is_request = is_request;
    m->version_major = 1;
    m->version_minor = 1;
}


/* A new field slot at the end of m (the array grows in the arena), or NULL. */
static struct http_field *append_slot(struct http_msg *m, struct arena *a, size_t name_len, size_t value_len)
{
    if (name_len > UINT32_MAX || value_len > UINT32_MAX)
        return NULL;
    if (m->n_fields == m->cap_fields) {
        size_t cap = m->cap_fields ? m->cap_fields * 2 : 16;
        struct http_field *f = arena_alloc(a, cap * sizeof(*f));
        if (f == NULL)
            return NULL;
        if (m->n_fields)
            memcpy(f, m->fields, m->n_fields * sizeof(*f));
        m->fields = f;
        m->cap_fields = cap;
    }
    struct http_field *f = &m->fields[m->n_fields];
    f->name_len = (uint32_t)name_len;
    f->value_len = (uint32_t)value_len;
    f->flags = 0;
    return f;
}

int http_msg_add(struct http_msg *m, struct arena *a, const char *name, size_t name_len, const char *value,
                 size_t value_len)
{
    struct http_field *f = append_slot(m, a, name_len, value_len);
    char *n = f != NULL ? arena_strndup(a, name, name_len) : NULL;
    char *v = n != NULL ? arena_strndup(a, value, value_len) : NULL;
    if (v == NULL)
        return -ENOMEM;
    f->name = n;
    f->value = v;
    m->n_fields++;
    return 0;
}

int http_msg_add_ref(struct http_msg *m, struct arena *a, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    struct http_field *f = append_slot(m, a, name_len, value_len);
    if (f == NULL)
        return -ENOMEM;
    f->name = name;
    f->value = value;
    m->n_fields++;
    return 0;
}

int http_msg_set(struct http_msg *m, struct arena *a, const char *name, const char *value, size_t value_len)
{
    http_msg_remove(m, name);
    return http_msg_add(m, a, name, strlen(name), value, value_len);
}

size_t http_msg_remove(struct http_msg *m, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < m->n_fields; i++) {
        struct http_field *f = &m->fields[i];
        if (!(f->flags & HTTP_FIELD_REMOVED) && http_name_eq(f->name, f->name_len, name)) {
            f->flags |= HTTP_FIELD_REMOVED;
            n++;
        }
    }
    return n;
}

static const struct http_field *find_from(const struct http_msg *m, size_t start, const char *name, size_t name_len)
{
    for (size_t i = start; i < m->n_fields; i++) {
        const struct http_field *f = &m->fields[i];
        if (!(f->flags & HTTP_FIELD_REMOVED) && f->name_len == name_len && strncasecmp(f->name, name, name_len) == 0)
            return f;
    }
    return NULL;
}

const struct http_field *http_msg_find_n(const struct http_msg *m, const char *name, size_t len)
{
    return find_from(m, 0, name, len);
}

const struct http_field *http_msg_find_next(const struct http_msg *m, const struct http_field *prev)
{
    size_t start = (size_t)(prev - m->fields) + 1;
    return find_from(m, start, prev->name, prev->name_len);
}

size_t http_msg_count(const struct http_msg *m, const char *name)
{
    size_t n = 0;
    for (const struct http_field *f = http_msg_find(m, name); f != NULL; f = http_msg_find_next(m, f))
        n++;
    return n;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

int http_msg_has_token(const struct http_msg *m, const char *name, const char *token)
{
    size_t tlen = strlen(token);
    for (const struct http_field *f = http_msg_find(m, name); f != NULL; f = http_msg_find_next(m, f)) {
        const char *p = f->value, *end = f->value + f->value_len;
        while (p < end) {
            while (p < end && (is_ows(*p) || *p == ','))
                p++;
            const char *start = p;
            while (p < end && *p != ',') {
                /* RFC 9110 s5.6.4: a comma inside a quoted string (say foo="a,close") separates nothing. */
                if (*p == '"') {
                    for (p++; p < end && *p != '"'; p++)
                        if (*p == '\\' && p + 1 < end)
                            p++; /* quoted-pair */
                }
                if (p < end)
                    p++;
            }
            const char *stop = p;
            while (stop > start && is_ows(stop[-1]))
                stop--;
            if ((size_t)(stop - start) == tlen && strncasecmp(start, token, tlen) == 0)
                return 1;
        }
    }
    return 0;
}

int http_msg_clone(struct http_msg *dst, const struct http_msg *m, struct arena *a)
{
    *dst = *m;
    if (m->n_fields == 0)
        return 0;
    size_t cap = m->n_fields + 8;
    dst->fields = arena_alloc(a, cap * sizeof(*dst->fields));
    if (dst->fields == NULL)
        return -ENOMEM;
    memcpy(dst->fields, m->fields, m->n_fields * sizeof(*dst->fields));
    dst->cap_fields = cap;
    return 0;
}

int http_msg_clone_deep(struct http_msg *dst, const struct http_msg *m, struct arena *a)
{
    if (http_msg_clone(dst, m, a) != 0)
        return -ENOMEM;
    if (m->target != NULL && (dst->target = arena_strndup(a, m->target, m->target_len)) == NULL)
        return -ENOMEM;
    if (m->reason != NULL && (dst->reason = arena_strndup(a, m->reason, m->reason_len)) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < dst->n_fields; i++) {
        struct http_field *f = &dst->fields[i];
        char *n = arena_strndup(a, f->name, f->name_len);
        char *v = arena_strndup(a, f->value, f->value_len);
        if (n == NULL || v == NULL)
            return -ENOMEM;
        f->name = n;
        f->value = v;
    }
    return 0;
}

enum http_method http_method_from_name(const char *name, size_t len)
{
    /* Methods are case-sensitive (RFC 9110 s9.1): "get" is not GET. */
    static const struct {
        const char *name;
        enum http_method method;
    } table[] = {
        {"GET", HTTP_METHOD_GET},         {"HEAD", HTTP_METHOD_HEAD},     {"POST", HTTP_METHOD_POST},
        {"PUT", HTTP_METHOD_PUT},         {"DELETE", HTTP_METHOD_DELETE}, {"CONNECT", HTTP_METHOD_CONNECT},
        {"OPTIONS", HTTP_METHOD_OPTIONS}, {"TRACE", HTTP_METHOD_TRACE},   {"PATCH", HTTP_METHOD_PATCH},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strlen(table[i].name) == len && memcmp(table[i].name, name, len) == 0)
            return table[i].method;
    return HTTP_METHOD_OTHER;
}
