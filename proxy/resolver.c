/* Asynchronous DNS resolver: c-ares driven by libuv. See resolver.h for the contract.
 *
 * Shape:
 *   - c-ares owns its sockets. It tells us, through sock_state_cb, which sockets to watch and for what;
 *     each watched socket gets one uv_poll_t (struct watcher), and events go back with ares_process_fd().
 *     c-ares' own retry/timeout clock is driven by one uv_timer_t, re-armed from ares_timeout() after
 *     every call into c-ares.
 *   - Every name has one struct entry in a hash table keyed by the lower-cased name. An entry is either
 *     PENDING (a query is in flight; lookups join its waiter list: coalescing) or ANSWERED (cached answer,
 *     positive or negative, with an expiry on the cache clock). ANSWERED entries sit on an age list so the
 *     oldest can be evicted when the cache is full.
 *   - Callbacks are never made from inside a c-ares callback or resolver_lookup: a finished lookup is
 *     moved to the `ready` list, and a uv_idle_t delivers the list on the next loop turn. One delivery path
 *     keeps "exactly once, never synchronously" easy to see, and c-ares may call back from inside
 *     ares_getaddrinfo() (hosts file, literals, errors) without any special case here.
 *   - Memory that a uv handle lives in is freed only in that handle's close callback (libuv handle.rst).
 */
#include "proxy/resolver.h"

#include <ares.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define RESOLVER_MAGIC 0x52534c56u /* "RSLV" */
#define QUERY_MAGIC 0x51525931u    /* "QRY1" */
#define ENTRY_MAGIC 0x454e5452u    /* "ENTR" */
#define N_BUCKETS 4096             /* power of two; chains stay short up to RESOLVER_CACHE_MAX answers */
#define HOST_MAX 253               /* RFC 1035 s2.3.4: 255 octets on the wire, 253 as text */
#define DEFAULT_TIMEOUT_MS 5000
#define TRIES 2
#define UDP_RCVBUF (1 << 20)

/* Intrusive circular doubly-linked list; a node that is in no list points at itself. */
struct dl {
    struct dl *prev, *next;
};

#define DL_ITEM(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static void dl_init(struct dl *h)
{
    h->prev = h->next = h;
}

static int dl_empty(const struct dl *h)
{
    return h->next == h;
}

static void dl_append(struct dl *h, struct dl *n)
{
    n->prev = h->prev;
    n->next = h;
    h->prev->next = n;
    h->prev = n;
}

