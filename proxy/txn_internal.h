/* The transaction's state, shared by the files that implement its steps:
 *   txn.c        lifecycle, routing of a request (local answer, CONNECT, cache decision), logging
 *   txn_fetch.c  the upstream exchange: request out, response in, streamed to the client and the store
 *   txn_serve.c  answering from the store: hits, refreshed and stale responses, conditionals, ranges
 * Nothing outside these files sees struct txn.
 */
#ifndef LARDER_PROXY_TXN_INTERNAL_H
#define LARDER_PROXY_TXN_INTERNAL_H

#include <stdint.h>

#include "http/cache_policy.h"
#include "http/http_uri.h"
#include "proxy/cache.h"
#include "proxy/client_conn.h"
#include "proxy/flight.h"
#include "proxy/origin_conn.h"
#include "proxy/txn.h"

#define TXN_MAGIC 0x54584e31u /* "TXN1" */

enum out_framing { OUT_NONE, OUT_LENGTH, OUT_CHUNKED, OUT_CLOSE };

/* What the transaction does with its request. */
enum txn_mode {
    MODE_LOCAL = 0,  /* answered by larder itself (errors, metrics, OPTIONS/TRACE with Max-Forwards: 0) */
    MODE_PASS,       /* forwarded; the cache is neither read nor written (may invalidate, RFC 9111 s4.4) */
    MODE_MISS,       /* forwarded; a storable response is stored */
    MODE_REVALIDATE, /* forwarded with the stored validators; a 304 refreshes the stored response */
    MODE_HIT,        /* served from the store */
    MODE_TUNNEL,
};

/* A piece of a response served from the store: literal bytes, or a range of the stored body. */
struct serve_seg {
    const char *bytes; /* NULL for a body range */
    uint64_t off, len;
};

/* A body span the store writer could not take yet (back-pressure): kept with a reference. */
struct pending_span {
    struct buf_block *blk;
    const char *ptr;
    size_t len;
};

struct txn {
    uint32_t magic;
    struct proxy_ctx *ctx;
    struct client_conn *cc; /* NULL for a background revalidation, or once the client has gone */
    uint64_t id;
    struct arena arena;
    struct http_msg req;        /* as forwarded (validators may have been added) */
    struct http_msg client_req; /* as the client sent it: its own conditionals, for evaluating them */
    struct http_uri uri;
    size_t url_len;
    struct http_msg *resp;   /* current upstream response (an interim one until the final) */
    struct origin_conn *oc;
    enum txn_mode mode;

    /* Cache. */
    struct cache_entry entry;  /* the stored response considered for this request */
    struct cp_decision dec;
    int64_t request_time, response_time; /* RFC 9111 s4.2.3, for the upstream exchange */
    struct store_fill *fill;   /* the object being stored from this response */
    uint64_t fill_len;
    struct pending_span *pend; /* appends refused with -EAGAIN, in order */
    size_t n_pend, cap_pend;
    int fill_paused;           /* upstream paused until the writer resumes us */
    int commit_pending;        /* the response ended while appends were pending */
    struct http_msg *store_resp; /* the response head as stored (a prepared copy of resp) */
    const char *variant;       /* variant key bytes of the response being stored */
    size_t variant_len;
    int background;            /* stale-while-revalidate: no client, just refresh the store */
    int refetch;               /* a 304 that matched nothing: ask again without validators */

    /* Serving from the store. */
    struct serve_seg *segs;
    size_t n_segs, seg_i;
    uint64_t seg_done;
    uint64_t serve_body_id;
    uint64_t serve_limit;  /* body bytes readable now (UINT64_MAX: the whole stored body) */
    int64_t serve_request_time, serve_response_time; /* of the stored response, for Age */
    const struct cp_resp_summary *serve_summary;      /* its Age and Date values, when known (hot entry) */
    int serving;
    int serve_chunked;     /* length unknown (object still arriving): chunked to the client */
    int serve_open;        /* the last body segment ends where the object ends, not known yet */

    /* Single flight (flight.h). */
    struct flight *flight;  /* the flight this transaction publishes to, as its leader */
    int flight_leader;
    struct flight *follow_flight; /* the flight whose object this transaction's client reads */
    int following;          /* streaming to the client from the store as a flight progresses */
    int self_following;     /* ... its own flight, as a leader whose client could not keep up */
    uint64_t client_body_sent; /* body bytes of the upstream response already queued to the client */
    /* A follower whose flight could not finish through the store fetches the rest of its body itself
     * (txn__follow_resume): a Range request for body bytes [resume_first, resume_last] (resume_last
     * UINT64_MAX: to the end) under If-Range, whose 206 continues the response the client already has. */
    int resuming;
    uint64_t resume_first, resume_last;
    uint64_t resume_got; /* body bytes of the 206 passed on */
    struct list_node follow_link; /* in ctx->followers while following */
    struct list_node pause_link;  /* in ctx->paused_leaders while paused for its own client */
    struct http_msg follow_resp;

    /* Cache-Status (RFC 9211) and the access log. */
    const char *fwd;   /* NULL for a hit; else uri-miss, vary-miss, stale, request, method, bypass, miss */
    int fwd_status;
    int stored;        /* the response was (being) stored */
    int64_t hit_ttl;   /* freshness left, for "ttl=" */
    int hit;
    int collapsed;     /* served by another transaction's fetch (RFC 9211 "collapsed") */

    uint64_t start_ms;
    uint64_t bytes_out;
    int status;         /* final status sent to the client, 0 before */
    const char *result; /* Squid result code */
    const char *hier;
    char peer[64];
    char content_type[128];

