/* Counters for every behaviour, per event loop, summed on scrape (after Varnish's per-worker stats).
 *
 * Each loop increments only its own struct with a relaxed atomic store of (load + 1): on x86 that
 * is a plain load and store, no lock prefix, yet a scrape from another thread reads a whole value
 * and the program stays free of data races.
 *
 * Adding a counter: one line in METRICS_COUNTERS. Its name is what /larder/metrics prints and what
 * the integration tests assert on.
 */
#ifndef LARDER_PROXY_METRICS_H
#define LARDER_PROXY_METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_COUNTERS(X)                                                                                              \
    X(client_connections_accepted)                                                                                       \
    X(client_connections_refused)                                                                                        \
    X(client_connections_active)                                                                                         \
    X(client_requests)                                                                                                   \
    X(client_requests_rejected)                                                                                          \
    X(client_bytes_out)                                                                                                  \
    X(upstream_connections_opened)                                                                                       \
    X(upstream_connections_reused)                                                                                       \
    X(upstream_connections_closed_idle)                                                                                  \
    X(upstream_requests)                                                                                                 \
    X(upstream_retries)                                                                                                  \
    X(upstream_bytes_in)                                                                                                 \
    X(tunnels_opened)                                                                                                    \
    X(tunnels_active)                                                                                                    \
    X(tunnel_bytes)                                                                                                      \
    X(dns_queries)                                                                                                       \
    X(dns_cache_hits)                                                                                                    \
    X(errors_bad_request)                                                                                                \
    X(errors_forbidden)                                                                                                  \
    X(errors_dns)                                                                                                        \
    X(errors_connect)                                                                                                    \
    X(errors_upstream_response)                                                                                          \
    X(errors_timeout)                                                                                                    \
    X(errors_client_aborted)                                                                                             \
    X(errors_internal)                                                                                                   \
    X(cache_hits)                                                                                                        \
    X(cache_misses)                                                                                                      \
    X(cache_passes)                                                                                                      \
    X(cache_revalidations)                                                                                               \
    X(cache_revalidated_304)                                                                                             \
    X(cache_refresh_modified)                                                                                            \
    X(cache_meta_updates)                                                                                                \
    X(cache_stale_served)                                                                                                \
    X(cache_client_304)                                                                                                  \
    X(cache_range_hits)                                                                                                  \
    X(cache_stores)                                                                                                      \
    X(cache_store_aborts)                                                                                                \
    X(cache_store_failures)                                                                                              \
    X(cache_not_storable)                                                                                                \
    X(cache_invalidations)                                                                                               \
    X(cache_only_if_cached_fail)                                                                                         \
    X(cache_background_active)                                                                                           \
    X(cache_read_errors)                                                                                                 \
    X(cache_body_bytes_served)                                                                                           \
    X(cache_body_bytes_copied)                                                                                           \
    X(cache_hot_lookups)                                                                                                 \
    X(flight_leaders)                                                                                                    \
    X(flight_followers)                                                                                                  \
    X(flight_fallbacks)                                                                                                  \
    X(flight_resumes)                                                                                                    \
    X(flight_orphaned)                                                                                                   \
    X(flight_self_follow)

struct metrics {
#define METRICS_FIELD(name) uint64_t name;
    METRICS_COUNTERS(METRICS_FIELD)
#undef METRICS_FIELD
};

#define METRIC_ADD(m, name, n) __atomic_store_n(&(m)->name, __atomic_load_n(&(m)->name, __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define METRIC_INC(m, name) METRIC_ADD(m, name, 1)
#define METRIC_DEC(m, name) METRIC_ADD(m, name, (uint64_t)-1)

/* out += in, field by field (reads with relaxed atomics: `in` may belong to another loop). */
void metrics_accumulate(struct metrics *out, const struct metrics *in);
/* Writes "name value\n" lines into buf; returns the length, or the length it needed if larger than cap. */
size_t metrics_format(const struct metrics *m, char *buf, size_t cap);

#endif
