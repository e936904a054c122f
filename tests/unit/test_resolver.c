/* Unit tests for proxy/resolver: c-ares on a libuv loop against a scripted DNS server.
 *
 * Each test starts its own tiny DNS responder on 127.0.0.1:<ephemeral UDP port> in a thread, points a
 * resolver at it (dns_servers), and asserts on what the responder received (per name and type), so
 * caching and coalescing are observed from the wire, not from the resolver's own word.
 *
 * Time: the cache reads uv_now(loop) plus a skew that resolver__advance_clock() moves, so expiry is
 * tested by skipping ahead instead of sleeping. The one real wait is the DNS timeout test (c-ares' own
 * retry clock, 200 ms + 400 ms), and it is driven by the loop, not by a sleep.
 */
#include "proxy/resolver.h"
#include "test_util.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the scripted DNS responder -------------------------------------------------------------------- */

#define T_A 1
#define T_AAAA 28

enum rec_kind { REC_ANSWER, REC_SERVFAIL, REC_SILENT };

struct zone_rec {
    const char *name;
    enum rec_kind kind;
    uint32_t ttl;
    const char *a[2];    /* IPv4 answers (NULL-terminated up to 2) */
    const char *aaaa[2]; /* IPv6 answers */
    const char *cname;   /* if set: answer with a CNAME (TTL `ttl`) to this listed name, then its records */
};

/* Names not listed get NXDOMAIN. A listed name with no address of the asked type gets NOERROR with an
 * empty answer section ("no data"). */
static const struct zone_rec ZONE[] = {
    {"origin.test", REC_ANSWER, 300, {"127.0.0.1", NULL}, {"::1", NULL}, NULL},
    {"v4only.test", REC_ANSWER, 60, {"127.0.0.5", NULL}, {NULL, NULL}, NULL},
    {"multi.test", REC_ANSWER, 60, {"127.0.0.1", "127.0.0.2"}, {"::1", "::2"}, NULL},
    {"ttl1.test", REC_ANSWER, 1, {"127.0.0.1", NULL}, {NULL, NULL}, NULL},
    {"long.test", REC_ANSWER, 3600, {"127.0.0.3", NULL}, {NULL, NULL}, NULL},
    {"coal.test", REC_ANSWER, 300, {"127.0.0.4", NULL}, {"::4", NULL}, NULL},
    {"cancel.test", REC_ANSWER, 300, {"127.0.0.6", NULL}, {NULL, NULL}, NULL},
    {"alias.test", REC_ANSWER, 1, {NULL, NULL}, {NULL, NULL}, "origin.test"},
    {"nodata.test", REC_ANSWER, 300, {NULL, NULL}, {NULL, NULL}, NULL},
    {"servfail.test", REC_SERVFAIL, 0, {NULL, NULL}, {NULL, NULL}, NULL},
    {"silent.test", REC_SILENT, 0, {NULL, NULL}, {NULL, NULL}, NULL},
};

struct seen {
    char name[256];
    uint16_t qtype;
    unsigned n;
};

struct responder {
    int fd;
    int wake[2]; /* a byte on wake[1] stops the thread */
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t mu; /* guards seen[] and n_seen: written by the thread, read by the test */
    struct seen seen[64];
    size_t n_seen;
    unsigned evict_queries; /* queries for names under evict.test (too many for seen[]) */
};

/* Every name under evict.test exists, for the cache-size test. */
#define EVICT_SUFFIX ".evict.test"
static const struct zone_rec EVICT_REC = {"*" EVICT_SUFFIX, REC_ANSWER, 300, {"127.0.0.9", NULL}, {NULL, NULL}, NULL};

static int is_evict_name(const char *name)
{
    size_t n = strlen(name), k = strlen(EVICT_SUFFIX);
    return n > k && strcmp(name + n - k, EVICT_SUFFIX) == 0;
}

