#include "store/store_keys.h"

#include <errno.h>
#include <openssl/evp.h>

#include "store/store.h"

/* Hashes up to three byte strings in order into out. */
static int sha256_parts(uint8_t out[STORE_KEY_LEN], const void *a, size_t a_len, const void *b, size_t b_len, const void *c,
                        size_t c_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL) return -ENOMEM;
    unsigned int n = 0;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && (a_len == 0 || EVP_DigestUpdate(ctx, a, a_len) == 1) &&
             (b_len == 0 || EVP_DigestUpdate(ctx, b, b_len) == 1) && (c_len == 0 || EVP_DigestUpdate(ctx, c, c_len) == 1) &&
             EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == STORE_KEY_LEN;
    EVP_MD_CTX_free(ctx);
    return ok ? 0 : STORE_EIO;
}

int store_key_primary(struct store_key *out, const void *method, size_t method_len, const void *uri, size_t uri_len)
{
    if (method == NULL || method_len == 0 || method_len > 65536 || uri == NULL || uri_len == 0) return -EINVAL;
    uint8_t len_be[4];
    store__be32_put(len_be, (uint32_t)method_len);
    return sha256_parts(out->b, len_be, sizeof(len_be), method, method_len, uri, uri_len);
}

int store_key_variant(struct store_key *out, const struct store_key *primary, const void *vary, size_t vary_len)
{
    if (vary == NULL && vary_len != 0) return -EINVAL;
    return sha256_parts(out->b, primary->b, STORE_KEY_LEN, vary, vary_len, NULL, 0);
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
