#include "http/http_cache_control.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* tchar (RFC 9110 s5.6.2) */
static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int http_is_token(const char *s, size_t len)
{
    if (len == 0) return 0;
    for (size_t i = 0; i < len; i++)
        if (!is_tchar((unsigned char)s[i])) return 0;
    return 1;
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && is_ows(**s))
        (*s)++;
    while (*e > *s && is_ows((*e)[-1]))
        (*e)--;
}

/* Past the quoted-string starting at p (which points at the opening DQUOTE), honouring quoted-pair
 * (RFC 9110 s5.6.4); an unterminated string runs to `end`. */
static const char *skip_quoted(const char *p, const char *end, int *terminated)
{
    for (p++; p < end; p++) {
        if (*p == '\\' && p + 1 < end) {
            p++;
        } else if (*p == '"') {
            *terminated = 1;
            return p + 1;
        }
    }
    *terminated = 0;
    return end;
}

int http_field_list_next(const char **pos, const char *end, const char **elem, size_t *elem_len)
{
    const char *p = *pos;
    while (p < end && (is_ows(*p) || *p == ','))
        p++;
    if (p >= end) {
        *pos = end;
        return 0;
    }
    const char *start = p;
    int terminated;
    while (p < end && *p != ',')
        p = *p == '"' ? skip_quoted(p, end, &terminated) : p + 1;
    const char *stop = p;
    trim(&start, &stop);
    *pos = p;
    *elem = start;
    *elem_len = (size_t)(stop - start);
    return 1;
}

/* ---- Cache-Control ---- */

/* delta-seconds = 1*DIGIT (RFC 9111 s1.3), saturating at 2^31. 0 or -EINVAL. */
static int parse_delta(const char *s, size_t len, int64_t *out)
{
    if (len == 0) return -EINVAL;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -EINVAL;
        if (v < HTTP_DELTA_MAX) v = v * 10 + (s[i] - '0');
    }
    *out = v > HTTP_DELTA_MAX ? HTTP_DELTA_MAX : v;
    return 0;
}

/* The argument of one directive, already unquoted as far as spans allow. */
struct cc_arg {
    int present;   /* "=" was seen */
    int ok;        /* well-formed token or quoted-string with nothing after it */
    int escaped;   /* the quoted-string used quoted-pair, so the span is not the literal value */
    const char *p; /* token, or the inside of the quoted-string */
    size_t len;
};

static void set_flag(struct http_cc *cc, uint32_t bit)
{
    cc->present |= bit;
}

/* RFC 9111 s4.2.1: first valid occurrence wins, but a repeat with a different value is recorded as
 * invalid so the policy can treat it as stale / most restrictive. */
static void set_delta(struct http_cc *cc, uint32_t bit, int64_t *field, const struct cc_arg *arg, int64_t if_no_arg)
{
    int64_t v;
    cc->present |= bit;
    if (!arg->present) {
        if (if_no_arg < 0) {
            cc->invalid |= bit;
            return;
        }
        v = if_no_arg;
    } else if (!arg->ok || arg->escaped || parse_delta(arg->p, arg->len, &v) < 0) {
        cc->invalid |= bit;
        return;
    }
    if (cc->valued & bit) {
        if (*field != v) cc->invalid |= bit;
        return;
    }
    cc->valued |= bit;
    *field = v;
}

/* Every element of a field-name list argument must be a token; otherwise we cannot honour the
 * qualified form and fall back to the unqualified one. */
static int valid_name_list(const char *p, size_t len)
{
    const char *pos = p, *end = p + len, *e;
    size_t n, count = 0;
    while (http_field_list_next(&pos, end, &e, &n)) {
        if (!http_is_token(e, n)) return 0;
        count++;
    }
    return count > 0;
}

/* no-cache / private: qualified form records the list; anything we cannot represent faithfully
 * (escapes, empty or bad lists, too many occurrences) degrades to the unqualified, stricter form. */
static void set_list(struct http_cc *cc, uint32_t bare_bit, uint32_t list_bit, struct http_cc_list *l, const struct cc_arg *arg)
{
    if (!arg->present || !arg->ok || arg->escaped || !valid_name_list(arg->p, arg->len) || l->n == HTTP_CC_LIST_MAX) {
        cc->present |= bare_bit;
        return;
    }
    l->span[l->n].p = arg->p;
    l->span[l->n].len = (uint32_t)arg->len;
    l->n++;
    cc->present |= list_bit;
}