static void dl_remove(struct dl *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* An answer address without a port: what the cache keeps (28 bytes, not a 128-byte sockaddr_storage). */
union cached_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

enum entry_state { ENTRY_PENDING, ENTRY_ANSWERED };

struct entry {
    uint32_t magic; /* crosses c-ares' void *arg */
    struct resolver *r;
    struct entry *hnext; /* hash chain */
    uint32_t hash;
    enum entry_state state;
    struct dl waiters; /* PENDING: struct resolver_query.link */
    struct dl age;     /* ANSWERED: on r->age, oldest first */
    int status;        /* ANSWERED: 0 or RESOLVER_ENOTFOUND */
    uint64_t expires;  /* ANSWERED: cache clock (ms); the answer is used while now < expires */
    size_t n_addrs;
    union cached_addr *addrs; /* ANSWERED with status 0: n_addrs of them, malloc'd */
    char name[];              /* lower-cased key, NUL-terminated */
};

struct resolver_query {
    uint32_t magic;
    struct resolver *r;
    struct dl link; /* in entry->waiters while waiting, in r->ready once the result is in */
    resolver_cb cb;
    void *data;
    uint16_t port;
    int status;
    uint64_t turn; /* value of r->turn when it was queued on r->ready */
    struct resolver_addrs addrs;
};

/* One uv_poll_t per socket c-ares asked us to watch. Freed in its close callback. */
struct watcher {
    uv_poll_t poll;
    struct resolver *r;
    ares_socket_t fd;
    struct watcher *next; /* r->watchers; unlinked when closing starts */
};

struct resolver {
    uint32_t magic;
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t timer; /* c-ares timeouts */
    uv_idle_t idle;   /* delivers r->ready on the next loop turn; active only while it is not empty */
    struct watcher *watchers;
    size_t open_handles; /* uv handles initialised and not yet through their close callback */

    struct entry **buckets; /* N_BUCKETS chains */
    struct dl age;          /* ANSWERED entries, oldest first */
    size_t n_answered;
    uint64_t max_ttl_ms;
    uint64_t clock_skew_ms; /* test hook: added to uv_now() for cache decisions */

    struct dl ready; /* queries whose result is in, waiting for the idle callback */
    uint64_t turn;   /* incremented at each delivery round; see on_idle */

    struct resolver_stats stats;

    int closing;
    void (*done_cb)(void *data);
    void *done_data;
};

static void arm_timer(struct resolver *r);
static void on_idle(uv_idle_t *h);
static void release_handle(struct resolver *r);

static uint64_t cache_now(const struct resolver *r)
{
    return uv_now(r->loop) + r->clock_skew_ms;
}

/* FNV-1a: an in-memory bucket index, not a store key, so a fast non-cryptographic hash is enough. The
 * table is bounded (RESOLVER_CACHE_MAX answers), which bounds the damage of a crafted collision set. */
static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

static struct entry *table_find(struct resolver *r, const char *name, uint32_t hash)
{
    for (struct entry *e = r->buckets[hash & (N_BUCKETS - 1)]; e; e = e->hnext)
        if (e->hash == hash && strcmp(e->name, name) == 0) return e;
    return NULL;
}

static void table_insert(struct resolver *r, struct entry *e)
{
    struct entry **b = &r->buckets[e->hash & (N_BUCKETS - 1)];
    e->hnext = *b;
    *b = e;
}

static void table_remove(struct resolver *r, struct entry *e)
{
    for (struct entry **p = &r->buckets[e->hash & (N_BUCKETS - 1)]; *p; p = &(*p)->hnext) {
        if (*p == e) {
            *p = e->hnext;
            e->hnext = NULL;
            return;
        }
    }
}

/* Takes an ANSWERED entry off the age list (it becomes PENDING again or is freed). */
static void forget_answer(struct resolver *r, struct entry *e)
{
    assert(e->state == ENTRY_ANSWERED);
    dl_remove(&e->age);
    r->n_answered--;
    free(e->addrs);
    e->addrs = NULL;
    e->n_addrs = 0;
}

static void entry_free(struct entry *e)
{
    e->magic = 0;
    free(e->addrs);
    free(e);
}

/* ---- delivery ---------------------------------------------------------------------------------------- */

static void fill_addrs(struct resolver_addrs *out, const union cached_addr *in, size_t n, uint16_t port)
{
    out->n = 0;
    for (size_t i = 0; i < n && i < RESOLVER_MAX_ADDRS; i++) {
        struct sockaddr_storage *ss = &out->addr[out->n];
        memset(ss, 0, sizeof(*ss));
        if (in[i].sa.sa_family == AF_INET) {
            memcpy(ss, &in[i].in, sizeof(in[i].in));
            ((struct sockaddr_in *)ss)->sin_port = htons(port);
            out->len[out->n] = sizeof(struct sockaddr_in);
        } else {
            memcpy(ss, &in[i].in6, sizeof(in[i].in6));
            ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
            out->len[out->n] = sizeof(struct sockaddr_in6);
        }
        out->n++;
    }
}

/* Queues q for delivery on the next loop turn with `status` (and, for 0, the addresses already filled). */
static void make_ready(struct resolver *r, struct resolver_query *q, int status)
{
    q->status = status;
    q->turn = r->turn;
    dl_append(&r->ready, &q->link);
    /* An active idle handle makes the next uv_run iteration poll with a zero timeout, so delivery is
     * prompt. Starting an active handle again does nothing. */
    uv_idle_start(&r->idle, on_idle);
}

static void on_idle(uv_idle_t *h)
{
    struct resolver *r = DL_ITEM(h, struct resolver, idle);
    /* Deliver only what was queued before this round: a callback that starts a lookup answered from the
     * cache queues it with the new turn value, and it waits for the next round. That keeps each round
     * bounded and keeps "never synchronously" true even for lookups made from callbacks. */
    uint64_t round = r->turn++;
    while (!r->closing && !dl_empty(&r->ready)) {
        struct resolver_query *q = DL_ITEM(r->ready.next, struct resolver_query, link);
        if (q->turn > round) break;
        dl_remove(&q->link);
        assert(q->magic == QUERY_MAGIC);
        q->magic = 0;
        resolver_cb cb = q->cb;
        void *data = q->data;
        int status = q->status;
        /* The addresses must outlive the callback's use of them, but q must be gone before the callback
         * (which may free the caller's object holding the handle to q), so copy them out first. */
        struct resolver_addrs addrs;
        if (status == 0) addrs = q->addrs;
        free(q);
        cb(data, status, status == 0 ? &addrs : NULL);
    }
    if (!r->closing && dl_empty(&r->ready)) uv_idle_stop(&r->idle);
}

/* ---- c-ares plumbing ---------------------------------------------------------------------------------- */

static void on_watcher_closed(uv_handle_t *h)
{
    struct watcher *w = DL_ITEM(h, struct watcher, poll);
    struct resolver *r = w->r;
    free(w);
    release_handle(r);
}

static void watcher_close(struct resolver *r, struct watcher *w)
{
    for (struct watcher **p = &r->watchers; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    w->next = NULL;
    /* uv_close stops the poll now (before c-ares closes the fd) and invalidates the fd in the backend,
     * so a new socket c-ares opens with the same number can get a fresh watcher at once. */
    uv_close((uv_handle_t *)&w->poll, on_watcher_closed);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct watcher *w = DL_ITEM(h, struct watcher, poll);
    struct resolver *r = w->r;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    if (status < 0) {
        /* Let c-ares find the error itself by reading and writing: it then closes the socket and retries
         * the queries on another server or attempt. */
        rfd = wfd = w->fd;
    } else {
        if (events & UV_READABLE) rfd = w->fd;
        if (events & UV_WRITABLE) wfd = w->fd;
    }
    /* May call sock_state_cb, which may close this very watcher: w is not used after this line. */
    ares_process_fd(r->channel, rfd, wfd);
    arm_timer(r);
}

static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    assert(r->magic == RESOLVER_MAGIC);
    struct watcher *w = r->watchers;
    while (w && w->fd != fd)
        w = w->next;

    if (!readable && !writable) {
        if (w) watcher_close(r, w);
        return;
    }
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w) return; /* the queries on this socket end with a timeout: an error, reported as one */
        if (uv_poll_init_socket(r->loop, &w->poll, fd) != 0) {
            free(w);
            return; /* likewise */
        }
        w->r = r;
        w->fd = fd;
        w->next = r->watchers;
        r->watchers = w;
        r->open_handles++;
        /* Sockets alone do not keep the loop alive: c-ares may hold an idle socket open. While a query is
         * pending the (referenced) timer is armed, and that is what keeps uv_run going. */
        uv_unref((uv_handle_t *)&w->poll);
    }
    int events = (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0);
    if (uv_poll_start(&w->poll, events, on_poll) != 0) watcher_close(r, w); /* as above: the pending queries time out */
}

