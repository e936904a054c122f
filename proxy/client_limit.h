/* Connections per client address (max_connections_per_client), counted across every loop.
 *
 * One small open-addressing table under a mutex: taken once at accept and once at close, so the
 * lock is never contended in the request path. An IPv4-mapped IPv6 address counts as its IPv4
 * address, so a client cannot double its share by switching families.
 */
#ifndef LARDER_PROXY_CLIENT_LIMIT_H
#define LARDER_PROXY_CLIENT_LIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct client_limit_slot {
    uint8_t addr[16]; /* IPv4 as ::ffff:a.b.c.d */
    uint32_t count;   /* 0: free (tombstones are not needed: a slot is freed only when its count is 0
                         and lookups probe the whole run) */
    uint8_t used;
};

struct client_limit {
    pthread_mutex_t lock;
    struct client_limit_slot *slots;
    size_t cap; /* power of two */
    size_t n_used;
};

int client_limit_init(struct client_limit *l, size_t max_clients);
void client_limit_destroy(struct client_limit *l);
/* Counts one more connection for this address unless it already has `max` (0: unlimited).
 * 1 admitted (release it later), 0 refused. */
int client_limit_acquire(struct client_limit *l, const struct sockaddr *sa, uint64_t max);
void client_limit_release(struct client_limit *l, const struct sockaddr *sa);

#endif
