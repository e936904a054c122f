/* Unit tests for store/store_record (meta record codec) and store/store_keys (fixed-length keys).
 * Pure functions: no LMDB, no clock. The mutation test is a small deterministic fuzzer: every mutated
 * input must either be rejected or decode to a record that re-encodes to the very same bytes. */
#include <errno.h>

#include "store/store.h"
#include "test_util.h"

static const char HEADERS[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nETag: \"v1\"\r\n\r\n";

static struct store_record sample(void)
{
    struct store_record r = {
        .flags = 0x80000001u,
        .status = 200,
        .complete = 1,
        .request_time = 1700000000,
        .response_time = 1700000001,
        .stored_at = -5, /* times are signed: make sure the sign survives */
        .body_id = 0x0102030405060708ull,
        .body_len = 600000,
        .n_chunks = 3,
        .method = "GET",
        .method_len = 3,
        .uri = "http://example.com/a?b=c",
        .uri_len = 24,
        .variant = "accept-encoding=gzip",
        .variant_len = 20,
        .etag = "\"v1\"",
        .etag_len = 4,
        .last_modified = "Tue, 15 Nov 1994 08:12:31 GMT",
        .last_modified_len = 29,
        .headers = HEADERS,
        .headers_len = sizeof(HEADERS) - 1,
    };
    return r;
}

static size_t encode_sample(uint8_t *buf, size_t cap)
{
    struct store_record r = sample();
    size_t len = 0;
    ASSERT_EQ(store_record_encode(&r, buf, cap, &len), 0);
    ASSERT_EQ(len, store_record_encoded_len(&r));
    return len;
}

static void assert_same_bytes(const void *a, size_t a_len, const void *b, size_t b_len)
{
    ASSERT_EQ(a_len, b_len);
    if (a_len > 0) ASSERT(memcmp(a, b, a_len) == 0);
}

static void test_record_round_trip(void)
{
    uint8_t buf[1024];
    size_t len = encode_sample(buf, sizeof(buf));
    struct store_record in = sample(), out;
    ASSERT_EQ(store_record_decode(buf, len, &out), 0);
    ASSERT_UEQ(out.flags, in.flags);
    ASSERT_EQ(out.status, 200);
    ASSERT_EQ(out.complete, 1);
    ASSERT_EQ(out.request_time, in.request_time);
    ASSERT_EQ(out.response_time, in.response_time);
    ASSERT_EQ(out.stored_at, -5);
    ASSERT_UEQ(out.body_id, in.body_id);
    ASSERT_UEQ(out.body_len, in.body_len);
    ASSERT_UEQ(out.n_chunks, in.n_chunks);
    assert_same_bytes(out.method, out.method_len, in.method, in.method_len);
    assert_same_bytes(out.uri, out.uri_len, in.uri, in.uri_len);
    assert_same_bytes(out.variant, out.variant_len, in.variant, in.variant_len);
    assert_same_bytes(out.etag, out.etag_len, in.etag, in.etag_len);
    assert_same_bytes(out.last_modified, out.last_modified_len, in.last_modified, in.last_modified_len);
    assert_same_bytes(out.headers, out.headers_len, in.headers, in.headers_len);
    /* Decoded pointers point into the buffer, not into the original record. */
    ASSERT((const uint8_t *)out.uri > buf && (const uint8_t *)out.uri < buf + len);
}

static void test_record_optional_fields_empty(void)
{
    struct store_record r = {.status = 304, .method = "HEAD", .method_len = 4, .uri = "/", .uri_len = 1};
    uint8_t buf[256];
    size_t len;
    ASSERT_EQ(store_record_encode(&r, buf, sizeof(buf), &len), 0);
    ASSERT_EQ(len, STORE_RECORD_MIN_LEN + 3); /* "HEAD" is three bytes longer than the minimum's 1 */
    struct store_record out;
    ASSERT_EQ(store_record_decode(buf, len, &out), 0);
    ASSERT_EQ(out.variant_len, 0);
    ASSERT(out.variant == NULL && out.etag == NULL && out.last_modified == NULL && out.headers == NULL);
    ASSERT_EQ(out.complete, 0);
}

/* Records the encoder must refuse. */
static const char *encode_reject_row(int i, struct store_record *r)
{
    switch (i) {
    case 0:
        r->method_len = 0;
        return "no method";
    case 1:
        r->uri_len = 0;
        return "no uri";
    case 2:
        r->method = NULL;
        return "method NULL";
    case 3:
        r->status = 99;
        return "status 99";
    case 4:
        r->status = 1000;
        return "status 1000";
    case 5:
        r->complete = 2;
        return "complete 2";
    case 6:
        r->etag = NULL;
        return "etag NULL with a length";
    case 7:
        r->headers_len = STORE_RECORD_MAX_LEN;
        return "headers over the record cap";
    }
    return NULL;
}

static void test_record_encode_rejects(void)
{
    for (int i = 0;; i++) {
        struct store_record r = sample();
        const char *name = encode_reject_row(i, &r);
        if (name == NULL) break;
        uint8_t buf[1024];
        size_t len = 0;
        if (store_record_encoded_len(&r) != 0 || store_record_encode(&r, buf, sizeof(buf), &len) != -EINVAL)
            TEST_FAIL_("encode should reject: %s", name);
    }
    struct store_record r = sample();
    uint8_t small[64];
    size_t len;
    ASSERT_EQ(store_record_encode(&r, small, sizeof(small), &len), -ENOSPC);
}

/* Every proper prefix of a valid record, and the record plus a trailing byte, are rejected. */
static void test_record_truncations_rejected(void)
{
    uint8_t buf[1024];
    size_t len = encode_sample(buf, sizeof(buf) - 1);
    struct store_record out;
    for (size_t n = 0; n < len; n++)
        if (store_record_decode(buf, n, &out) != STORE_ECORRUPT) TEST_FAIL_("prefix of %zu/%zu bytes decoded", n, len);
    buf[len] = 0;
    ASSERT_EQ(store_record_decode(buf, len + 1, &out), STORE_ECORRUPT);
    ASSERT_EQ(store_record_decode(NULL, len, &out), STORE_ECORRUPT);
}

static void put32(uint8_t *p, uint32_t v)
{
    store__be32_put(p, v);
}

/* Named corruptions of one field each. */
static void test_record_garbled_rejected(void)
{
    uint8_t good[1024];
    size_t len = encode_sample(good, sizeof(good));
    size_t var = STORE_RECORD_FIXED_LEN; /* method length */
    size_t uri_len_off = var + 4 + 3;    /* after "GET" */
    size_t var_len_off = uri_len_off + 4 + 24;
    struct {
        const char *name;
        size_t off;
        int width; /* 1, 2 or 4 bytes, big-endian */
        uint32_t value;
    } rows[] = {
        {"magic", 0, 4, 0x4c524d32},
        {"version 2", 4, 2, 2},
        {"version 0", 4, 2, 0},
        {"fixed_len 63", 6, 2, 63},
        {"fixed_len 65", 6, 2, 65},
        {"status 0", 12, 2, 0},
        {"status 1000", 12, 2, 1000},
        {"complete 2", 14, 1, 2},
        {"reserved byte set", 15, 1, 1},
        {"total_len one short", 60, 4, (uint32_t)len - 1},
        {"total_len one long", 60, 4, (uint32_t)len + 1},
        {"total_len huge", 60, 4, 0xffffffffu},
        {"method length 0", var, 4, 0},
        {"method length huge", var, 4, 0xffffffffu},
        {"method length past end", var, 4, (uint32_t)len},
        {"uri length 0xfffffffc (wraps if added)", uri_len_off, 4, 0xfffffffcu},
        {"uri length one long", uri_len_off, 4, 25},
        {"uri length one short", uri_len_off, 4, 23},
        {"variant length huge", var_len_off, 4, 0x7fffffffu},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint8_t buf[1024];
        memcpy(buf, good, len);
        if (rows[i].width == 1)
            buf[rows[i].off] = (uint8_t)rows[i].value;
        else if (rows[i].width == 2)
            store__be16_put(buf + rows[i].off, (uint16_t)rows[i].value);
        else
            put32(buf + rows[i].off, rows[i].value);
        struct store_record out;
        if (store_record_decode(buf, len, &out) != STORE_ECORRUPT) TEST_FAIL_("garbled record decoded: %s", rows[i].name);
    }
    /* The unmodified record still decodes, so each row above failed for its own reason. */
    struct store_record out;
    ASSERT_EQ(store_record_decode(good, len, &out), 0);
}

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

/* If a mutated buffer decodes, every field lies inside it and re-encoding gives the same bytes. */
static void check_canonical(const uint8_t *buf, size_t len, size_t *n_ok)
{
    struct store_record out;
    if (store_record_decode(buf, len, &out) != 0) return;
    (*n_ok)++;
    const void *ptrs[] = {out.method, out.uri, out.variant, out.etag, out.last_modified, out.headers};
    size_t lens[] = {out.method_len, out.uri_len, out.variant_len, out.etag_len, out.last_modified_len, out.headers_len};
    for (size_t i = 0; i < 6; i++) {
        if (lens[i] == 0) continue;
        const uint8_t *p = ptrs[i];
        ASSERT(p >= buf && lens[i] <= len && p + lens[i] <= buf + len);
    }
    uint8_t again[2048];
    size_t again_len;
    ASSERT_EQ(store_record_encode(&out, again, sizeof(again), &again_len), 0);
    assert_same_bytes(again, again_len, buf, len);
}

static void test_record_mutation_fuzz(void)
{
    uint8_t good[1024];
    size_t good_len = encode_sample(good, sizeof(good));
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    size_t n_ok = 0;
    for (int iter = 0; iter < 200000; iter++) {
        uint8_t buf[1100];
        memcpy(buf, good, good_len);
        size_t len = good_len;
        int n_mut = 1 + (int)(rnd(&seed) % 4);
        for (int m = 0; m < n_mut; m++) {
            uint64_t r = rnd(&seed);
            switch (r % 5) {
            case 0: /* flip a byte anywhere */
                buf[(r >> 8) % len] ^= (uint8_t)(1 + ((r >> 32) % 255));
                break;
            case 1: /* flip a byte in the fixed part or the first length fields, where it matters most */
                buf[(r >> 8) % (STORE_RECORD_FIXED_LEN + 40)] = (uint8_t)(r >> 40);
                break;
            case 2: /* truncate */
                len = (size_t)((r >> 8) % (len + 1));
                break;
            case 3: /* extend with junk */
                if (len < sizeof(buf) - 8) {
                    size_t add = 1 + (size_t)((r >> 8) % 8);
                    for (size_t k = 0; k < add; k++)
                        buf[len + k] = (uint8_t)(r >> (16 + k));
                    len += add;
                }
                break;
            default: /* rewrite a 32-bit length field with a random value near the real one */
            {
                size_t off = STORE_RECORD_FIXED_LEN;
                if (len >= off + 4) put32(buf + off, store__be32_get(buf + off) + (uint32_t)((r >> 8) % 7) - 3);
                break;
            }
            }
            if (len == 0) break;
        }
        check_canonical(buf, len, &n_ok);
    }
    /* Pure random buffers behind a valid fixed-part prefix. */
    for (int iter = 0; iter < 50000; iter++) {
        uint8_t buf[200];
        size_t len = STORE_RECORD_FIXED_LEN + (size_t)(rnd(&seed) % (sizeof(buf) - STORE_RECORD_FIXED_LEN));
        memcpy(buf, good, STORE_RECORD_FIXED_LEN);
        put32(buf + 60, (uint32_t)len);
        for (size_t k = STORE_RECORD_FIXED_LEN; k < len; k++)
            buf[k] = (uint8_t)(rnd(&seed) % 3 == 0 ? 0 : rnd(&seed));
        check_canonical(buf, len, &n_ok);
    }
    /* Some mutations (an ETag byte, a header byte) are legitimately valid: the check above ran. */
    fprintf(stderr, "  %zu of 250000 mutated inputs decoded (and re-encoded canonically)\n", n_ok);
    ASSERT(n_ok > 1000);
}

static void test_record_set_body(void)
{
    uint8_t buf[1024];
    size_t len = encode_sample(buf, sizeof(buf));
    ASSERT_EQ(store_record_set_body(buf, len, 42, 7, 1, 1), 0);
    struct store_record out;
    ASSERT_EQ(store_record_decode(buf, len, &out), 0);
    ASSERT_UEQ(out.body_id, 42);
    ASSERT_UEQ(out.body_len, 7);
    ASSERT_UEQ(out.n_chunks, 1);
    ASSERT_EQ(out.complete, 1);
    ASSERT_MEM_STR_EQ(out.uri, out.uri_len, "http://example.com/a?b=c");
    ASSERT_EQ(store_record_set_body(buf, len, 42, 7, 1, 2), -EINVAL);
    buf[0] ^= 1;
    ASSERT_EQ(store_record_set_body(buf, len, 1, 1, 1, 1), STORE_ECORRUPT);
}

static void key_hex(const struct store_key *k, char out[STORE_KEY_HEX_LEN])
{
    store_key_hex(k, out);
}

/* The keys are exactly the SHA-256 constructions documented in store_keys.h (vectors computed
 * independently with Python's hashlib). */
static void test_keys_known_vectors(void)
{
    struct store_key p, v, v0;
    char hex[STORE_KEY_HEX_LEN];
    ASSERT_EQ(store_key_primary(NULL, &p, "GET", 3, "http://example.com/a", 20), 0);
    key_hex(&p, hex);
    ASSERT_STR_EQ(hex, "3cf4da98a21b9a1a01a097a1dde114dd7d1aed810492a36453c3f8283d76463b");
    ASSERT_EQ(store_key_variant(NULL, &v, &p, "accept-encoding=gzip", 20), 0);
    key_hex(&v, hex);
    ASSERT_STR_EQ(hex, "beaa9a03c8d02c97b44747b574731d858b36b92bac3a72a4b5ffccc9bff70b12");
    /* No Vary bytes: the primary key itself. */
    ASSERT_EQ(store_key_variant(NULL, &v0, &p, NULL, 0), 0);
    ASSERT(memcmp(v0.b, p.b, STORE_KEY_LEN) == 0);
    ASSERT_EQ(store_key_variant(NULL, &v0, &p, "", 0), 0);
    ASSERT(memcmp(v0.b, p.b, STORE_KEY_LEN) == 0);
}

/* A hasher (fetched once, context reused) gives the same keys as the one-off path, key after key. */
static void test_keys_with_hasher(void)
{
    struct store_hasher *h = NULL;
    ASSERT_EQ(store_hasher_new(&h), 0);
    for (int round = 0; round < 3; round++) {
        struct store_key p, v, p1, v1;
        char hex[STORE_KEY_HEX_LEN];
        ASSERT_EQ(store_key_primary(h, &p, "GET", 3, "http://example.com/a", 20), 0);
        key_hex(&p, hex);
        ASSERT_STR_EQ(hex, "3cf4da98a21b9a1a01a097a1dde114dd7d1aed810492a36453c3f8283d76463b");
        ASSERT_EQ(store_key_variant(h, &v, &p, "accept-encoding=gzip", 20), 0);
        key_hex(&v, hex);
        ASSERT_STR_EQ(hex, "beaa9a03c8d02c97b44747b574731d858b36b92bac3a72a4b5ffccc9bff70b12");
        char url[64];
        int n = snprintf(url, sizeof(url), "http://h/%d", round * 7919);
        ASSERT_EQ(store_key_primary(h, &p, "GET", 3, url, (size_t)n), 0);
        ASSERT_EQ(store_key_primary(NULL, &p1, "GET", 3, url, (size_t)n), 0);
        ASSERT(memcmp(p.b, p1.b, STORE_KEY_LEN) == 0);
        ASSERT_EQ(store_key_variant(h, &v, &p, NULL, 0), 0);
        ASSERT_EQ(store_key_variant(NULL, &v1, &p1, NULL, 0), 0);
        ASSERT(memcmp(v.b, v1.b, STORE_KEY_LEN) == 0);
        ASSERT_EQ(store_key_primary(h, &p, "", 0, url, (size_t)n), -EINVAL);
    }
    store_hasher_free(h);
    store_hasher_free(NULL);
}

static void test_keys_distinct(void)
{
    struct store_key a, b, c, d, v;
    ASSERT_EQ(store_key_primary(NULL, &a, "GET", 3, "Xhttp://h/", 10), 0);
    ASSERT_EQ(store_key_primary(NULL, &b, "GETX", 4, "http://h/", 9), 0); /* same concatenation, other split */
    ASSERT(memcmp(a.b, b.b, STORE_KEY_LEN) != 0);
    ASSERT_EQ(store_key_primary(NULL, &c, "HEAD", 4, "http://h/", 9), 0);
    ASSERT(memcmp(b.b, c.b, STORE_KEY_LEN) != 0);
    ASSERT_EQ(store_key_primary(NULL, &d, "HEAD", 4, "http://h/", 9), 0);
    ASSERT(memcmp(c.b, d.b, STORE_KEY_LEN) == 0); /* deterministic */
    ASSERT_EQ(store_key_variant(NULL, &v, &c, NULL, 0), 0);
    ASSERT(memcmp(v.b, c.b, STORE_KEY_LEN) == 0); /* the no-Vary variant is kept under its primary */
    ASSERT_EQ(store_key_variant(NULL, &v, &c, "x", 1), 0);
    ASSERT(memcmp(v.b, c.b, STORE_KEY_LEN) != 0);
    ASSERT_EQ(store_key_primary(NULL, &a, "", 0, "http://h/", 9), -EINVAL);
    ASSERT_EQ(store_key_primary(NULL, &a, "GET", 3, "", 0), -EINVAL);
    ASSERT_EQ(store_key_variant(NULL, &a, &c, NULL, 3), -EINVAL);
}

static void test_body_key_order(void)
{
    /* Big-endian keys sort like the numbers: chunk 255 of body 1 < chunk 0 of body 2 < chunk 256 of body 2. */
    uint8_t k1[STORE_BODY_KEY_LEN], k2[STORE_BODY_KEY_LEN], k3[STORE_BODY_KEY_LEN];
    store__body_key(k1, 1, 255);
    store__body_key(k2, 2, 0);
    store__body_key(k3, 2, 256);
    ASSERT(memcmp(k1, k2, STORE_BODY_KEY_LEN) < 0);
    ASSERT(memcmp(k2, k3, STORE_BODY_KEY_LEN) < 0);
    ASSERT_UEQ(store__be64_get(k3), 2);
    ASSERT_UEQ(store__be32_get(k3 + 8), 256);
}

static void test_strerror_names_codes(void)
{
    ASSERT_STR_EQ(store_strerror(STORE_EGONE), "body deleted while being read");
    ASSERT(strlen(store_strerror(STORE_ECORRUPT)) > 0);
    ASSERT_STR_EQ(store_strerror(-ENOMEM), strerror(ENOMEM));
}

int main(void)
{
    RUN_TEST(test_record_round_trip);
    RUN_TEST(test_record_optional_fields_empty);
    RUN_TEST(test_record_encode_rejects);
    RUN_TEST(test_record_truncations_rejected);
    RUN_TEST(test_record_garbled_rejected);
    RUN_TEST(test_record_mutation_fuzz);
    RUN_TEST(test_record_set_body);
    RUN_TEST(test_keys_known_vectors);
    RUN_TEST(test_keys_with_hasher);
    RUN_TEST(test_keys_distinct);
    RUN_TEST(test_body_key_order);
    RUN_TEST(test_strerror_names_codes);
    return 0;
}
