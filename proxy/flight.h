/* Single flight: one upstream fetch per URL at a time, shared by every client that wants it, on any
 * event loop.
 *
 * The first transaction that needs to go upstream for a cacheable URL (a miss, or a stale entry to
 * revalidate) creates a flight and becomes its leader; later ones, on any loop, join it as followers
 * and wait. The leader publishes what happens:
 *   - the response head, once known and storable (STREAMING): followers send it and stream the body
 *     from the store as the writer commits its chunks (store_fill_set_progress), so a waiter gets
 *     bytes while the download is still running, and a late joiner gets what is there, then the rest;
 *   - a 304 that refreshed the stored response (DONE at once: the body is the stored one);
 *   - completion (DONE), failure (FAILED), or a response that must not be shared (NOT_SHARED: not
 *     storable, e.g. private or Set-Cookie; each follower then sends its own request: such a response
 *     is by definition meant for one client, and handing its bytes to others is exactly what a shared
 *     cache must not do).
 * Followers whose request selects another variant (RFC 9111 s4.1: Vary) also fetch on their own.
 *
 * Threads: one mutex per table guards every flight's fields; the leader's loop, the writer thread
 * (progress) and followers' loops take it briefly. Followers are woken through a callback per watcher
 * (the proxy passes uv_async_send of the follower's loop); the callback runs under the lock and must
 * only wake, never call back in.
 *
 * Lifetime: reference counted. The table holds one reference while the flight is registered (new
 * joiners find it), the leader one, each follower one, the store fill's progress hook one.
 */
#ifndef LARDER_PROXY_FLIGHT_H
#define LARDER_PROXY_FLIGHT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store_keys.h"

/* A flight stays registered until the writer has committed its object, so under a burst of misses the
 * table holds as many flights as the writer's queue holds fills (thousands): with 1024 chains, walking
 * them was 7% of a cold miss. 64K chains (512 KiB, once per process) keep them short. */
#define FLIGHT_BUCKETS 65536

enum flight_state {
    FLIGHT_FETCHING = 0, /* waiting for the upstream response head */
    FLIGHT_STREAMING,    /* head known, body being stored: readable bytes grow */
    FLIGHT_DONE,         /* the whole body is readable from the store */
    FLIGHT_FAILED,       /* the fetch failed: followers answer for themselves */
    FLIGHT_NOT_SHARED,   /* the response is not for sharing: followers fetch on their own */
};

struct flight;

struct flight_table {
    pthread_mutex_t lock;
    struct flight **buckets; /* FLIGHT_BUCKETS chains, allocated by flight_table_init */
    uint64_t created, joined; /* under lock: for metrics */
};

/* What a follower needs, copied under the lock. Pointers stay valid while the follower holds its
 * reference: a head, once published, never changes. */
struct flight_view {
    enum flight_state state;
    int status;
    const char *head;      /* stored head fields (http/stored_head.h form) */
    size_t head_len;
    const char *variant;   /* Vary-selected request fields of the leader's request */
    size_t variant_len;
    int64_t request_time, response_time;
    int64_t fresh_until;   /* s: the response may be reused without validation before this time; 0: never */
    uint64_t body_id;
    int length_known;
    uint64_t length;       /* when length_known */
    uint64_t readable;     /* leading body bytes readable from the store */
    int complete;          /* readable is the whole body */
    int upstream_done;     /* the leader has the whole response: only the store's commit is left */
};

int flight_table_init(struct flight_table *t);
void flight_table_destroy(struct flight_table *t);

/* The flight in progress (or complete but not yet visible in the store) for pkey, or a new one. *leader is 1 when the caller created it and must
 * fetch. Either way the caller holds a reference. NULL when memory is exhausted.
 *
 * stale_response_time: when the caller holds a stored response it may not serve (stale, or no-cache),
 * that response's response_time, else 0. A flight whose published response is no newer is skipped:
 * it is that same response (a fill the loop has not yet seen committed, or an older one), and
 * following it would serve what the caller has just judged unusable (RFC 9111 s4.2.4, s4.3). The
 * caller then leads a new flight, which later joiners find first.
 *
 * reuse_at: the caller's clock (s), or FLIGHT_NO_REUSE when its request forbids using a stored
 * response without validation (no-cache, max-age, min-fresh). A flight still fetching or streaming
 * combines the caller's request into its forward one (RFC 9111 s4, collapsed requests); one whose
 * response is complete (upstream done, only the commit left) is a stored response to the caller,
 * reusable only while fresh (RFC 9111 s4.2): before fresh_until, and never with FLIGHT_NO_REUSE. */
#define FLIGHT_NO_REUSE INT64_MAX
struct flight *flight_join(struct flight_table *t, const struct store_key *pkey, int64_t stale_response_time,
                           int64_t reuse_at, int *leader);
void flight_ref(struct flight *f);
void flight_release(struct flight *f);

/* Followers: register/unregister a wake-up; `arg` identifies the watcher (counted, so several
 * followers on one loop share one entry). */
int flight_watch(struct flight *f, void (*wake)(void *arg), void *arg);
void flight_unwatch(struct flight *f, void *arg);
void flight_view(struct flight *f, struct flight_view *v);
/* The leader asks to be woken (wake(arg), any thread, under the lock: only wake) whenever a follower
 * arrives; NULL stops it. */
void flight_set_leader_wake(struct flight *f, void (*wake)(void *arg), void *arg);
/* Is anyone (on any loop) waiting on this flight? */
int flight_has_followers(struct flight *f);

/* Leader: publish. Each wakes every watcher. The head strings are copied. 0 or -ENOMEM. */
int flight_set_head(struct flight *f, int status, const char *head, size_t head_len, const char *variant, size_t variant_len,
                    int64_t request_time, int64_t response_time, int64_t fresh_until, uint64_t body_id, int length_known,
                    uint64_t length);
/* The store writer's progress hook (any thread): arg is the flight, with a reference taken for the
 * hook (flight_ref) that the final STORE_FILL_PROGRESS_END call drops. */
void flight_progress(void *arg, uint64_t readable);
void flight_done(struct flight *f);
/* The whole response has arrived and its commit is queued. A follower that has sent nothing yet waits
 * for the commit (DONE) instead of starting a response the store might still fail to keep; if the
 * commit fails (FAILED with upstream_done), it fetches for itself, since the origin did answer. */
void flight_upstream_done(struct flight *f);
/* The object is whole in the store but the store does not show it yet (a 304's metadata update is
 * still queued): DONE for the followers, and still registered, so requests arriving meanwhile join it
 * rather than see the old stale entry and revalidate again, as long as the refreshed response is fresh
 * for them (flight_join). flight_unregister() when the store has it. */
void flight_complete(struct flight *f);
void flight_fail(struct flight *f);
void flight_not_shared(struct flight *f);
/* Stop new requests from joining (the object is now in the store, or the fetch is over). */
void flight_unregister(struct flight *f);

#endif