static const struct zone_rec *zone_find(const char *name)
{
    if (is_evict_name(name)) return &EVICT_REC;
    for (size_t i = 0; i < sizeof(ZONE) / sizeof(ZONE[0]); i++)
        if (strcmp(ZONE[i].name, name) == 0) return &ZONE[i];
    return NULL;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void note_query(struct responder *rs, const char *name, uint16_t qtype)
{
    pthread_mutex_lock(&rs->mu);
    if (is_evict_name(name) && strcmp(name, "first" EVICT_SUFFIX) != 0) {
        rs->evict_queries++;
        pthread_mutex_unlock(&rs->mu);
        return;
    }
    size_t i = 0;
    while (i < rs->n_seen && !(rs->seen[i].qtype == qtype && strcmp(rs->seen[i].name, name) == 0))
        i++;
    if (i == rs->n_seen && i < sizeof(rs->seen) / sizeof(rs->seen[0])) {
        snprintf(rs->seen[i].name, sizeof(rs->seen[i].name), "%s", name);
        rs->seen[i].qtype = qtype;
        rs->seen[i].n = 0;
        rs->n_seen++;
    }
    if (i < rs->n_seen) rs->seen[i].n++;
    pthread_mutex_unlock(&rs->mu);
}

/* Queries received for (name, qtype); qtype 0 means every type. */
static unsigned responder_count(struct responder *rs, const char *name, uint16_t qtype)
{
    unsigned n = 0;
    pthread_mutex_lock(&rs->mu);
    for (size_t i = 0; i < rs->n_seen; i++)
        if ((name == NULL || strcmp(rs->seen[i].name, name) == 0) && (qtype == 0 || rs->seen[i].qtype == qtype)) n += rs->seen[i].n;
    pthread_mutex_unlock(&rs->mu);
    return n;
}

static unsigned responder_evict_count(struct responder *rs)
{
    pthread_mutex_lock(&rs->mu);
    unsigned n = rs->evict_queries;
    pthread_mutex_unlock(&rs->mu);
    return n;
}

/* Appends one A or AAAA record pointing back at the question name (offset 12). */
/* Appends a resource record whose owner is the name at message offset `owner` (a compression pointer,
 * RFC 1035 s4.1.4), with rdata copied from `rdata`. */
static size_t put_rr(uint8_t *p, size_t owner, uint16_t type, uint32_t ttl, const void *rdata, size_t rdlen)
{
    p[0] = (uint8_t)(0xc0 | (owner >> 8));
    p[1] = (uint8_t)owner;
    put16(p + 2, type);
    put16(p + 4, 1); /* class IN */
    p[6] = (uint8_t)(ttl >> 24);
    p[7] = (uint8_t)(ttl >> 16);
    p[8] = (uint8_t)(ttl >> 8);
    p[9] = (uint8_t)ttl;
    put16(p + 10, (unsigned)rdlen);
    memcpy(p + 12, rdata, rdlen);
    return 12 + rdlen;
}

/* The A or AAAA records of z for qtype, owned by the name at `owner`. */
static size_t put_addrs(uint8_t *p, size_t owner, const struct zone_rec *z, uint16_t qtype, unsigned *an)
{
    const char *const *list = qtype == T_A ? z->a : qtype == T_AAAA ? z->aaaa : NULL;
    size_t len = 0;
    for (size_t i = 0; list && i < 2 && list[i]; i++, (*an)++) {
        uint8_t addr[16];
        ASSERT_EQ(inet_pton(qtype == T_A ? AF_INET : AF_INET6, list[i], addr), 1);
        len += put_rr(p + len, owner, qtype, z->ttl, addr, qtype == T_A ? 4 : 16);
    }
    return len;
}

/* "a.b" -> 1 'a' 1 'b' 0 (RFC 1035 s3.1). */
static size_t encode_name(const char *name, uint8_t *out)
{
    size_t n = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        out[n++] = (uint8_t)l;
        memcpy(out + n, name, l);
        n += l;
        name += l + (dot ? 1 : 0);
    }
    out[n++] = 0;
    return n;
}