static void on_timer(uv_timer_t *h)
{
    struct resolver *r = DL_ITEM(h, struct resolver, timer);
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timer(r);
}

/* Re-arms the timer for c-ares' next deadline, or stops it when no query is pending. Called after every
 * call into c-ares that may have changed its queries. */
static void arm_timer(struct resolver *r)
{
    struct timeval tv;
    if (r->closing) return;
    if (!ares_timeout(r->channel, NULL, &tv)) {
        uv_timer_stop(&r->timer);
        return;
    }
    /* Round up: waking a fraction of a millisecond early would only spin once more. */
    uint64_t ms = (uint64_t)tv.tv_sec * 1000 + ((uint64_t)tv.tv_usec + 999) / 1000;
    uv_timer_start(&r->timer, on_timer, ms, 0);
}

/* ---- answers -------------------------------------------------------------------------------------------- */

static int map_ares_status(int st)
{
    switch (st) {
    case ARES_ENOTFOUND: /* NXDOMAIN */
    case ARES_ENODATA:   /* the name exists but has no A/AAAA */
    case ARES_ENONAME:
        return RESOLVER_ENOTFOUND;
    case ARES_ETIMEOUT:
        return RESOLVER_ETIMEOUT;
    default: /* ESERVFAIL, EREFUSED, EFORMERR, EBADRESP, ECONNREFUSED, ENOMEM, ... */
        return RESOLVER_EFAIL;
    }
}

/* Copies the usable addresses of `res` into `out` (capacity RESOLVER_MAX_ADDRS), families interleaved
 * starting with the family of the first address (resolver.h: Happy-Eyeballs-lite), duplicates dropped.
 * Also returns the smallest TTL seen (addresses and CNAMEs), in seconds. */
