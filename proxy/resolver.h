/* Asynchronous DNS resolver: the one adapter around c-ares, driven by a libuv loop.
 *
 * One resolver per event loop (it is not thread-safe; every call must come from the loop's thread).
 * A lookup turns a host name into up to 16 socket addresses with the caller's port filled in:
 *
 *   - IP literals ("127.0.0.1", "::1", "[::1]") are answered without any query.
 *   - Other names go to ares_getaddrinfo(AF_UNSPEC): A and AAAA are asked in parallel, /etc/hosts first
 *     when the system's lookup order says so. The search list of resolv.conf is NOT applied: a proxy
 *     resolves names that clients wrote in URLs, and expanding them with the proxy host's own domain
 *     would make "http://intranet/" mean something different behind the proxy (Squid's dns_defnames
 *     is off by default for the same reason). Single-label names are still queried as they are.
 *   - Address order (Happy-Eyeballs-lite, after RFC 8305 s4): c-ares' own order (RFC 6724 sorting) is kept
 *     within each family, and the families are interleaved starting with the family of the first address,
 *     e.g. v6, v4, v6, v4, ...; when one family runs out the rest of the other follows. A caller that
 *     tries the addresses in order so reaches the other family after one failed connect.
 *   - Answers are cached per lower-cased name for the smallest TTL in the answer (addresses and CNAMEs),
 *     capped at dns_cache_max_ttl; "name does not exist" and "no addresses" are cached for 5 s (capped by
 *     the same maximum). Timeouts and server failures are not cached, nor are answers with TTL 0 (c-ares
 *     reports /etc/hosts entries with TTL 0, so those are read again on each lookup). At most
 *     RESOLVER_CACHE_MAX answers are kept; the oldest answer is evicted first. Cache time is uv_now(loop),
 *     the loop's monotonic clock (plus the test hook's skew, see resolver__advance_clock).
 *   - Lookups of a name that already has a query in flight join that query (coalescing).
 *
 * Configuration read from struct proxy_config (proxy/config.h):
 *   dns_servers / n_dns_servers  when n_dns_servers > 0, exactly these servers (UDP, with their ports) are
 *                                used; otherwise the system's (/etc/resolv.conf).
 *   dns_timeout_ms               per attempt (c-ares doubles it for the retry); 2 attempts. 0 means 5000.
 *   dns_cache_max_ttl_s          cap on reuse of an answer; 0 disables the answer cache (coalescing stays).
 *
 * Requirement: main() calls ares_library_init(ARES_LIB_INIT_ALL) once before the first resolver_new()
 * (and ares_library_cleanup() after the last resolver is closed). This module keeps no global state.
 *
 * Threading and lifetime: everything runs on the loop thread. Callbacks are always delivered from the
 * loop (never from inside resolver_lookup), exactly once per lookup unless the lookup was cancelled or
 * the resolver closed first.
 */
#ifndef LARDER_PROXY_RESOLVER_H
#define LARDER_PROXY_RESOLVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "proxy/config.h"

struct resolver;       /* one per event loop; opaque */
struct resolver_query; /* one outstanding lookup; opaque */

/* Lookup failures, delivered as `status` to the callback. Negative and outside both the errno and the
 * libuv ranges, so they can travel in the same int as a connect error without being mistaken for one. */
enum resolver_status {
    RESOLVER_ENOTFOUND = -9001,  /* the name does not exist, or has no A/AAAA address */
    RESOLVER_ETIMEOUT = -9002,   /* no answer from any server within the attempts */
    RESOLVER_EFAIL = -9003,      /* server failure, refusal, malformed answer, or any other error */
    RESOLVER_ECANCELLED = -9004, /* never delivered: a cancelled lookup gets no callback */
};

/* Answers kept at most (oldest evicted first). */
#define RESOLVER_CACHE_MAX 4096
/* How long "no such name" / "no addresses" is remembered, in seconds (before the max-TTL cap). */
#define RESOLVER_NEGATIVE_TTL_S 5
#define RESOLVER_MAX_ADDRS 16

