/* libFuzzer target: the response side, from bytes off an origin socket to what the cache stores and
 * decides.
 *
 * Input: byte 0 is a control byte, the rest is what an origin sends (any number of responses, 1xx
 * included), then the connection closes (http_parser_finish()).
 *   - the split point of the second run: (byte0 * len) / 255;
 *   - bit 0x01: small limits (512-byte head, 8 fields, 4 KiB arena) instead of the proxy's (256 KiB,
 *     1000 fields, txn arena);
 *   - bits 0x02 / 0x04 / 0x08: on_head / on_body / on_done sometimes answer HTTP_PARSE_CB_PAUSE;
 *   - bit 0x10: a third run, one byte per read;
 *   - bit 0x20: the request was HEAD (on_head answers HTTP_PARSE_CB_NO_BODY to final responses);
 *   - bits 0xc0: which of four fixed client requests the response answers.
 *
 * Invariants (abort() when broken): every run gives the same transcript (see fuzz_http_request.c);
 * errors carry a documented status; each head is well formed; and on every final response head, the
 * RFC 9111 functions the proxy calls behave:
 *   - cp_storable() / cp_store_reason() / cp_freshness_lifetime() / cp_current_age() stay in range,
 *     and the age never decreases as time passes;
 *   - cp_variant_key() builds a key that cp_vary_matches() accepts for the same request, and the
 *     matcher agrees with the builder for a different request;
 *   - after cp_prepare_for_storage() the stored copy has a valid Date and no hop-by-hop field;
 *   - stored_head_write() writes exactly stored_head_size() bytes, stored_head_parse() accepts them,
 *     and writing the parsed head again gives identical bytes (a stored object can always be read
 *     back); the same for cp_merge_304() results (the message with itself, and on the stored copy);
 *   - the meta record built from it (as proxy/cache.c does) encodes and decodes to the same fields;
 *   - cp_decide() answers consistently with its flags (a fresh HIT has lifetime > age, STRIP only
 *     on a HIT, ONLY_IF_CACHED never on a HIT, ...); cp_conditional(), cp_eval_conditionals(),
 *     cp_select_304(), cp_head_freshen(), cp_304_keeps() and cp_invalidation_targets() stay in range.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "http/cache_policy.h"
#include "http/http_cache_control.h"
#include "http/http_date.h"
#include "http/http_msg.h"
#include "http/http_parse.h"
#include "http/http_uri.h"
#include "http/http_write.h"
#include "http/stored_head.h"
#include "store/store_record.h"

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                                           \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

enum {
    CTL_SMALL_LIMITS = 0x01,
    CTL_PAUSE_HEAD = 0x02,
    CTL_PAUSE_BODY = 0x04,
    CTL_PAUSE_DONE = 0x08,
    CTL_BYTEWISE = 0x10,
    CTL_HEAD_REQUEST = 0x20,
};

/* Times of the exchange, in seconds since the epoch (2023-11-14). */
#define T_REQUEST INT64_C(1700000000)
#define T_RESPONSE (T_REQUEST + 1)

/* ---- transcript of parser events, compared between runs ---- */

struct transcript {
    unsigned char *p;
    size_t len, cap;
};

static void t_put(struct transcript *t, const void *s, size_t n)
{
    if (t->len + n > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + n)
            cap *= 2;
        t->p = realloc(t->p, cap);
        CHECK(t->p != NULL);
        t->cap = cap;
    }
    if (n > 0) memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void t_u64(struct transcript *t, char tag, uint64_t v)
{
    t_put(t, &tag, 1);
    t_put(t, &v, sizeof(v));
}

static void t_str(struct transcript *t, char tag, const char *s, size_t n)
{
    t_u64(t, tag, n);
    t_put(t, s, n);
}

/* ---- the fixed client requests ---- */

struct req_spec {
    const char *method;
    const char *fields[8][2];
};

static const struct req_spec req_specs[4] = {
    {"GET", {{"Host", "example.com"}, {"Accept", "*/*"}, {"Accept-Encoding", "gzip, deflate"}, {"Accept-Language", "en"}}},
    {"GET",
     {{"Host", "example.com"},
      {"Cache-Control", "max-stale=600, min-fresh=10"},
      {"Authorization", "Bearer x"},
      {"Cookie", "a=b"},
      {"Accept-Encoding", "br"}}},
    {"GET",
     {{"Host", "example.com"},
      {"Pragma", "no-cache"},
      {"If-None-Match", "\"v1\", W/\"v2\""},
      {"If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"},
      {"Range", "bytes=0-10"},
      {"If-Range", "\"v1\""},
      {"Cache-Control", "only-if-cached, stale-if-error=30"}}},
    {"HEAD", {{"Host", "example.com"}, {"Cache-Control", "max-age=0, no-store"}, {"Accept", "text/html"}}},
};

