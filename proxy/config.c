/* Configuration: built-in defaults, one table of directives, value parsers, the file reader and the
 * command-line reader. Nothing here touches the network or the loop: the result is a plain struct the
 * rest of the proxy only ever reads.
 *
 * Every directive is one row of `directives[]`; the file reader, the command-line reader and
 * config_validate() all go through that table, so a directive cannot be accepted by one source and
 * unknown to another, and a range is written down once.
 */
#include "proxy/config.h"
#include "proxy/send_buffer.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

#define SEC_MS 1000ULL
#define MIN_MS (60ULL * SEC_MS)
#define HOUR_MS (60ULL * MIN_MS)
#define DAY_MS (24ULL * HOUR_MS)

/* Where a value came from, in increasing precedence. Stored in proxy_config.list_origin[]. */
enum source { SRC_DEFAULT = 0, SRC_FILE = 1, SRC_CLI = 2 };

/* Index into proxy_config.list_origin[]. */
enum list { LIST_LISTEN = 0, LIST_ALLOW, LIST_PORTS, LIST_DNS, LIST_BYPASS };

enum kind {
    K_LISTEN,        /* ADDR:PORT ... */
    K_ALLOW,         /* CIDR ... | all */
    K_CONNECT_PORTS, /* PORT ... | none */
    K_DNS_SERVERS,   /* ADDR[:PORT] ... | system */
    K_PARENT,        /* HOST:PORT | none */
    K_PARENT_AUTH,   /* USER:PASSWORD | none */
    K_BYPASS,        /* NAME|CIDR ... | none */
    K_STRING,        /* one word */
    K_PID_FILE,      /* one word; "none" means NULL */
    K_LOG_LEVEL,     /* error|warn|info|debug */
    K_BOOL,          /* on|off|yes|no|true|false */
    K_COUNT,         /* plain decimal number */
    K_SIZE,          /* bytes, optional K/M/G/T suffix (powers of 1024) */
    K_SIZE_AUTO,     /* a K_SIZE, or "auto" (stored as SEND_BUFFER_AUTO): the program decides per case */
    K_MSEC,          /* duration stored in milliseconds */
    K_SEC,           /* duration stored in whole seconds */
};

struct directive {
    const char *name;
    enum kind kind;
    size_t off;   /* offsetof the field in struct proxy_config */
    size_t width; /* sizeof the field (numbers are 4 or 8 bytes wide) */
    uint64_t min; /* numbers: inclusive range, in the unit the field is stored in */
    uint64_t max;
};

#define FIELD(f) offsetof(struct proxy_config, f), sizeof(((struct proxy_config *)0)->f)

/* Ranges are the sane envelope, not advice: the defaults sit well inside them. Timeouts start at 1 ms
 * because a zero timeout would fire before any I/O could happen. */
static const struct directive directives[] = {
    {"listen", K_LISTEN, FIELD(listen), 0, 0},
    {"allow", K_ALLOW, FIELD(allow), 0, 0},
    {"connect_ports", K_CONNECT_PORTS, FIELD(connect_ports), 0, 0},
    {"parent_proxy", K_PARENT, FIELD(parent_host), 0, 0},
    {"parent_bypass", K_BYPASS, FIELD(parent_bypass), 0, 0},
    {"parent_proxy_auth", K_PARENT_AUTH, FIELD(parent_auth), 0, 0},
    {"dns_servers", K_DNS_SERVERS, FIELD(dns_servers), 0, 0},
    {"cache_dir", K_STRING, FIELD(cache_dir), 0, 0},
    {"access_log", K_STRING, FIELD(access_log), 0, 0},
    {"error_log", K_STRING, FIELD(error_log), 0, 0},
    {"log_level", K_LOG_LEVEL, FIELD(log_level), 0, 0},
    {"visible_hostname", K_STRING, FIELD(visible_hostname), 0, 0},
    {"pid_file", K_PID_FILE, FIELD(pid_file), 0, 0},
    {"workers", K_COUNT, FIELD(workers), 0, 256},
    {"cache_size", K_SIZE, FIELD(cache_size), 1 * MIB, 64 * TIB},
    {"max_object_size", K_SIZE, FIELD(max_object_size), 0, 64 * TIB},
    {"connect_timeout", K_MSEC, FIELD(connect_timeout_ms), 1, DAY_MS},
    {"first_byte_timeout", K_MSEC, FIELD(first_byte_timeout_ms), 1, DAY_MS},
    {"client_idle_timeout", K_MSEC, FIELD(client_idle_timeout_ms), 1, DAY_MS},
    {"request_header_timeout", K_MSEC, FIELD(request_header_timeout_ms), 1, DAY_MS},
    {"upstream_idle_timeout", K_MSEC, FIELD(upstream_idle_timeout_ms), 1, DAY_MS},
    {"tunnel_idle_timeout", K_MSEC, FIELD(tunnel_idle_timeout_ms), 1, DAY_MS},
    {"shutdown_timeout", K_MSEC, FIELD(shutdown_timeout_ms), 1, DAY_MS},
    {"dns_timeout", K_MSEC, FIELD(dns_timeout_ms), 1, DAY_MS},
    {"request_header_max_bytes", K_SIZE, FIELD(request_header_max_bytes), 256, 16 * MIB},
    {"request_header_max_count", K_COUNT, FIELD(request_header_max_count), 1, 10000},
    {"max_uri_length", K_SIZE, FIELD(max_uri_length), 16, 1 * MIB},
    {"max_client_connections", K_COUNT, FIELD(max_client_connections), 1, 1000000},
    {"max_connections_per_client", K_COUNT, FIELD(max_connections_per_client), 0, 1000000},
    {"request_body_max_bytes", K_SIZE, FIELD(request_body_max_bytes), 0, 64 * TIB},
    {"upstream_max_idle_per_origin", K_COUNT, FIELD(upstream_max_idle_per_origin), 0, 10000},
    {"client_send_buffer", K_SIZE_AUTO, FIELD(client_send_buffer), 0, 64 * MIB},
    {"dns_cache_max_ttl", K_SEC, FIELD(dns_cache_max_ttl_s), 0, 7 * 86400},
    {"test_hooks", K_BOOL, FIELD(test_hooks), 0, 0},
};

#define N_DIRECTIVES (sizeof(directives) / sizeof(directives[0]))

/* Longest value echoed back in a message, so a pasted blob does not drown the reason. ECHO prints a
 * C string; ECHO_N(len) gives the precision argument for "%.*s" with a word that is not terminated. */
#define ECHO "%.80s"
#define ECHO_N(len) ((int)((len) > 80 ? 80 : (len)))

static int fail(char *err, size_t err_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_len, const char *fmt, ...)
{
    if (err != NULL && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static bool is_space(char ch)
{
    return isspace((unsigned char)ch) != 0;
}

/* Directive names compare with '-' and '_' as the same character, so --cache-dir is cache_dir. */
static const struct directive *lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        const char *d = directives[i].name;
        size_t j = 0;
        for (; j < len && d[j] != '\0'; j++) {
            char a = name[j] == '-' ? '_' : name[j];
            if (a != d[j]) break;
        }
        if (j == len && d[j] == '\0') return &directives[i];
    }
    return NULL;
}

