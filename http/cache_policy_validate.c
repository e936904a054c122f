/* RFC 9111 s4.3: sending a validation request, and freshening stored responses with a 304 or a HEAD
 * response (s3.2, s4.3.4, s4.3.5). */
#include "http/cache_policy.h"

#include <errno.h>
#include <string.h>

#include "http/http_date.h"

/* Date parsing here only tests validity or compares two parsed values; the century chosen for a
 * two-digit year does not depend on this as long as both sides use the same. */
#define ANY_NOW 0

int cp_conditional(const struct http_msg *stored, struct http_msg *fwd, struct arena *a)
{
    /* s4.3.2: the cache answers the client's own conditionals itself once its stored response is
     * validated; forwarding them could get a 304 that says nothing about the stored response. */
    http_msg_remove(fwd, "If-None-Match");
    http_msg_remove(fwd, "If-Modified-Since");

    int added = 0;
    struct http_etag etag;
    if (http_etag_get(stored, &etag) == 0) {
        const struct http_field *f = http_msg_find(stored, "ETag");
        if (http_msg_add(fwd, a, "If-None-Match", 13, f->value, f->value_len) < 0) return -ENOMEM;
        added++;
    }
    int64_t lm;
    if (http_date_field(stored, "Last-Modified", ANY_NOW, &lm) == 0) {
        /* RFC 9110 s13.1.3: sending the Last-Modified value as received is the most interoperable
         * choice, as some servers compare the strings exactly. */
        const struct http_field *f = http_msg_find(stored, "Last-Modified");
        if (http_msg_add(fwd, a, "If-Modified-Since", 17, f->value, f->value_len) < 0) return -ENOMEM;
        added++;
    }
    return added;
}

/* The time a stored response was generated, for "most recent" (s4): Date, else response_time. */
static int64_t generated_at(const struct cp_stored *s)
{
    int64_t d;
    return http_date_field(s->resp, "Date", s->response_time, &d) == 0 ? d : s->response_time;
}

size_t cp_select_304(const struct http_msg *upd, const struct cp_stored *stored, size_t n, size_t *sel)
{
    struct http_etag ue;
    int64_t ulm;
    int etag_rc = http_etag_get(upd, &ue);
    int lm_rc = http_date_field(upd, "Last-Modified", ANY_NOW, &ulm);
    /* A validator we cannot read must not fall through to rule 3 and update a response blindly. */
    if (etag_rc == -EINVAL || lm_rc == -EINVAL) return 0;
    int has_etag = etag_rc == 0, has_lm = lm_rc == 0;
    size_t k = 0;

    if (has_etag && !ue.weak) {
        /* Rule 1: every stored response with the same strong validator; none means none. */
        for (size_t i = 0; i < n; i++) {
            struct http_etag se;
            if (http_etag_get(stored[i].resp, &se) == 0 && http_etag_strong_eq(&se, &ue)) sel[k++] = i;
        }
        return k;
    }
    if (has_etag || has_lm) {
        /* Rule 2: the most recent stored response those weak validators correspond to. */
        size_t best = n;
        int64_t best_t = 0;
        for (size_t i = 0; i < n; i++) {
            int match;
            if (has_etag) {
                struct http_etag se;
                match = http_etag_get(stored[i].resp, &se) == 0 && http_etag_weak_eq(&se, &ue);
            } else {
                int64_t slm;
                match = http_date_field(stored[i].resp, "Last-Modified", ANY_NOW, &slm) == 0 && slm == ulm;
            }
            int64_t t = generated_at(&stored[i]);
            if (match && (best == n || t >= best_t)) {
                best = i;
                best_t = t;
            }
        }
        if (best == n) return 0;
        sel[0] = best;
        return 1;
    }
    /* Rule 3: no validator anywhere, and only one candidate. */
    if (n == 1 && http_msg_find(stored[0].resp, "ETag") == NULL && http_msg_find(stored[0].resp, "Last-Modified") == NULL) {
        sel[0] = 0;
        return 1;
    }
    return 0;
}

/* Does field f of the update replace stored fields? s3.2's exceptions. */
static int updates(const struct http_msg *upd, const struct http_field *f, const struct cp__conn_names *upd_conn)
{
    if (f->flags & HTTP_FIELD_REMOVED) return 0;
    if (cp__excluded_field(upd, f, upd_conn)) return 0; /* "Header fields excepted from storage in Section 3.1" */
    if (http_name_eq(f->name, f->name_len, "Content-Length")) return 0; /* "The Content-Length header field" */
    if (http_name_eq(f->name, f->name_len, "Content-Range")) return 0;  /* "automatically processed and removed by the recipient" */
    return 1;
}

