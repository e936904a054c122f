#include "store/store_record.h"

#include <errno.h>
#include <string.h>

#include "store/store.h"
#include "store/store_keys.h"

/* Offsets in the fixed part; see the layout in store_record.h. */
enum {
    OFF_MAGIC = 0,
    OFF_VERSION = 4,
    OFF_FIXED_LEN = 6,
    OFF_FLAGS = 8,
    OFF_STATUS = 12,
    OFF_COMPLETE = 14,
    OFF_RESERVED = 15,
    OFF_REQUEST_TIME = 16,
    OFF_RESPONSE_TIME = 24,
    OFF_STORED_AT = 32,
    OFF_BODY_ID = 40,
    OFF_BODY_LEN = 48,
    OFF_N_CHUNKS = 56,
    OFF_TOTAL_LEN = 60,
};

_Static_assert(OFF_TOTAL_LEN + 4 == STORE_RECORD_FIXED_LEN, "fixed part layout");

/* The variable fields in encoding order. */
static void fields_get(const struct store_record *r, const void *p[STORE_RECORD_N_FIELDS], size_t len[STORE_RECORD_N_FIELDS])
{
    p[0] = r->method, len[0] = r->method_len;
    p[1] = r->uri, len[1] = r->uri_len;
    p[2] = r->variant, len[2] = r->variant_len;
    p[3] = r->etag, len[3] = r->etag_len;
    p[4] = r->last_modified, len[4] = r->last_modified_len;
    p[5] = r->headers, len[5] = r->headers_len;
}

static void fields_set(struct store_record *r, const uint8_t *p[STORE_RECORD_N_FIELDS], const size_t len[STORE_RECORD_N_FIELDS])
{
    r->method = (const char *)p[0], r->method_len = len[0];
    r->uri = (const char *)p[1], r->uri_len = len[1];
    r->variant = p[2], r->variant_len = len[2];
    r->etag = (const char *)p[3], r->etag_len = len[3];
    r->last_modified = (const char *)p[4], r->last_modified_len = len[4];
    r->headers = p[5], r->headers_len = len[5];
}

size_t store_record_encoded_len(const struct store_record *r)
{
    if (r->method == NULL || r->method_len == 0 || r->uri == NULL || r->uri_len == 0) return 0;
    if (r->status < 100 || r->status > 999 || r->complete > 1) return 0;
    const void *fp[STORE_RECORD_N_FIELDS];
    size_t fl[STORE_RECORD_N_FIELDS];
    fields_get(r, fp, fl);
    size_t total = STORE_RECORD_FIXED_LEN;
    for (size_t i = 0; i < STORE_RECORD_N_FIELDS; i++) {
        size_t n = fl[i];
        if (n != 0 && fp[i] == NULL) return 0;
        /* Each step is checked against the cap, so the sum cannot wrap. */
        if (n > STORE_RECORD_MAX_LEN || total + 4 + n > STORE_RECORD_MAX_LEN) return 0;
        total += 4 + n;
    }
    return total;
}