/* Next word of a value. Words are separated by whitespace, and by commas too when `commas`. */
static bool next_word(const char **p, const char **w, size_t *len, bool commas)
{
    const char *s = *p;
    while (*s != '\0' && (is_space(*s) || (commas && *s == ',')))
        s++;
    if (*s == '\0') {
        *p = s;
        return false;
    }
    const char *e = s;
    while (*e != '\0' && !is_space(*e) && !(commas && *e == ','))
        e++;
    *w = s;
    *len = (size_t)(e - s);
    *p = e;
    return true;
}

static bool word_is(const char *w, size_t len, const char *lit)
{
    return strlen(lit) == len && strncasecmp(w, lit, len) == 0;
}

/* ---- numbers ---------------------------------------------------------------------------------- */

/* Decimal digits only: no sign, no base prefix, no spaces. Stops at the first non-digit. */
static int parse_digits(const char *s, size_t len, size_t *used, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return -ERANGE;
        v = v * 10 + d;
    }
    if (i == 0) return -EINVAL;
    *used = i;
    *out = v;
    return 0;
}

static int parse_count(const char *s, size_t len, uint64_t *out)
{
    size_t used;
    int rc = parse_digits(s, len, &used, out);
    if (rc == 0 && used != len) return -EINVAL;
    return rc;
}

/* Bytes: "4096", "64K", "512M", "1G", "2T"; suffixes are powers of 1024, either case. */
static int parse_size(const char *s, size_t len, uint64_t *out)
{
    size_t used;
    uint64_t v;
    int rc = parse_digits(s, len, &used, &v);
    if (rc != 0) return rc;
    uint64_t mult = 1;
    if (used + 1 == len) {
        switch (s[used]) {
        case 'k':
        case 'K':
            mult = KIB;
            break;
        case 'm':
        case 'M':
            mult = MIB;
            break;
        case 'g':
        case 'G':
            mult = GIB;
            break;
        case 't':
        case 'T':
            mult = TIB;
            break;
        default:
            return -EINVAL;
        }
    } else if (used != len) {
        return -EINVAL;
    }
    if (v > UINT64_MAX / mult) return -ERANGE;
    *out = v * mult;
    return 0;
}

/* Milliseconds from "500ms", "10s", "2m", "1h"; a bare number is seconds, as in squid.conf. */
static int parse_duration_ms(const char *s, size_t len, uint64_t *out)
{
    size_t used;
    uint64_t v;
    int rc = parse_digits(s, len, &used, &v);
    if (rc != 0) return rc;
    const char *unit = s + used;
    size_t ulen = len - used;
    uint64_t mult;
    if (ulen == 0 || word_is(unit, ulen, "s"))
        mult = SEC_MS;
    else if (word_is(unit, ulen, "ms"))
        mult = 1;
    else if (word_is(unit, ulen, "m"))
        mult = MIN_MS;
    else if (word_is(unit, ulen, "h"))
        mult = HOUR_MS;
    else
        return -EINVAL;
    if (v > UINT64_MAX / mult) return -ERANGE;
    *out = v * mult;
    return 0;
}

/* For messages: a size in the largest unit that divides it exactly ("64K", "1G", "1000"). */
static const char *fmt_size(uint64_t v, char *buf, size_t len)
{
    static const struct {
        uint64_t unit;
        char suffix;
    } units[] = {{TIB, 'T'}, {GIB, 'G'}, {MIB, 'M'}, {KIB, 'K'}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (v != 0 && v % units[i].unit == 0) {
            snprintf(buf, len, "%llu%c", (unsigned long long)(v / units[i].unit), units[i].suffix);
            return buf;
        }
    }
    snprintf(buf, len, "%llu", (unsigned long long)v);
    return buf;
}

static const char *fmt_duration(uint64_t ms, char *buf, size_t len)
{
    if (ms != 0 && ms % HOUR_MS == 0)
        snprintf(buf, len, "%lluh", (unsigned long long)(ms / HOUR_MS));
    else if (ms != 0 && ms % MIN_MS == 0)
        snprintf(buf, len, "%llum", (unsigned long long)(ms / MIN_MS));
    else if (ms % SEC_MS == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / SEC_MS));
    else
        snprintf(buf, len, "%llums", (unsigned long long)ms);
    return buf;
}

/* A stored number as the user would write it, for range messages. */
static const char *fmt_number(const struct directive *d, uint64_t v, char *buf, size_t len)
{
    switch (d->kind) {
    case K_SIZE_AUTO:
        if (v == SEND_BUFFER_AUTO) {
            snprintf(buf, len, "auto");
            return buf;
        }
        return fmt_size(v, buf, len);
    case K_SIZE:
        return fmt_size(v, buf, len);
    case K_MSEC:
        return fmt_duration(v, buf, len);
    case K_SEC:
        return fmt_duration(v * SEC_MS, buf, len);
    default:
        snprintf(buf, len, "%llu", (unsigned long long)v);
        return buf;
    }
}