static void apply_directive(struct http_cc *cc, const char *name, size_t name_len, const struct cc_arg *arg)
{
#define IS(s) http_name_eq(name, name_len, s)
    if (IS("max-age"))
        set_delta(cc, HTTP_CC_MAX_AGE, &cc->max_age, arg, -1);
    else if (IS("s-maxage"))
        set_delta(cc, HTTP_CC_S_MAXAGE, &cc->s_maxage, arg, -1);
    else if (IS("max-stale"))
        set_delta(cc, HTTP_CC_MAX_STALE, &cc->max_stale, arg, HTTP_CC_ANY);
    else if (IS("min-fresh"))
        set_delta(cc, HTTP_CC_MIN_FRESH, &cc->min_fresh, arg, -1);
    else if (IS("stale-while-revalidate"))
        set_delta(cc, HTTP_CC_STALE_WHILE_REVALIDATE, &cc->stale_while_revalidate, arg, -1);
    else if (IS("stale-if-error"))
        set_delta(cc, HTTP_CC_STALE_IF_ERROR, &cc->stale_if_error, arg, -1);
    else if (IS("no-cache"))
        set_list(cc, HTTP_CC_NO_CACHE, HTTP_CC_NO_CACHE_FIELDS, &cc->no_cache_fields, arg);
    else if (IS("private"))
        set_list(cc, HTTP_CC_PRIVATE, HTTP_CC_PRIVATE_FIELDS, &cc->private_fields, arg);
    /* The rest take no argument (s5.2: "no argument is defined (nor allowed)"); a stray one is ignored
     * rather than dropping the directive, because most of them restrict caching. */
    else if (IS("no-store"))
        set_flag(cc, HTTP_CC_NO_STORE);
    else if (IS("no-transform"))
        set_flag(cc, HTTP_CC_NO_TRANSFORM);
    else if (IS("only-if-cached"))
        set_flag(cc, HTTP_CC_ONLY_IF_CACHED);
    else if (IS("must-revalidate"))
        set_flag(cc, HTTP_CC_MUST_REVALIDATE);
    else if (IS("proxy-revalidate"))
        set_flag(cc, HTTP_CC_PROXY_REVALIDATE);
    else if (IS("must-understand"))
        set_flag(cc, HTTP_CC_MUST_UNDERSTAND);
    else if (IS("public"))
        set_flag(cc, HTTP_CC_PUBLIC);
        /* else: s5.2.3, a cache MUST ignore unrecognized directives */
#undef IS
}

/* cache-directive = token [ "=" ( token / quoted-string ) ], leniently allowing OWS around "=". */
static void parse_element(struct http_cc *cc, const char *p, const char *end)
{
    const char *name = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    size_t name_len = (size_t)(p - name);
    if (name_len == 0) return;
    struct cc_arg arg = {0};
    while (p < end && is_ows(*p))
        p++;
    if (p < end && *p == '=') {
        arg.present = 1;
        p++;
        while (p < end && is_ows(*p))
            p++;
        if (p < end && *p == '"') {
            int terminated;
            const char *close = skip_quoted(p, end, &terminated);
            arg.p = p + 1;
            arg.len = terminated ? (size_t)(close - 1 - arg.p) : (size_t)(end - arg.p);
            arg.escaped = memchr(arg.p, '\\', arg.len) != NULL;
            arg.ok = terminated && close == end;
        } else {
            arg.p = p;
            while (p < end && is_tchar((unsigned char)*p))
                p++;
            arg.len = (size_t)(p - arg.p);
            arg.ok = arg.len > 0 && p == end;
        }
    } else if (p < end) {
        /* Junk after the name, e.g. "max-age 5": the element is malformed; the directive still counts
         * but a delta-seconds one becomes invalid. */
        arg.present = 1;
        arg.ok = 0;
        if (!(http_name_eq(name, name_len, "max-age") || http_name_eq(name, name_len, "s-maxage") ||
              http_name_eq(name, name_len, "max-stale") || http_name_eq(name, name_len, "min-fresh") ||
              http_name_eq(name, name_len, "stale-while-revalidate") || http_name_eq(name, name_len, "stale-if-error")))
            arg.present = 0;
    }
    apply_directive(cc, name, name_len, &arg);
}

void http_cc_parse_value(struct http_cc *cc, const char *v, size_t len)
{
    const char *pos = v, *end = v + len, *e;
    size_t n;
    while (http_field_list_next(&pos, end, &e, &n))
        parse_element(cc, e, e + n);
}

void http_cc_parse(const struct http_msg *m, struct http_cc *cc)
{
    memset(cc, 0, sizeof(*cc));
    for (const struct http_field *f = http_msg_find(m, "Cache-Control"); f != NULL; f = http_msg_find_next(m, f)) {
        cc->present |= HTTP_CC_FIELD_PRESENT;
        http_cc_parse_value(cc, f->value, f->value_len);
    }
    /* RFC 9111 s5.4 (and RFC 7234 s5.4, which spelled it out): Pragma: no-cache in a request means
     * Cache-Control: no-cache, for HTTP/1.0 caches, but only when Cache-Control is absent. Its meaning in
     * responses was never specified, so it is ignored there. */
    if (m->is_request && !(cc->present & HTTP_CC_FIELD_PRESENT) && http_msg_has_token(m, "Pragma", "no-cache"))
        cc->present |= HTTP_CC_NO_CACHE | HTTP_CC_FROM_PRAGMA;
}