/* Builds the reply to query q into out (RFC 1035 s4.1). Returns its length, or 0 to stay silent. */
static size_t build_reply(struct responder *rs, const uint8_t *q, size_t qlen, uint8_t *out, size_t cap)
{
    if (qlen < 12 || q[4] != 0 || q[5] != 1 || (q[2] & 0x80)) return 0; /* not a single-question query */
    char name[256];
    size_t off = 12, nlen = 0;
    while (off < qlen && q[off] != 0) {
        size_t l = q[off++];
        if (l > 63 || off + l > qlen || nlen + l + 1 >= sizeof(name)) return 0;
        if (nlen) name[nlen++] = '.';
        for (size_t i = 0; i < l; i++) {
            char c = (char)q[off + i];
            name[nlen++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        off += l;
    }
    name[nlen] = '\0';
    if (off + 5 > qlen) return 0;
    uint16_t qtype = (uint16_t)(q[off + 1] << 8 | q[off + 2]);
    size_t qend = off + 5; /* root label, qtype, qclass */
    note_query(rs, name, qtype);

    const struct zone_rec *z = zone_find(name);
    if (z && z->kind == REC_SILENT) return 0;
    if (qend + 12 + 256 + 2 * (12 + 16) > cap) return 0;

    memcpy(out, q, qend);                                                  /* id, then the question as asked */
    out[2] = (uint8_t)(0x80 | (q[2] & 0x79) | 0x04);                       /* QR, opcode, AA, RD as asked */
    out[3] = (uint8_t)(0x80 | (!z ? 3 : z->kind == REC_SERVFAIL ? 2 : 0)); /* RA, RCODE */
    put16(out + 6, 0);
    put16(out + 8, 0);
    put16(out + 10, 0); /* any EDNS OPT record of the query is not echoed */
    size_t len = qend;
    unsigned an = 0;
    if (z && z->kind == REC_ANSWER && z->cname) {
        uint8_t target[256];
        size_t tlen = encode_name(z->cname, target);
        len += put_rr(out + len, 12, 5 /* CNAME */, z->ttl, target, tlen);
        an++;
        /* The target's records, owned by the CNAME's rdata (which starts 12 bytes before its end). */
        len += put_addrs(out + len, len - tlen, zone_find(z->cname), qtype, &an);
    } else if (z && z->kind == REC_ANSWER) {
        len += put_addrs(out + len, 12, z, qtype, &an);
    }
    put16(out + 6, an);
    return len;
}

static void *responder_main(void *arg)
{
    struct responder *rs = arg;
    uint8_t in[1500], out[1500];
    for (;;) {
        struct pollfd p[2] = {{.fd = rs->fd, .events = POLLIN}, {.fd = rs->wake[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR) continue;
            TEST_FAIL_("responder poll: %s", strerror(errno));
        }
        if (p[1].revents) return NULL;
        if (!(p[0].revents & POLLIN)) continue;
        struct sockaddr_storage from;
        socklen_t flen = sizeof(from);
        ssize_t n = recvfrom(rs->fd, in, sizeof(in), 0, (struct sockaddr *)&from, &flen);
        if (n <= 0) continue;
        size_t rlen = build_reply(rs, in, (size_t)n, out, sizeof(out));
        if (rlen) (void)sendto(rs->fd, out, rlen, 0, (struct sockaddr *)&from, flen);
    }
}

static void responder_start(struct responder *rs)
{
    memset(rs, 0, sizeof(*rs));
    pthread_mutex_init(&rs->mu, NULL);
    rs->fd = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT(rs->fd >= 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin.sin_port = 0; /* ephemeral */
    ASSERT_EQ(bind(rs->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    socklen_t slen = sizeof(sin);
    ASSERT_EQ(getsockname(rs->fd, (struct sockaddr *)&sin, &slen), 0);
    rs->port = ntohs(sin.sin_port);
    ASSERT_EQ(pipe(rs->wake), 0);
    ASSERT_EQ(pthread_create(&rs->thread, NULL, responder_main, rs), 0);
}

static void responder_stop(struct responder *rs)
{
    ASSERT_EQ(write(rs->wake[1], "x", 1), 1);
    ASSERT_EQ(pthread_join(rs->thread, NULL), 0);
    close(rs->wake[0]);
    close(rs->wake[1]);
    close(rs->fd);
    pthread_mutex_destroy(&rs->mu);
}

/* ---- test environment: loop + responder + resolver ------------------------------------------------------ */

struct env {
    uv_loop_t loop;
    uv_timer_t watchdog;
    struct responder dns;
    struct proxy_config cfg;
    struct resolver *r;
    int closed; /* the test closed the resolver itself */
    int close_done;
};

static void on_watchdog(uv_timer_t *t)
{
    (void)t;
    TEST_FAIL_("watchdog: the test ran for more than 10 s of loop time");
}

/* Only the fields the resolver reads are set: the rest of proxy_config is not its business. */
static void env_init(struct env *e, uint64_t dns_timeout_ms, uint64_t max_ttl_s)
{
    memset(e, 0, sizeof(*e));
    responder_start(&e->dns);
    struct sockaddr_in *sin = (struct sockaddr_in *)&e->cfg.dns_servers[0].sa;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sin->sin_port = htons(e->dns.port);
    e->cfg.dns_servers[0].sa_len = sizeof(*sin);
    e->cfg.n_dns_servers = 1;
    e->cfg.dns_timeout_ms = dns_timeout_ms;
    e->cfg.dns_cache_max_ttl_s = max_ttl_s;

    ASSERT_EQ(uv_loop_init(&e->loop), 0);
    ASSERT_EQ(uv_timer_init(&e->loop, &e->watchdog), 0);
    ASSERT_EQ(uv_timer_start(&e->watchdog, on_watchdog, 10000, 0), 0);
    uv_unref((uv_handle_t *)&e->watchdog); /* must not keep the loop alive by itself */
    ASSERT_EQ(resolver_new(&e->r, &e->loop, &e->cfg), 0);
}

static void on_close_done(void *data)
{
    struct env *e = data;
    e->close_done++;
}

/* Every loop test ends like this: close everything, then uv_loop_close() must find nothing left. */
static void env_fini(struct env *e)
{
    if (!e->closed) resolver_close(e->r, on_close_done, e);
    uv_close((uv_handle_t *)&e->watchdog, NULL);
    ASSERT_EQ(uv_run(&e->loop, UV_RUN_DEFAULT), 0);
    ASSERT_EQ(e->close_done, 1);
    ASSERT_EQ(uv_loop_close(&e->loop), 0);
    responder_stop(&e->dns);
}

struct result {
    int called;
    int status;
    struct resolver_addrs addrs;
};

static void record_cb(void *data, int status, const struct resolver_addrs *addrs)
{
    struct result *res = data;
    res->called++;
    res->status = status;
    if (status == 0) {
        ASSERT(addrs != NULL);
        res->addrs = *addrs;
    } else {
        ASSERT(addrs == NULL);
        res->addrs.n = 0;
    }
}

/* Runs the loop until *flag is set; fails if the loop runs out of work first (a lost callback). */
static void run_until(struct env *e, const int *flag)
{
    while (!*flag)
        if (uv_run(&e->loop, UV_RUN_ONCE) == 0 && !*flag)
            TEST_FAIL_("the loop has nothing left to do and the callback has not run");
}

static void lookup(struct env *e, const char *host, uint16_t port, struct result *res)
{
    memset(res, 0, sizeof(*res));
    ASSERT_EQ(resolver_lookup(e->r, host, port, record_cb, res, NULL), 0);
    ASSERT_EQ(res->called, 0); /* never synchronously */
    run_until(e, &res->called);
    ASSERT_EQ(res->called, 1);
}

/* "127.0.0.1:80" or "[::1]:80" */
static const char *addr_text(const struct resolver_addrs *a, size_t i, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    const struct sockaddr_storage *ss = &a->addr[i];
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        ASSERT_EQ(a->len[i], sizeof(*sin));
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, ntohs(sin->sin_port));
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        ASSERT_EQ(ss->ss_family, AF_INET6);
        ASSERT_EQ(a->len[i], sizeof(*sin6));
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
    return buf;
}

static int has_addr(const struct resolver_addrs *a, const char *want)
{
    char buf[80];
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(addr_text(a, i, buf, sizeof(buf)), want) == 0) return 1;
    return 0;
}

/* ---- tests ---------------------------------------------------------------------------------------------- */

static void test_literals_need_no_query(void)
{
    static const struct {
        const char *name, *host, *want;
        uint16_t port;
    } rows[] = {
        {"IPv4 literal", "127.0.0.1", "127.0.0.1:80", 80},
        {"IPv6 literal", "::1", "[::1]:443", 443},
        {"IPv6 literal in brackets (RFC 3986 s3.2.2)", "[::1]", "[::1]:8080", 8080},
        {"IPv4-mapped IPv6", "::ffff:127.0.0.1", "[::ffff:127.0.0.1]:1", 1},
    };
    struct env e;
    env_init(&e, 1000, 300);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct result res;
        char buf[80];
        fprintf(stderr, "  row: %s\n", rows[i].name);
        lookup(&e, rows[i].host, rows[i].port, &res);
        ASSERT_EQ(res.status, 0);
        ASSERT_EQ(res.addrs.n, 1);
        ASSERT_STR_EQ(addr_text(&res.addrs, 0, buf, sizeof(buf)), rows[i].want);
    }
    ASSERT_EQ(responder_count(&e.dns, NULL, 0), 0);
    struct resolver_stats st;
    resolver_get_stats(e.r, &st);
    ASSERT_UEQ(st.queries, 0);
    ASSERT_UEQ(st.cache_hits, 0);
    env_fini(&e);
}

static void test_invalid_hosts_refused_synchronously(void)
{
    char longname[300];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    for (size_t i = 63; i < sizeof(longname) - 1; i += 64)
        longname[i] = '.';
    const char *rows[] = {"", "bad host", "a..b", ".a", "[127.0.0.1]", "[origin.test]", "x%y", longname};
    struct env e;
    env_init(&e, 1000, 300);
    int called = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct result res;
        memset(&res, 0, sizeof(res));
        ASSERT_EQ(resolver_lookup(e.r, rows[i], 80, record_cb, &res, NULL), -EINVAL);
        called += res.called;
    }
    ASSERT_STR_EQ(resolver_strerror(-EINVAL), "invalid host name");
    uv_run(&e.loop, UV_RUN_NOWAIT);
    ASSERT_EQ(called, 0);
    ASSERT_EQ(responder_count(&e.dns, NULL, 0), 0);
    env_fini(&e);
}

static void test_a_and_aaaa_with_port(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct result res;
    lookup(&e, "origin.test", 8080, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(res.addrs.n, 2);
    ASSERT(has_addr(&res.addrs, "127.0.0.1:8080"));
    ASSERT(has_addr(&res.addrs, "[::1]:8080"));
    ASSERT_EQ(responder_count(&e.dns, "origin.test", T_A), 1);
    ASSERT_EQ(responder_count(&e.dns, "origin.test", T_AAAA), 1);

    /* A name with only an A record: the empty AAAA answer is not an error. */
    lookup(&e, "v4only.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(res.addrs.n, 1);
    ASSERT(has_addr(&res.addrs, "127.0.0.5:80"));

    struct resolver_stats st;
    resolver_get_stats(e.r, &st);
    ASSERT_UEQ(st.queries, 2);
    ASSERT_UEQ(st.failures, 0);
    env_fini(&e);
}

static void test_families_interleaved(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct result res;
    lookup(&e, "multi.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(res.addrs.n, 4);
    for (size_t i = 1; i < res.addrs.n; i++)
        ASSERT_NE(res.addrs.addr[i].ss_family, res.addrs.addr[i - 1].ss_family);
    ASSERT(has_addr(&res.addrs, "127.0.0.1:80"));
    ASSERT(has_addr(&res.addrs, "127.0.0.2:80"));
    ASSERT(has_addr(&res.addrs, "[::1]:80"));
    ASSERT(has_addr(&res.addrs, "[::2]:80"));
    env_fini(&e);
}

static void test_nxdomain_and_nodata_are_not_found(void)
{
    /* LOCALDOMAIN is a search list c-ares would append after an NXDOMAIN; the resolver must not (see
     * resolver.h), so the responder sees exactly one A and one AAAA query. */
    ASSERT_EQ(setenv("LOCALDOMAIN", "search.invalid", 1), 0);
    struct env e;
    env_init(&e, 1000, 300);
    ASSERT_EQ(unsetenv("LOCALDOMAIN"), 0);

    struct result res;
    lookup(&e, "nx.test", 80, &res);
    ASSERT_EQ(res.status, RESOLVER_ENOTFOUND);
    ASSERT_STR_EQ(resolver_strerror(res.status), "name not found");
    ASSERT_EQ(responder_count(&e.dns, NULL, 0), 2);
    ASSERT_EQ(responder_count(&e.dns, "nx.test", T_A), 1);

    lookup(&e, "nodata.test", 80, &res);
    ASSERT_EQ(res.status, RESOLVER_ENOTFOUND);

    struct resolver_stats st;
    resolver_get_stats(e.r, &st);
    ASSERT_UEQ(st.failures, 2);
    env_fini(&e);
}

static void test_servfail_is_failure_and_not_cached(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct result res;
    lookup(&e, "servfail.test", 80, &res);
    ASSERT_EQ(res.status, RESOLVER_EFAIL);
    ASSERT_STR_EQ(resolver_strerror(res.status), "DNS failure");
    unsigned before = responder_count(&e.dns, "servfail.test", T_A);
    ASSERT(before >= 1);
    lookup(&e, "servfail.test", 80, &res);
    ASSERT_EQ(res.status, RESOLVER_EFAIL);
    ASSERT(responder_count(&e.dns, "servfail.test", T_A) > before);
    env_fini(&e);
}

static void test_timeout(void)
{
    struct env e;
    env_init(&e, 200, 300);
    struct result res;
    lookup(&e, "silent.test", 80, &res);
    ASSERT_EQ(res.status, RESOLVER_ETIMEOUT);
    ASSERT_STR_EQ(resolver_strerror(res.status), "DNS timeout");
    ASSERT_EQ(responder_count(&e.dns, "silent.test", T_A), 2); /* tries 2 */
    struct resolver_stats st;
    resolver_get_stats(e.r, &st);
    ASSERT_UEQ(st.failures, 1);
    env_fini(&e);
}

static void test_cache_hit_sends_no_query(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct result res;
    lookup(&e, "origin.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, NULL, 0), 2);

    /* Same name in another case, another port: answered from the cache, still asynchronously. */
    lookup(&e, "ORIGIN.Test", 81, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(res.addrs.n, 2);
    ASSERT(has_addr(&res.addrs, "127.0.0.1:81"));
    ASSERT(has_addr(&res.addrs, "[::1]:81"));
    ASSERT_EQ(responder_count(&e.dns, NULL, 0), 2);

    struct resolver_stats st;
    resolver_get_stats(e.r, &st);
    ASSERT_UEQ(st.queries, 1);
    ASSERT_UEQ(st.cache_hits, 1);
    env_fini(&e);
}

static void test_ttl_expiry(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct result res;

    /* TTL 1 s: reused at +0.9 s, asked again at +1.1 s. */
    lookup(&e, "ttl1.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, "ttl1.test", T_A), 1);
    resolver__advance_clock(e.r, 900);
    lookup(&e, "ttl1.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, "ttl1.test", T_A), 1);
    resolver__advance_clock(e.r, 200);
    lookup(&e, "ttl1.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, "ttl1.test", T_A), 2);

    /* A CNAME with TTL 1 to a name with TTL 300: the answer lives as long as its shortest record. */
    lookup(&e, "alias.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT(has_addr(&res.addrs, "127.0.0.1:80"));
    ASSERT(has_addr(&res.addrs, "[::1]:80"));
    resolver__advance_clock(e.r, 900);
    lookup(&e, "alias.test", 80, &res);
    ASSERT_EQ(responder_count(&e.dns, "alias.test", T_A), 1);
    resolver__advance_clock(e.r, 200);
    lookup(&e, "alias.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, "alias.test", T_A), 2);

    /* Negative answers: remembered for RESOLVER_NEGATIVE_TTL_S. */
    lookup(&e, "gone.test", 80, &res);
    ASSERT_EQ(res.status, RESOLVER_ENOTFOUND);
    resolver__advance_clock(e.r, RESOLVER_NEGATIVE_TTL_S * 1000 - 100);
    lookup(&e, "gone.test", 80, &res);
    ASSERT_EQ(res.status, RESOLVER_ENOTFOUND);
    ASSERT_EQ(responder_count(&e.dns, "gone.test", T_A), 1);
    resolver__advance_clock(e.r, 200);
    lookup(&e, "gone.test", 80, &res);
    ASSERT_EQ(res.status, RESOLVER_ENOTFOUND);
    ASSERT_EQ(responder_count(&e.dns, "gone.test", T_A), 2);
    env_fini(&e);
}

static void test_max_ttl_caps_the_cache(void)
{
    struct env e;
    env_init(&e, 1000, 2);
    struct result res;
    lookup(&e, "long.test", 80, &res); /* TTL 3600, capped at 2 s */
    resolver__advance_clock(e.r, 1900);
    lookup(&e, "long.test", 80, &res);
    ASSERT_EQ(responder_count(&e.dns, "long.test", T_A), 1);
    resolver__advance_clock(e.r, 200);
    lookup(&e, "long.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, "long.test", T_A), 2);
    env_fini(&e);

    /* dns_cache_max_ttl 0: nothing is reused. */
    env_init(&e, 1000, 0);
    lookup(&e, "origin.test", 80, &res);
    lookup(&e, "origin.test", 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, "origin.test", T_A), 2);
    env_fini(&e);
}

struct batch {
    int pending;
    int failed;
};

static void batch_cb(void *data, int status, const struct resolver_addrs *addrs)
{
    struct batch *b = data;
    (void)addrs;
    b->pending--;
    b->failed += status != 0;
}

static int batch_done(const struct batch *b)
{
    return b->pending == 0;
}

static void test_cache_is_bounded_oldest_evicted_first(void)
{
    struct env e;
    env_init(&e, 2000, 300);
    struct result res;
    lookup(&e, "first" EVICT_SUFFIX, 80, &res); /* the oldest answer */
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, "first" EVICT_SUFFIX, T_A), 1);

    /* RESOLVER_CACHE_MAX more answers, in batches small enough for default UDP socket buffers (a dropped
     * answer would cost a retry timeout, not a failure, but would make the test slow). */
    enum { BATCH = 32 };
    char name[64];
    for (int base = 0; base < RESOLVER_CACHE_MAX; base += BATCH) {
        struct batch b = {0, 0};
        for (int i = base; i < base + BATCH && i < RESOLVER_CACHE_MAX; i++) {
            snprintf(name, sizeof(name), "n%d" EVICT_SUFFIX, i);
            ASSERT_EQ(resolver_lookup(e.r, name, 80, batch_cb, &b, NULL), 0);
            b.pending++;
        }
        while (!batch_done(&b))
            if (uv_run(&e.loop, UV_RUN_ONCE) == 0 && !batch_done(&b))
                TEST_FAIL_("the loop has nothing left to do with %d lookups pending", b.pending);
        ASSERT_EQ(b.failed, 0);
    }
    unsigned sent = responder_count(&e.dns, NULL, 0) + responder_evict_count(&e.dns);

    /* The newest answer is still there; the oldest was evicted and is asked for again. */
    snprintf(name, sizeof(name), "n%d" EVICT_SUFFIX, RESOLVER_CACHE_MAX - 1);
    lookup(&e, name, 80, &res);
    ASSERT_EQ(responder_count(&e.dns, NULL, 0) + responder_evict_count(&e.dns), sent);
    lookup(&e, "first" EVICT_SUFFIX, 80, &res);
    ASSERT_EQ(res.status, 0);
    ASSERT_EQ(responder_count(&e.dns, "first" EVICT_SUFFIX, T_A), 2);
    env_fini(&e);
}

static void test_concurrent_lookups_share_one_query(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct result r1, r2;
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    ASSERT_EQ(resolver_lookup(e.r, "coal.test", 1111, record_cb, &r1, NULL), 0);
    ASSERT_EQ(resolver_lookup(e.r, "Coal.Test", 2222, record_cb, &r2, NULL), 0);
    run_until(&e, &r1.called);
    run_until(&e, &r2.called);
    ASSERT_EQ(r1.status, 0);
    ASSERT_EQ(r2.status, 0);
    ASSERT(has_addr(&r1.addrs, "127.0.0.4:1111"));
    ASSERT(has_addr(&r1.addrs, "[::4]:1111"));
    ASSERT(has_addr(&r2.addrs, "127.0.0.4:2222"));
    ASSERT(has_addr(&r2.addrs, "[::4]:2222"));
    ASSERT_EQ(responder_count(&e.dns, "coal.test", T_A), 1);
    ASSERT_EQ(responder_count(&e.dns, "coal.test", T_AAAA), 1);
    struct resolver_stats st;
    resolver_get_stats(e.r, &st);
    ASSERT_UEQ(st.queries, 1);
    ASSERT_UEQ(st.cache_hits, 1);
    env_fini(&e);
}

static void test_cancel(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct result r1, r2, r3;
    struct resolver_query *q1, *q3;
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    memset(&r3, 0, sizeof(r3));

    /* Two waiters on one query; the first withdraws. */
    ASSERT_EQ(resolver_lookup(e.r, "origin.test", 80, record_cb, &r1, &q1), 0);
    ASSERT_EQ(resolver_lookup(e.r, "origin.test", 80, record_cb, &r2, NULL), 0);
    resolver_cancel(q1);
    /* A literal, already queued for delivery, withdrawn before the next loop turn. */
    ASSERT_EQ(resolver_lookup(e.r, "127.0.0.1", 80, record_cb, &r3, &q3), 0);
    resolver_cancel(q3);
    run_until(&e, &r2.called);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    ASSERT_EQ(r2.status, 0);
    ASSERT_EQ(r1.called, 0);
    ASSERT_EQ(r3.called, 0);

    /* The only waiter withdraws: the query still completes and fills the cache, which a later lookup
     * (joining the flight or hitting the cache) shows with no second query on the wire. */
    ASSERT_EQ(resolver_lookup(e.r, "cancel.test", 80, record_cb, &r1, &q1), 0);
    resolver_cancel(q1);
    memset(&r2, 0, sizeof(r2));
    lookup(&e, "cancel.test", 80, &r2);
    ASSERT_EQ(r2.status, 0);
    ASSERT(has_addr(&r2.addrs, "127.0.0.6:80"));
    ASSERT_EQ(responder_count(&e.dns, "cancel.test", T_A), 1);
    ASSERT_EQ(r1.called, 0);
    env_fini(&e);
}

/* A callback that cancels another lookup delivered in the same loop turn. */
struct canceller {
    struct result res;
    struct resolver_query *victim;
};

static void cancel_other_cb(void *data, int status, const struct resolver_addrs *addrs)
{
    struct canceller *c = data;
    record_cb(&c->res, status, addrs);
    resolver_cancel(c->victim);
}

static void test_cancel_from_callback(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct canceller c;
    struct result victim;
    memset(&c, 0, sizeof(c));
    memset(&victim, 0, sizeof(victim));
    ASSERT_EQ(resolver_lookup(e.r, "127.0.0.1", 80, cancel_other_cb, &c, NULL), 0);
    ASSERT_EQ(resolver_lookup(e.r, "127.0.0.2", 80, record_cb, &victim, &c.victim), 0);
    run_until(&e, &c.res.called);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    ASSERT_EQ(victim.called, 0);
    env_fini(&e);
}

/* A lookup started from a callback is answered from the cache, but in a later turn, never inside. */
struct nested {
    struct env *e;
    int in_outer;
    struct result outer, inner;
};

static void inner_cb(void *data, int status, const struct resolver_addrs *addrs)
{
    struct nested *n = data;
    ASSERT_EQ(n->in_outer, 0);
    record_cb(&n->inner, status, addrs);
}

static void outer_cb(void *data, int status, const struct resolver_addrs *addrs)
{
    struct nested *n = data;
    n->in_outer = 1;
    record_cb(&n->outer, status, addrs);
    ASSERT_EQ(resolver_lookup(n->e->r, "origin.test", 90, inner_cb, n, NULL), 0);
    n->in_outer = 0;
}

static void test_lookup_from_callback(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct nested n;
    memset(&n, 0, sizeof(n));
    n.e = &e;
    ASSERT_EQ(resolver_lookup(e.r, "origin.test", 80, outer_cb, &n, NULL), 0);
    run_until(&e, &n.outer.called);
    ASSERT_EQ(n.inner.called, 0); /* a later turn: a callback chain cannot hold the loop */
    run_until(&e, &n.inner.called);
    ASSERT_EQ(n.outer.called, 1);
    ASSERT_EQ(n.inner.status, 0);
    ASSERT(has_addr(&n.inner.addrs, "127.0.0.1:90"));
    ASSERT_EQ(responder_count(&e.dns, "origin.test", T_A), 1);
    env_fini(&e);
}

static void test_close_with_lookups_pending(void)
{
    struct env e;
    env_init(&e, 200, 300);
    struct result r1, r2, r3;
    memset(&r1, 0, sizeof(r1));
    memset(&r2, 0, sizeof(r2));
    memset(&r3, 0, sizeof(r3));
    /* In flight on the wire (c-ares sends from inside ares_getaddrinfo, so a socket and its uv_poll_t
     * exist now), waiting on that flight, and queued for delivery on the next turn. */
    ASSERT_EQ(resolver_lookup(e.r, "silent.test", 80, record_cb, &r1, NULL), 0);
    ASSERT_EQ(resolver_lookup(e.r, "silent.test", 81, record_cb, &r3, NULL), 0);
    ASSERT_EQ(resolver_lookup(e.r, "127.0.0.1", 80, record_cb, &r2, NULL), 0);
    resolver_close(e.r, on_close_done, &e);
    e.closed = 1;
    env_fini(&e); /* asserts done_cb ran once and uv_loop_close() == 0 */
    ASSERT_EQ(r1.called, 0);
    ASSERT_EQ(r2.called, 0);
    ASSERT_EQ(r3.called, 0);
}

/* resolver_close() from inside a callback, with another delivery due in the same turn. */
struct closer {
    struct env *e;
    struct result res;
};

static void close_cb(void *data, int status, const struct resolver_addrs *addrs)
{
    struct closer *c = data;
    record_cb(&c->res, status, addrs);
    resolver_close(c->e->r, on_close_done, c->e);
    c->e->closed = 1;
}

static void test_close_from_callback(void)
{
    struct env e;
    env_init(&e, 1000, 300);
    struct closer c;
    struct result later;
    memset(&c, 0, sizeof(c));
    memset(&later, 0, sizeof(later));
    c.e = &e;
    ASSERT_EQ(resolver_lookup(e.r, "127.0.0.1", 80, close_cb, &c, NULL), 0);
    ASSERT_EQ(resolver_lookup(e.r, "127.0.0.2", 80, record_cb, &later, NULL), 0);
    run_until(&e, &c.res.called);
    env_fini(&e);
    ASSERT_EQ(c.res.called, 1);
    ASSERT_EQ(later.called, 0);
}

int main(void)
{
    ASSERT_EQ(ares_library_init(ARES_LIB_INIT_ALL), ARES_SUCCESS);
    RUN_TEST(test_literals_need_no_query);
    RUN_TEST(test_invalid_hosts_refused_synchronously);
    RUN_TEST(test_a_and_aaaa_with_port);
    RUN_TEST(test_families_interleaved);
    RUN_TEST(test_nxdomain_and_nodata_are_not_found);
    RUN_TEST(test_servfail_is_failure_and_not_cached);
    RUN_TEST(test_timeout);
    RUN_TEST(test_cache_hit_sends_no_query);
    RUN_TEST(test_ttl_expiry);
    RUN_TEST(test_max_ttl_caps_the_cache);
    RUN_TEST(test_cache_is_bounded_oldest_evicted_first);
    RUN_TEST(test_concurrent_lookups_share_one_query);
    RUN_TEST(test_cancel);
    RUN_TEST(test_cancel_from_callback);
    RUN_TEST(test_lookup_from_callback);
    RUN_TEST(test_close_with_lookups_pending);
    RUN_TEST(test_close_from_callback);
    ares_library_cleanup();
    return 0;
}