static uint64_t get_number(const struct proxy_config *c, const struct directive *d)
{
    const char *p = (const char *)c + d->off;
    if (d->width == sizeof(uint64_t)) {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        return v;
    }
    unsigned v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static void put_number(struct proxy_config *c, const struct directive *d, uint64_t v)
{
    char *p = (char *)c + d->off;
    if (d->width == sizeof(uint64_t)) {
        memcpy(p, &v, sizeof(v));
    } else {
        unsigned u = (unsigned)v; /* the range check keeps it within unsigned */
        memcpy(p, &u, sizeof(u));
    }
}

static int range_error(const struct directive *d, uint64_t v, char *err, size_t err_len)
{
    char a[32], b[32], x[32];
    return fail(err, err_len, "%s is out of range (%s..%s)", fmt_number(d, v, x, sizeof(x)), fmt_number(d, d->min, a, sizeof(a)),
                fmt_number(d, d->max, b, sizeof(b)));
}

static int set_number(struct proxy_config *c, const struct directive *d, const char *w, size_t len, char *err, size_t err_len)
{
    uint64_t v = 0;
    int rc;
    switch (d->kind) {
    case K_COUNT:
        rc = parse_count(w, len, &v);
        if (rc == -EINVAL) return fail(err, err_len, "invalid number '%.*s'", ECHO_N(len), w);
        break;
    case K_SIZE_AUTO:
        if (len == 4 && memcmp(w, "auto", 4) == 0) {
            put_number(c, d, SEND_BUFFER_AUTO);
            return 0;
        }
        /* fall through */
    case K_SIZE:
        rc = parse_size(w, len, &v);
        if (rc == -EINVAL)
            return fail(err, err_len, "invalid size '%.*s' (use %se.g. 4096, 64K, 512M, 1G)", ECHO_N(len), w,
                        d->kind == K_SIZE_AUTO ? "auto, or " : "");
        break;
    default: /* K_MSEC, K_SEC */
        rc = parse_duration_ms(w, len, &v);
        if (rc == -EINVAL) return fail(err, err_len, "invalid duration '%.*s' (use e.g. 500ms, 10s, 2m, 1h)", ECHO_N(len), w);
        if (rc == 0 && d->kind == K_SEC) {
            if (v % SEC_MS != 0) return fail(err, err_len, "'%.*s' is not a whole number of seconds", ECHO_N(len), w);
            v /= SEC_MS;
        }
        break;
    }
    if (rc == -ERANGE) {
        char a[32], b[32];
        return fail(err, err_len, "'%.*s' is out of range (%s..%s)", ECHO_N(len), w, fmt_number(d, d->min, a, sizeof(a)),
                    fmt_number(d, d->max, b, sizeof(b)));
    }
    if (v < d->min || v > d->max) return range_error(d, v, err, err_len);
    put_number(c, d, v);
    return 0;
}

/* ---- addresses ---------------------------------------------------------------------------------- */

/* 1..65535, or 0 too when `zero_ok` (listen: the kernel picks a free port). */
static int parse_port(const char *s, bool zero_ok, uint16_t *out)
{
    uint64_t v;
    size_t len = strlen(s);
    if (len == 0 || len > 5 || parse_count(s, len, &v) != 0 || v > 65535 || (v == 0 && !zero_ok)) return -EINVAL;
    *out = (uint16_t)v;
    return 0;
}

/* For a better message only: a letter and no ':' cannot be an IP address, so it was meant as a name. */
static bool looks_like_name(const char *s)
{
    bool alpha = false;
    for (; *s != '\0'; s++) {
        if (*s == ':') return false;
        alpha = alpha || isalpha((unsigned char)*s);
    }
    return alpha;
}

/* "127.0.0.1:3128", "[::1]:3128", ":3128" (all IPv4 interfaces; listen only). For DNS servers the port
 * may be left out (53), and a bare IPv6 address needs no brackets. Only numeric hosts: resolving a name
 * here would block startup on DNS and make the bound address depend on the resolver. */
static int parse_addr(const char *w, size_t len, bool listen, struct config_addr *out, char *err, size_t err_len)
{
    char buf[sizeof(out->text)];
    if (len >= sizeof(buf)) return fail(err, err_len, "invalid address '%.*s'", ECHO_N(len), w);
    memcpy(buf, w, len);
    buf[len] = '\0';

    char *host = buf, *port = NULL;
    bool v6 = false;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL) return fail(err, err_len, "invalid address '%s': missing ']'", buf);
        *close = '\0';
        host = buf + 1;
        v6 = true;
        if (close[1] == ':')
            port = close + 2;
        else if (close[1] != '\0')
            return fail(err, err_len, "invalid address '%.*s'", (int)len, w);
    } else {
        char *colon = strchr(buf, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL) {
            struct in6_addr tmp;
            if (listen || inet_pton(AF_INET6, buf, &tmp) != 1)
                return fail(err, err_len, "invalid address '%s' (an IPv6 address needs brackets, e.g. [::1]:%s)", buf,
                            listen ? "3128" : "53");
            v6 = true; /* bare IPv6 DNS server, default port */
        } else if (colon != NULL) {
            *colon = '\0';
            port = colon + 1;
        }
    }

    uint16_t p = 53;
    if (port == NULL && listen) return fail(err, err_len, "'%.*s': missing port (e.g. 127.0.0.1:3128)", (int)len, w);
    if (port != NULL && parse_port(port, listen, &p) != 0) return fail(err, err_len, "invalid port '%s'", port);

    memset(out, 0, sizeof(*out));
    if (v6) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&out->sa;
        if (inet_pton(AF_INET6, host, &sa->sin6_addr) != 1) return fail(err, err_len, "invalid IPv6 address '%s'", host);
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(p);
        out->sa_len = sizeof(*sa);
    } else {
        struct sockaddr_in *sa = (struct sockaddr_in *)&out->sa;
        if (host[0] == '\0' && listen) {
            sa->sin_addr.s_addr = htonl(INADDR_ANY);
        } else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1) {
            if (looks_like_name(host))
                return fail(err, err_len, "'%.*s': host names are not accepted, give a numeric address (e.g. 127.0.0.1%s)",
                            (int)len, w, listen ? ":3128" : "");
            return fail(err, err_len, "invalid IPv4 address '%s'", host);
        }
        sa->sin_family = AF_INET;
        sa->sin_port = htons(p);
        out->sa_len = sizeof(*sa);
    }
    memcpy(out->text, w, len);
    out->text[len] = '\0';
    return 0;
}

/* Clears the bits beyond the prefix, so "10.1.2.3/8" is stored (and printed) as 10.0.0.0/8. */
static void mask_host_bits(uint8_t *addr, int prefix, size_t nbytes)
{
    for (size_t i = 0; i < nbytes; i++) {
        int keep = prefix - (int)(i * 8);
        if (keep <= 0)
            addr[i] = 0;
        else if (keep < 8)
            addr[i] &= (uint8_t)(0xff << (8 - keep));
    }
}

static bool prefix_match(const uint8_t *net, const uint8_t *addr, int prefix)
{
    int full = prefix / 8, rem = prefix % 8;
    if (memcmp(net, addr, (size_t)full) != 0) return false;
    if (rem == 0) return true;
    uint8_t m = (uint8_t)(0xff << (8 - rem));
    return (net[full] & m) == (addr[full] & m);
}

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* "10.0.0.0/8", "::1/128", a bare address (one host). A rule inside ::ffff:0:0/96 is stored as the IPv4
 * rule it denotes, because config_client_allowed() matches IPv4-mapped clients as IPv4. */
static int parse_cidr(const char *w, size_t len, struct config_cidr *out, char *err, size_t err_len)
{
    char buf[64];
    if (len >= sizeof(buf)) return fail(err, err_len, "invalid CIDR '%.*s'", ECHO_N(len), w);
    memcpy(buf, w, len);
    buf[len] = '\0';

    char *slash = strchr(buf, '/');
    if (slash != NULL) *slash = '\0';
    memset(out, 0, sizeof(*out));
    int maxbits;
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->family = AF_INET6;
        maxbits = 128;
    } else if (looks_like_name(buf)) {
        return fail(err, err_len, "'%s': host names are not accepted, give a numeric address or CIDR (e.g. 10.0.0.0/8)", buf);
    } else {
        return fail(err, err_len, "invalid address '%s' in '%.*s'", buf, (int)len, w);
    }

    out->prefix = maxbits;
    if (slash != NULL) {
        uint64_t bits;
        const char *p = slash + 1;
        if (strlen(p) == 0 || strlen(p) > 3 || parse_count(p, strlen(p), &bits) != 0 || bits > (uint64_t)maxbits)
            return fail(err, err_len, "invalid prefix length '/%s' in '%.*s' (IPv%d allows 0..%d)", p, (int)len, w,
                        maxbits == 32 ? 4 : 6, maxbits);
        out->prefix = (int)bits;
    }

    if (out->family == AF_INET6 && out->prefix >= 96 && memcmp(out->addr, v4mapped_prefix, 12) == 0) {
        memmove(out->addr, out->addr + 12, 4);
        memset(out->addr + 4, 0, 12);
        out->family = AF_INET;
        out->prefix -= 96;
    }
    mask_host_bits(out->addr, out->prefix, sizeof(out->addr));
    return 0;
}