/* upd_ok[i]: updates(upd, field i), decided once per update field rather than once per stored field. */
static int upd_replaces(const struct http_msg *upd, const uint8_t *upd_ok, const char *name, size_t len)
{
    for (size_t i = 0; i < upd->n_fields; i++) {
        const struct http_field *f = &upd->fields[i];
        if (upd_ok[i] && f->name_len == len && strncasecmp(f->name, name, len) == 0) return 1;
    }
    return 0;
}

int cp_merge_304(const struct http_msg *stored, const struct http_msg *upd, int64_t upd_response_time, struct http_msg *out,
                 struct arena *a)
{
    http_msg_init(out, 0);
    out->version_major = stored->version_major;
    out->version_minor = stored->version_minor;
    out->status = stored->status;
    out->reason = stored->reason;
    out->reason_len = stored->reason_len;
    out->framing = stored->framing;
    out->content_length = stored->content_length;
    out->keep_alive = stored->keep_alive;

    int upd_has_date = http_msg_find(upd, "Date") != NULL;
    struct cp__conn_names stored_conn, upd_conn;
    cp__conn_names(stored, &stored_conn);
    cp__conn_names(upd, &upd_conn);
    uint8_t *upd_ok = arena_alloc(a, upd->n_fields ? upd->n_fields : 1);
    if (upd_ok == NULL) return -ENOMEM;
    for (size_t i = 0; i < upd->n_fields; i++)
        upd_ok[i] = (uint8_t)updates(upd, &upd->fields[i], &upd_conn);
    for (size_t i = 0; i < stored->n_fields; i++) {
        const struct http_field *f = &stored->fields[i];
        if ((f->flags & HTTP_FIELD_REMOVED) || cp__excluded_field(stored, f, &stored_conn)) continue;
        if (upd_replaces(upd, upd_ok, f->name, f->name_len)) continue;
        /* RFC 9110 s6.6.1: an update without Date gets one (below), which replaces the old one. */
        if (!upd_has_date && http_name_eq(f->name, f->name_len, "Date")) continue;
        /* s4.2: age counts from the last validation; an Age the update does not restate is obsolete. */
        if (http_name_eq(f->name, f->name_len, "Age")) continue;
        if (http_msg_add(out, a, f->name, f->name_len, f->value, f->value_len) < 0) return -ENOMEM;
    }
    for (size_t i = 0; i < upd->n_fields; i++) {
        const struct http_field *f = &upd->fields[i];
        if (upd_ok[i] && http_msg_add(out, a, f->name, f->name_len, f->value, f->value_len) < 0) return -ENOMEM;
    }
    if (!upd_has_date) {
        char buf[HTTP_DATE_BUFSZ];
        if (http_date_format(upd_response_time, buf) < 0) return -ERANGE;
        if (http_msg_add(out, a, "Date", 4, buf, HTTP_DATE_LEN) < 0) return -ENOMEM;
    }

    /* s3.1, s5.2.2.7: the (possibly new) private="..." fields are not kept by a shared cache. */
    struct http_cc cc;
    http_cc_parse(out, &cc);
    if (cc.private_fields.n > 0) {
        for (size_t i = 0; i < out->n_fields; i++) {
            struct http_field *f = &out->fields[i];
            if (http_cc_list_has(&cc.private_fields, f->name, f->name_len)) f->flags |= HTTP_FIELD_REMOVED;
        }
    }
    return 0;
}

/* Content-Length of a HEAD response: 0 and *out, -ENOENT, or -EINVAL (not a single 1*DIGIT). */
static int content_length(const struct http_msg *m, uint64_t *out)
{
    const struct http_field *f = http_msg_find(m, "Content-Length");
    if (f == NULL) return -ENOENT;
    if (f->value_len == 0 || f->value_len > 19 || http_msg_find_next(m, f) != NULL) return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9') return -EINVAL;
        v = v * 10 + (uint64_t)(f->value[i] - '0');
    }
    *out = v;
    return 0;
}

enum cp_head_verdict cp_head_freshen(const struct http_msg *stored, uint64_t stored_body_len, const struct http_msg *head)
{
    /* s4.3.5: "receives a 200 (OK) response" */
    if (head->status != 200) return CP_HEAD_IGNORE;

    if (http_msg_find(head, "ETag") != NULL) {
        struct http_etag h, s;
        if (http_etag_get(head, &h) < 0 || http_etag_get(stored, &s) < 0 || h.weak != s.weak || !http_etag_weak_eq(&h, &s))
            return CP_HEAD_STALE;
    }
    if (http_msg_find(head, "Last-Modified") != NULL) {
        int64_t h, s;
        if (http_date_field(head, "Last-Modified", ANY_NOW, &h) < 0 || http_date_field(stored, "Last-Modified", ANY_NOW, &s) < 0 ||
            h != s)
            return CP_HEAD_STALE;
    }
    uint64_t len;
    int rc = content_length(head, &len);
    if (rc == -EINVAL || (rc == 0 && len != stored_body_len)) return CP_HEAD_STALE;
    return CP_HEAD_UPDATE;
}
