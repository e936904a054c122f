#include "proxy/client_limit.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int client_limit_init(struct client_limit *l, size_t max_clients)
{
    memset(l, 0, sizeof(*l));
    /* Every connection could come from a different address: room for all of them at load <= 1/2. */
    size_t cap = 64;
    while (cap < max_clients * 2)
        cap *= 2;
    l->slots = calloc(cap, sizeof(*l->slots));
    if (l->slots == NULL)
        return -ENOMEM;
    l->cap = cap;
    pthread_mutex_init(&l->lock, NULL);
    return 0;
}

void client_limit_destroy(struct client_limit *l)
{
    if (l->slots == NULL)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l->slots);
    l->slots = NULL;
}

static void key_of(const struct sockaddr *sa, uint8_t out[16])
{
    memset(out, 0, 16);
    if (sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    }
}

static size_t hash_of(const uint8_t k[16])
{
    /* FNV-1a: the table is bounded and an attacker's addresses are what the kernel saw, not chosen
     * freely; linear probing stays short at load 1/2. */
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++) {
        h ^= k[i];
        h *= 1099511628211ull;
    }
    return (size_t)h;
}

/* lock held; returns the slot of k, or the free slot where it would go. */
static struct client_limit_slot *find(struct client_limit *l, const uint8_t k[16])
{
    size_t mask = l->cap - 1;
    struct client_limit_slot *free_slot = NULL;
    for (size_t i = hash_of(k) & mask, n = 0; n < l->cap; i = (i + 1) & mask, n++) {
        struct client_limit_slot *s = &l->slots[i];
        if (!s->used)
            return free_slot ? free_slot : s;
        if (s->count == 0 && free_slot == NULL)
            free_slot = s;
        if (s->count > 0 && memcmp(s->addr, k, 16) == 0)
            return s;
    }
    return free_slot;
}

int client_limit_acquire(struct client_limit *l, const struct sockaddr *sa, uint64_t max)
{
    if (max == 0 || l->slots == NULL)
        return 1;
    uint8_t k[16];
    key_of(sa, k);
    pthread_mutex_lock(&l->lock);
    struct client_limit_slot *s = find(l, k);
    int ok = 0;
    if (s != NULL && s->count < max) {
        if (s->count == 0) {
            memcpy(s->addr, k, 16);
            if (!s->used)
                l->n_used++;
            s->used = 1;
        }
        s->count++;
        ok = 1;
    }
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void client_limit_release(struct client_limit *l, const struct sockaddr *sa)
{
    if (l->slots == NULL)
        return;
    uint8_t k[16];
    key_of(sa, k);
    pthread_mutex_lock(&l->lock);
    struct client_limit_slot *s = find(l, k);
    if (s != NULL && s->count > 0 && memcmp(s->addr, k, 16) == 0)
        s->count--;
    pthread_mutex_unlock(&l->lock);
}