/* ---- applying one directive ------------------------------------------------------------------- */

/* Replace-then-append: the first use of a list by a source of higher precedence than the one that
 * last replaced it starts a new list; later uses by the same source append. Returns where to append. */
static size_t list_base(struct proxy_config *c, enum list l, enum source src, size_t n)
{
    return c->list_origin[l] < (unsigned char)src ? 0 : n;
}

static int too_many(const char *what, size_t max, char *err, size_t err_len)
{
    return fail(err, err_len, "too many %s (at most %zu)", what, max);
}

static int set_listen(struct proxy_config *c, const char *v, enum source src, char *err, size_t err_len)
{
    struct config_addr tmp[CONFIG_MAX_LISTEN];
    size_t base = list_base(c, LIST_LISTEN, src, c->n_listen), n = 0, len;
    const char *w;
    while (next_word(&v, &w, &len, true)) {
        if (base + n >= CONFIG_MAX_LISTEN) return too_many("listen addresses", CONFIG_MAX_LISTEN, err, err_len);
        if (parse_addr(w, len, true, &tmp[n], err, err_len) != 0) return -1;
        n++;
    }
    if (n == 0) return fail(err, err_len, "missing value");
    memcpy(&c->listen[base], tmp, n * sizeof(tmp[0]));
    c->n_listen = base + n;
    c->list_origin[LIST_LISTEN] = (unsigned char)src;
    return 0;
}

static int set_allow(struct proxy_config *c, const char *v, enum source src, char *err, size_t err_len)
{
    struct config_cidr tmp[CONFIG_MAX_ACL];
    size_t base = list_base(c, LIST_ALLOW, src, c->n_allow), n = 0, len;
    const char *w;
    while (next_word(&v, &w, &len, true)) {
        /* "all" is both families' whole space: a v4 client never matches a v6 rule, nor the reverse. */
        size_t need = word_is(w, len, "all") ? 2 : 1;
        if (base + n + need > CONFIG_MAX_ACL) return too_many("allow rules", CONFIG_MAX_ACL, err, err_len);
        if (need == 2) {
            memset(&tmp[n], 0, 2 * sizeof(tmp[0]));
            tmp[n].family = AF_INET;
            tmp[n + 1].family = AF_INET6;
        } else if (parse_cidr(w, len, &tmp[n], err, err_len) != 0) {
            return -1;
        }
        n += need;
    }
    if (n == 0) return fail(err, err_len, "missing value");
    memcpy(&c->allow[base], tmp, n * sizeof(tmp[0]));
    c->n_allow = base + n;
    c->list_origin[LIST_ALLOW] = (unsigned char)src;
    return 0;
}

/* "none" empties the list whatever came before, which turns CONNECT off entirely. */
static int set_connect_ports(struct proxy_config *c, const char *v, enum source src, char *err, size_t err_len)
{
    uint16_t tmp[CONFIG_MAX_PORTS];
    size_t base = list_base(c, LIST_PORTS, src, c->n_connect_ports), n = 0, len;
    const char *w, *p = v;
    if (!next_word(&p, &w, &len, true)) return fail(err, err_len, "missing value"); /* only separators */
    if (word_is(w, len, "none")) {
        if (next_word(&p, &w, &len, true)) return fail(err, err_len, "'none' cannot be combined with ports");
        c->n_connect_ports = 0;
        c->list_origin[LIST_PORTS] = (unsigned char)src;
        return 0;
    }
    while (next_word(&v, &w, &len, true)) {
        char buf[8];
        uint16_t port;
        if (len >= sizeof(buf)) return fail(err, err_len, "invalid port '%.*s' (1..65535)", ECHO_N(len), w);
        memcpy(buf, w, len);
        buf[len] = '\0';
        if (parse_port(buf, false, &port) != 0) return fail(err, err_len, "invalid port '%s' (1..65535)", buf);
        bool dup = false;
        for (size_t i = 0; i < base && !dup; i++)
            dup = c->connect_ports[i] == port;
        for (size_t i = 0; i < n && !dup; i++)
            dup = tmp[i] == port;
        if (dup) continue;
        if (base + n >= CONFIG_MAX_PORTS) return too_many("connect ports", CONFIG_MAX_PORTS, err, err_len);
        tmp[n++] = port;
    }
    memcpy(&c->connect_ports[base], tmp, n * sizeof(tmp[0]));
    c->n_connect_ports = base + n;
    c->list_origin[LIST_PORTS] = (unsigned char)src;
    return 0;
}

/* "system" empties the list: back to the system resolver configuration (the default). */
static int set_dns_servers(struct proxy_config *c, const char *v, enum source src, char *err, size_t err_len)
{
    struct config_addr tmp[CONFIG_MAX_DNS];
    size_t base = list_base(c, LIST_DNS, src, c->n_dns_servers), n = 0, len;
    const char *w, *p = v;
    if (!next_word(&p, &w, &len, true)) return fail(err, err_len, "missing value"); /* only separators */
    if (word_is(w, len, "system")) {
        if (next_word(&p, &w, &len, true)) return fail(err, err_len, "'system' cannot be combined with addresses");
        c->n_dns_servers = 0;
        c->list_origin[LIST_DNS] = (unsigned char)src;
        return 0;
    }
    while (next_word(&v, &w, &len, true)) {
        if (base + n >= CONFIG_MAX_DNS) return too_many("dns servers", CONFIG_MAX_DNS, err, err_len);
        if (parse_addr(w, len, false, &tmp[n], err, err_len) != 0) return -1;
        n++;
    }
    memcpy(&c->dns_servers[base], tmp, n * sizeof(tmp[0]));
    c->n_dns_servers = base + n;
    c->list_origin[LIST_DNS] = (unsigned char)src;
    return 0;
}

/* ---- parent proxy ----------------------------------------------------------------------------- */

/* A DNS name as RFC 1035 s2.3.1 and RFC 1123 s2.1 have it: dot-separated labels of letters, digits
 * and hyphens, 1..63 octets each, not starting or ending with a hyphen; 253 octets at most. */
static bool valid_dns_name(const char *s, size_t len)
{
    if (len == 0 || len > CONFIG_MAX_HOSTNAME) return false;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char ch = i < len ? s[i] : '.';
        if (ch == '.') {
            if (label == 0 || label > 63 || s[i - 1] == '-') return false;
            label = 0;
        } else if (isalnum((unsigned char)ch) || ch == '-') {
            if (label == 0 && ch == '-') return false;
            label++;
        } else {
            return false;
        }
    }
    return true;
}

/* "proxy.example:8080", "192.0.2.1:3128", "[2001:db8::1]:3128", or "none". A name is resolved when the
 * parent is dialed (asynchronously, like any origin), not here. */