static void build_request(struct http_msg *m, struct arena *a, const struct req_spec *s)
{
    http_msg_init(m, 1);
    m->version_major = 1;
    m->version_minor = 1;
    m->method_name = s->method;
    m->method_len = strlen(s->method);
    m->method = http_method_from_name(s->method, m->method_len);
    m->target = "http://example.com/a";
    m->target_len = strlen(m->target);
    for (size_t i = 0; i < 8 && s->fields[i][0] != NULL; i++)
        CHECK(http_msg_add(m, a, s->fields[i][0], strlen(s->fields[i][0]), s->fields[i][1], strlen(s->fields[i][1])) == 0);
}

/* ---- one run of the parser over the input ---- */

struct run {
    unsigned ctl;
    struct arena arena; /* the transaction arena: reset for every message */
    struct arena fixed; /* the client requests, for the whole run */
    struct http_msg req, other_req, post_req;
    struct http_msg msg;
    struct transcript log;
    struct transcript body;
    unsigned n_msgs, n_body;
    int pause_pending;
};

static int answer(struct run *r, int pause)
{
    CHECK(!r->pause_pending);
    r->pause_pending = pause;
    return pause ? HTTP_PARSE_CB_PAUSE : 0;
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static void check_field(const struct http_field *f)
{
    CHECK(f->name != NULL && f->value != NULL);
    CHECK(f->name_len > 0);
    CHECK(f->name[f->name_len] == '\0' && f->value[f->value_len] == '\0');
    CHECK(memchr(f->name, ':', f->name_len) == NULL);
    for (size_t i = 0; i < f->name_len; i++)
        CHECK((unsigned char)f->name[i] > 0x20);
    for (size_t i = 0; i < f->value_len; i++)
        CHECK(f->value[i] != '\r' && f->value[i] != '\n' && f->value[i] != '\0');
    CHECK(f->value_len == 0 || (!is_ows(f->value[0]) && !is_ows(f->value[f->value_len - 1])));
}

static void log_fields(struct transcript *t, const struct http_msg *m)
{
    t_u64(t, 'n', m->n_fields);
    for (size_t i = 0; i < m->n_fields; i++) {
        check_field(&m->fields[i]);
        CHECK(m->fields[i].flags == 0);
        t_str(t, 'f', m->fields[i].name, m->fields[i].name_len);
        t_str(t, 'v', m->fields[i].value, m->fields[i].value_len);
    }
}

/* ---- the stored form ---- */

static int is_hop_name(const struct http_field *f)
{
    static const char *const names[] = {
        "Connection",         "Keep-Alive",          "Proxy-Connection",         "TE", "Trailer", "Transfer-Encoding", "Upgrade",
        "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Authentication-Info"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (http_name_eq(f->name, f->name_len, names[i])) return 1;
    return 0;
}

/* stored_head write -> parse -> write gives the same bytes. Returns the parsed head in *back (0), or
 * -ENOMEM when the arena ran out. *blob (caller frees) holds the stored bytes. */
static int stored_roundtrip(const struct http_msg *m, struct arena *a, struct http_msg *back, char **blob, size_t *blob_len)
{
    size_t size = stored_head_size(m);
    char *b = malloc(size ? size : 1);
    CHECK(b != NULL);
    CHECK(stored_head_write(m, b) == size);
    int rc = stored_head_parse(b, size, m->status, a, back);
    if (rc == -ENOMEM) {
        CHECK(arena_overflowed(a));
        free(b);
        return rc;
    }
    if (rc != 0) {
        fprintf(stderr, "stored head refused (%d):\n%.*s\n", rc, (int)size, b);
        CHECK(0);
    }
    CHECK(back->status == m->status && !back->is_request);
    CHECK(stored_head_size(back) == size);
    char *again = malloc(size ? size : 1);
    CHECK(again != NULL);
    CHECK(stored_head_write(back, again) == size);
    CHECK(size == 0 || memcmp(b, again, size) == 0);
    free(again);
    for (size_t i = 0; i < back->n_fields; i++) {
        const struct http_field *f = &back->fields[i];
        CHECK(f->flags == 0);
        CHECK(!http_name_eq(f->name, f->name_len, "Content-Length") && !http_name_eq(f->name, f->name_len, "Transfer-Encoding"));
    }
    *blob = b;
    *blob_len = size;
    return 0;
}

/* The meta record proxy/cache.c builds for this head, through the codec and back. */
static void record_roundtrip(const struct http_msg *st, const char *blob, size_t blob_len, const char *key, size_t key_len)
{
    struct store_record rec;
    memset(&rec, 0, sizeof(rec));
    rec.status = (uint16_t)st->status;
    rec.request_time = T_REQUEST;
    rec.response_time = T_RESPONSE;
    rec.stored_at = T_RESPONSE;
    rec.method = "GET";
    rec.method_len = 3;
    rec.uri = "http://example.com/a";
    rec.uri_len = strlen(rec.uri);
    rec.variant = key;
    rec.variant_len = key_len;
    const struct http_field *et = http_msg_find(st, "etag");
    if (et != NULL) {
        rec.etag = et->value;
        rec.etag_len = et->value_len;
    }
    const struct http_field *lm = http_msg_find(st, "last-modified");
    if (lm != NULL) {
        rec.last_modified = lm->value;
        rec.last_modified_len = lm->value_len;
    }
    rec.headers = blob;
    rec.headers_len = blob_len;
    size_t len = store_record_encoded_len(&rec);
    CHECK(len > 0);
    void *buf = malloc(len);
    CHECK(buf != NULL);
    size_t out_len = 0;
    CHECK(store_record_encode(&rec, buf, len, &out_len) == 0 && out_len == len);
    struct store_record d;
    CHECK(store_record_decode(buf, len, &d) == 0);
    CHECK(d.status == rec.status && d.request_time == rec.request_time && d.response_time == rec.response_time);
    CHECK(d.headers_len == blob_len && (blob_len == 0 || memcmp(d.headers, blob, blob_len) == 0));
    CHECK(d.variant_len == key_len && (key_len == 0 || memcmp(d.variant, key, key_len) == 0));
    CHECK(d.etag_len == rec.etag_len && (rec.etag_len == 0 || memcmp(d.etag, rec.etag, rec.etag_len) == 0));
    CHECK(d.last_modified_len == rec.last_modified_len &&
          (rec.last_modified_len == 0 || memcmp(d.last_modified, rec.last_modified, rec.last_modified_len) == 0));
    free(buf);
}

/* ---- decisions ---- */

static void check_decision(const struct http_msg *req, const struct cp_decision *d, int64_t now)
{
    CHECK(d->action == CP_MISS || d->action == CP_HIT || d->action == CP_REVALIDATE || d->action == CP_PASS);
    CHECK(d->reason != NULL && d->reason[0] != '\0');
    CHECK(strcmp(cp_action_name(d->action), "?") != 0);
    CHECK(d->age >= 0 && d->age <= HTTP_DELTA_MAX);
    CHECK(d->lifetime >= 0 && d->lifetime <= HTTP_DELTA_MAX);
    CHECK((d->flags & ~0x7fu) == 0);
    /* s4.2: a HIT not flagged stale is fresh. */
    if (d->action == CP_HIT && !(d->flags & CP_F_STALE)) CHECK(d->lifetime > d->age);
    if (d->flags & CP_F_STRIP) CHECK(d->action == CP_HIT && d->strip.n > 0 && d->strip.n <= HTTP_CC_LIST_MAX);
    if (d->flags & CP_F_ONLY_IF_CACHED) CHECK(d->action != CP_HIT);
    if (d->flags & CP_F_SWR) CHECK(d->action == CP_REVALIDATE);
    if (d->flags & CP_F_STALE_IF_ERROR) CHECK(d->stale_if_error_until >= now);
    if (d->action == CP_PASS)
        CHECK((req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD) || (d->flags & CP_F_NO_STORE));
}

static void check_variant(const struct http_msg *resp, const struct http_msg *req, const struct http_msg *other, struct arena *a,
                          const char **key, size_t *key_len)
{
    *key = NULL;
    *key_len = 0;
    const char *k;
    size_t kl;
    int rc = cp_variant_key(resp, req, a, &k, &kl);
    CHECK(rc == 0 || rc == CP_VARY_STAR || rc == -E2BIG || rc == -EINVAL || rc == -ENOMEM);
    if (rc == -ENOMEM) CHECK(arena_overflowed(a));
    if (rc == CP_VARY_STAR) {
        CHECK(http_vary_has_star(resp));
        CHECK(!cp_vary_matches(resp, "", 0, req));
    }
    if (rc != 0) return;
    CHECK(k[kl] == '\0' && strlen(k) == kl);
    CHECK(cp_vary_matches(resp, k, kl, req) == 1);
    if (kl > 0) CHECK(cp_vary_matches(resp, k, kl - 1, req) == 0);
    /* The matcher and the builder agree for another request too. */
    const char *k2;
    size_t kl2;
    int rc2 = cp_variant_key(resp, other, a, &k2, &kl2);
    if (rc2 == 0)
        CHECK(cp_vary_matches(resp, k, kl, other) == (kl == kl2 && memcmp(k, k2, kl) == 0));
    else if (rc2 != -ENOMEM)
        CHECK(cp_vary_matches(resp, k, kl, other) == 0);
    *key = k;
    *key_len = kl;
}

/* The origin of a normalised absolute URI: "http://host[:port]". */
static size_t origin_len(const char *uri)
{
    const char *slash = strchr(uri + 7, '/');
    return slash ? (size_t)(slash - uri) : strlen(uri);
}

static void check_invalidation(const struct run *r, const struct http_msg *m)
{
    static const char target_uri[] = "http://example.com/a";
    struct cp_uri target = {target_uri, sizeof(target_uri) - 1, target_uri, 18};
    char *buf[2] = {NULL, NULL};
    struct cp_uri loc[2];
    int have[2] = {0, 0};
    static const char *const names[2] = {"Location", "Content-Location"};
    for (int i = 0; i < 2; i++) {
        const struct http_field *f = http_msg_find(m, names[i]);
        struct http_uri u;
        if (f == NULL || http_uri_parse(f->value, f->value_len, 0, &u, NULL) != 0 || u.form != URI_FORM_ABSOLUTE) continue;
        /* Normalising adds at most a '/' and a canonical IPv6 text of up to 45 bytes. */
        size_t cap = f->value_len + 64;
        buf[i] = malloc(cap);
        CHECK(buf[i] != NULL);
        int len = http_uri_normalize(&u, buf[i], cap);
        CHECK(len > 0);
        loc[i] = (struct cp_uri){buf[i], (size_t)len, buf[i], origin_len(buf[i])};
        have[i] = 1;
    }
    struct cp_uri out[3];
    size_t n = cp_invalidation_targets(&r->post_req, m->status, &target, have[0] ? &loc[0] : NULL, have[1] ? &loc[1] : NULL, out);
    CHECK(n <= 3);
    for (size_t i = 0; i < n; i++) {
        CHECK(out[i].uri == target.uri || (have[0] && out[i].uri == loc[0].uri) || (have[1] && out[i].uri == loc[1].uri));
        /* s4.4: never another origin's URI. */
        CHECK(out[i].origin_len == target.origin_len && memcmp(out[i].origin, target.origin, target.origin_len) == 0);
        for (size_t j = 0; j < i; j++)
            CHECK(!(out[i].uri_len == out[j].uri_len && memcmp(out[i].uri, out[j].uri, out[i].uri_len) == 0));
    }
    CHECK(cp_invalidation_targets(&r->req, m->status, &target, NULL, NULL, out) == 0); /* GET is safe */
    free(buf[0]);
    free(buf[1]);
}

static void policy(struct run *r, struct http_msg *m)
{
    struct arena *a = &r->arena;
    const struct http_msg *req = &r->req;
    struct cp_limits lim;
    cp_limits_default(&lim);

    enum cp_store_verdict v = cp_storable(req, m, 0);
    CHECK(v >= CP_STORE_OK && v <= CP_NS_NOT_CACHEABLE);
    CHECK(strcmp(cp_store_reason(v), "unknown") != 0);
    if (v == CP_STORE_OK) CHECK(cp_storable(req, m, CP_STORE_INCOMPLETE) == CP_NS_INCOMPLETE);

    enum cp_fresh_source src = (enum cp_fresh_source) - 1;
    int64_t life = cp_freshness_lifetime(m, T_RESPONSE, &lim, &src);
    CHECK(life >= 0 && life <= HTTP_DELTA_MAX);
    CHECK(src >= CP_FRESH_NONE && src <= CP_FRESH_INVALID);
    if (src == CP_FRESH_NONE || src == CP_FRESH_INVALID) CHECK(life == 0);
    if (src == CP_FRESH_HEURISTIC) CHECK(life <= lim.heuristic_max);
    struct cp_limits wide = {1000, INT64_MAX, INT64_MAX};
    int64_t life2 = cp_freshness_lifetime(m, T_RESPONSE, &wide, NULL);
    CHECK(life2 >= 0 && life2 <= HTTP_DELTA_MAX);

    static const int64_t later[] = {0, 1, 59, 3600, 86400 * 400, INT64_C(1) << 33};
    int64_t prev = 0;
    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
        int64_t age = cp_current_age(m, T_REQUEST, T_RESPONSE, T_RESPONSE + later[i]);
        CHECK(age >= 0 && age <= HTTP_DELTA_MAX);
        CHECK(age >= prev); /* s4.2.3: the age never goes down as time passes */
        prev = age;
    }

    const char *key;
    size_t key_len;
    check_variant(m, req, &r->other_req, a, &key, &key_len);

    /* The copy the store keeps (proxy/txn_fetch.c prepares a clone). */
    struct http_msg st;
    if (http_msg_clone_deep(&st, m, a) != 0) {
        CHECK(arena_overflowed(a));
        return;
    }
    int rc = cp_prepare_for_storage(&st, T_RESPONSE, a);
    if (rc == -ENOMEM) {
        CHECK(arena_overflowed(a));
        return;
    }
    CHECK(rc == 0);
    int64_t date;
    CHECK(http_date_field(&st, "Date", T_RESPONSE, &date) == 0); /* RFC 9110 s6.6.1 */
    for (size_t i = 0; i < st.n_fields; i++)
        if (!(st.fields[i].flags & HTTP_FIELD_REMOVED)) CHECK(!is_hop_name(&st.fields[i])); /* s3.1 */

    struct http_msg back;
    char *blob;
    size_t blob_len;
    if (stored_roundtrip(&st, a, &back, &blob, &blob_len) != 0) return;
    record_roundtrip(&st, blob, blob_len, key, key_len);
    free(blob);

    struct cp_stored stored = {&back, T_REQUEST, T_RESPONSE, key, key_len, (int)(r->n_msgs & 1)};
    struct cp_stored raw = {m, T_REQUEST, T_RESPONSE, NULL, 0, 0};
    for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
        int64_t now = T_RESPONSE + later[i];
        struct cp_decision d;
        cp_decide(req, &stored, now, &lim, &d);
        check_decision(req, &d, now);
        cp_decide(req, &raw, now, &lim, &d);
        check_decision(req, &d, now);
        cp_decide(&r->other_req, &stored, now, &lim, &d);
        check_decision(&r->other_req, &d, now);
        cp_decide(req, NULL, now, &lim, &d);
        check_decision(req, &d, now);
        CHECK(d.action == CP_MISS || d.action == CP_PASS);
        enum cp_cond_result c = cp_eval_conditionals(req, &back, T_RESPONSE, now);
        CHECK(c == CP_COND_NONE || c == CP_COND_NOT_MODIFIED);
    }

    struct http_msg fwd;
    if (http_msg_clone(&fwd, req, a) == 0) {
        rc = cp_conditional(&back, &fwd, a);
        CHECK(rc == -ENOMEM || (rc >= 0 && rc <= 2));
        if (rc >= 0) CHECK(http_msg_count(&fwd, "If-None-Match") <= 1 && http_msg_count(&fwd, "If-Modified-Since") <= 1);
    }

    size_t sel[1] = {99};
    size_t n = cp_select_304(m, &stored, 1, sel);
    CHECK(n <= 1 && (n == 0 || sel[0] == 0));

    enum cp_head_verdict hv = cp_head_freshen(&back, m->content_length, m);
    CHECK(hv == CP_HEAD_IGNORE || hv == CP_HEAD_UPDATE || hv == CP_HEAD_STALE);
    for (size_t i = 0; i < back.n_fields; i++) {
        int keep = cp_304_keeps(&back, &back.fields[i]);
        CHECK(keep == 0 || keep == 1);
    }

    /* s4.3.4: merged heads are stored too, so they must survive the stored form. */
    const struct http_msg *merge_from[2] = {m, &back};
    for (int i = 0; i < 2; i++) {
        struct http_msg merged, again;
        rc = cp_merge_304(merge_from[i], m, T_RESPONSE + 5, &merged, a);
        if (rc == -ENOMEM) {
            CHECK(arena_overflowed(a));
            return;
        }
        CHECK(rc == 0);
        CHECK(merged.status == merge_from[i]->status);
        if (stored_roundtrip(&merged, a, &again, &blob, &blob_len) != 0) return;
        free(blob);
    }
    check_invalidation(r, m);
}