static size_t collect_addrs(const struct ares_addrinfo *res, union cached_addr *out, uint64_t *min_ttl_s)
{
    union cached_addr v4[RESOLVER_MAX_ADDRS], v6[RESOLVER_MAX_ADDRS];
    size_t n4 = 0, n6 = 0, n = 0;
    int first_family = 0;
    uint64_t ttl = UINT64_MAX;

    for (const struct ares_addrinfo_node *ai = res->nodes; ai; ai = ai->ai_next) {
        union cached_addr a;
        memset(&a, 0, sizeof(a));
        if (ai->ai_family == AF_INET && ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
            memcpy(&a.in, ai->ai_addr, sizeof(a.in));
            a.in.sin_port = 0;
        } else if (ai->ai_family == AF_INET6 && ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
            memcpy(&a.in6, ai->ai_addr, sizeof(a.in6));
            a.in6.sin6_port = 0;
            a.in6.sin6_flowinfo = 0;
        } else {
            continue;
        }
        union cached_addr *list = ai->ai_family == AF_INET ? v4 : v6;
        size_t *cnt = ai->ai_family == AF_INET ? &n4 : &n6;
        size_t size = ai->ai_family == AF_INET ? sizeof(a.in) : sizeof(a.in6);
        int dup = 0;
        for (size_t i = 0; i < *cnt && !dup; i++)
            dup = memcmp(&list[i], &a, size) == 0;
        if (dup || *cnt == RESOLVER_MAX_ADDRS) continue;
        list[(*cnt)++] = a;
        if (!first_family) first_family = ai->ai_family;
        uint64_t t = ai->ai_ttl > 0 ? (uint64_t)ai->ai_ttl : 0;
        if (t < ttl) ttl = t;
    }
    /* A CNAME in the chain expires the answer as surely as the address records do. */
    for (const struct ares_addrinfo_cname *c = res->cnames; c; c = c->next) {
        uint64_t t = c->ttl > 0 ? (uint64_t)c->ttl : 0;
        if (t < ttl) ttl = t;
    }

    const union cached_addr *a = first_family == AF_INET6 ? v6 : v4, *b = first_family == AF_INET6 ? v4 : v6;
    size_t na = first_family == AF_INET6 ? n6 : n4, nb = first_family == AF_INET6 ? n4 : n6;
    for (size_t i = 0; (i < na || i < nb) && n < RESOLVER_MAX_ADDRS; i++) {
        if (i < na) out[n++] = a[i];
        if (i < nb && n < RESOLVER_MAX_ADDRS) out[n++] = b[i];
    }
    *min_ttl_s = n ? ttl : 0;
    return n;
}

/* Called by c-ares when the query for entry `arg` is over, from inside ares_process_fd, the timer, or
 * ares_getaddrinfo itself. Stores the answer and queues every waiter; never calls a user callback. */
static void on_addrinfo(void *arg, int ares_status, int timeouts, struct ares_addrinfo *res)
{
    struct entry *e = arg;
    assert(e->magic == ENTRY_MAGIC);
    struct resolver *r = e->r;
    (void)timeouts;

    if (r->closing) {
        /* ares_destroy() from resolver_close(): the entry is freed there. */
        if (res) ares_freeaddrinfo(res);
        return;
    }
    assert(e->state == ENTRY_PENDING);

    union cached_addr addrs[RESOLVER_MAX_ADDRS];
    size_t n = 0;
    uint64_t ttl_s = 0;
    int status;
    if (ares_status == ARES_SUCCESS && res) {
        n = collect_addrs(res, addrs, &ttl_s);
        status = n ? 0 : RESOLVER_ENOTFOUND;
        if (!n) ttl_s = RESOLVER_NEGATIVE_TTL_S;
    } else {
        status = map_ares_status(ares_status);
        ttl_s = status == RESOLVER_ENOTFOUND ? RESOLVER_NEGATIVE_TTL_S : 0;
    }
    if (res) ares_freeaddrinfo(res);
    if (status != 0) r->stats.failures++;

    /* Hand the result to every waiter (each with its own port). */
    while (!dl_empty(&e->waiters)) {
        struct resolver_query *q = DL_ITEM(e->waiters.next, struct resolver_query, link);
        dl_remove(&q->link);
        if (status == 0) fill_addrs(&q->addrs, addrs, n, q->port);
        make_ready(r, q, status);
    }

    /* Cache it, or drop the entry. Only "exists with these addresses" and "does not exist / has no
     * address" are facts about the name; a timeout or a server failure says nothing about it. */
    uint64_t ttl_ms = ttl_s * 1000;
    if (ttl_ms > r->max_ttl_ms) ttl_ms = r->max_ttl_ms;
    union cached_addr *copy = NULL;
    if (ttl_ms > 0 && n > 0) {
        copy = malloc(n * sizeof(*copy));
        if (copy)
            memcpy(copy, addrs, n * sizeof(*copy));
        else
            ttl_ms = 0; /* no memory for the answer: just do not cache it */
    }
    if (ttl_ms == 0) {
        table_remove(r, e);
        entry_free(e);
        return;
    }
    e->state = ENTRY_ANSWERED;
    e->status = status;
    e->expires = cache_now(r) + ttl_ms;
    e->addrs = copy;
    e->n_addrs = n;
    dl_append(&r->age, &e->age);
    r->n_answered++;
    while (r->n_answered > RESOLVER_CACHE_MAX) {
        struct entry *old = DL_ITEM(r->age.next, struct entry, age);
        forget_answer(r, old);
        table_remove(r, old);
        entry_free(old);
    }
}

