#include "store/store_keys.h"

#include <errno.h>
#include <stdlib.h>
#include <openssl/evp.h>

#include "store/store.h"

struct store_hasher {
    EVP_MD *md;
    EVP_MD_CTX *ctx;
};

int store_hasher_new(struct store_hasher **out)
{
    *out = NULL;
    struct store_hasher *h = calloc(1, sizeof(*h));
    if (h == NULL) return -ENOMEM;
    h->md = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    h->ctx = EVP_MD_CTX_new();
    if (h->md == NULL || h->ctx == NULL) {
        store_hasher_free(h);
        return STORE_EIO;
    }
    *out = h;
    return 0;
}

void store_hasher_free(struct store_hasher *h)
{
    if (h == NULL) return;
    EVP_MD_CTX_free(h->ctx);
    EVP_MD_free(h->md);
    free(h);
}

/* Hashes up to three byte strings in order into out, with h's context or a one-off one. */
static int sha256_parts(struct store_hasher *h, uint8_t out[STORE_KEY_LEN], const void *a, size_t a_len, const void *b,
                        size_t b_len, const void *c, size_t c_len)
{
    EVP_MD_CTX *ctx = h ? h->ctx : EVP_MD_CTX_new();
    if (ctx == NULL) return -ENOMEM;
    unsigned int n = 0;
    int init = h ? EVP_DigestInit_ex2(ctx, h->md, NULL) : EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    int ok = init == 1 && (a_len == 0 || EVP_DigestUpdate(ctx, a, a_len) == 1) &&
             (b_len == 0 || EVP_DigestUpdate(ctx, b, b_len) == 1) && (c_len == 0 || EVP_DigestUpdate(ctx, c, c_len) == 1) &&
             EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == STORE_KEY_LEN;
    if (h == NULL) EVP_MD_CTX_free(ctx);
    return ok ? 0 : STORE_EIO;
}

int store_key_primary(struct store_hasher *h, struct store_key *out, const void *method, size_t method_len, const void *uri,
                      size_t uri_len)
{
    if (method == NULL || method_len == 0 || method_len > 65536 || uri == NULL || uri_len == 0) return -EINVAL;
    uint8_t len_be[4];
    store__be32_put(len_be, (uint32_t)method_len);
    return sha256_parts(h, out->b, len_be, sizeof(len_be), method, method_len, uri, uri_len);
}

int store_key_variant(struct store_hasher *h, struct store_key *out, const struct store_key *primary, const void *vary,
                      size_t vary_len)
{
    if (vary == NULL && vary_len != 0) return -EINVAL;
    if (vary_len == 0) {
        *out = *primary;
        return 0;
    }
    return sha256_parts(h, out->b, primary->b, STORE_KEY_LEN, vary, vary_len, NULL, 0);
}

void store_key_hex(const struct store_key *k, char out[STORE_KEY_HEX_LEN])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < STORE_KEY_LEN; i++) {
        out[2 * i] = digits[k->b[i] >> 4];
        out[2 * i + 1] = digits[k->b[i] & 15];
    }
    out[2 * STORE_KEY_LEN] = '\0';
}
