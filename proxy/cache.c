#include "proxy/cache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/stored_head.h"

#define CACHE_MAX_VARIANTS 16

int cache_open(struct cache **out, const struct proxy_config *cfg, char *err, size_t err_len)
{
    struct cache *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    struct store_config sc = {
        .dir = cfg->cache_dir,
        .cache_size = cfg->cache_size,
        .max_object_size = cfg->max_object_size,
        .flags = 0,
        .map_size = 0,
    };
    char serr[512] = "";
    int rc = store_open(&c->store, &sc, serr, sizeof(serr));
    if (rc != 0) {
        snprintf(err, err_len, "cache_dir %s: %s", cfg->cache_dir, serr[0] ? serr : store_strerror(rc));
        free(c);
        return -1;
    }
    struct store_writer_config wc = {0};
    rc = store_writer_new(&c->writer, c->store, &wc);
    if (rc != 0) {
        snprintf(err, err_len, "cannot start the store writer: %s", store_strerror(rc));
        store_close(c->store);
        free(c);
        return -1;
    }
    cp_limits_default(&c->limits);
    c->max_object_size = store_max_object_size(c->store);
    *out = c;
    return 0;
}

void cache_close(struct cache *c)
{
    if (c == NULL)
        return;
    store_writer_free(c->writer);
    store_close(c->store);
    free(c);
}

/* Runs on the writer thread: only wake the loop. */
static void writer_notify(void *arg)
{
    uv_async_send(arg);
}

static void on_wakeup(uv_async_t *a)
{
    struct cache_loop *cl = a->data;
    if (cl->wc != NULL)
        store_wclient_drain(cl->wc);
}

int cache_loop_init(struct cache_loop *cl, struct cache *c, uv_loop_t *loop)
{
    memset(cl, 0, sizeof(*cl));
    cl->cache = c;
    uv_async_init(loop, &cl->wakeup, on_wakeup);
    cl->wakeup.data = cl;
    int rc = store_rtxn_begin(c->store, &cl->rtxn);
    if (rc == 0)
        rc = store_hasher_new(&cl->hasher);
    if (rc == 0)
        rc = store_wclient_new(c->writer, writer_notify, &cl->wakeup, &cl->wc);
    cl->open = 1;
    return rc;
}

static void on_wakeup_closed(uv_handle_t *h)
{
    struct cache_loop *cl = h->data;
    if (cl->wc != NULL) {
        /* Completions still queued are run (and dropped by their owners) before the client goes. */
        store_wclient_drain(cl->wc);
        store_wclient_free(cl->wc);
        cl->wc = NULL;
    }
}

void cache_loop_close(struct cache_loop *cl)
{
    if (!cl->open)
        return;
    cl->open = 0;
    if (cl->rtxn != NULL) {
        store_rtxn_end(cl->rtxn);
        cl->rtxn = NULL;
    }
    store_hasher_free(cl->hasher);
    cl->hasher = NULL;
    cache_hot_free(&cl->hot);
    uv_close((uv_handle_t *)&cl->wakeup, on_wakeup_closed);
}

void cache_primary_key(struct cache_loop *cl, const char *url, size_t url_len, struct store_key *out)
{
    store_key_primary(cl->hasher, out, "GET", 3, url, url_len);
}

void cache_entry_release(struct cache_entry *e)
{
    if (e->hot != NULL) {
        cache_hot_unref(e->hot);
        e->hot = NULL;
        e->meta.blob = NULL;
    } else if (e->found) {
        store_meta_release(&e->meta);
    }
    e->found = 0;
}

int cache_snapshot_begin(struct cache_loop *cl)
{
    /* Read before the snapshot: see store_meta_generation(). */
    cl->snap_gen = store_meta_generation(cl->cache->store);
    return store_rtxn_renew(cl->rtxn);
}