/* ---- public API ----------------------------------------------------------------------------------------- */

static int set_servers(ares_channel ch, const struct proxy_config *cfg)
{
    struct ares_addr_port_node nodes[CONFIG_MAX_DNS];
    size_t n = cfg->n_dns_servers < CONFIG_MAX_DNS ? cfg->n_dns_servers : CONFIG_MAX_DNS;
    memset(nodes, 0, sizeof(nodes));
    for (size_t i = 0; i < n; i++) {
        const struct sockaddr_storage *ss = &cfg->dns_servers[i].sa;
        int port;
        if (ss->ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
            nodes[i].family = AF_INET;
            memcpy(&nodes[i].addr.addr4, &sin->sin_addr, sizeof(sin->sin_addr));
            port = ntohs(sin->sin_port);
        } else if (ss->ss_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
            nodes[i].family = AF_INET6;
            memcpy(&nodes[i].addr.addr6, &sin6->sin6_addr, sizeof(sin6->sin6_addr));
            port = ntohs(sin6->sin6_port);
        } else {
            return -EINVAL;
        }
        /* Port 0 in the configuration means "not given": c-ares then uses 53. */
        nodes[i].udp_port = port;
        nodes[i].tcp_port = port; /* a truncated UDP answer is retried over TCP on the same port */
        nodes[i].next = i + 1 < n ? &nodes[i + 1] : NULL;
    }
    int rc = ares_set_servers_ports(ch, &nodes[0]);
    if (rc == ARES_ENOMEM) return -ENOMEM;
    return rc == ARES_SUCCESS ? 0 : -EINVAL;
}

int resolver_new(struct resolver **out, uv_loop_t *loop, const struct proxy_config *cfg)
{
    struct resolver *r = calloc(1, sizeof(*r));
    if (!r) return -ENOMEM;
    r->buckets = calloc(N_BUCKETS, sizeof(*r->buckets));
    if (!r->buckets) {
        free(r);
        return -ENOMEM;
    }
    r->magic = RESOLVER_MAGIC;
    r->loop = loop;
    dl_init(&r->age);
    dl_init(&r->ready);
    r->max_ttl_ms = cfg->dns_cache_max_ttl_s * 1000;

    uint64_t timeout = cfg->dns_timeout_ms ? cfg->dns_timeout_ms : DEFAULT_TIMEOUT_MS;
    if (timeout > INT32_MAX) timeout = INT32_MAX;
    struct ares_options opts;
    memset(&opts, 0, sizeof(opts));
    opts.sock_state_cb = on_sock_state;
    opts.sock_state_cb_data = r;
    opts.timeout = (int)timeout; /* milliseconds with ARES_OPT_TIMEOUTMS */
    opts.tries = TRIES;
    opts.domains = NULL;
    opts.ndomains = 0; /* no search list: see resolver.h */
    /* A burst of answers (hundreds of names looked up at once) overflows the default UDP receive buffer,
     * and every answer dropped there costs a full timeout before the retry. The kernel caps the request at
     * net.core.rmem_max, so this is best-effort. */
    opts.socket_receive_buffer_size = UDP_RCVBUF;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_DOMAINS | ARES_OPT_SOCK_RCVBUF;
    int rc = ares_init_options(&r->channel, &opts, mask);
    if (rc != ARES_SUCCESS) {
        free(r->buckets);
        free(r);
        return rc == ARES_ENOMEM ? -ENOMEM : -EIO;
    }
    if (cfg->n_dns_servers > 0 && (rc = set_servers(r->channel, cfg)) != 0) {
        ares_destroy(r->channel);
        free(r->buckets);
        free(r);
        return rc;
    }
    if ((rc = uv_timer_init(loop, &r->timer)) != 0) {
        ares_destroy(r->channel);
        free(r->buckets);
        free(r);
        return rc;
    }
    (void)uv_idle_init(loop, &r->idle); /* documented to always succeed */
    r->timer.data = r;
    r->idle.data = r;
    r->open_handles = 2;
    *out = r;
    return 0;
}