int store_record_encode(const struct store_record *r, void *buf, size_t cap, size_t *out_len)
{
    size_t total = store_record_encoded_len(r);
    if (total == 0) return -EINVAL;
    if (cap < total) return -ENOSPC;
    uint8_t *p = buf;
    store__be32_put(p + OFF_MAGIC, STORE_RECORD_MAGIC);
    store__be16_put(p + OFF_VERSION, STORE_RECORD_VERSION);
    store__be16_put(p + OFF_FIXED_LEN, STORE_RECORD_FIXED_LEN);
    store__be32_put(p + OFF_FLAGS, r->flags);
    store__be16_put(p + OFF_STATUS, r->status);
    p[OFF_COMPLETE] = r->complete;
    p[OFF_RESERVED] = 0;
    store__be64_put(p + OFF_REQUEST_TIME, (uint64_t)r->request_time);
    store__be64_put(p + OFF_RESPONSE_TIME, (uint64_t)r->response_time);
    store__be64_put(p + OFF_STORED_AT, (uint64_t)r->stored_at);
    store__be64_put(p + OFF_BODY_ID, r->body_id);
    store__be64_put(p + OFF_BODY_LEN, r->body_len);
    store__be32_put(p + OFF_N_CHUNKS, r->n_chunks);
    store__be32_put(p + OFF_TOTAL_LEN, (uint32_t)total);

    const void *fp[STORE_RECORD_N_FIELDS];
    size_t fl[STORE_RECORD_N_FIELDS];
    fields_get(r, fp, fl);
    size_t off = STORE_RECORD_FIXED_LEN;
    for (size_t i = 0; i < STORE_RECORD_N_FIELDS; i++) {
        size_t n = fl[i];
        store__be32_put(p + off, (uint32_t)n);
        off += 4;
        if (n != 0) memcpy(p + off, fp[i], n);
        off += n;
    }
    *out_len = total;
    return 0;
}

int store_record_decode(const void *buf, size_t len, struct store_record *out)
{
    const uint8_t *p = buf;
    if (buf == NULL || len < STORE_RECORD_MIN_LEN || len > STORE_RECORD_MAX_LEN) return STORE_ECORRUPT;
    if (store__be32_get(p + OFF_MAGIC) != STORE_RECORD_MAGIC || store__be16_get(p + OFF_VERSION) != STORE_RECORD_VERSION ||
        store__be16_get(p + OFF_FIXED_LEN) != STORE_RECORD_FIXED_LEN || store__be32_get(p + OFF_TOTAL_LEN) != len)
        return STORE_ECORRUPT;
    memset(out, 0, sizeof(*out));
    out->flags = store__be32_get(p + OFF_FLAGS);
    out->status = store__be16_get(p + OFF_STATUS);
    out->complete = p[OFF_COMPLETE];
    if (out->status < 100 || out->status > 999 || out->complete > 1 || p[OFF_RESERVED] != 0) return STORE_ECORRUPT;
    out->request_time = (int64_t)store__be64_get(p + OFF_REQUEST_TIME);
    out->response_time = (int64_t)store__be64_get(p + OFF_RESPONSE_TIME);
    out->stored_at = (int64_t)store__be64_get(p + OFF_STORED_AT);
    out->body_id = store__be64_get(p + OFF_BODY_ID);
    out->body_len = store__be64_get(p + OFF_BODY_LEN);
    out->n_chunks = store__be32_get(p + OFF_N_CHUNKS);

    const uint8_t *fp[STORE_RECORD_N_FIELDS];
    size_t fl[STORE_RECORD_N_FIELDS];
    size_t off = STORE_RECORD_FIXED_LEN;
    for (size_t i = 0; i < STORE_RECORD_N_FIELDS; i++) {
        /* off <= len holds on entry; compare against what is left, never add an untrusted length. */
        if (len - off < 4) return STORE_ECORRUPT;
        uint32_t n = store__be32_get(p + off);
        off += 4;
        if (n > len - off) return STORE_ECORRUPT;
        fp[i] = n != 0 ? p + off : NULL;
        fl[i] = n;
        off += n;
    }
    fields_set(out, fp, fl);
    if (off != len || out->method_len == 0 || out->uri_len == 0) return STORE_ECORRUPT;
    return 0;
}

int store_record_set_body(void *buf, size_t len, uint64_t body_id, uint64_t body_len, uint32_t n_chunks, uint8_t complete)
{
    struct store_record r;
    int rc = store_record_decode(buf, len, &r);
    if (rc != 0) return rc;
    if (complete > 1) return -EINVAL;
    uint8_t *p = buf;
    p[OFF_COMPLETE] = complete;
    store__be64_put(p + OFF_BODY_ID, body_id);
    store__be64_put(p + OFF_BODY_LEN, body_len);
    store__be32_put(p + OFF_N_CHUNKS, n_chunks);
    return 0;
}
