/* The meta record codec: one stored response's metadata as bytes, and back.
 *
 * Pure functions over caller buffers: no LMDB, no allocation, no clock. Decoding is written to be
 * fuzzed: it reads only inside [buf, buf+len), trusts no length it finds there, and rejects anything
 * that is not exactly what store_record_encode() would produce (unknown magic or version, a length
 * running past the end, trailing bytes, non-zero reserved bits, a flag out of range). Because every
 * field is checked, a record that decodes re-encodes to the very same bytes (the codec is canonical),
 * which is what the unit test asserts for arbitrary mutated input.
 *
 * Layout, version 1 (integers big-endian; times are seconds since the epoch, signed):
 *
 *   off  size  field
 *     0     4  magic "LRM1" (0x4c524d31)
 *     4     2  version (1)
 *     6     2  fixed_len: size of this fixed part (64); lets a later version append fixed fields
 *     8     4  flags: opaque to the store, owned by the proxy
 *    12     2  status (100..999)
 *    14     1  complete (0 or 1): 1 once the body is whole and its length verified
 *    15     1  reserved, 0
 *    16     8  request_time     (RFC 9111 s4.2.3: time the request that led here was sent)
 *    24     8  response_time    (RFC 9111 s4.2.3: time the response was received)
 *    32     8  stored_at
 *    40     8  body_id
 *    48     8  body_len
 *    56     4  n_chunks
 *    60     4  total_len: length of the whole record, must equal the buffer length
 *    64        six variable fields, each u32 length ‖ bytes, in this order:
 *              method, uri, variant, etag, last_modified, headers
 *
 * method and uri are the bytes the primary key was hashed from; the store compares them on read, so a
 * hash collision cannot serve the wrong object. variant is the variant-key bytes (RFC 9111 s4.1).
 * headers is the response head stored ready to send (opaque to the store).
 *
 * Ownership: a decoded record's pointers point into the buffer it was decoded from and are valid only
 * as long as that buffer.
 */
#ifndef LARDER_STORE_RECORD_H
#define LARDER_STORE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define STORE_RECORD_MAGIC 0x4c524d31u /* "LRM1" */
#define STORE_RECORD_VERSION 1
#define STORE_RECORD_FIXED_LEN 64
#define STORE_RECORD_N_FIELDS 6
/* Smallest valid record: the fixed part, six lengths and one-byte method and uri. */
#define STORE_RECORD_MIN_LEN (STORE_RECORD_FIXED_LEN + 4 * STORE_RECORD_N_FIELDS + 2)
/* Upper bound on an encoded record, so a meta record stays a modest LMDB value. */
#define STORE_RECORD_MAX_LEN (16u << 20)

struct store_record {
    uint32_t flags;
    uint16_t status;
    uint8_t complete;
    int64_t request_time;
    int64_t response_time;
    int64_t stored_at;
    uint64_t body_id;
    uint64_t body_len;
    uint32_t n_chunks;

    const char *method;
    size_t method_len; /* >= 1 */
    const char *uri;
    size_t uri_len; /* >= 1 */
    const void *variant;
    size_t variant_len;
    const char *etag;
    size_t etag_len;
    const char *last_modified;
    size_t last_modified_len;
    const void *headers;
    size_t headers_len;
};

/* Bytes store_record_encode() will write, or 0 if the record cannot be encoded (a field missing,
 * status out of range, complete not 0/1, or the total above STORE_RECORD_MAX_LEN). */
size_t store_record_encoded_len(const struct store_record *r);

/* Encodes r into buf. 0 and *out_len set; -EINVAL if r cannot be encoded; -ENOSPC if cap is too small
 * (nothing useful is left in buf then). */
int store_record_encode(const struct store_record *r, void *buf, size_t cap, size_t *out_len);

/* Decodes and validates. 0, or STORE_ECORRUPT for anything malformed (out is then unspecified).
 * out's pointers point into buf. */
int store_record_decode(const void *buf, size_t len, struct store_record *out);

/* Rewrites the body fields of an encoded record in place (the store fills them in at commit and keeps
 * them on a 304 refresh). The record must decode; 0 or STORE_ECORRUPT / -EINVAL (complete not 0/1). */
int store_record_set_body(void *buf, size_t len, uint64_t body_id, uint64_t body_len, uint32_t n_chunks, uint8_t complete);

#endif