static int set_parent(struct proxy_config *c, const char *w, size_t len, char *err, size_t err_len)
{
    if (word_is(w, len, "none")) {
        free(c->parent_host);
        c->parent_host = NULL;
        c->parent_port = 0;
        return 0;
    }
    char buf[CONFIG_MAX_HOSTNAME + 16];
    if (len >= sizeof(buf)) return fail(err, err_len, "invalid parent proxy '%.*s'", ECHO_N(len), w);
    memcpy(buf, w, len);
    buf[len] = '\0';
    char *host = buf, *colon;
    bool v6 = false;
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL || close[1] != ':')
            return fail(err, err_len, "invalid parent proxy '%s' (e.g. [2001:db8::1]:3128)", buf);
        *close = '\0';
        host = buf + 1;
        colon = close + 1;
        v6 = true;
    } else {
        colon = strrchr(buf, ':');
        if (colon == NULL) return fail(err, err_len, "'%s': missing port (e.g. proxy.example:3128)", buf);
        if (memchr(buf, ':', (size_t)(colon - buf)) != NULL)
            return fail(err, err_len, "invalid parent proxy '%s' (an IPv6 address needs brackets)", buf);
    }
    *colon = '\0';
    uint16_t port;
    if (parse_port(colon + 1, false, &port) != 0) return fail(err, err_len, "invalid port '%s' (1..65535)", colon + 1);
    struct in6_addr a6;
    struct in_addr a4;
    if (v6 ? inet_pton(AF_INET6, host, &a6) != 1 : (inet_pton(AF_INET, host, &a4) != 1 && !valid_dns_name(host, strlen(host))))
        return fail(err, err_len, "invalid parent proxy host '%s'", host);
    char *copy = strdup(host);
    if (copy == NULL) return fail(err, err_len, "out of memory");
    for (char *p = copy; *p != '\0'; p++)
        *p = (char)tolower((unsigned char)*p);
    free(c->parent_host);
    c->parent_host = copy;
    c->parent_port = port;
    return 0;
}

/* RFC 4648 s4 base64 of n bytes into out (room for 4 * ((n + 2) / 3) + 1), NUL-terminated. */
static void base64_encode(char *out, const unsigned char *in, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = abc[v >> 18 & 63];
        out[o++] = abc[v >> 12 & 63];
        out[o++] = i + 1 < n ? abc[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? abc[v & 63] : '=';
    }
    out[o] = '\0';
}

/* "user:password" (one word: no whitespace) into the Basic credentials of RFC 7617 s2, which the user
 * part may not contain a colon for; the password may. The value itself is never echoed back. */
static int set_parent_auth(struct proxy_config *c, const char *w, size_t len, char *err, size_t err_len)
{
    char *value = NULL;
    if (!word_is(w, len, "none")) {
        const char *colon = memchr(w, ':', len);
        if (colon == NULL || colon == w) return fail(err, err_len, "expected USER:PASSWORD (RFC 7617: a user name, a colon, a password)");
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)w[i] < 0x20 || w[i] == 0x7f) return fail(err, err_len, "control character in the credentials");
        if (len > 1024) return fail(err, err_len, "credentials longer than 1024 bytes");
        value = malloc(6 + 4 * ((len + 2) / 3) + 1);
        if (value == NULL) return fail(err, err_len, "out of memory");
        memcpy(value, "Basic ", 6);
        base64_encode(value + 6, (const unsigned char *)w, len);
    }
    free(c->parent_auth);
    c->parent_auth = value;
    return 0;
}

/* Names and networks that never go through the parent: "intranet.example 10.0.0.0/8 localhost".
 * "none" empties the list. A name stands for itself and every name below it (a leading dot is
 * allowed and means the same). */
static int set_bypass(struct proxy_config *c, const char *v, enum source src, char *err, size_t err_len)
{
    struct config_bypass tmp[CONFIG_MAX_BYPASS];
    size_t base = list_base(c, LIST_BYPASS, src, c->n_parent_bypass), n = 0, len;
    const char *w, *p = v;
    if (!next_word(&p, &w, &len, true)) return fail(err, err_len, "missing value");
    if (word_is(w, len, "none")) {
        if (next_word(&p, &w, &len, true)) return fail(err, err_len, "'none' cannot be combined with names");
        c->n_parent_bypass = 0;
        c->list_origin[LIST_BYPASS] = (unsigned char)src;
        return 0;
    }
    while (next_word(&v, &w, &len, true)) {
        if (base + n >= CONFIG_MAX_BYPASS) return too_many("parent_bypass entries", CONFIG_MAX_BYPASS, err, err_len);
        struct config_bypass *b = &tmp[n];
        memset(b, 0, sizeof(*b));
        char word[CONFIG_MAX_HOSTNAME + 2];
        if (len >= sizeof(word)) return fail(err, err_len, "invalid name '%.*s'", ECHO_N(len), w);
        memcpy(word, w, len);
        word[len] = '\0';
        if (looks_like_name(word)) {
            const char *name = word[0] == '.' ? word + 1 : word;
            size_t nlen = strlen(name);
            if (nlen > 0 && name[nlen - 1] == '.') nlen--;
            if (!valid_dns_name(name, nlen)) return fail(err, err_len, "invalid name '%s'", word);
            for (size_t i = 0; i < nlen; i++)
                b->name[i] = (char)tolower((unsigned char)name[i]);
        } else {
            if (parse_cidr(w, len, &b->cidr, err, err_len) != 0) return -1;
            b->is_cidr = 1;
        }
        n++;
    }
    memcpy(&c->parent_bypass[base], tmp, n * sizeof(tmp[0]));
    c->n_parent_bypass = base + n;
    c->list_origin[LIST_BYPASS] = (unsigned char)src;
    return 0;
}

static int set_string(struct proxy_config *c, const struct directive *d, const char *w, size_t len, char *err, size_t err_len)
{
    char **field = (char **)((char *)c + d->off);
    char *s = NULL;
    if (!(d->kind == K_PID_FILE && word_is(w, len, "none"))) {
        s = strndup(w, len);
        if (s == NULL) return fail(err, err_len, "out of memory");
    }
    free(*field);
    *field = s;
    return 0;
}

static int set_log_level(struct proxy_config *c, const char *w, size_t len, char *err, size_t err_len)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (word_is(w, len, names[i])) {
            c->log_level = (enum log_level)i;
            return 0;
        }
    }
    return fail(err, err_len, "invalid log level '%.*s' (error, warn, info or debug)", ECHO_N(len), w);
}

static int set_bool(struct proxy_config *c, const struct directive *d, const char *w, size_t len, char *err, size_t err_len)
{
    int *field = (int *)((char *)c + d->off);
    if (word_is(w, len, "on") || word_is(w, len, "yes") || word_is(w, len, "true"))
        *field = 1;
    else if (word_is(w, len, "off") || word_is(w, len, "no") || word_is(w, len, "false"))
        *field = 0;
    else
        return fail(err, err_len, "invalid boolean '%.*s' (on/off, yes/no, true/false)", ECHO_N(len), w);
    return 0;
}

/* Applies one directive's value; the reason on failure names neither the place nor the directive,
 * which the callers add. On failure the config is left as it was. */