/* IP literal? Fills `out` (port set) and returns 1; 0 when `host` is not one. Brackets are accepted
 * around IPv6 (RFC 3986 s3.2.2 IP-literal), whether or not the caller stripped them. */
static int parse_literal(const char *host, size_t len, uint16_t port, struct resolver_addrs *out)
{
    char buf[INET6_ADDRSTRLEN + 1 + 16]; /* room for a zone id */
    int bracketed = len >= 2 && host[0] == '[' && host[len - 1] == ']';
    if (bracketed) {
        host++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, host, len);
    buf[len] = '\0';

    memset(&out->addr[0], 0, sizeof(out->addr[0]));
    if (!bracketed && uv_ip4_addr(buf, port, (struct sockaddr_in *)&out->addr[0]) == 0) {
        out->len[0] = sizeof(struct sockaddr_in);
        out->n = 1;
        return 1;
    }
    if (strchr(buf, ':') && uv_ip6_addr(buf, port, (struct sockaddr_in6 *)&out->addr[0]) == 0) {
        out->len[0] = sizeof(struct sockaddr_in6);
        out->n = 1;
        return 1;
    }
    return 0;
}

/* Lower-cases `host` into key (HOST_MAX + 2 bytes) and checks it is a plausible host name: letters,
 * digits, '-', '_' (seen in the wild) and '.', no empty label, at most 253 characters plus a final dot.
 * 0 or -EINVAL. */