/* ---- callbacks ---- */

static struct http_msg *on_begin(void *data, struct arena **arena)
{
    struct run *r = data;
    CHECK(!r->pause_pending);
    arena_reset(&r->arena);
    CHECK(r->body.len == 0);
    r->n_msgs++;
    *arena = &r->arena;
    return &r->msg;
}

static int on_head(void *data, struct http_msg *m)
{
    struct run *r = data;
    CHECK(!r->pause_pending);
    CHECK(m == &r->msg);
    CHECK(!m->is_request);
    CHECK(m->version_major == 1);
    CHECK(m->status >= 100 && m->status <= 999 && m->status != 101);
    CHECK(m->reason != NULL && m->reason[m->reason_len] == '\0');
    CHECK(m->framing == HTTP_BODY_NONE || m->framing == HTTP_BODY_LENGTH || m->framing == HTTP_BODY_CHUNKED ||
          m->framing == HTTP_BODY_EOF);
    /* RFC 9112 s6.3 item 1 */
    if (m->status < 200 || m->status == 204 || m->status == 304) CHECK(m->framing == HTTP_BODY_NONE);
    t_u64(&r->log, 'H', (uint64_t)m->status);
    t_str(&r->log, 'R', m->reason, m->reason_len);
    t_u64(&r->log, 'V', (uint64_t)(m->version_major * 10 + m->version_minor));
    t_u64(&r->log, 'F', m->framing);
    t_u64(&r->log, 'L', m->framing == HTTP_BODY_LENGTH ? m->content_length : 0);
    t_u64(&r->log, 'K', (uint64_t)m->keep_alive);
    log_fields(&r->log, m);
    if (m->status >= 200) policy(r, m);
    if ((r->ctl & CTL_HEAD_REQUEST) && m->status >= 200) return HTTP_PARSE_CB_NO_BODY;
    return answer(r, (r->ctl & CTL_PAUSE_HEAD) && (r->n_msgs & 1));
}