static int apply(struct proxy_config *c, const struct directive *d, const char *value, enum source src, char *err, size_t err_len)
{
    const char *p = value != NULL ? value : "", *w, *extra;
    size_t len, extra_len;
    if (!next_word(&p, &w, &len, false)) return fail(err, err_len, "missing value");

    switch (d->kind) {
    case K_LISTEN:
        return set_listen(c, value, src, err, err_len);
    case K_ALLOW:
        return set_allow(c, value, src, err, err_len);
    case K_CONNECT_PORTS:
        return set_connect_ports(c, value, src, err, err_len);
    case K_DNS_SERVERS:
        return set_dns_servers(c, value, src, err, err_len);
    case K_BYPASS:
        return set_bypass(c, value, src, err, err_len);
    default:
        break;
    }

    /* Every other directive takes exactly one word. Paths containing whitespace are not supported. */
    if (next_word(&p, &extra, &extra_len, false))
        return d->kind == K_PARENT_AUTH ? fail(err, err_len, "the credentials must be one word (no spaces)") /* not echoed */
                                        : fail(err, err_len, "unexpected extra value '%.*s'", ECHO_N(extra_len), extra);
    switch (d->kind) {
    case K_STRING:
    case K_PID_FILE:
        return set_string(c, d, w, len, err, err_len);
    case K_LOG_LEVEL:
        return set_log_level(c, w, len, err, err_len);
    case K_BOOL:
        return set_bool(c, d, w, len, err, err_len);
    case K_PARENT:
        return set_parent(c, w, len, err, err_len);
    case K_PARENT_AUTH:
        return set_parent_auth(c, w, len, err, err_len);
    default:
        return set_number(c, d, w, len, err, err_len);
    }
}

/* ---- public API ------------------------------------------------------------------------------- */

struct proxy_config *config_new(void)
{
    struct proxy_config *c = calloc(1, sizeof(*c));
    if (c == NULL) return NULL;
    char why[128];
    /* Safe by default (DESIGN.md): loopback only, never an open proxy, CONNECT only to 443. Lists are set
     * with source SRC_DEFAULT so that the first file or command-line use replaces them. */
    if (set_listen(c, "127.0.0.1:3128", SRC_DEFAULT, why, sizeof(why)) != 0 ||
        set_allow(c, "127.0.0.0/8 ::1/128", SRC_DEFAULT, why, sizeof(why)) != 0 ||
        set_connect_ports(c, "443", SRC_DEFAULT, why, sizeof(why)) != 0)
        goto fail;
    c->n_dns_servers = 0;
    c->cache_dir = strdup("./larder-cache");
    c->access_log = strdup("-");
    c->error_log = strdup("-");
    c->visible_hostname = strdup("larder");
    if (c->cache_dir == NULL || c->access_log == NULL || c->error_log == NULL || c->visible_hostname == NULL) goto fail;
    c->pid_file = NULL;
    c->log_level = LOG_LEVEL_INFO;
    c->workers = 0;
    c->cache_size = 1 * GIB;
    c->max_object_size = 512 * MIB;
    c->connect_timeout_ms = 10 * SEC_MS;
    c->first_byte_timeout_ms = 60 * SEC_MS;
    c->client_idle_timeout_ms = 60 * SEC_MS;
    c->request_header_timeout_ms = 30 * SEC_MS;
    c->upstream_idle_timeout_ms = 60 * SEC_MS;
    c->tunnel_idle_timeout_ms = 600 * SEC_MS;
    c->shutdown_timeout_ms = 10 * SEC_MS;
    c->dns_timeout_ms = 5 * SEC_MS;
    c->request_header_max_bytes = 65536;
    c->request_header_max_count = 100;
    c->max_uri_length = 8192;
    c->max_client_connections = 10000;
    c->max_connections_per_client = 0;
    c->request_body_max_bytes = 0;
    c->upstream_max_idle_per_origin = 8;
    c->client_send_buffer = SEND_BUFFER_AUTO;
    c->dns_cache_max_ttl_s = 300;
    c->test_hooks = 0;
    c->source_file = NULL;
    return c;
fail:
    config_free(c);
    return NULL;
}

void config_free(struct proxy_config *c)
{
    if (c == NULL) return;
    free(c->cache_dir);
    free(c->access_log);
    free(c->error_log);
    free(c->visible_hostname);
    free(c->pid_file);
    free(c->parent_host);
    free(c->parent_auth);
    free(c->source_file);
    free(c);
}

int config_set(struct proxy_config *c, const char *name, const char *value, int from_cli, char *err, size_t err_len)
{
    const struct directive *d = lookup(name, strlen(name));
    if (d == NULL) return fail(err, err_len, "unknown directive '" ECHO "'", name);
    char why[256];
    if (apply(c, d, value, from_cli ? SRC_CLI : SRC_FILE, why, sizeof(why)) != 0) return fail(err, err_len, "%s: %s", d->name, why);
    return 0;
}

int config_load_file(struct proxy_config *c, const char *path, char *err, size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return fail(err, err_len, "%s: cannot open: %s", path, strerror(errno));
    char *dup = strdup(path);
    if (dup == NULL) {
        fclose(f);
        return fail(err, err_len, "%s: out of memory", path);
    }
    free(c->source_file);
    c->source_file = dup;

    char *line = NULL, why[256];
    size_t cap = 0;
    ssize_t got;
    unsigned long lineno = 0;
    int rc = 0;
    while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (memchr(line, '\0', (size_t)got) != NULL) {
            rc = fail(err, err_len, "%s:%lu: line contains a NUL byte", path, lineno);
            break;
        }
        /* '#' starts a comment at the start of a line or after whitespace; "a#b" stays a value. */
        for (char *p = line; *p != '\0'; p++) {
            if (*p == '#' && (p == line || is_space(p[-1]))) {
                *p = '\0';
                break;
            }
        }
        char *name = line;
        while (is_space(*name))
            name++;
        if (*name == '\0') continue;
        char *end = name + strlen(name);
        while (end > name && is_space(end[-1]))
            *--end = '\0';
        char *value = name;
        while (*value != '\0' && !is_space(*value))
            value++;
        size_t name_len = (size_t)(value - name);
        while (is_space(*value))
            value++;

        const struct directive *d = lookup(name, name_len);
        if (d == NULL)
            rc = fail(err, err_len, "%s:%lu: unknown directive '%.*s'", path, lineno, ECHO_N(name_len), name);
        else if (apply(c, d, value, SRC_FILE, why, sizeof(why)) != 0)
            rc = fail(err, err_len, "%s:%lu: %s: %s", path, lineno, d->name, why);
    }
    if (rc == 0 && !feof(f)) rc = fail(err, err_len, "%s: read error: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
}

/* ---- command line ----------------------------------------------------------------------------- */

enum opt_kind { OPT_CONFIG, OPT_CHECK, OPT_VERSION, OPT_HELP, OPT_DIRECTIVE };

struct cli_opt {
    enum opt_kind kind;
    const struct directive *d; /* OPT_DIRECTIVE */
    const char *spelled;       /* the option as written, up to any '=' */
    int spelled_len;
    const char *value; /* OPT_CONFIG, OPT_DIRECTIVE */
};

