#include "proxy/cache_hot.h"

#include <stdlib.h>
#include <string.h>

struct cache_hot_entry {
    unsigned refs;
    uint64_t gen;
    void *blob;
    struct store_record rec;
    struct http_msg resp;          /* fields: the array below */
    struct http_field *fields;
    struct store_key pkey, vkey;
    struct cp_resp_summary summary; /* cp_summarize() of resp: what every hit's decision needs */
};

/* FNV-1a: the URL only picks a slot; the record's own URI is compared on every use. */
static size_t slot_of(const char *url, size_t len)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)url[i];
        h *= 1099511628211u;
    }
    return (size_t)(h % CACHE_HOT_SLOTS);
}

void cache_hot_unref(struct cache_hot_entry *e)
{
    if (e == NULL || --e->refs > 0)
        return;
    free(e->fields);
    free(e->blob);
    free(e);
}

int cache_hot_get(struct cache_hot *h, const char *url, size_t url_len, uint64_t gen, struct arena *a,
                  struct cache_hot_view *out)
{
    if (h->slots == NULL)
        return 0;
    size_t i = slot_of(url, url_len);
    struct cache_hot_entry *e = h->slots[i];
    if (e == NULL)
        return 0;
    if (e->gen != gen) {
        /* Some meta record changed since: this one may be among them. */
        h->slots[i] = NULL;
        cache_hot_unref(e);
        return 0;
    }
    if (e->rec.uri_len != url_len || memcmp(e->rec.uri, url, url_len) != 0)
        return 0;
    if (http_msg_clone(&out->resp, &e->resp, a) != 0)
        return 0;
    e->refs++;
    out->ref = e;
    out->rec = e->rec;
    out->pkey = e->pkey;
    out->vkey = e->vkey;
    out->summary = &e->summary;
    return 1;
}

struct cache_hot_entry *cache_hot_put(struct cache_hot *h, const char *url, size_t url_len, uint64_t gen, void *blob,
                                      const struct store_record *rec, const struct http_msg *resp,
                                      const struct store_key *pkey, const struct store_key *vkey,
                                      const struct cp_resp_summary *summary)
{
    if (h->slots == NULL && (h->slots = calloc(CACHE_HOT_SLOTS, sizeof(*h->slots))) == NULL)
        return NULL;
    struct cache_hot_entry *e = calloc(1, sizeof(*e));
    struct http_field *fields = resp->n_fields ? malloc(resp->n_fields * sizeof(*fields)) : NULL;
    if (e == NULL || (resp->n_fields && fields == NULL)) {
        free(e);
        free(fields);
        return NULL;
    }
    if (resp->n_fields)
        memcpy(fields, resp->fields, resp->n_fields * sizeof(*fields));
    e->refs = 2; /* the table's and the caller's */
    e->gen = gen;
    e->blob = blob;
    e->rec = *rec;
    e->resp = *resp;
    e->resp.fields = fields;
    e->resp.cap_fields = resp->n_fields;
    e->fields = fields;
    e->pkey = *pkey;
    e->vkey = *vkey;
    e->summary = *summary; /* its lists point into field values, which live in blob */
    size_t i = slot_of(url, url_len);
    cache_hot_unref(h->slots[i]);
    h->slots[i] = e;
    return e;
}

void cache_hot_free(struct cache_hot *h)
{
    if (h->slots == NULL)
        return;
    for (size_t i = 0; i < CACHE_HOT_SLOTS; i++)
        cache_hot_unref(h->slots[i]);
    free(h->slots);
    h->slots = NULL;
}
