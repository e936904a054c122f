/* libFuzzer target: the meta record codec (store/store_record.h) and the stored head inside it
 * (http/stored_head.h). Records come back from LMDB, i.e. from disk: a damaged one must be refused,
 * never crash the proxy.
 *
 * Input: a record, as bytes. Invariants (abort() when broken):
 *   - store_record_decode() reads only inside the buffer (it is copied to an exactly sized heap block);
 *   - a record that decodes has its pointers inside the buffer and re-encodes to identical bytes
 *     (the codec is canonical), with store_record_encoded_len() equal to its length; encoding into one
 *     byte less is -ENOSPC without writing past it;
 *   - store_record_set_body() with the decoded values leaves the bytes unchanged, and with other
 *     values still decodes, to those values;
 *   - the headers blob: when stored_head_parse() accepts it, stored_head_write() of the result gives
 *     the blob back byte for byte (what is read from the store is served as it was stored), except
 *     for Content-Length and Transfer-Encoding lines, which the writer never writes.
 * Inputs that do not decode are also tried as a bare headers blob, so the stored head parser gets
 * arbitrary bytes too.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_msg.h"
#include "http/stored_head.h"
#include "store/store.h"
#include "store/store_record.h"

#define CHECK(cond)                                                                                                                \
    do {                                                                                                                           \
        if (!(cond)) {                                                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);                                           \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

static int inside(const void *p, size_t n, const uint8_t *buf, size_t len)
{
    if (n == 0) return 1;
    const uint8_t *q = p;
    return q >= buf && q + n <= buf + len;
}

static void check_stored_head(const char *blob, size_t len, int status)
{
    struct arena a;
    CHECK(arena_init(&a, 8192, 1u << 24) == 0);
    struct http_msg m;
    int rc = stored_head_parse(blob, len, status, &a, &m);
    CHECK(rc == 0 || rc == -EINVAL || rc == -ENOMEM);
    if (rc == -ENOMEM) CHECK(arena_overflowed(&a));
    if (rc == 0) {
        CHECK(m.status == status && !m.is_request);
        /* The writer leaves out the framing fields (a stored body gets the length of what is sent), so
         * only a blob without them is written back whole; one with them, as a damaged record could
         * hold, loses exactly those lines. */
        int framing = http_msg_find(&m, "Content-Length") != NULL || http_msg_find(&m, "Transfer-Encoding") != NULL;
        size_t size = stored_head_size(&m);
        CHECK(framing ? size < len : size == len);
        char *out = malloc(size ? size : 1);
        CHECK(out != NULL);
        CHECK(stored_head_write(&m, out) == size);
        if (!framing) CHECK(size == 0 || memcmp(out, blob, size) == 0);
        free(out);
        for (size_t i = 0; i < m.n_fields; i++) {
            const struct http_field *f = &m.fields[i];
            CHECK(f->name_len > 0 && f->name[f->name_len] == '\0' && f->value[f->value_len] == '\0');
            CHECK(memchr(f->name, ':', f->name_len) == NULL);
            CHECK(memchr(f->value, '\r', f->value_len) == NULL && memchr(f->value, '\n', f->value_len) == NULL);
            CHECK(http_msg_find(&m, f->name) != NULL);
        }
    }
    /* The in-place parser (a hit's lookup) accepts exactly the same blobs and gives the same fields,
     * pointing into its own copy. */
    char *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    if (len) memcpy(copy, blob, len);
    struct http_msg in;
    int rc2 = stored_head_parse_in_place(len ? copy : NULL, len, status, &a, &in);
    CHECK(rc2 == rc || (rc == -ENOMEM || rc2 == -ENOMEM));
    if (rc == 0 && rc2 == 0) {
        CHECK(in.n_fields == m.n_fields);
        for (size_t i = 0; i < in.n_fields; i++) {
            const struct http_field *f = &in.fields[i], *g = &m.fields[i];
            CHECK(f->name >= copy && f->value + f->value_len <= copy + len);
            CHECK(f->name_len == g->name_len && f->value_len == g->value_len);
            CHECK(memcmp(f->name, g->name, f->name_len) == 0 && memcmp(f->value, g->value, f->value_len) == 0);
            CHECK(f->name[f->name_len] == '\0' && f->value[f->value_len] == '\0');
        }
    }
    free(copy);
    arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exactly sized copy: any read past the end is an ASan report. */
    uint8_t *buf = malloc(size ? size : 1);
    CHECK(buf != NULL);
    if (size > 0) memcpy(buf, data, size);

    struct store_record r;
    int rc = store_record_decode(size ? buf : NULL, size, &r);
    if (rc != 0) {
        CHECK(rc == STORE_ECORRUPT);
        CHECK(store_record_set_body(buf, size, 1, 2, 3, 1) == STORE_ECORRUPT);
        CHECK(size == 0 || memcmp(buf, data, size) == 0); /* refused: left alone */
        check_stored_head((const char *)buf, size, 200);
        free(buf);
        return 0;
    }

    CHECK(r.status >= 100 && r.status <= 999 && r.complete <= 1);
    CHECK(r.method_len >= 1 && r.uri_len >= 1);
    CHECK(inside(r.method, r.method_len, buf, size) && inside(r.uri, r.uri_len, buf, size));
    CHECK(inside(r.variant, r.variant_len, buf, size) && inside(r.etag, r.etag_len, buf, size));
    CHECK(inside(r.last_modified, r.last_modified_len, buf, size) && inside(r.headers, r.headers_len, buf, size));

    /* Canonical: decode then encode gives the same bytes. */
    CHECK(store_record_encoded_len(&r) == size);
    uint8_t *out = malloc(size);
    CHECK(out != NULL);
    size_t out_len = 0;
    CHECK(store_record_encode(&r, out, size, &out_len) == 0 && out_len == size);
    CHECK(memcmp(out, buf, size) == 0);
    free(out);
    uint8_t *small = malloc(size - 1);
    CHECK(small != NULL);
    CHECK(store_record_encode(&r, small, size - 1, &out_len) == -ENOSPC);
    free(small);

    /* The header blob is served as stored. */
    check_stored_head(r.headers, r.headers_len, r.status);

    /* Rewriting the body fields in place. */
    uint8_t *copy = malloc(size);
    CHECK(copy != NULL);
    memcpy(copy, buf, size);
    CHECK(store_record_set_body(copy, size, r.body_id, r.body_len, r.n_chunks, r.complete) == 0);
    CHECK(memcmp(copy, buf, size) == 0);
    CHECK(store_record_set_body(copy, size, 1, 2, 3, 2) == -EINVAL);
    CHECK(store_record_set_body(copy, size, ~r.body_id, r.body_len + 1, r.n_chunks ^ 1u, (uint8_t)!r.complete) == 0);
    struct store_record r2;
    CHECK(store_record_decode(copy, size, &r2) == 0);
    CHECK(r2.body_id == ~r.body_id && r2.body_len == r.body_len + 1 && r2.n_chunks == (r.n_chunks ^ 1u) &&
          r2.complete == !r.complete);
    CHECK(r2.status == r.status && r2.flags == r.flags && r2.request_time == r.request_time &&
          r2.response_time == r.response_time && r2.stored_at == r.stored_at);
    CHECK(r2.headers_len == r.headers_len && r2.uri_len == r.uri_len);
    free(copy);
    free(buf);
    return 0;
}