/* Reads the option at argv[*i] and its value, advancing *i past both. */
static int cli_next(int argc, char **argv, int *i, struct cli_opt *o, char *err, size_t err_len)
{
    const char *a = argv[*i];
    memset(o, 0, sizeof(*o));
    o->spelled = a;
    o->spelled_len = (int)strlen(a);
    *i += 1;

    if (strcmp(a, "-h") == 0) {
        o->kind = OPT_HELP;
        return 0;
    }
    if (strcmp(a, "-c") == 0) {
        o->kind = OPT_CONFIG;
    } else if (strncmp(a, "--", 2) == 0 && a[2] != '\0') {
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        o->spelled_len = (int)(name_len + 2);
        if (eq != NULL) o->value = eq + 1;
        if (name_len == 6 && strncmp(name, "config", 6) == 0) {
            o->kind = OPT_CONFIG;
        } else if ((name_len == 5 && strncmp(name, "check", 5) == 0) || (name_len == 7 && strncmp(name, "version", 7) == 0) ||
                   (name_len == 4 && strncmp(name, "help", 4) == 0)) {
            o->kind = name_len == 5 ? OPT_CHECK : name_len == 7 ? OPT_VERSION : OPT_HELP;
            if (eq != NULL) return fail(err, err_len, "command line: --%.*s takes no value", (int)name_len, name);
            return 0;
        } else {
            o->kind = OPT_DIRECTIVE;
            o->d = lookup(name, name_len);
            if (o->d == NULL) return fail(err, err_len, "command line: unknown option '--%.*s'", ECHO_N(name_len), name);
        }
    } else if (a[0] == '-') {
        return fail(err, err_len, "command line: unknown option '" ECHO "'", a);
    } else {
        return fail(err, err_len, "command line: unexpected argument '" ECHO "' (options are --name value)", a);
    }

    if (o->value == NULL) {
        if (*i >= argc) return fail(err, err_len, "command line: %.*s: missing value", o->spelled_len, o->spelled);
        o->value = argv[*i];
        *i += 1;
    }
    return 0;
}

/* --help and --version return before the file is read, so they work even when it is broken. */
int config_from_argv(struct proxy_config *c, int argc, char **argv, int *check, int *version, int *help, char *err, size_t err_len)
{
    int flags[3] = {0, 0, 0}; /* check, version, help */
    const char *file = NULL;
    struct cli_opt o;

    for (int i = 0; i < argc;) {
        if (cli_next(argc, argv, &i, &o, err, err_len) != 0) return -1;
        if (o.kind == OPT_CONFIG) {
            if (file != NULL) return fail(err, err_len, "command line: -c/--config given more than once");
            if (o.value[0] == '\0') return fail(err, err_len, "command line: %.*s: missing value", o.spelled_len, o.spelled);
            file = o.value;
        } else if (o.kind != OPT_DIRECTIVE) {
            flags[o.kind - OPT_CHECK] = 1;
        }
    }
    if (check != NULL) *check = flags[0];
    if (version != NULL) *version = flags[1];
    if (help != NULL) *help = flags[2];
    if (flags[1] || flags[2]) return 0;

    if (file != NULL && config_load_file(c, file, err, err_len) != 0) return -1;

    char why[256];
    for (int i = 0; i < argc;) {
        if (cli_next(argc, argv, &i, &o, err, err_len) != 0) /* cannot fail: the first pass saw the same argv */
            return -1;
        if (o.kind == OPT_DIRECTIVE && apply(c, o.d, o.value, SRC_CLI, why, sizeof(why)) != 0)
            return fail(err, err_len, "command line: %.*s: %s", o.spelled_len, o.spelled, why);
    }
    return 0;
}

/* ---- validation and queries ------------------------------------------------------------------- */

/* Via's received-by is a pseudonym (a token) or host[:port] (RFC 9110 s7.6.3), and the same name goes
 * into error pages: anything else could break or inject header fields. */
static bool valid_hostname(const char *s)
{
    if (*s == '\0') return false;
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!(isalnum(ch) || strchr("!#$%&'*+-.^_`|~:[]", ch) != NULL)) return false;
    }
    return true;
}

static unsigned addr_port(const struct config_addr *a)
{
    if (a->sa.ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    if (a->sa.ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    return 0;
}

/* The parent given as an address larder itself listens on (or a wildcard listen on its port covers):
 * every request would come back to us, one more connection per round, until the limits stop it. A
 * parent given by name is not checked here (that needs DNS). */
static bool parent_is_self(const struct proxy_config *c)
{
    uint8_t a[16];
    int family = inet_pton(AF_INET, c->parent_host, a) == 1 ? AF_INET : inet_pton(AF_INET6, c->parent_host, a) == 1 ? AF_INET6 : 0;
    for (size_t i = 0; family != 0 && i < c->n_listen; i++) {
        const struct config_addr *l = &c->listen[i];
        if (l->sa.ss_family != family || addr_port(l) != c->parent_port) continue;
        const void *la = family == AF_INET ? (const void *)&((const struct sockaddr_in *)&l->sa)->sin_addr
                                           : (const void *)&((const struct sockaddr_in6 *)&l->sa)->sin6_addr;
        static const uint8_t any[16] = {0};
        size_t n = family == AF_INET ? 4 : 16;
        if (memcmp(la, a, n) == 0 || memcmp(la, any, n) == 0) return true;
    }
    return false;
}

int config_validate(const struct proxy_config *c, char *err, size_t err_len)
{
    if (c->n_listen == 0) return fail(err, err_len, "listen: no address to listen on");
    if (c->n_listen > CONFIG_MAX_LISTEN || c->n_allow > CONFIG_MAX_ACL || c->n_connect_ports > CONFIG_MAX_PORTS ||
        c->n_dns_servers > CONFIG_MAX_DNS || c->n_parent_bypass > CONFIG_MAX_BYPASS)
        return fail(err, err_len, "internal error: list longer than its array");
    if (c->parent_host != NULL && parent_is_self(c))
        return fail(err, err_len, "parent_proxy: %s:%u is larder's own listen address: every request would loop",
                    c->parent_host, (unsigned)c->parent_port);
    for (size_t i = 0; i < c->n_listen; i++) {
        for (size_t j = 0; j < i; j++) {
            /* Port 0 twice is two different kernel-chosen ports, not a clash. */
            if (addr_port(&c->listen[i]) != 0 && c->listen[i].sa_len == c->listen[j].sa_len &&
                memcmp(&c->listen[i].sa, &c->listen[j].sa, c->listen[i].sa_len) == 0)
                return fail(err, err_len, "listen: %s is given twice", c->listen[i].text);
        }
    }
    if (c->n_allow == 0) return fail(err, err_len, "allow: no rule, so no client could use the proxy");
    for (size_t i = 0; i < c->n_allow; i++) {
        const struct config_cidr *r = &c->allow[i];
        int maxbits = r->family == AF_INET ? 32 : r->family == AF_INET6 ? 128 : -1;
        if (maxbits < 0 || r->prefix < 0 || r->prefix > maxbits)
            return fail(err, err_len, "allow: rule %zu is not a valid CIDR", i + 1);
    }
    for (size_t i = 0; i < c->n_connect_ports; i++)
        if (c->connect_ports[i] == 0) return fail(err, err_len, "connect_ports: port 0 is not a port");

    for (size_t i = 0; i < N_DIRECTIVES; i++) {
        const struct directive *d = &directives[i];
        if (d->kind == K_COUNT || d->kind == K_SIZE || d->kind == K_SIZE_AUTO || d->kind == K_MSEC || d->kind == K_SEC) {
            uint64_t v = get_number(c, d);
            char why[128];
            if (d->kind == K_SIZE_AUTO && v == SEND_BUFFER_AUTO)
                continue;
            if (v < d->min || v > d->max) {
                range_error(d, v, why, sizeof(why));
                return fail(err, err_len, "%s: %s", d->name, why);
            }
        } else if (d->kind == K_STRING) {
            const char *s = *(char *const *)((const char *)c + d->off);
            if (s == NULL || s[0] == '\0') return fail(err, err_len, "%s: must not be empty", d->name);
        }
    }
    if (!valid_hostname(c->visible_hostname))
        return fail(err, err_len, "visible_hostname: '" ECHO "' is not a token or host name (RFC 9110 s7.6.3)",
                    c->visible_hostname);
    if (c->log_level < LOG_LEVEL_ERROR || c->log_level > LOG_LEVEL_DEBUG)
        return fail(err, err_len, "log_level: invalid value %d", (int)c->log_level);
    if (c->test_hooks != 0 && c->test_hooks != 1) return fail(err, err_len, "test_hooks: must be on or off");
    if (c->max_object_size > c->cache_size) {
        char a[32], b[32];
        return fail(err, err_len, "max_object_size (%s) is larger than cache_size (%s): no such object could be stored",
                    fmt_size(c->max_object_size, a, sizeof(a)), fmt_size(c->cache_size, b, sizeof(b)));
    }
    return 0;
}

int config_client_allowed(const struct proxy_config *c, const struct sockaddr *sa)
{
    uint8_t addr[16];
    int family;
    if (c == NULL || sa == NULL) return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        family = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        /* A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; they are IPv4 clients and match
         * IPv4 rules only (RFC 4291 s2.5.5.2). */
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            memcpy(addr, a6->s6_addr + 12, 4);
            family = AF_INET;
        } else {
            memcpy(addr, a6->s6_addr, 16);
            family = AF_INET6;
        }
    } else {
        return 0;
    }
    for (size_t i = 0; i < c->n_allow && i < CONFIG_MAX_ACL; i++) {
        const struct config_cidr *r = &c->allow[i];
        if (r->family == family && prefix_match(r->addr, addr, r->prefix)) return 1;
    }
    return 0;
}

