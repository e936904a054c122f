/* RFC 9111 s4.1: the secondary cache key built from the request fields a response's Vary nominates. */
#include "http/cache_policy.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

/* The key is produced by one routine into a sink that either measures, writes, or compares, so building
 * and matching can never disagree on the format, and matching needs no memory. */
struct sink {
    char *buf;       /* write mode */
    const char *cmp; /* compare mode (buf == NULL) */
    size_t cmp_len;
    size_t len; /* bytes produced so far */
    int differs;
};

static void emit(struct sink *s, const char *p, size_t n)
{
    if (s->buf != NULL) {
        memcpy(s->buf + s->len, p, n);
    } else if (s->cmp != NULL && !s->differs) {
        if (s->len + n > s->cmp_len || memcmp(s->cmp + s->len, p, n) != 0) s->differs = 1;
    }
    s->len += n;
}

static void emit_lower(struct sink *s, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i] >= 'A' && p[i] <= 'Z' ? (char)(p[i] + ('a' - 'A')) : p[i];
        emit(s, &c, 1);
    }
}

/* One list member, with runs of OWS outside quoted-strings collapsed to one SP. -EINVAL on a control
 * character, which no valid field value holds and which could otherwise forge key separators. */
static int emit_member(struct sink *s, const char *p, size_t n)
{
    int in_quote = 0, pending_space = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return -EINVAL;
        if (!in_quote && (c == ' ' || c == '\t')) {
            pending_space = 1;
            continue;
        }
        if (pending_space) {
            emit(s, " ", 1);
            pending_space = 0;
        }
        emit(s, &p[i], 1);
        if (in_quote && c == '\\' && i + 1 < n) {
            emit(s, &p[++i], 1);
        } else if (c == '"') {
            in_quote = !in_quote;
        }
    }
    return 0;
}

struct name {
    const char *p;
    size_t len;
};

static int name_cmp(const struct name *a, const struct name *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = strncasecmp(a->p, b->p, n);
    return c != 0 ? c : (a->len > b->len) - (a->len < b->len);
}

/* The sorted, de-duplicated Vary names of resp. Returns the count, CP_VARY_STAR is reported through
 * *star, or a negative error. */
static int vary_names(const struct http_msg *resp, struct name *names, int *star)
{
    int n = 0;
    *star = 0;
    for (const struct http_field *f = http_msg_find(resp, "Vary"); f != NULL; f = http_msg_find_next(resp, f)) {
        const char *pos = f->value, *end = f->value + f->value_len, *e;
        size_t len;
        while (http_field_list_next(&pos, end, &e, &len)) {
            if (len == 1 && e[0] == '*') {
                *star = 1; /* s4.1: a member "*" always fails to match */
                return 0;
            }
            if (!http_is_token(e, len)) return -EINVAL;
            struct name nm = {e, len};
            int dup = 0;
            for (int i = 0; i < n && !dup; i++)
                dup = name_cmp(&names[i], &nm) == 0;
            if (dup) continue;
            if (n == CP_VARY_MAX_FIELDS) return -E2BIG;
            /* insertion sort: at most CP_VARY_MAX_FIELDS names */
            int i = n++;
            while (i > 0 && name_cmp(&names[i - 1], &nm) > 0) {
                names[i] = names[i - 1];
                i--;
            }
            names[i] = nm;
        }
    }
    return n;
}

static int produce(const struct http_msg *resp, const struct http_msg *req, struct sink *s)
{
    struct name names[CP_VARY_MAX_FIELDS];
    int star;
    int n = vary_names(resp, names, &star);
    if (n < 0) return n;
    if (star) return CP_VARY_STAR;
    for (int i = 0; i < n; i++) {
        emit_lower(s, names[i].p, names[i].len);
        int seen = 0, members = 0;
        for (size_t j = 0; j < req->n_fields; j++) {
            const struct http_field *f = &req->fields[j];
            if ((f->flags & HTTP_FIELD_REMOVED) || f->name_len != names[i].len ||
                strncasecmp(f->name, names[i].p, names[i].len) != 0)
                continue;
            if (!seen) emit(s, ":", 1);
            seen = 1;
            /* RFC 9110 s5.3: several lines combine into one comma-separated list. */
            const char *pos = f->value, *end = f->value + f->value_len, *e;
            size_t len;
            while (http_field_list_next(&pos, end, &e, &len)) {
                if (members++ > 0) emit(s, ",", 1);
                if (emit_member(s, e, len) < 0) return -EINVAL;
            }
        }
        emit(s, seen ? "\n" : "!\n", seen ? 1 : 2);
    }
    return 0;
}

int cp_variant_key(const struct http_msg *resp, const struct http_msg *req, struct arena *a, const char **key, size_t *key_len)
{
    struct sink measure = {0};
    int rc = produce(resp, req, &measure);
    if (rc != 0) return rc;
    char *buf = arena_alloc(a, measure.len + 1);
    if (buf == NULL) return -ENOMEM;
    struct sink write = {.buf = buf};
    produce(resp, req, &write);
    buf[write.len] = '\0';
    *key = buf;
    *key_len = write.len;
    return 0;
}

int cp_vary_matches(const struct http_msg *resp, const char *key, size_t key_len, const struct http_msg *req)
{
    struct sink cmp = {.cmp = key, .cmp_len = key_len};
    if (produce(resp, req, &cmp) != 0) return 0;
    return !cmp.differs && cmp.len == key_len;
}