int cache_lookup(struct cache_loop *cl, const char *url, size_t url_len, const struct http_msg *req, struct arena *a,
                 struct cache_entry *e)
{
    memset(e, 0, sizeof(*e));
    int snapshot = store_rtxn_active(cl->rtxn);
    if (snapshot) {
        /* Read after the snapshot the body will be read in: see store_meta_generation(). */
        struct cache_hot_view v;
        if (cache_hot_get(&cl->hot, url, url_len, store_meta_generation(cl->cache->store), a, &v)) {
            e->meta.rec = v.rec;
            e->hot = v.ref;
            e->resp = v.resp;
            e->pkey = v.pkey;
            e->vkey = v.vkey;
            e->summary = v.summary;
            e->found = 1;
            e->from_hot = 1;
            return 0;
        }
    }
    cache_primary_key(cl, url, url_len, &e->pkey);
    struct store_key keys[CACHE_MAX_VARIANTS];
    size_t n_total = 0;
    int rc = store_variants_get(cl->rtxn, &e->pkey, keys, CACHE_MAX_VARIANTS, &n_total);
    if (rc != 0)
        return rc;
    size_t n = n_total < CACHE_MAX_VARIANTS ? n_total : CACHE_MAX_VARIANTS;
    int64_t best_time = INT64_MIN;
    for (size_t i = 0; i < n; i++) {
        struct store_meta m;
        rc = store_meta_get(cl->rtxn, &keys[i], "GET", 3, url, url_len, &m);
        if (rc == STORE_ENOTFOUND)
            continue;
        if (rc != 0)
            return rc;
        /* The record's bytes are m's private heap copy: the fields point into it (no copy) and live as
         * long as the entry holds m. */
        struct http_msg resp;
        if (stored_head_parse_in_place((char *)m.rec.headers, m.rec.headers_len, m.rec.status, a, &resp) != 0) {
            store_meta_release(&m);
            return STORE_ECORRUPT;
        }
        /* RFC 9111 s4.1: the stored request's Vary-selected fields must match; among several matching
         * variants, the most recent response is used. */
        if (!cp_vary_matches(&resp, m.rec.variant, m.rec.variant_len, req)) {
            e->vary_miss = 1;
            store_meta_release(&m);
            continue;
        }
        if (e->found && m.rec.response_time <= best_time) {
            store_meta_release(&m);
            continue;
        }
        if (e->found)
            store_meta_release(&e->meta);
        e->meta = m;
        e->resp = resp;
        e->vkey = keys[i];
        e->found = 1;
        best_time = m.rec.response_time;
    }
    if (e->found)
        e->vary_miss = 0;
    /* One variant and no Vary: nothing to select next time, so the decoded head can be reused while
     * no meta record changes. */
    if (e->found && snapshot && n_total == 1 && e->meta.rec.variant_len == 0 && e->meta.blob_len <= CACHE_HOT_MAX_BLOB &&
        http_msg_find(&e->resp, "vary") == NULL) {
        struct cp_resp_summary sum;
        cp_summarize(&e->resp, e->meta.rec.response_time, &cl->cache->limits, &sum);
        e->hot = cache_hot_put(&cl->hot, url, url_len, cl->snap_gen, e->meta.blob, &e->meta.rec, &e->resp, &e->pkey,
                               &e->vkey, &sum);
        if (e->hot != NULL)
            e->meta.blob = NULL; /* the hot entry's now */
    }
    return 0;
}

int cache_record_build(struct store_record *rec, const char *url, size_t url_len, const struct http_msg *resp,
                       const char *variant, size_t variant_len, int64_t request_time, int64_t response_time,
                       int64_t now, struct arena *a)
{
    memset(rec, 0, sizeof(*rec));
    size_t hlen = stored_head_size(resp);
    char *head = arena_alloc(a, hlen ? hlen : 1);
    if (head == NULL)
        return -ENOMEM;
    stored_head_write(resp, head);
    rec->status = (uint16_t)resp->status;
    rec->request_time = request_time;
    rec->response_time = response_time;
    rec->stored_at = now;
    rec->method = "GET";
    rec->method_len = 3;
    rec->uri = url;
    rec->uri_len = url_len;
    rec->variant = variant;
    rec->variant_len = variant_len;
    const struct http_field *et = http_msg_find(resp, "etag");
    if (et != NULL) {
        rec->etag = et->value;
        rec->etag_len = et->value_len;
    }
    const struct http_field *lm = http_msg_find(resp, "last-modified");
    if (lm != NULL) {
        rec->last_modified = lm->value;
        rec->last_modified_len = lm->value_len;
    }
    rec->headers = head;
    rec->headers_len = hlen;
    return 0;
}