int http_cc_list_has(const struct http_cc_list *l, const char *name, size_t name_len)
{
    for (unsigned i = 0; i < l->n; i++) {
        const char *pos = l->span[i].p, *end = pos + l->span[i].len, *e;
        size_t n;
        while (http_field_list_next(&pos, end, &e, &n))
            if (n == name_len && strncasecmp(e, name, n) == 0) return 1;
    }
    return 0;
}

/* ---- Entity tags ---- */

/* etagc = %x21 / %x23-7E / obs-text */
static int is_etagc(unsigned char c)
{
    return c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80;
}

/* Parses an entity-tag at p; returns the position after it, or NULL. */
static const char *scan_etag(const char *p, const char *end, struct http_etag *out)
{
    out->weak = 0;
    if (end - p >= 2 && p[0] == 'W' && p[1] == '/') { /* "W/" is case-sensitive (s8.8.3) */
        out->weak = 1;
        p += 2;
    }
    if (p >= end || *p != '"') return NULL;
    const char *tag = ++p;
    while (p < end && is_etagc((unsigned char)*p))
        p++;
    if (p >= end || *p != '"') return NULL;
    out->tag = tag;
    out->len = (uint32_t)(p - tag);
    return p + 1;
}

int http_etag_parse(const char *s, size_t len, struct http_etag *out)
{
    const char *p = s, *end = s + len;
    trim(&p, &end);
    const char *after = scan_etag(p, end, out);
    return after != NULL && after == end ? 0 : -EINVAL;
}

int http_etag_get(const struct http_msg *m, struct http_etag *out)
{
    const struct http_field *f = http_msg_find(m, "ETag");
    if (f == NULL) return -ENOENT;
    if (http_etag_parse(f->value, f->value_len, out) < 0) return -EINVAL;
    for (f = http_msg_find_next(m, f); f != NULL; f = http_msg_find_next(m, f)) {
        struct http_etag other;
        if (http_etag_parse(f->value, f->value_len, &other) < 0 || other.weak != out->weak || !http_etag_weak_eq(&other, out))
            return -EINVAL;
    }
    return 0;
}

int http_etag_weak_eq(const struct http_etag *a, const struct http_etag *b)
{
    return a->len == b->len && memcmp(a->tag, b->tag, a->len) == 0;
}

int http_etag_strong_eq(const struct http_etag *a, const struct http_etag *b)
{
    return !a->weak && !b->weak && http_etag_weak_eq(a, b);
}

int http_etag_list_match(const struct http_msg *m, const char *field, const struct http_etag *cur, int weak)
{
    const struct http_field *f = http_msg_find(m, field);
    if (f == NULL) return -ENOENT;
    int matched = 0, star = 0, tags = 0;
    for (; f != NULL; f = http_msg_find_next(m, f)) {
        const char *p = f->value, *end = f->value + f->value_len;
        for (;;) {
            while (p < end && (is_ows(*p) || *p == ','))
                p++;
            if (p >= end) break;
            if (*p == '*') {
                star = 1;
                p++;
            } else {
                struct http_etag t;
                p = scan_etag(p, end, &t);
                if (p == NULL) return -EINVAL;
                tags++;
                if (cur != NULL && (weak ? http_etag_weak_eq(&t, cur) : http_etag_strong_eq(&t, cur))) matched = 1;
            }
            while (p < end && is_ows(*p))
                p++;
            if (p < end && *p != ',') return -EINVAL;
        }
    }
    /* RFC 9110 s13.1.1/s13.1.2: "*" mixed with other members is syntactically invalid. */
    if (star && tags > 0) return -EINVAL;
    if (!star && tags == 0) return -EINVAL;
    return star || matched;
}

/* ---- Age ---- */

int http_age_get(const struct http_msg *m, int64_t *out)
{
    const struct http_field *f = http_msg_find(m, "Age");
    if (f == NULL) return -ENOENT;
    return parse_delta(f->value, f->value_len, out);
}

/* ---- Vary ---- */

int http_vary_has_star(const struct http_msg *m)
{
    for (const struct http_field *f = http_msg_find(m, "Vary"); f != NULL; f = http_msg_find_next(m, f)) {
        const char *pos = f->value, *end = f->value + f->value_len, *e;
        size_t n;
        while (http_field_list_next(&pos, end, &e, &n))
            if (n == 1 && e[0] == '*') return 1;
    }
    return 0;
}
