/* Fixed-length store keys and the big-endian byte helpers the LMDB layout is built from.
 *
 * LMDB keys are limited to MDB_MAXKEYSIZE (511 bytes by default) and compare as bytes, so every key
 * the store writes has a fixed length and big-endian integers (byte order == numeric order):
 *
 *   primary key  = SHA-256( u32be(len(method)) ‖ method ‖ normalised URI )
 *   variant key  = SHA-256( primary key ‖ variant-key bytes )
 *   body key     = body_id (u64 BE) ‖ chunk_no (u32 BE)                       12 bytes
 *
 * The method is length-prefixed so that no (method, URI) pair can be spelt as another one ("GET" +
 * "Xhttp://..." vs "GETX" + "http://..."). The variant-key bytes are whatever the caller derives from
 * the stored response's Vary (RFC 9111 s4.1); a response without Vary uses the empty string, whose
 * variant key still differs from the primary key. A crypto hash is used because a collision would
 * poison the cache; the record also keeps the method and URI and store_meta_get() compares them, so
 * even a collision cannot serve the wrong object.
 *
 * Pure functions, no LMDB. The SHA-256 comes from OpenSSL libcrypto (EVP).
 *
 * A store_hasher holds the SHA-256 implementation fetched once and a digest context reused per key:
 * OpenSSL 3 otherwise looks the algorithm up in its provider store (a lock and a search) and allocates
 * a context for every key, which cost more than hashing it (about 7,000 instructions per hit, an eighth
 * of a small hit's). One per thread (each event loop has its own); the functions take NULL too (tests,
 * rare callers) and then use a one-off context.
 */
#ifndef LARDER_STORE_KEYS_H
#define LARDER_STORE_KEYS_H

#include <stddef.h>
#include <stdint.h>

#define STORE_KEY_LEN 32
#define STORE_KEY_HEX_LEN (2 * STORE_KEY_LEN + 1)
#define STORE_BODY_KEY_LEN 12

struct store_key {
    uint8_t b[STORE_KEY_LEN];
};

struct store_hasher;

/* 0, or -ENOMEM/STORE_EIO when libcrypto has no SHA-256. Free with store_hasher_free (NULL is a no-op). */
int store_hasher_new(struct store_hasher **out);
void store_hasher_free(struct store_hasher *h);

/* 0, -EINVAL (method empty or longer than 64 KiB, URI empty), or -ENOMEM/STORE_EIO if libcrypto fails. */
int store_key_primary(struct store_hasher *h, struct store_key *out, const void *method, size_t method_len, const void *uri,
                      size_t uri_len);
/* variant = SHA-256(primary ‖ vary bytes), or the primary key itself when there are no vary bytes (a
 * response without Vary is the URL's one representation, and store.h keeps it under the primary key
 * with no `variants` row: one B-tree fewer per object). vary may be NULL when vary_len is 0. 0 or a
 * negative code. */
int store_key_variant(struct store_hasher *h, struct store_key *out, const struct store_key *primary, const void *vary,
                      size_t vary_len);
/* Lower-case hex plus NUL, for logs. */
void store_key_hex(const struct store_key *k, char out[STORE_KEY_HEX_LEN]);

static inline void store__be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline uint32_t store__be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void store__be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline uint16_t store__be16_get(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | (uint16_t)p[1]);
}

static inline void store__be64_put(uint8_t *p, uint64_t v)
{
    store__be32_put(p, (uint32_t)(v >> 32));
    store__be32_put(p + 4, (uint32_t)v);
}

static inline uint64_t store__be64_get(const uint8_t *p)
{
    return (uint64_t)store__be32_get(p) << 32 | store__be32_get(p + 4);
}

/* The `body` DBI key of one chunk. */
static inline void store__body_key(uint8_t out[STORE_BODY_KEY_LEN], uint64_t body_id, uint32_t chunk_no)
{
    store__be64_put(out, body_id);
    store__be32_put(out + 8, chunk_no);
}

#endif