/* The addresses of one answer, in the order to try them. Every entry is a sockaddr_in or sockaddr_in6
 * with the port of the lookup already set; len[i] is its length. */
struct resolver_addrs {
    size_t n;
    struct sockaddr_storage addr[RESOLVER_MAX_ADDRS];
    socklen_t len[RESOLVER_MAX_ADDRS];
};

/* status is 0 (addrs->n >= 1) or one of RESOLVER_ENOTFOUND, RESOLVER_ETIMEOUT, RESOLVER_EFAIL (addrs is
 * then NULL). `addrs` belongs to the resolver and is valid only during the call: copy what you keep.
 * The callback may call any resolver function, including resolver_lookup and resolver_close. */
typedef void (*resolver_cb)(void *data, int status, const struct resolver_addrs *addrs);

/* Creates a resolver on `loop`. `cfg` is read during the call only. 0 and *out set, or a negative
 * errno-style code (-ENOMEM; -EINVAL for a dns_servers entry c-ares refuses; -EIO when c-ares cannot be
 * initialised) and *out untouched. The resolver owns uv handles on `loop`: release it with
 * resolver_close() before uv_loop_close(). */
int resolver_new(struct resolver **out, uv_loop_t *loop, const struct proxy_config *cfg);

/* Starts a lookup of `host` (a name, or an IP literal with or without [brackets]) for `port`.
 * Returns 0: cb(data, ...) will be called exactly once, later, from the loop, unless resolver_cancel()
 * or resolver_close() comes first. If out_query is not NULL, *out_query may be passed to
 * resolver_cancel() until the callback has started; it is invalid once the callback ran.
 * Returns a negative code and never calls cb: -EINVAL for a host that is empty, longer than 253 bytes,
 * or holds a byte outside letters, digits, '-', '_' and '.' (or has an empty label); -ENOMEM; -ECANCELED
 * after resolver_close(). */
int resolver_lookup(struct resolver *r, const char *host, uint16_t port, resolver_cb cb, void *data,
                    struct resolver_query **out_query);

/* Withdraws a lookup: its callback will not be called, and its memory is freed here. Any DNS query it
 * started keeps running for the other waiters and for the cache. Must not be called from the query's own
 * callback or after it. */
void resolver_cancel(struct resolver_query *q);

/* Counters for the metrics endpoint (dns_queries, dns_cache_hits), cumulative since resolver_new.
 *   queries     lookups that started a DNS query (ares_getaddrinfo): cache misses;
 *   cache_hits  name lookups answered without starting one: from the cache, or by joining a query in
 *               flight (queries + cache_hits = every lookup of a name; IP literals count in neither);
 *   failures    started queries that ended in an error (not found, timeout, failure). */
struct resolver_stats {
    uint64_t queries;
    uint64_t cache_hits;
    uint64_t failures;
};
void resolver_get_stats(const struct resolver *r, struct resolver_stats *out);

/* Short text for a status: "name not found", "DNS timeout", "DNS failure", ... (static storage). */
const char *resolver_strerror(int status);

/* Ends the resolver: cancels every lookup (none of their callbacks run), stops c-ares and closes every uv
 * handle with uv_close(). The memory is freed in the close callbacks; once all have run, done_cb(data)
 * is called (if not NULL) and uv_loop_close() can succeed. `r` must not be used after this call.
 * May be called from inside a resolver callback. */
void resolver_close(struct resolver *r, void (*done_cb)(void *data), void *data);

/* Test hook: moves the cache's clock forward by `ms` (on top of uv_now), so tests can expire answers
 * without sleeping. The proxy never calls it. Affects only the cache, not c-ares' own timeouts. */
void resolver__advance_clock(struct resolver *r, uint64_t ms);

#endif
