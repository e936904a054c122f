/* The per-loop context: everything one event loop needs, passed explicitly to every module (as libuv
 * passes the loop). There is no other mutable state shared between loops except what is named
 * `shared` here, which main owns and which outlives every loop.
 */
#ifndef LARDER_PROXY_CTX_H
#define LARDER_PROXY_CTX_H

#include <stdint.h>
#include <uv.h>

#include "proxy/access_log.h"
#include "proxy/buf.h"
#include "proxy/cache.h"
#include "proxy/client_limit.h"
#include "proxy/config.h"
#include "proxy/flight.h"
#include "proxy/log.h"
#include "proxy/metrics.h"

struct resolver;
struct client_conn;
struct origin_conn;
struct listener;

/* Objects shared by all loops; owned by main. */
struct proxy_shared {
    const struct proxy_config *cfg;
    struct log_file error_log;
    struct log_file access_log;
    struct cache *cache;        /* NULL when the cache could not be opened (larder then only forwards) */
    struct flight_table flights; /* single flight, across every loop */
    struct client_limit per_client; /* max_connections_per_client, across every loop */
    uint64_t n_clients;             /* open client connections, all loops (atomic) */
    struct proxy_ctx **workers; /* for summing metrics */
    unsigned n_workers;
    /* Test-only offset added to the cache clock (test_hooks on); read with relaxed atomics. */
    int64_t clock_offset_s;
};

/* Intrusive doubly linked list node. */
struct list_node {
    struct list_node *prev, *next;
};

static inline void list_init(struct list_node *head)
{
    head->prev = head->next = head;
}
static inline int list_empty(const struct list_node *head)
{
    return head->next == head;
}
static inline void list_insert_tail(struct list_node *head, struct list_node *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void list_remove(struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#define ORIGIN_POOL_BUCKETS 256
struct origin_pool;

struct proxy_ctx {
    uv_loop_t *loop;
    const struct proxy_config *cfg;
    struct proxy_shared *shared;
    struct log_file *log;    /* = &shared->error_log */
    struct access_log_buf access; /* this loop's lines for shared->access_log */
    uv_check_t access_flush;      /* writes them once per loop iteration */
    struct resolver *resolver;
    struct metrics metrics;
    struct buf_pool bufs;     /* 64 KiB blocks for socket reads */
    struct buf_pool big_bufs; /* STORE_CHUNK_SIZE blocks for reads from the store */
    struct buf_pool scratch_bufs; /* OUTQ_SCRATCH_SIZE blocks: heads and framing built in output queues */
    struct cache_loop cache;
    struct list_node detached;     /* transactions running without a client (txn.reval_link) */
    struct list_node followers;    /* transactions following a flight (txn.follow_link) */
    struct list_node paused_leaders; /* leaders paused for their own slow client (txn.pause_link) */
    void *spare_txns;              /* recycled transaction structs (txn.c) */
    size_t n_spare_txns;
    uv_async_t flight_wakeup;      /* flights this loop follows progressed */

    struct list_node clients;      /* every open client_conn */
    struct list_node origins_idle; /* idle pooled origin_conns, oldest first */
    size_t n_clients;
    size_t n_origins_idle;
    /* The same idle connections by pool key (origin_conn.c): taking or returning one looks at its
     * own origin's connections only, never at the whole pool. */
    struct origin_pool *origin_pools[ORIGIN_POOL_BUCKETS];

    struct listener *listeners;
    int shutting_down;
    uint64_t next_txn_id;
    unsigned worker_id;
};

/* Wall-clock seconds for RFC 9111 ages and log lines, plus the test offset. */
int64_t ctx_now_s(const struct proxy_ctx *ctx);

#endif