static int on_body(void *data, const char *at, size_t len)
{
    struct run *r = data;
    CHECK(!r->pause_pending);
    CHECK(len > 0);
    CHECK(r->msg.framing != HTTP_BODY_NONE);
    t_put(&r->body, at, len);
    r->n_body++;
    return answer(r, (r->ctl & CTL_PAUSE_BODY) && r->n_body % 3 == 1);
}

static int on_done(void *data, struct http_msg *trailers)
{
    struct run *r = data;
    CHECK(!r->pause_pending);
    if (r->msg.framing == HTTP_BODY_LENGTH) CHECK(r->body.len == r->msg.content_length);
    t_str(&r->log, 'B', (const char *)r->body.p, r->body.len);
    r->body.len = 0;
    t_put(&r->log, "D", 1);
    if (trailers != NULL) {
        log_fields(&r->log, trailers);
        http_mark_hop_by_hop(trailers);
        size_t size = http_head_size("0", trailers, NULL, 0);
        char *buf = malloc(size);
        CHECK(buf != NULL);
        CHECK(http_head_write(buf, "0", trailers, NULL, 0) == size);
        free(buf);
    }
    return answer(r, (r->ctl & CTL_PAUSE_DONE) && (r->n_msgs & 2));
}

static void check_error(const struct http_parser *p)
{
    /* The proxy answers 502 for whatever an upstream got wrong; the statuses here only need to be real. */
    int st = http_parser_error_status(p);
    CHECK(st == 400 || st == 500 || st == 502);
    const char *why = http_parser_error_reason(p);
    CHECK(why != NULL && why[0] != '\0');
}