int config_goes_direct(const struct proxy_config *c, const char *host)
{
    if (c->parent_host == NULL) return 1;
    uint8_t addr[16] = {0};
    int family = 0;
    if (inet_pton(AF_INET, host, addr) == 1)
        family = AF_INET;
    else if (inet_pton(AF_INET6, host, addr) == 1)
        family = AF_INET6;
    size_t hlen = strlen(host);
    for (size_t i = 0; i < c->n_parent_bypass; i++) {
        const struct config_bypass *b = &c->parent_bypass[i];
        if (b->is_cidr) {
            if (family == b->cidr.family && prefix_match(b->cidr.addr, addr, b->cidr.prefix)) return 1;
            continue;
        }
        if (family != 0) continue; /* a name never matches an address literal */
        size_t blen = strlen(b->name);
        /* The name itself, or a name below it: "a.intranet.example" under "intranet.example". */
        if (hlen >= blen && strcasecmp(host + hlen - blen, b->name) == 0 && (hlen == blen || host[hlen - blen - 1] == '.'))
            return 1;
    }
    return 0;
}

const char *config_parent_name(const struct proxy_config *c, char *buf, size_t len)
{
    snprintf(buf, len, "parent proxy %s:%u", c->parent_host != NULL ? c->parent_host : "-", (unsigned)c->parent_port);
    return buf;
}

int config_connect_port_allowed(const struct proxy_config *c, unsigned port)
{
    for (size_t i = 0; i < c->n_connect_ports && i < CONFIG_MAX_PORTS; i++)
        if (c->connect_ports[i] == port) return 1;
    return 0;
}

const char *config_usage(void)
{
    return "Usage: larder [-c FILE] [--check] [--version] [--help] [--NAME VALUE ...]\n"
           "\n"
           "  -c, --config FILE   read directives from FILE: one 'name value' per line, '#' starts a comment\n"
           "  --check             load and validate the configuration, then exit (0 if it is good)\n"
           "  --version           print the version and exit\n"
           "  -h, --help          print this text and exit\n"
           "\n"
           "Every directive can also be given as --NAME VALUE or --NAME=VALUE; dashes and underscores are\n"
           "interchangeable (--cache-dir = --cache_dir) and the command line overrides the file. For listen,\n"
           "allow, connect_ports, dns_servers and parent_bypass the first use replaces the list from the\n"
           "file (or the default) and later uses append. Lists take several values separated by spaces or\n"
           "commas.\n"
           "Durations: 500ms, 10s, 2m, 1h (a bare number is seconds). Sizes: 4096, 64K, 512M, 1G, 2T.\n"
           "\n"
           "Directives                                  default\n"
           "  listen ADDR:PORT ...                        127.0.0.1:3128   ([::1]:3128, :3128; port 0 = any free)\n"
           "  allow CIDR ... | all                        127.0.0.0/8 ::1/128   (clients that may use the proxy)\n"
           "  connect_ports PORT ... | none               443   (ports CONNECT may tunnel to)\n"
           "  dns_servers ADDR[:PORT] ... | system        system   (numeric addresses; port 53 by default)\n"
           "  parent_proxy HOST:PORT | none               none   (send every request through this proxy)\n"
           "  parent_bypass NAME|CIDR ... | none          none   (hosts reached directly, parent or not)\n"
           "  parent_proxy_auth USER:PASSWORD | none      none   (Basic credentials for the parent)\n"
           "  cache_dir PATH                              ./larder-cache\n"
           "  access_log PATH | - | none                  -   (stdout)\n"
           "  error_log PATH | -                          -   (stderr)\n"
           "  log_level error|warn|info|debug             info\n"
           "  visible_hostname NAME                       larder   (in Via and error pages)\n"
           "  pid_file PATH | none                        none\n"
           "  workers N                                   0   (one event loop per CPU core; at most 256)\n"
           "  cache_size SIZE                             1G\n"
           "  max_object_size SIZE                        512M\n"
           "  connect_timeout DURATION                    10s\n"
           "  first_byte_timeout DURATION                 60s\n"
           "  client_idle_timeout DURATION                60s\n"
           "  request_header_timeout DURATION             30s\n"
           "  upstream_idle_timeout DURATION              60s\n"
           "  tunnel_idle_timeout DURATION                600s\n"
           "  shutdown_timeout DURATION                   10s\n"
           "  dns_timeout DURATION                        5s\n"
           "  request_header_max_bytes SIZE               64K\n"
           "  request_header_max_count N                  100\n"
           "  max_uri_length SIZE                         8192\n"
           "  max_client_connections N                    10000\n"
           "  max_connections_per_client N                0   (unlimited)\n"
           "  request_body_max_bytes SIZE                 0   (unlimited)\n"
           "  upstream_max_idle_per_origin N              8\n"
           "  client_send_buffer auto|SIZE                auto (by handshake RTT; 0: kernel autotuning)\n"
           "  dns_cache_max_ttl DURATION                  300s\n"
           "  test_hooks on|off                           off   (never in production)\n";
}