    int client_http10;
    int client_ka;      /* the connection may carry another request after this one */
    int req_complete;   /* the whole request was read from the client */
    int req_forwarding; /* request bytes go upstream as they are parsed */
    int req_sent;       /* the whole request was queued upstream */
    int head_sent;      /* the final response head was queued to the client */
    int client_flush_due; /* queued for the client during an upstream parse, written at its end */
    int resp_complete;  /* everything for the client is queued */
    int client_discard; /* the client got a 304 made by us: upstream body only goes to the store */
    enum out_framing out;
    int retried;
    int via_parent;     /* the upstream connection goes to parent_proxy (config_goes_direct) */
    int parent_refused; /* the parent answered 407: our credentials for it are missing or wrong */
    int is_head;
    int in_interim;
    int logged;
    int max_forwards;   /* -1 when absent */
    uint64_t req_body_bytes; /* request body bytes forwarded so far */
    struct list_node reval_link; /* in ctx->detached while running without a client */

    /* Large strings last: a recycled transaction is cleared up to here only (txn_alloc), since
     * clearing 8 KiB per request was a fifth of a small hit's instructions. Only [0] is reset. */
    char url[8192 + 300];    /* normalised absolute URI: cache key and log */
    char authority[300];     /* pool key */
};

void txn__check(const struct txn *t);
/* Everything for the client is queued: finish once the request is read and the store settled. */
void txn__maybe_finish(struct txn *t);
void txn__reply_local(struct txn *t, int status, const char *body, size_t len, const char *ctype, const char *extra);
void txn__reply_error(struct txn *t, int status, const char *reason);
/* Longest visible_hostname used in Via and Cache-Status (longer ones are cut). */
#define TXN_NAME_MAX 255
#define TXN_CACHE_STATUS_MAX (TXN_NAME_MAX + 96)
/* "larder; hit; ttl=42" or "larder; fwd=uri-miss; fwd-status=200; stored" into buf (room for
 * TXN_CACHE_STATUS_MAX bytes), NUL-terminated. Returns the length. */
size_t txn__cache_status(const struct txn *t, char *buf);
#define TXN_VIA_MAX (TXN_NAME_MAX + 48)
/* RFC 9110 s7.6.3: "1.1 larder", the protocol version of the message received, then our name, into
 * out (TXN_VIA_MAX bytes), NUL-terminated. */
void txn__via_value(const struct txn *t, int major, int minor, char *out);
/* "HTTP/1.1 200 OK" (NUL-terminated) in t's arena, or NULL. */
char *txn__status_line(struct txn *t, int status, const char *reason, size_t reason_len);
/* Queues a chunk-size line (RFC 9112 s7.1) for a chunk of len bytes. 0 or -ENOMEM. */
int txn__push_chunk_size(struct outq *q, size_t len);
/* Queues start line, m's fields that are not hop-by-hop or removed, then the extras, as one head built
 * in place in the queue. Returns its length, or -1 when out of memory. */
long txn__queue_head(struct outq *q, const char *start, const struct http_msg *m, const struct http_extra_field *extra,
                     size_t n_extra);
const char *txn__via_name(const struct txn *t);

/* txn_fetch.c */
void txn__dial(struct txn *t);
void txn__fill_abort(struct txn *t);
/* Abort the fill and end the flight as `how` (FLIGHT_FAILED, or FLIGHT_NOT_SHARED: followers fetch themselves). */
void txn__fill_abort_as(struct txn *t, enum flight_state how);

/* A follower that has sent the head and part of the body, whose flight ended without the rest in the
 * store (not storable after all, or the store failed): ask the origin for the rest. Returns 0 when the
 * request is on its way, -1 when it cannot be done (the caller closes the client); logs why. */
int txn__follow_resume(struct txn *t);

/* txn_serve.c: answer from the stored response `resp` whose body is `rec` (body_id, body_len). */
void txn__serve_stored(struct txn *t, struct http_msg *resp, const struct store_record *rec);
/* Follow a flight: called when it may have progressed (loop wake-up, client drained). */
void txn__follow_pump(struct txn *t);
/* Start following `f` (a reference the transaction now owns). */
void txn__follow_start(struct txn *t, struct flight *f);
/* A leader whose client cannot keep up: its client reads the rest from the store, so the fetch (and
 * everyone following it) never waits for one slow reader. Returns 0, or -1 when it cannot switch. */
int txn__follow_own_fill(struct txn *t);
/* Leave the flight as a follower (done, or falling back to a fetch of our own). */
void txn__follow_stop(struct txn *t);
/* Leader: the fetch will not publish anything more; tell followers. */
void txn__flight_end(struct txn *t, enum flight_state how);
void txn__serve_pump(struct txn *t);
/* Wakes a loop from a flight (any thread): arg is that loop's flight_wakeup async handle. */
void txn__flight_wake(void *arg);
/* A leader paused for its own slow client: park it so that a follower's arrival switches it to
 * reading from the store (and un-pauses the fetch); unpark when it no longer applies. */
void txn__leader_park(struct txn *t);
void txn__leader_unpark(struct txn *t);

/* A transaction that runs without a client (background fetch, or one whose client left) is listed in
 * ctx->detached so that shutdown can end it. */
void txn__detach(struct txn *t);
/* A 304 made by us from `resp` (the client's own precondition matched). */
void txn__serve_not_modified(struct txn *t, const struct http_msg *resp);

#endif