static int feed(struct run *r, struct http_parser *p, const char *buf, size_t len, size_t base)
{
    size_t off = 0;
    unsigned stalls = 0;
    for (;;) {
        size_t consumed = SIZE_MAX;
        enum http_parse_status st = http_parser_execute(p, buf + off, len - off, &consumed);
        CHECK(consumed <= len - off);
        CHECK(!r->pause_pending || st == HTTP_PARSE_PAUSED);
        r->pause_pending = 0;
        off += consumed;
        switch (st) {
        case HTTP_PARSE_OK:
            CHECK(off == len);
            return 1;
        case HTTP_PARSE_PAUSED:
            stalls = consumed == 0 ? stalls + 1 : 0;
            CHECK(stalls < 16);
            http_parser_resume(p);
            continue;
        case HTTP_PARSE_UPGRADE:
            t_u64(&r->log, 'U', base + off);
            return 0;
        case HTTP_PARSE_ERROR:
            check_error(p);
            t_put(&r->log, "E", 1);
            return 0;
        default:
            CHECK(0);
        }
    }
}

static void run(struct run *r, unsigned ctl, const char *in, size_t n, size_t first, size_t chunk)
{
    memset(r, 0, sizeof(*r));
    r->ctl = ctl;
    struct http_parse_limits lim;
    size_t arena_limit;
    if (ctl & CTL_SMALL_LIMITS) {
        lim = (struct http_parse_limits){512, 8, 1};
        arena_limit = 4096;
    } else {
        lim = (struct http_parse_limits){256 * 1024, 1000, 1};
        arena_limit = 65536 * 4 + 1024 * 1024;
    }
    CHECK(arena_init(&r->arena, 8192, arena_limit) == 0);
    CHECK(arena_init(&r->fixed, 4096, 1u << 20) == 0);
    unsigned which = ctl >> 6;
    build_request(&r->req, &r->fixed, &req_specs[which]);
    build_request(&r->other_req, &r->fixed, &req_specs[(which + 1) % 4]);
    static const struct req_spec post = {"POST", {{"Host", "example.com"}, {"Content-Length", "0"}}};
    build_request(&r->post_req, &r->fixed, &post);

    struct http_parse_callbacks cb = {on_begin, on_head, on_body, on_done};
    struct http_parser *p = http_parser_new(HTTP_PARSE_RESPONSE, &lim, &cb, r);
    CHECK(p != NULL);
    size_t off = 0;
    int more = 1;
    for (int reads = 0; more; reads++) {
        size_t len = reads == 0 ? first : chunk;
        if (len > n - off) len = n - off;
        char *buf = malloc(len ? len : 1);
        CHECK(buf != NULL);
        memcpy(buf, in + off, len);
        more = feed(r, p, buf, len, off);
        free(buf);
        off += len;
        if (off == n) break;
    }
    if (more) {
        /* The origin closes: a close-delimited body ends, anything else in progress was cut short. */
        int in_msg = http_parser_in_message(p);
        enum http_parse_status st = http_parser_finish(p);
        CHECK(!r->pause_pending || st == HTTP_PARSE_OK);
        r->pause_pending = 0;
        CHECK(st == HTTP_PARSE_OK || st == HTTP_PARSE_ERROR);
        if (st == HTTP_PARSE_ERROR) {
            CHECK(in_msg);
            check_error(p);
        }
        t_u64(&r->log, 'Z', (uint64_t)st);
        if (st == HTTP_PARSE_OK) t_str(&r->log, 'P', (const char *)r->body.p, r->body.len);
    }
    free(r->body.p);
    http_parser_free(p);
    arena_free(&r->arena);
    arena_free(&r->fixed);
}

static void compare(const struct run *a, const struct run *b)
{
    if (a->log.len != b->log.len || (a->log.len && memcmp(a->log.p, b->log.p, a->log.len) != 0)) {
        fprintf(stderr, "transcripts differ: %zu vs %zu bytes\n", a->log.len, b->log.len);
        CHECK(0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned ctl = data[0];
    const char *in = (const char *)data + 1;
    size_t n = size - 1;

    struct run whole, split;
    run(&whole, ctl, in, n, n, n);
    run(&split, ctl, in, n, ctl * n / 255, n);
    compare(&whole, &split);
    free(split.log.p);
    if ((ctl & CTL_BYTEWISE) && n <= 2048) {
        struct run bytes;
        run(&bytes, ctl, in, n, 1, 1);
        compare(&whole, &bytes);
        free(bytes.log.p);
    }
    free(whole.log.p);
    return 0;
}