static int make_key(const char *host, size_t len, char *key)
{
    if (len == 0 || len > HOST_MAX + 1 || (len == HOST_MAX + 1 && host[len - 1] != '.')) return -EINVAL;
    char prev = '.';
    for (size_t i = 0; i < len; i++) {
        char c = host[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return -EINVAL;
        if (c == '.' && prev == '.') return -EINVAL; /* empty label, or a leading dot */
        key[i] = prev = c;
    }
    if (len == 1 && key[0] == '.') return -EINVAL;
    key[len] = '\0';
    return 0;
}

/* Answers q from the cache, joins it to a query in flight, or starts a query. 0 or a negative code (q is
 * then untouched and not linked anywhere). */
static int lookup_name(struct resolver *r, struct resolver_query *q, const char *host, size_t len)
{
    char key[HOST_MAX + 2];
    int rc = make_key(host, len, key);
    if (rc != 0) return rc;
    uint32_t hash = hash_name(key);
    struct entry *e = table_find(r, key, hash);

    if (e && e->state == ENTRY_PENDING) {
        /* A query for this name is in flight: wait for it instead of asking again. */
        r->stats.cache_hits++;
        dl_append(&e->waiters, &q->link);
        return 0;
    }
    if (e && cache_now(r) < e->expires) {
        r->stats.cache_hits++;
        if (e->status == 0) fill_addrs(&q->addrs, e->addrs, e->n_addrs, q->port);
        make_ready(r, q, e->status);
        return 0;
    }
    if (e) {
        forget_answer(r, e); /* expired: ask again, reusing the entry */
        e->state = ENTRY_PENDING;
    } else {
        size_t klen = strlen(key);
        e = calloc(1, sizeof(*e) + klen + 1);
        if (!e) return -ENOMEM;
        memcpy(e->name, key, klen + 1);
        e->magic = ENTRY_MAGIC;
        e->r = r;
        e->hash = hash;
        e->state = ENTRY_PENDING;
        dl_init(&e->waiters);
        dl_init(&e->age);
        table_insert(r, e);
    }

    r->stats.queries++;
    dl_append(&e->waiters, &q->link);
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC; /* A and AAAA, in parallel */
    hints.ai_socktype = SOCK_STREAM;
    /* May complete synchronously (hosts file, errors): on_addrinfo only queues, so that is fine. It may
     * also free `e` (an uncacheable answer), so e is not touched after this call. */
    ares_getaddrinfo(r->channel, key, NULL, &hints, on_addrinfo, e);
    arm_timer(r);
    return 0;
}

int resolver_lookup(struct resolver *r, const char *host, uint16_t port, resolver_cb cb, void *data,
                    struct resolver_query **out_query)
{
    assert(r && r->magic == RESOLVER_MAGIC && cb && host);
    if (r->closing) return -ECANCELED;

    struct resolver_query *q = malloc(sizeof(*q));
    if (!q) return -ENOMEM;
    q->magic = QUERY_MAGIC;
    q->r = r;
    dl_init(&q->link);
    q->cb = cb;
    q->data = data;
    q->port = port;
    q->status = 0;
    q->turn = 0;
    q->addrs.n = 0;

    size_t len = strlen(host);
    if (parse_literal(host, len, port, &q->addrs)) {
        make_ready(r, q, 0);
    } else {
        int rc = lookup_name(r, q, host, len);
        if (rc != 0) {
            q->magic = 0;
            free(q);
            return rc;
        }
    }
    if (out_query) *out_query = q;
    return 0;
}

void resolver_cancel(struct resolver_query *q)
{
    assert(q && q->magic == QUERY_MAGIC);
    /* Whether it waits on an entry or sits on the ready list, unlinking is all it takes. A query in flight
     * keeps going for its other waiters and the cache: c-ares cannot cancel one query of a channel. */
    dl_remove(&q->link);
    q->magic = 0;
    free(q);
}

void resolver_get_stats(const struct resolver *r, struct resolver_stats *out)
{
    *out = r->stats;
}

const char *resolver_strerror(int status)
{
    switch (status) {
    case 0:
        return "ok";
    case RESOLVER_ENOTFOUND:
        return "name not found";
    case RESOLVER_ETIMEOUT:
        return "DNS timeout";
    case RESOLVER_EFAIL:
        return "DNS failure";
    case RESOLVER_ECANCELLED:
        return "DNS lookup cancelled";
    case -EINVAL:
        return "invalid host name";
    case -ENOMEM:
        return "out of memory";
    case -ECANCELED:
        return "resolver closed";
    default:
        return "DNS error";
    }
}

void resolver__advance_clock(struct resolver *r, uint64_t ms)
{
    r->clock_skew_ms += ms;
}

/* One uv handle of r went through its close callback; after the last one, r is freed. A watcher can
 * close while the resolver is running (c-ares dropped a socket): that only lowers the count. */
static void release_handle(struct resolver *r)
{
    assert(r->open_handles > 0);
    if (--r->open_handles > 0 || !r->closing) return;
    void (*done)(void *) = r->done_cb;
    void *data = r->done_data;
    r->magic = 0;
    free(r->buckets);
    free(r);
    if (done) done(data);
}

static void on_handle_closed(uv_handle_t *h)
{
    release_handle(h->data);
}

void resolver_close(struct resolver *r, void (*done_cb)(void *data), void *data)
{
    assert(r && r->magic == RESOLVER_MAGIC && !r->closing);
    r->closing = 1;
    r->done_cb = done_cb;
    r->done_data = data;

    /* c-ares calls every pending on_addrinfo with ARES_EDESTRUCTION (ignored: closing is set) and reports
     * its sockets closed through on_sock_state, which closes their watchers. */
    ares_destroy(r->channel);
    r->channel = NULL;
    while (r->watchers)
        watcher_close(r, r->watchers);

    while (!dl_empty(&r->ready)) {
        struct resolver_query *q = DL_ITEM(r->ready.next, struct resolver_query, link);
        dl_remove(&q->link);
        q->magic = 0;
        free(q);
    }
    for (size_t i = 0; i < N_BUCKETS; i++) {
        while (r->buckets[i]) {
            struct entry *e = r->buckets[i];
            r->buckets[i] = e->hnext;
            while (!dl_empty(&e->waiters) && e->state == ENTRY_PENDING) {
                struct resolver_query *q = DL_ITEM(e->waiters.next, struct resolver_query, link);
                dl_remove(&q->link);
                q->magic = 0;
                free(q);
            }
            entry_free(e);
        }
    }
    dl_init(&r->age);
    r->n_answered = 0;

    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->idle, on_handle_closed);
}
