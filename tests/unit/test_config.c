/* Unit tests for proxy/config: defaults, every directive's good and bad values, the file format and its
 * error locations, the command line (precedence, replace-then-append, dashes, --name=value), ACL and
 * CONNECT port matching, config_validate(), and that proxy.conf.example describes exactly the defaults.
 * Temporary files live in a mkdtemp() directory that each test removes. */
#include "proxy/config.h"
#include "proxy/send_buffer.h"
#include "test_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define KIB 1024ULL
#define MIB (1024ULL * KIB)
#define GIB (1024ULL * MIB)
#define TIB (1024ULL * GIB)

/* The directive names of larder's observable interface. Kept here, apart from config.c's table, so
 * that a directive dropped from the table, the usage text or the example file fails a test. */
static const char *const all_directives[] = {
    "listen",
    "allow",
    "connect_ports",
    "dns_servers",
    "parent_proxy",
    "parent_bypass",
    "parent_proxy_auth",
    "cache_dir",
    "access_log",
    "error_log",
    "log_level",
    "visible_hostname",
    "pid_file",
    "workers",
    "cache_size",
    "max_object_size",
    "connect_timeout",
    "first_byte_timeout",
    "client_idle_timeout",
    "request_header_timeout",
    "upstream_idle_timeout",
    "tunnel_idle_timeout",
    "shutdown_timeout",
    "dns_timeout",
    "request_header_max_bytes",
    "request_header_max_count",
    "max_uri_length",
    "max_client_connections",
    "max_connections_per_client",
    "request_body_max_bytes",
    "upstream_max_idle_per_origin",
    "client_send_buffer",
    "dns_cache_max_ttl",
    "test_hooks",
};
#define N_ALL (sizeof(all_directives) / sizeof(all_directives[0]))

static const char *const timeouts[] = {
    "connect_timeout",       "first_byte_timeout",  "client_idle_timeout", "request_header_timeout",
    "upstream_idle_timeout", "tunnel_idle_timeout", "shutdown_timeout",    "dns_timeout",
};
#define N_TIMEOUTS (sizeof(timeouts) / sizeof(timeouts[0]))

/* ---- helpers ---------------------------------------------------------------------------------- */

struct tmpdir {
    char path[PATH_MAX];
};

static void tmpdir_make(struct tmpdir *t)
{
    const char *base = getenv("TMPDIR");
    snprintf(t->path, sizeof(t->path), "%s/larder-config-XXXXXX", base != NULL && base[0] != '\0' ? base : "/tmp");
    ASSERT(mkdtemp(t->path) != NULL);
}

/* Every helper unlinks what it writes, so the directory is empty by now. */
static void tmpdir_remove(struct tmpdir *t)
{
    ASSERT_EQ(rmdir(t->path), 0);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite(text, 1, strlen(text), f), strlen(text));
    ASSERT_EQ(fclose(f), 0);
}

static void conf_path(const struct tmpdir *t, char *out, size_t len)
{
    snprintf(out, len, "%s/larder.conf", t->path);
}

/* Writes `text` to <tmpdir>/larder.conf, loads it into `c`, removes the file. */
static int load_text(struct proxy_config *c, const struct tmpdir *t, const char *text, char *err, size_t err_len)
{
    char path[PATH_MAX + 16];
    conf_path(t, path, sizeof(path));
    write_text(path, text);
    int rc = config_load_file(c, path, err, err_len);
    ASSERT_EQ(unlink(path), 0);
    return rc;
}

static struct sockaddr_storage sockaddr_of(const char *ip)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
    } else {
        ASSERT_EQ(inet_pton(AF_INET6, ip, &v6->sin6_addr), 1);
        v6->sin6_family = AF_INET6;
    }
    return ss;
}

static unsigned port_of(const struct config_addr *a)
{
    if (a->sa.ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
}

static const char *ip_of(const struct config_addr *a, char *buf, size_t len)
{
    if (a->sa.ss_family == AF_INET) return inet_ntop(AF_INET, &((const struct sockaddr_in *)&a->sa)->sin_addr, buf, (socklen_t)len);
    return inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a->sa)->sin6_addr, buf, (socklen_t)len);
}

static const char *cidr_text(const struct config_cidr *r, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(r->family, r->addr, ip, sizeof(ip));
    snprintf(buf, len, "%s/%d", ip, r->prefix);
    return buf;
}

static bool str_eq_null(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Every setting (not source_file nor the list bookkeeping) of a equals b. */
static void assert_config_equal(const struct proxy_config *a, const struct proxy_config *b)
{
    ASSERT_UEQ(a->n_listen, b->n_listen);
    for (size_t i = 0; i < a->n_listen; i++) {
        ASSERT_UEQ(a->listen[i].sa_len, b->listen[i].sa_len);
        ASSERT(memcmp(&a->listen[i].sa, &b->listen[i].sa, a->listen[i].sa_len) == 0);
    }
    ASSERT_UEQ(a->n_allow, b->n_allow);
    for (size_t i = 0; i < a->n_allow; i++) {
        ASSERT_EQ(a->allow[i].family, b->allow[i].family);
        ASSERT_EQ(a->allow[i].prefix, b->allow[i].prefix);
        ASSERT(memcmp(a->allow[i].addr, b->allow[i].addr, 16) == 0);
    }
    ASSERT_UEQ(a->n_connect_ports, b->n_connect_ports);
    for (size_t i = 0; i < a->n_connect_ports; i++)
        ASSERT_EQ(a->connect_ports[i], b->connect_ports[i]);
    ASSERT_UEQ(a->n_dns_servers, b->n_dns_servers);
    for (size_t i = 0; i < a->n_dns_servers; i++)
        ASSERT(memcmp(&a->dns_servers[i].sa, &b->dns_servers[i].sa, a->dns_servers[i].sa_len) == 0);
    ASSERT(str_eq_null(a->parent_host, b->parent_host));
    ASSERT_EQ(a->parent_port, b->parent_port);
    ASSERT(str_eq_null(a->parent_auth, b->parent_auth));
    ASSERT_UEQ(a->n_parent_bypass, b->n_parent_bypass);
    ASSERT(memcmp(a->parent_bypass, b->parent_bypass, a->n_parent_bypass * sizeof(a->parent_bypass[0])) == 0);
    ASSERT(str_eq_null(a->cache_dir, b->cache_dir));
    ASSERT(str_eq_null(a->access_log, b->access_log));
    ASSERT(str_eq_null(a->error_log, b->error_log));
    ASSERT(str_eq_null(a->visible_hostname, b->visible_hostname));
    ASSERT(str_eq_null(a->pid_file, b->pid_file));
    ASSERT_EQ(a->log_level, b->log_level);
    ASSERT_UEQ(a->workers, b->workers);
    ASSERT_UEQ(a->cache_size, b->cache_size);
    ASSERT_UEQ(a->max_object_size, b->max_object_size);
    ASSERT_UEQ(a->connect_timeout_ms, b->connect_timeout_ms);
    ASSERT_UEQ(a->first_byte_timeout_ms, b->first_byte_timeout_ms);
    ASSERT_UEQ(a->client_idle_timeout_ms, b->client_idle_timeout_ms);
    ASSERT_UEQ(a->request_header_timeout_ms, b->request_header_timeout_ms);
    ASSERT_UEQ(a->upstream_idle_timeout_ms, b->upstream_idle_timeout_ms);
    ASSERT_UEQ(a->tunnel_idle_timeout_ms, b->tunnel_idle_timeout_ms);
    ASSERT_UEQ(a->shutdown_timeout_ms, b->shutdown_timeout_ms);
    ASSERT_UEQ(a->dns_timeout_ms, b->dns_timeout_ms);
    ASSERT_UEQ(a->request_header_max_bytes, b->request_header_max_bytes);
    ASSERT_UEQ(a->request_header_max_count, b->request_header_max_count);
    ASSERT_UEQ(a->max_uri_length, b->max_uri_length);
    ASSERT_UEQ(a->max_client_connections, b->max_client_connections);
    ASSERT_UEQ(a->max_connections_per_client, b->max_connections_per_client);
    ASSERT_UEQ(a->request_body_max_bytes, b->request_body_max_bytes);
    ASSERT_UEQ(a->upstream_max_idle_per_origin, b->upstream_max_idle_per_origin);
    ASSERT_UEQ(a->client_send_buffer, b->client_send_buffer);
    ASSERT_UEQ(a->dns_cache_max_ttl_s, b->dns_cache_max_ttl_s);
    ASSERT_EQ(a->test_hooks, b->test_hooks);
}

/* ---- defaults --------------------------------------------------------------------------------- */

static void test_defaults(void)
{
    struct proxy_config *c = config_new();
    char ip[INET6_ADDRSTRLEN], buf[64], err[256];
    ASSERT(c != NULL);

    ASSERT_UEQ(c->n_listen, 1);
    ASSERT_EQ(c->listen[0].sa.ss_family, AF_INET);
    ASSERT_STR_EQ(ip_of(&c->listen[0], ip, sizeof(ip)), "127.0.0.1");
    ASSERT_EQ(port_of(&c->listen[0]), 3128);
    ASSERT_UEQ(c->listen[0].sa_len, sizeof(struct sockaddr_in));
    ASSERT_STR_EQ(c->listen[0].text, "127.0.0.1:3128");

    /* Safe defaults (DESIGN.md): loopback clients only, CONNECT to 443 only. */
    ASSERT_UEQ(c->n_allow, 2);
    ASSERT_STR_EQ(cidr_text(&c->allow[0], buf, sizeof(buf)), "127.0.0.0/8");
    ASSERT_STR_EQ(cidr_text(&c->allow[1], buf, sizeof(buf)), "::1/128");
    ASSERT_UEQ(c->n_connect_ports, 1);
    ASSERT_EQ(c->connect_ports[0], 443);
    ASSERT_UEQ(c->n_dns_servers, 0);

    ASSERT_STR_EQ(c->cache_dir, "./larder-cache");
    ASSERT_STR_EQ(c->access_log, "-");
    ASSERT_STR_EQ(c->error_log, "-");
    ASSERT_EQ(c->log_level, LOG_LEVEL_INFO);
    ASSERT_STR_EQ(c->visible_hostname, "larder");
    ASSERT(c->pid_file == NULL);
    ASSERT_UEQ(c->workers, 0);
    ASSERT_UEQ(c->cache_size, 1 * GIB);
    ASSERT_UEQ(c->max_object_size, 512 * MIB);
    ASSERT_UEQ(c->connect_timeout_ms, 10000);
    ASSERT_UEQ(c->first_byte_timeout_ms, 60000);
    ASSERT_UEQ(c->client_idle_timeout_ms, 60000);
    ASSERT_UEQ(c->request_header_timeout_ms, 30000);
    ASSERT_UEQ(c->upstream_idle_timeout_ms, 60000);
    ASSERT_UEQ(c->tunnel_idle_timeout_ms, 600000);
    ASSERT_UEQ(c->shutdown_timeout_ms, 10000);
    ASSERT_UEQ(c->dns_timeout_ms, 5000);
    ASSERT_UEQ(c->request_header_max_bytes, 65536);
    ASSERT_UEQ(c->request_header_max_count, 100);
    ASSERT_UEQ(c->max_uri_length, 8192);
    ASSERT_UEQ(c->max_client_connections, 10000);
    ASSERT_UEQ(c->max_connections_per_client, 0);
    ASSERT_UEQ(c->request_body_max_bytes, 0);
    ASSERT_UEQ(c->upstream_max_idle_per_origin, 8);
    ASSERT_UEQ(c->client_send_buffer, SEND_BUFFER_AUTO);
    ASSERT(c->parent_host == NULL);
    ASSERT(c->parent_auth == NULL);
    ASSERT_UEQ(c->n_parent_bypass, 0);
    ASSERT_UEQ(c->dns_cache_max_ttl_s, 300);
    ASSERT_EQ(c->test_hooks, 0);
    ASSERT(c->source_file == NULL);

    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    config_free(c);
    config_free(NULL); /* like free(): a no-op */
}

/* ---- scalar directives: good values ----------------------------------------------------------- */

enum ftype { F_U64, F_UINT, F_INT, F_LEVEL, F_STR };

struct good_row {
    const char *name, *value;
    enum ftype type;
    size_t off;
    uint64_t want;        /* numbers */
    const char *want_str; /* F_STR; NULL means the field is NULL */
};

#define OFF(f) offsetof(struct proxy_config, f)

static const struct good_row good_rows[] = {
    {"workers", "0", F_UINT, OFF(workers), 0, NULL},
    {"workers", "8", F_UINT, OFF(workers), 8, NULL},
    {"workers", "256", F_UINT, OFF(workers), 256, NULL},
    {"cache_size", "1048576", F_U64, OFF(cache_size), 1 * MIB, NULL},
    {"cache_size", "1M", F_U64, OFF(cache_size), 1 * MIB, NULL},
    {"cache_size", "512m", F_U64, OFF(cache_size), 512 * MIB, NULL},
    {"cache_size", "2G", F_U64, OFF(cache_size), 2 * GIB, NULL},
    {"cache_size", "1t", F_U64, OFF(cache_size), 1 * TIB, NULL},
    {"cache_size", "64T", F_U64, OFF(cache_size), 64 * TIB, NULL},
    {"max_object_size", "0", F_U64, OFF(max_object_size), 0, NULL},
    {"max_object_size", "100", F_U64, OFF(max_object_size), 100, NULL},
    {"max_object_size", "4k", F_U64, OFF(max_object_size), 4 * KIB, NULL},
    {"request_header_max_bytes", "256", F_U64, OFF(request_header_max_bytes), 256, NULL},
    {"request_header_max_bytes", "16M", F_U64, OFF(request_header_max_bytes), 16 * MIB, NULL},
    {"request_header_max_count", "1", F_U64, OFF(request_header_max_count), 1, NULL},
    {"request_header_max_count", "10000", F_U64, OFF(request_header_max_count), 10000, NULL},
    {"max_uri_length", "16", F_U64, OFF(max_uri_length), 16, NULL},
    {"max_uri_length", "1M", F_U64, OFF(max_uri_length), 1 * MIB, NULL},
    {"max_client_connections", "1", F_U64, OFF(max_client_connections), 1, NULL},
    {"max_client_connections", "1000000", F_U64, OFF(max_client_connections), 1000000, NULL},
    {"max_connections_per_client", "0", F_U64, OFF(max_connections_per_client), 0, NULL},
    {"max_connections_per_client", "32", F_U64, OFF(max_connections_per_client), 32, NULL},
    {"request_body_max_bytes", "0", F_U64, OFF(request_body_max_bytes), 0, NULL},
    {"request_body_max_bytes", "10G", F_U64, OFF(request_body_max_bytes), 10 * GIB, NULL},
    {"upstream_max_idle_per_origin", "0", F_U64, OFF(upstream_max_idle_per_origin), 0, NULL},
    {"upstream_max_idle_per_origin", "10000", F_U64, OFF(upstream_max_idle_per_origin), 10000, NULL},
    {"client_send_buffer", "0", F_U64, OFF(client_send_buffer), 0, NULL},
    {"client_send_buffer", "512K", F_U64, OFF(client_send_buffer), 512 * 1024, NULL},
    {"client_send_buffer", "auto", F_U64, OFF(client_send_buffer), SEND_BUFFER_AUTO, NULL},
    {"dns_cache_max_ttl", "300", F_U64, OFF(dns_cache_max_ttl_s), 300, NULL},
    {"dns_cache_max_ttl", "5m", F_U64, OFF(dns_cache_max_ttl_s), 300, NULL},
    {"dns_cache_max_ttl", "2000ms", F_U64, OFF(dns_cache_max_ttl_s), 2, NULL},
    {"dns_cache_max_ttl", "0", F_U64, OFF(dns_cache_max_ttl_s), 0, NULL},
    {"dns_cache_max_ttl", "1h", F_U64, OFF(dns_cache_max_ttl_s), 3600, NULL},
    {"test_hooks", "on", F_INT, OFF(test_hooks), 1, NULL},
    {"test_hooks", "yes", F_INT, OFF(test_hooks), 1, NULL},
    {"test_hooks", "TRUE", F_INT, OFF(test_hooks), 1, NULL},
    {"test_hooks", "off", F_INT, OFF(test_hooks), 0, NULL},
    {"test_hooks", "no", F_INT, OFF(test_hooks), 0, NULL},
    {"test_hooks", "false", F_INT, OFF(test_hooks), 0, NULL},
    {"log_level", "error", F_LEVEL, OFF(log_level), LOG_LEVEL_ERROR, NULL},
    {"log_level", "warn", F_LEVEL, OFF(log_level), LOG_LEVEL_WARN, NULL},
    {"log_level", "info", F_LEVEL, OFF(log_level), LOG_LEVEL_INFO, NULL},
    {"log_level", "debug", F_LEVEL, OFF(log_level), LOG_LEVEL_DEBUG, NULL},
    {"log_level", "DEBUG", F_LEVEL, OFF(log_level), LOG_LEVEL_DEBUG, NULL},
    {"cache_dir", "/var/cache/larder", F_STR, OFF(cache_dir), 0, "/var/cache/larder"},
    {"cache_dir", "  /with/padding\t", F_STR, OFF(cache_dir), 0, "/with/padding"},
    {"cache_dir", "/a#b", F_STR, OFF(cache_dir), 0, "/a#b"}, /* '#' is a comment only after whitespace */
    {"access_log", "/var/log/larder/access.log", F_STR, OFF(access_log), 0, "/var/log/larder/access.log"},
    {"access_log", "none", F_STR, OFF(access_log), 0, "none"},
    {"access_log", "-", F_STR, OFF(access_log), 0, "-"},
    {"error_log", "/tmp/e.log", F_STR, OFF(error_log), 0, "/tmp/e.log"},
    {"visible_hostname", "proxy.example:8080", F_STR, OFF(visible_hostname), 0, "proxy.example:8080"},
    {"pid_file", "/run/larder.pid", F_STR, OFF(pid_file), 0, "/run/larder.pid"},
    {"pid_file", "none", F_STR, OFF(pid_file), 0, NULL},
};

static uint64_t read_field(const struct proxy_config *c, const struct good_row *r)
{
    const char *p = (const char *)c + r->off;
    switch (r->type) {
    case F_U64:
        return *(const uint64_t *)p;
    case F_UINT:
        return *(const unsigned *)p;
    case F_INT:
        return (uint64_t) * (const int *)p;
    case F_LEVEL:
        return (uint64_t) * (const enum log_level *)p;
    default:
        return 0;
    }
}

static void test_good_values(void)
{
    char err[256];
    for (size_t i = 0; i < sizeof(good_rows) / sizeof(good_rows[0]); i++) {
        const struct good_row *r = &good_rows[i];
        struct proxy_config *c = config_new();
        ASSERT(c != NULL);
        err[0] = '\0';
        if (config_set(c, r->name, r->value, 0, err, sizeof(err)) != 0)
            TEST_FAIL_("%s %s: unexpected error: %s", r->name, r->value, err);
        if (r->type == F_STR) {
            const char *got = *(char *const *)((const char *)c + r->off);
            if (!str_eq_null(got, r->want_str)) TEST_FAIL_("%s %s: got \"%s\"", r->name, r->value, got ? got : "(null)");
        } else if (read_field(c, r) != r->want) {
            TEST_FAIL_("%s %s: got %ju, want %ju", r->name, r->value, (uintmax_t)read_field(c, r), (uintmax_t)r->want);
        }
        config_free(c);
    }
}

/* Every timeout accepts every duration form; a bare number is seconds. */
static void test_durations(void)
{
    static const struct {
        const char *value;
        uint64_t ms;
    } forms[] = {{"500ms", 500},  {"1ms", 1},  {"10s", 10000},    {"2m", 120000},
                 {"1h", 3600000}, {"7", 7000}, {"24h", 86400000}, {"1MS", 1}};
    char err[256];
    for (size_t t = 0; t < N_TIMEOUTS; t++) {
        for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
            struct proxy_config *c = config_new();
            ASSERT(c != NULL);
            if (config_set(c, timeouts[t], forms[f].value, 0, err, sizeof(err)) != 0)
                TEST_FAIL_("%s %s: %s", timeouts[t], forms[f].value, err);
            uint64_t got = 0;
            switch (t) {
            case 0:
                got = c->connect_timeout_ms;
                break;
            case 1:
                got = c->first_byte_timeout_ms;
                break;
            case 2:
                got = c->client_idle_timeout_ms;
                break;
            case 3:
                got = c->request_header_timeout_ms;
                break;
            case 4:
                got = c->upstream_idle_timeout_ms;
                break;
            case 5:
                got = c->tunnel_idle_timeout_ms;
                break;
            case 6:
                got = c->shutdown_timeout_ms;
                break;
            case 7:
                got = c->dns_timeout_ms;
                break;
            }
            if (got != forms[f].ms)
                TEST_FAIL_("%s %s: got %ju ms, want %ju", timeouts[t], forms[f].value, (uintmax_t)got, (uintmax_t)forms[f].ms);
            config_free(c);
        }
        /* A timeout of 0 would fire before any I/O; config_validate() also insists on > 0. */
        struct proxy_config *c = config_new();
        char want[128];
        ASSERT(c != NULL);
        ASSERT_EQ(config_set(c, timeouts[t], "0", 0, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s: 0s is out of range (1ms..24h)", timeouts[t]);
        ASSERT_STR_EQ(err, want);
        config_free(c);
    }
}

/* ---- every directive's bad values: exact messages --------------------------------------------- */

struct bad_row {
    const char *name, *value, *want;
};

static const struct bad_row bad_rows[] = {
    {"lisen", "127.0.0.1:3128", "unknown directive 'lisen'"},
    {"listen", "", "listen: missing value"},
    {"listen", "   ", "listen: missing value"},
    {"listen", " , ,", "listen: missing value"}, /* separators only must not empty the list */
    {"allow", ",", "allow: missing value"},
    {"connect_ports", ",,", "connect_ports: missing value"},
    {"dns_servers", ", ", "dns_servers: missing value"},
    {"listen", "127.0.0.1:99999", "listen: invalid port '99999'"},
    {"listen", "127.0.0.1:x", "listen: invalid port 'x'"},
    {"listen", "127.0.0.1:-1", "listen: invalid port '-1'"},
    {"listen", "127.0.0.1:", "listen: invalid port ''"},
    {"listen", "127.0.0.1", "listen: '127.0.0.1': missing port (e.g. 127.0.0.1:3128)"},
    {"listen", "[::1]", "listen: '[::1]': missing port (e.g. 127.0.0.1:3128)"},
    {"listen", "localhost:3128",
     "listen: 'localhost:3128': host names are not accepted, give a numeric address (e.g. 127.0.0.1:3128)"},
    {"listen", "256.0.0.1:80", "listen: invalid IPv4 address '256.0.0.1'"},
    {"listen", "127.1:80", "listen: invalid IPv4 address '127.1'"},
    {"listen", "::1:3128", "listen: invalid address '::1:3128' (an IPv6 address needs brackets, e.g. [::1]:3128)"},
    {"listen", "[::1:3128", "listen: invalid address '[::1:3128': missing ']'"},
    {"listen", "[::g]:3128", "listen: invalid IPv6 address '::g'"},
    {"listen", "[::1]x", "listen: invalid address '[::1]x'"},
    {"listen", "127.0.0.1:80 nope:1",
     "listen: 'nope:1': host names are not accepted, give a numeric address (e.g. 127.0.0.1:3128)"},
    {"allow", "", "allow: missing value"},
    {"allow", "10.0.0.0/33", "allow: invalid prefix length '/33' in '10.0.0.0/33' (IPv4 allows 0..32)"},
    {"allow", "::/129", "allow: invalid prefix length '/129' in '::/129' (IPv6 allows 0..128)"},
    {"allow", "10.0.0.0/", "allow: invalid prefix length '/' in '10.0.0.0/' (IPv4 allows 0..32)"},
    {"allow", "10.0.0.0/-1", "allow: invalid prefix length '/-1' in '10.0.0.0/-1' (IPv4 allows 0..32)"},
    {"allow", "10.0.0.0/8/8", "allow: invalid prefix length '/8/8' in '10.0.0.0/8/8' (IPv4 allows 0..32)"},
    {"allow", "10.0.0/8", "allow: invalid address '10.0.0' in '10.0.0/8'"},
    {"allow", "example.com", "allow: 'example.com': host names are not accepted, give a numeric address or CIDR (e.g. 10.0.0.0/8)"},
    {"connect_ports", "", "connect_ports: missing value"},
    {"connect_ports", "0", "connect_ports: invalid port '0' (1..65535)"},
    {"connect_ports", "65536", "connect_ports: invalid port '65536' (1..65535)"},
    {"connect_ports", "443 https", "connect_ports: invalid port 'https' (1..65535)"},
    {"connect_ports", "none 443", "connect_ports: 'none' cannot be combined with ports"},
    {"connect_ports", "443 none", "connect_ports: invalid port 'none' (1..65535)"},
    {"dns_servers", "", "dns_servers: missing value"},
    {"dns_servers", "8.8.8.8:0", "dns_servers: invalid port '0'"},
    {"dns_servers", "1.2.3.4:99999", "dns_servers: invalid port '99999'"},
    {"dns_servers", "dns.google",
     "dns_servers: 'dns.google': host names are not accepted, give a numeric address (e.g. 127.0.0.1)"},
    {"dns_servers", "system 1.1.1.1", "dns_servers: 'system' cannot be combined with addresses"},
    {"dns_servers", ":53", "dns_servers: invalid IPv4 address ''"},
    {"cache_dir", "", "cache_dir: missing value"},
    {"cache_dir", "/a b", "cache_dir: unexpected extra value 'b'"},
    {"access_log", "a b", "access_log: unexpected extra value 'b'"},
    {"error_log", "", "error_log: missing value"},
    {"visible_hostname", "", "visible_hostname: missing value"},
    {"visible_hostname", "two words", "visible_hostname: unexpected extra value 'words'"},
    {"pid_file", "a b", "pid_file: unexpected extra value 'b'"},
    {"log_level", "verbose", "log_level: invalid log level 'verbose' (error, warn, info or debug)"},
    {"log_level", "", "log_level: missing value"},
    {"test_hooks", "maybe", "test_hooks: invalid boolean 'maybe' (on/off, yes/no, true/false)"},
    {"test_hooks", "1", "test_hooks: invalid boolean '1' (on/off, yes/no, true/false)"},
    {"workers", "257", "workers: 257 is out of range (0..256)"},
    {"workers", "-1", "workers: invalid number '-1'"},
    {"workers", "+1", "workers: invalid number '+1'"},
    {"workers", "1.5", "workers: invalid number '1.5'"},
    {"workers", "0x10", "workers: invalid number '0x10'"},
    {"workers", "4 5", "workers: unexpected extra value '5'"},
    {"workers", "99999999999999999999", "workers: '99999999999999999999' is out of range (0..256)"},
    {"cache_size", "1K", "cache_size: 1K is out of range (1M..64T)"},
    {"cache_size", "65T", "cache_size: 65T is out of range (1M..64T)"},
    {"cache_size", "1P", "cache_size: invalid size '1P' (use e.g. 4096, 64K, 512M, 1G)"},
    {"cache_size", "1GB", "cache_size: invalid size '1GB' (use e.g. 4096, 64K, 512M, 1G)"},
    {"cache_size", "G", "cache_size: invalid size 'G' (use e.g. 4096, 64K, 512M, 1G)"},
    {"cache_size", "17179869184T", "cache_size: '17179869184T' is out of range (1M..64T)"},
    {"max_object_size", "-1", "max_object_size: invalid size '-1' (use e.g. 4096, 64K, 512M, 1G)"},
    {"request_header_max_bytes", "100", "request_header_max_bytes: 100 is out of range (256..16M)"},
    {"request_header_max_count", "0", "request_header_max_count: 0 is out of range (1..10000)"},
    {"max_uri_length", "8", "max_uri_length: 8 is out of range (16..1M)"},
    {"max_client_connections", "0", "max_client_connections: 0 is out of range (1..1000000)"},
    {"max_connections_per_client", "1000001", "max_connections_per_client: 1000001 is out of range (0..1000000)"},
    {"request_body_max_bytes", "x", "request_body_max_bytes: invalid size 'x' (use e.g. 4096, 64K, 512M, 1G)"},
    {"upstream_max_idle_per_origin", "10001", "upstream_max_idle_per_origin: 10001 is out of range (0..10000)"},
    {"client_send_buffer", "65M", "client_send_buffer: 65M is out of range (0..64M)"},
    {"client_send_buffer", "autox", "client_send_buffer: invalid size 'autox' (use auto, or e.g. 4096, 64K, 512M, 1G)"},
    {"connect_timeout", "10x", "connect_timeout: invalid duration '10x' (use e.g. 500ms, 10s, 2m, 1h)"},
    {"connect_timeout", "1.5s", "connect_timeout: invalid duration '1.5s' (use e.g. 500ms, 10s, 2m, 1h)"},
    {"connect_timeout", "-5", "connect_timeout: invalid duration '-5' (use e.g. 500ms, 10s, 2m, 1h)"},
    {"connect_timeout", "s", "connect_timeout: invalid duration 's' (use e.g. 500ms, 10s, 2m, 1h)"},
    {"first_byte_timeout", "25h", "first_byte_timeout: 25h is out of range (1ms..24h)"},
    {"tunnel_idle_timeout", "1d", "tunnel_idle_timeout: invalid duration '1d' (use e.g. 500ms, 10s, 2m, 1h)"},
    {"dns_timeout", "99999999999999999999h", "dns_timeout: '99999999999999999999h' is out of range (1ms..24h)"},
    {"dns_cache_max_ttl", "500ms", "dns_cache_max_ttl: '500ms' is not a whole number of seconds"},
    {"dns_cache_max_ttl", "169h", "dns_cache_max_ttl: 169h is out of range (0s..168h)"},
};

static void test_bad_values(void)
{
    char err[512];
    for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        const struct bad_row *r = &bad_rows[i];
        struct proxy_config *c = config_new(), *fresh = config_new();
        ASSERT(c != NULL && fresh != NULL);
        err[0] = '\0';
        if (config_set(c, r->name, r->value, 0, err, sizeof(err)) != -1) TEST_FAIL_("%s '%s' was accepted", r->name, r->value);
        if (strcmp(err, r->want) != 0) TEST_FAIL_("%s '%s':\n  got  \"%s\"\n  want \"%s\"", r->name, r->value, err, r->want);
        /* A rejected value leaves the configuration as it was, lists included. */
        assert_config_equal(c, fresh);
        config_free(c);
        config_free(fresh);
    }
}

/* NULL value and a NULL/zero-length error buffer are tolerated. */
static void test_set_edge_arguments(void)
{
    struct proxy_config *c = config_new();
    char err[64];
    ASSERT(c != NULL);
    ASSERT_EQ(config_set(c, "workers", NULL, 0, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "workers: missing value");
    ASSERT_EQ(config_set(c, "workers", "x", 0, NULL, 0), -1);
    /* A long message is cut to the buffer, still terminated. */
    char small[8];
    ASSERT_EQ(config_set(c, "workers", "x", 0, small, sizeof(small)), -1);
    ASSERT_STR_EQ(small, "workers");
    config_free(c);
}

/* ---- lists ------------------------------------------------------------------------------------ */

static void test_listen_forms(void)
{
    struct proxy_config *c = config_new();
    char err[256], ip[INET6_ADDRSTRLEN];
    ASSERT(c != NULL);
    ASSERT_EQ(config_set(c, "listen", "[::1]:3128, :8080 127.0.0.1:0\t0.0.0.0:65535 [2001:db8::7]:1", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_listen, 5);
    ASSERT_EQ(c->listen[0].sa.ss_family, AF_INET6);
    ASSERT_UEQ(c->listen[0].sa_len, sizeof(struct sockaddr_in6));
    ASSERT_STR_EQ(ip_of(&c->listen[0], ip, sizeof(ip)), "::1");
    ASSERT_EQ(port_of(&c->listen[0]), 3128);
    ASSERT_STR_EQ(c->listen[0].text, "[::1]:3128");
    ASSERT_EQ(c->listen[1].sa.ss_family, AF_INET); /* ":8080" is every IPv4 interface */
    ASSERT_STR_EQ(ip_of(&c->listen[1], ip, sizeof(ip)), "0.0.0.0");
    ASSERT_EQ(port_of(&c->listen[1]), 8080);
    ASSERT_STR_EQ(c->listen[1].text, ":8080");
    ASSERT_EQ(port_of(&c->listen[2]), 0); /* the kernel picks one */
    ASSERT_EQ(port_of(&c->listen[3]), 65535);
    ASSERT_STR_EQ(ip_of(&c->listen[4], ip, sizeof(ip)), "2001:db8::7");
    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    config_free(c);
}

static void test_dns_servers_forms(void)
{
    struct proxy_config *c = config_new();
    char err[256], ip[INET6_ADDRSTRLEN];
    ASSERT(c != NULL);
    ASSERT_EQ(config_set(c, "dns_servers", "8.8.8.8, [2001:db8::1]:5353 2001:db8::2,1.1.1.1:5300", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_dns_servers, 4);
    ASSERT_STR_EQ(ip_of(&c->dns_servers[0], ip, sizeof(ip)), "8.8.8.8");
    ASSERT_EQ(port_of(&c->dns_servers[0]), 53);
    ASSERT_STR_EQ(ip_of(&c->dns_servers[1], ip, sizeof(ip)), "2001:db8::1");
    ASSERT_EQ(port_of(&c->dns_servers[1]), 5353);
    ASSERT_STR_EQ(ip_of(&c->dns_servers[2], ip, sizeof(ip)), "2001:db8::2"); /* bare IPv6, default port */
    ASSERT_EQ(port_of(&c->dns_servers[2]), 53);
    ASSERT_EQ(port_of(&c->dns_servers[3]), 5300);
    /* "system" goes back to the resolver configuration, whatever came before. */
    ASSERT_EQ(config_set(c, "dns_servers", "system", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_dns_servers, 0);
    config_free(c);
}

static void test_connect_ports(void)
{
    struct proxy_config *c = config_new();
    char err[256];
    ASSERT(c != NULL);
    ASSERT(config_connect_port_allowed(c, 443));
    ASSERT(!config_connect_port_allowed(c, 80));
    ASSERT(!config_connect_port_allowed(c, 8443));
    ASSERT(!config_connect_port_allowed(c, 0));
    ASSERT(!config_connect_port_allowed(c, 65536 + 443)); /* not truncated to 443 */

    ASSERT_EQ(config_set(c, "connect_ports", "8443,9443 1\t65535", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_connect_ports, 4);
    ASSERT(!config_connect_port_allowed(c, 443)); /* the first use replaced the default */
    ASSERT(config_connect_port_allowed(c, 8443));
    ASSERT(config_connect_port_allowed(c, 9443));
    ASSERT(config_connect_port_allowed(c, 1));
    ASSERT(config_connect_port_allowed(c, 65535));
    ASSERT_EQ(config_set(c, "connect_ports", "443 8443", 0, err, sizeof(err)), 0); /* appends; 8443 not twice */
    ASSERT_UEQ(c->n_connect_ports, 5);
    ASSERT(config_connect_port_allowed(c, 443));

    /* "none" turns CONNECT off, whatever came before. */
    ASSERT_EQ(config_set(c, "connect_ports", "none", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_connect_ports, 0);
    ASSERT(!config_connect_port_allowed(c, 443));
    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    config_free(c);
}

/* Lists are bounded by their arrays; the message says so, and a full list stays intact. */
static void test_list_limits(void)
{
    static const struct {
        const char *name;
        const char *fmt; /* one entry, from an index */
        size_t max;
        const char *want;
    } rows[] = {
        {"listen", "127.0.0.1:%zu", CONFIG_MAX_LISTEN, "listen: too many listen addresses (at most 16)"},
        {"allow", "10.0.0.%zu", CONFIG_MAX_ACL, "allow: too many allow rules (at most 64)"},
        {"connect_ports", "%zu", CONFIG_MAX_PORTS, "connect_ports: too many connect ports (at most 64)"},
        {"dns_servers", "10.0.0.%zu", CONFIG_MAX_DNS, "dns_servers: too many dns servers (at most 8)"},
    };
    char err[256], one[64];
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        struct proxy_config *c = config_new();
        ASSERT(c != NULL);
        for (size_t i = 1; i <= rows[r].max; i++) {
            snprintf(one, sizeof(one), rows[r].fmt, i + 1);
            if (config_set(c, rows[r].name, one, 0, err, sizeof(err)) != 0) TEST_FAIL_("%s entry %zu: %s", rows[r].name, i, err);
        }
        snprintf(one, sizeof(one), rows[r].fmt, rows[r].max + 2);
        ASSERT_EQ(config_set(c, rows[r].name, one, 0, err, sizeof(err)), -1);
        ASSERT_STR_EQ(err, rows[r].want);
        config_free(c);
    }
    /* "all" takes two rules: it does not fit in the last free slot. */
    struct proxy_config *c = config_new();
    ASSERT(c != NULL);
    for (size_t i = 1; i < CONFIG_MAX_ACL; i++) {
        snprintf(one, sizeof(one), "10.0.%zu.0/24", i);
        ASSERT_EQ(config_set(c, "allow", one, 0, err, sizeof(err)), 0);
    }
    ASSERT_EQ(config_set(c, "allow", "all", 0, err, sizeof(err)), -1);
    ASSERT_STR_EQ(err, "allow: too many allow rules (at most 64)");
    ASSERT_UEQ(c->n_allow, CONFIG_MAX_ACL - 1);
    config_free(c);
}

/* The file rule: its first use of a list replaces the built-in default, later uses append. The
 * command line does the same over whatever the file left. */
static void test_replace_then_append(void)
{
    struct proxy_config *c = config_new();
    char err[256], buf[64];
    ASSERT(c != NULL);
    ASSERT_EQ(config_set(c, "allow", "10.0.0.0/8", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_allow, 1);
    ASSERT_EQ(config_set(c, "allow", "192.168.0.0/16, 2001:db8::/32", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_allow, 3);
    ASSERT_EQ(config_set(c, "allow", "172.16.0.0/12", 1, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_allow, 1);
    ASSERT_STR_EQ(cidr_text(&c->allow[0], buf, sizeof(buf)), "172.16.0.0/12");
    ASSERT_EQ(config_set(c, "allow", "all", 1, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_allow, 3);
    ASSERT_STR_EQ(cidr_text(&c->allow[1], buf, sizeof(buf)), "0.0.0.0/0");
    ASSERT_STR_EQ(cidr_text(&c->allow[2], buf, sizeof(buf)), "::/0");

    ASSERT_EQ(config_set(c, "listen", "127.0.0.1:1", 0, err, sizeof(err)), 0);
    ASSERT_EQ(config_set(c, "listen", "127.0.0.1:2", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_listen, 2);
    ASSERT_STR_EQ(c->listen[0].text, "127.0.0.1:1");
    ASSERT_EQ(config_set(c, "listen", "127.0.0.1:3", 1, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_listen, 1);
    ASSERT_STR_EQ(c->listen[0].text, "127.0.0.1:3");

    ASSERT_EQ(config_set(c, "dns_servers", "10.0.0.1", 0, err, sizeof(err)), 0);
    ASSERT_EQ(config_set(c, "dns_servers", "10.0.0.2", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_dns_servers, 2);
    ASSERT_EQ(config_set(c, "dns_servers", "10.0.0.3", 1, err, sizeof(err)), 0);
    ASSERT_EQ(config_set(c, "dns_servers", "10.0.0.4", 1, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_dns_servers, 2);
    ASSERT_STR_EQ(c->dns_servers[0].text, "10.0.0.3");
    config_free(c);
}

/* ---- ACL matching ----------------------------------------------------------------------------- */

struct acl_row {
    const char *name;
    const char *rules; /* allow value; NULL keeps the default */
    const char *client;
    int want;
};

static const struct acl_row acl_rows[] = {
    {"default: IPv4 loopback", NULL, "127.0.0.1", 1},
    {"default: all of 127/8", NULL, "127.255.255.254", 1},
    {"default: IPv6 loopback", NULL, "::1", 1},
    {"default: mapped IPv4 loopback", NULL, "::ffff:127.0.0.1", 1},
    {"default: a LAN client is refused", NULL, "192.168.1.10", 0},
    {"default: mapped LAN client is refused", NULL, "::ffff:192.168.1.10", 0},
    {"default: other IPv6 is refused", NULL, "::2", 0},
    {"default: IPv4-compatible ::127.0.0.1 is not loopback", NULL, "::127.0.0.1", 0},
    {"/8 first", "10.0.0.0/8", "10.0.0.0", 1},
    {"/8 last", "10.0.0.0/8", "10.255.255.255", 1},
    {"/8 next", "10.0.0.0/8", "11.0.0.0", 0},
    {"/8 previous", "10.0.0.0/8", "9.255.255.255", 0},
    {"/7 partial byte in", "10.0.0.0/7", "11.1.2.3", 1},
    {"/7 partial byte out", "10.0.0.0/7", "12.0.0.0", 0},
    {"/0 matches every IPv4", "0.0.0.0/0", "203.0.113.9", 1},
    {"/0 IPv4 does not match IPv6", "0.0.0.0/0", "2001:db8::1", 0},
    {"/0 IPv4 matches mapped", "0.0.0.0/0", "::ffff:203.0.113.9", 1},
    {"/32 exact", "192.0.2.7/32", "192.0.2.7", 1},
    {"/32 neighbour", "192.0.2.7/32", "192.0.2.6", 0},
    {"bare IPv4 is /32", "192.0.2.7", "192.0.2.7", 1},
    {"bare IPv4 neighbour", "192.0.2.7", "192.0.2.8", 0},
    {"/31 even", "192.0.2.6/31", "192.0.2.6", 1},
    {"/31 odd", "192.0.2.6/31", "192.0.2.7", 1},
    {"/31 next pair", "192.0.2.6/31", "192.0.2.8", 0},
    {"/31 previous pair", "192.0.2.6/31", "192.0.2.5", 0},
    {"host bits masked: in", "10.1.2.3/8", "10.200.0.1", 1},
    {"host bits masked: out", "10.1.2.3/8", "11.1.2.3", 0},
    {"IPv6 /128", "::1/128", "::1", 1},
    {"IPv6 /128 neighbour", "::1/128", "::2", 0},
    {"bare IPv6 is /128", "2001:db8::5", "2001:db8::5", 1},
    {"IPv6 /32 in", "2001:db8::/32", "2001:db8:ffff:ffff::1", 1},
    {"IPv6 /32 out", "2001:db8::/32", "2001:db9::", 0},
    {"IPv6 /127 low", "2001:db8::/127", "2001:db8::", 1},
    {"IPv6 /127 high", "2001:db8::/127", "2001:db8::1", 1},
    {"IPv6 /127 next", "2001:db8::/127", "2001:db8::2", 0},
    {"IPv6 /0", "::/0", "fe80::1", 1},
    {"IPv6 /0 does not match IPv4", "::/0", "192.0.2.1", 0},
    {"IPv6 /0 does not match mapped IPv4 (mapped is IPv4)", "::/0", "::ffff:192.0.2.1", 0},
    {"mapped client matches IPv4 rule", "192.0.2.0/24", "::ffff:192.0.2.55", 1},
    {"mapped client outside IPv4 rule", "192.0.2.0/24", "::ffff:192.0.3.55", 0},
    {"mapped rule matches IPv4 client", "::ffff:10.0.0.0/104", "10.9.9.9", 1},
    {"mapped rule matches mapped client", "::ffff:10.0.0.0/104", "::ffff:10.9.9.9", 1},
    {"mapped rule excludes others", "::ffff:10.0.0.0/104", "11.0.0.1", 0},
    {"all: IPv4", "all", "198.51.100.1", 1},
    {"all: IPv6", "all", "2001:db8::1", 1},
    {"all: mapped", "all", "::ffff:198.51.100.1", 1},
    {"several rules, second matches", "10.0.0.0/8 192.168.0.0/16", "192.168.3.4", 1},
    {"several rules, none matches", "10.0.0.0/8,192.168.0.0/16", "172.16.0.1", 0},
};

static void test_acl(void)
{
    char err[256];
    for (size_t i = 0; i < sizeof(acl_rows) / sizeof(acl_rows[0]); i++) {
        const struct acl_row *r = &acl_rows[i];
        struct proxy_config *c = config_new();
        ASSERT(c != NULL);
        if (r->rules != NULL && config_set(c, "allow", r->rules, 0, err, sizeof(err)) != 0) TEST_FAIL_("%s: %s", r->name, err);
        struct sockaddr_storage ss = sockaddr_of(r->client);
        int got = config_client_allowed(c, (const struct sockaddr *)&ss);
        if (got != r->want)
            TEST_FAIL_("%s: allow %s, client %s: got %d, want %d", r->name, r->rules ? r->rules : "(default)", r->client, got,
                       r->want);
        config_free(c);
    }
}

static void test_acl_odd_inputs(void)
{
    struct proxy_config *c = config_new();
    char err[256], buf[64];
    ASSERT(c != NULL);
    ASSERT_EQ(config_set(c, "allow", "all", 0, err, sizeof(err)), 0);
    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    ASSERT_EQ(config_client_allowed(c, (const struct sockaddr *)&un), 0); /* no address, no rule */
    ASSERT_EQ(config_client_allowed(c, NULL), 0);
    /* Masked rules are stored masked; a mapped rule is stored as the IPv4 rule it means. */
    ASSERT_EQ(config_set(c, "allow", "10.1.2.3/8 2001:db8::ffff/120 ::ffff:192.0.2.128/121 ::ffff:0:0/95", 1, err, sizeof(err)), 0);
    ASSERT_STR_EQ(cidr_text(&c->allow[0], buf, sizeof(buf)), "10.0.0.0/8");
    ASSERT_STR_EQ(cidr_text(&c->allow[1], buf, sizeof(buf)), "2001:db8::ff00/120");
    ASSERT_STR_EQ(cidr_text(&c->allow[2], buf, sizeof(buf)), "192.0.2.128/25");
    ASSERT_STR_EQ(cidr_text(&c->allow[3], buf, sizeof(buf)), "::fffe:0:0/95");
    config_free(c);
}

static void test_parent_proxy(void)
{
    struct proxy_config *c = config_new();
    char err[256];
    ASSERT(c != NULL);
    ASSERT_EQ(config_goes_direct(c, "example.com"), 1); /* no parent: everything direct */
    ASSERT_EQ(config_set(c, "parent_proxy", "Proxy.Corp.Example:8080", 0, err, sizeof(err)), 0);
    ASSERT_STR_EQ(c->parent_host, "proxy.corp.example");
    ASSERT_EQ(c->parent_port, 8080);
    ASSERT_EQ(config_set(c, "parent_proxy", "[2001:db8::1]:3128", 0, err, sizeof(err)), 0);
    ASSERT_STR_EQ(c->parent_host, "2001:db8::1");
    ASSERT_EQ(c->parent_port, 3128);
    ASSERT_EQ(config_set(c, "parent_proxy", "192.0.2.7:3128", 0, err, sizeof(err)), 0);
    ASSERT_STR_EQ(c->parent_host, "192.0.2.7");
    static const struct {
        const char *value, *why;
    } bad[] = {
        {"proxy.example", "parent_proxy: 'proxy.example': missing port (e.g. proxy.example:3128)"},
        {"proxy.example:0", "parent_proxy: invalid port '0' (1..65535)"},
        {"proxy.example:70000", "parent_proxy: invalid port '70000' (1..65535)"},
        {"2001:db8::1:3128", "parent_proxy: invalid parent proxy '2001:db8::1:3128' (an IPv6 address needs brackets)"},
        {"[2001:db8::1]", "parent_proxy: invalid parent proxy '[2001:db8::1]' (e.g. [2001:db8::1]:3128)"},
        {"[nonsense]:3128", "parent_proxy: invalid parent proxy host 'nonsense'"},
        {"bad_name.example:3128", "parent_proxy: invalid parent proxy host 'bad_name.example'"},
        {"-lead.example:3128", "parent_proxy: invalid parent proxy host '-lead.example'"},
        {"a..b:3128", "parent_proxy: invalid parent proxy host 'a..b'"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_set(c, "parent_proxy", bad[i].value, 0, err, sizeof(err)) == 0)
            TEST_FAIL_("parent_proxy %s was accepted", bad[i].value);
        ASSERT_STR_EQ(err, bad[i].why);
    }
    ASSERT_STR_EQ(c->parent_host, "192.0.2.7"); /* a refused value leaves the previous one */
    ASSERT_EQ(config_goes_direct(c, "example.com"), 0);
    ASSERT_EQ(config_set(c, "parent_proxy", "none", 0, err, sizeof(err)), 0);
    ASSERT(c->parent_host == NULL);
    ASSERT_EQ(config_goes_direct(c, "example.com"), 1);
    config_free(c);
}

static void test_parent_not_self(void)
{
    struct proxy_config *c = config_new();
    char err[256];
    ASSERT(c != NULL);
    ASSERT_EQ(config_set(c, "parent_proxy", "127.0.0.1:3129", 0, err, sizeof(err)), 0); /* another port */
    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    ASSERT_EQ(config_set(c, "parent_proxy", "proxy.example:3128", 0, err, sizeof(err)), 0); /* a name: not checked */
    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    config_free(c);
}

static void test_parent_proxy_auth(void)
{
    struct proxy_config *c = config_new();
    char err[256];
    ASSERT(c != NULL);
    /* RFC 7617 s2's example without the space (a config value is one word), and every padding length. */
    static const struct {
        const char *value, *want;
    } good[] = {
        {"Aladdin:opensesame", "Basic QWxhZGRpbjpvcGVuc2VzYW1l"},
        {"u:p", "Basic dTpw"},
        {"user:pa:ss", "Basic dXNlcjpwYTpzcw=="}, /* the password may hold a colon */
        {"ab:c", "Basic YWI6Yw=="},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (config_set(c, "parent_proxy_auth", good[i].value, 0, err, sizeof(err)) != 0) TEST_FAIL_("%s: %s", good[i].value, err);
        ASSERT_STR_EQ(c->parent_auth, good[i].want);
    }
    static const struct {
        const char *value, *why;
    } bad[] = {
        {"nocolon", "parent_proxy_auth: expected USER:PASSWORD (RFC 7617: a user name, a colon, a password)"},
        {":secret", "parent_proxy_auth: expected USER:PASSWORD (RFC 7617: a user name, a colon, a password)"},
        {"user:two words", "parent_proxy_auth: the credentials must be one word (no spaces)"},
        {"user:p\x01w", "parent_proxy_auth: control character in the credentials"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_set(c, "parent_proxy_auth", bad[i].value, 0, err, sizeof(err)) == 0)
            TEST_FAIL_("parent_proxy_auth %s was accepted", bad[i].value);
        ASSERT_STR_EQ(err, bad[i].why);
        ASSERT(strstr(err, bad[i].value) == NULL); /* credentials are never echoed */
    }
    ASSERT_STR_EQ(c->parent_auth, "Basic YWI6Yw=="); /* refused values leave the last good one */
    ASSERT_EQ(config_set(c, "parent_proxy_auth", "none", 0, err, sizeof(err)), 0);
    ASSERT(c->parent_auth == NULL);
    config_free(c);
}

static void test_parent_bypass(void)
{
    struct proxy_config *c = config_new();
    char err[256];
    ASSERT(c != NULL);
    ASSERT_EQ(config_set(c, "parent_proxy", "proxy.example:3128", 0, err, sizeof(err)), 0);
    ASSERT_EQ(config_set(c, "parent_bypass", ".Intranet.Example, localhost 10.0.0.0/8 fd00::/8 svc.example.", 0, err,
                         sizeof(err)), 0);
    ASSERT_UEQ(c->n_parent_bypass, 5);
    ASSERT_STR_EQ(c->parent_bypass[0].name, "intranet.example");
    ASSERT_STR_EQ(c->parent_bypass[4].name, "svc.example");
    static const struct {
        const char *host;
        int direct;
    } rows[] = {
        {"intranet.example", 1},     {"wiki.intranet.example", 1}, {"WIKI.Intranet.Example", 1},
        {"myintranet.example", 0},   {"intranet.example.com", 0},  {"example", 0},
        {"localhost", 1},            {"svc.example", 1},           {"a.svc.example", 1},
        {"10.1.2.3", 1},             {"11.1.2.3", 0},              {"fd12::1", 1},
        {"2001:db8::1", 0},          {"www.example.org", 0},       {"10.example", 0},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        if (config_goes_direct(c, rows[i].host) != rows[i].direct)
            TEST_FAIL_("parent_bypass: %s: want %s", rows[i].host, rows[i].direct ? "direct" : "via the parent");
    ASSERT(config_set(c, "parent_bypass", "bad_name", 0, err, sizeof(err)) != 0);
    ASSERT_STR_EQ(err, "parent_bypass: invalid name 'bad_name'");
    ASSERT(config_set(c, "parent_bypass", "10.0.0.0/33", 0, err, sizeof(err)) != 0);
    ASSERT_EQ(config_set(c, "parent_bypass", "none", 0, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_parent_bypass, 0);
    ASSERT_EQ(config_goes_direct(c, "intranet.example"), 0);
    config_free(c);
}

/* ---- files ------------------------------------------------------------------------------------ */

static void test_file_good(void)
{
    struct tmpdir t;
    char err[512], path[PATH_MAX + 16];
    tmpdir_make(&t);
    struct proxy_config *c = config_new();
    ASSERT(c != NULL);
    const char *text = "# larder test configuration\n"
                       "\n"
                       "   \t\n"
                       "listen 127.0.0.1:0   # trailing comment\n"
                       "\tlisten [::1]:0\n"
                       "allow 10.0.0.0/8, 192.168.0.0/16\r\n" /* CRLF line ending */
                       "workers\t4\n"
                       "cache-dir /tmp/larder#1\n" /* dashes accepted in the file too; '#' mid-word is data */
                       "connect_ports 443 8443\n"
                       "connect_ports 563\n"
                       "log_level debug#not a comment?\n";
    ASSERT_EQ(load_text(c, &t, text, err, sizeof(err)), -1); /* the last line: "debug#not" then extra words */
    conf_path(&t, path, sizeof(path));
    char want[PATH_MAX + 128];
    snprintf(want, sizeof(want), "%s:11: log_level: unexpected extra value 'a'", path);
    ASSERT_STR_EQ(err, want);
    config_free(c);

    c = config_new();
    ASSERT(c != NULL);
    ASSERT_EQ(load_text(c, &t,
                        "# larder test configuration\n"
                        "\n"
                        "   \t\n"
                        "listen 127.0.0.1:0   # trailing comment\n"
                        "\tlisten [::1]:0\n"
                        "allow 10.0.0.0/8, 192.168.0.0/16\r\n"
                        "workers\t4\n"
                        "cache-dir /tmp/larder#1\n"
                        "connect_ports 443 8443\n"
                        "connect_ports 563\n"
                        "log_level   debug   # comment\n"
                        "test_hooks on", /* no final newline */
                        err, sizeof(err)),
              0);
    ASSERT_UEQ(c->n_listen, 2);
    ASSERT_STR_EQ(c->listen[0].text, "127.0.0.1:0");
    ASSERT_STR_EQ(c->listen[1].text, "[::1]:0");
    ASSERT_UEQ(c->n_allow, 2);
    ASSERT_UEQ(c->workers, 4);
    ASSERT_STR_EQ(c->cache_dir, "/tmp/larder#1");
    ASSERT_UEQ(c->n_connect_ports, 3);
    ASSERT_EQ(c->connect_ports[2], 563);
    ASSERT_EQ(c->log_level, LOG_LEVEL_DEBUG);
    ASSERT_EQ(c->test_hooks, 1);
    ASSERT_STR_EQ(c->source_file, path);
    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    config_free(c);

    /* An empty file is the defaults. */
    c = config_new();
    struct proxy_config *d = config_new();
    ASSERT(c != NULL && d != NULL);
    ASSERT_EQ(load_text(c, &t, "", err, sizeof(err)), 0);
    assert_config_equal(c, d);
    config_free(c);
    config_free(d);
    tmpdir_remove(&t);
}

struct file_error_row {
    const char *text;
    unsigned line;
    const char *what;
};

static const struct file_error_row file_error_rows[] = {
    {"# comment\n\nlisen 127.0.0.1:3128\n", 3, "unknown directive 'lisen'"},
    {"listen 127.0.0.1:99999\n", 1, "listen: invalid port '99999'"},
    {"workers 4\n  \n\t# x\nworkers\n", 4, "workers: missing value"},
    {"workers 4 # four\nworkers 4 5\n", 2, "workers: unexpected extra value '5'"},
    {"workers 4#four\n", 1, "workers: invalid number '4#four'"},
    {"\n\n\n\n\n\nallow 10.0.0.0/33\n", 7, "allow: invalid prefix length '/33' in '10.0.0.0/33' (IPv4 allows 0..32)"},
    {"listen localhost:3128\n", 1,
     "listen: 'localhost:3128': host names are not accepted, give a numeric address (e.g. 127.0.0.1:3128)"},
    {"Listen 127.0.0.1:3128\n", 1, "unknown directive 'Listen'"}, /* names are lower case */
    {"listen\t\n", 1, "listen: missing value"},
    {"cache_size 1K\n", 1, "cache_size: 1K is out of range (1M..64T)"},
    {"connect_timeout 0\n", 1, "connect_timeout: 0s is out of range (1ms..24h)"},
    {"x\r\n", 1, "unknown directive 'x'"},
};

static void test_file_errors(void)
{
    struct tmpdir t;
    char err[512], path[PATH_MAX + 16], want[PATH_MAX + 256];
    tmpdir_make(&t);
    conf_path(&t, path, sizeof(path));
    for (size_t i = 0; i < sizeof(file_error_rows) / sizeof(file_error_rows[0]); i++) {
        const struct file_error_row *r = &file_error_rows[i];
        struct proxy_config *c = config_new();
        ASSERT(c != NULL);
        err[0] = '\0';
        if (load_text(c, &t, r->text, err, sizeof(err)) != -1) TEST_FAIL_("row %zu was accepted", i);
        snprintf(want, sizeof(want), "%s:%u: %s", path, r->line, r->what);
        ASSERT_STR_EQ(err, want);
        config_free(c);
    }

    /* Too many list entries: the message points at the line that overflowed. */
    char text[2048] = "";
    for (int i = 1; i <= CONFIG_MAX_LISTEN + 1; i++) {
        char line[64];
        snprintf(line, sizeof(line), "listen 127.0.0.1:%d\n", 1000 + i);
        strcat(text, line);
    }
    struct proxy_config *c = config_new();
    ASSERT(c != NULL);
    ASSERT_EQ(load_text(c, &t, text, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:%d: listen: too many listen addresses (at most 16)", path, CONFIG_MAX_LISTEN + 1);
    ASSERT_STR_EQ(err, want);
    config_free(c);

    /* A NUL byte cannot be part of a directive. */
    FILE *f = fopen(path, "w");
    ASSERT(f != NULL);
    ASSERT_EQ(fwrite("workers 4\nworkers 4\0\n", 1, 22, f), 22);
    ASSERT_EQ(fclose(f), 0);
    c = config_new();
    ASSERT(c != NULL);
    ASSERT_EQ(config_load_file(c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: line contains a NUL byte", path);
    ASSERT_STR_EQ(err, want);
    ASSERT_EQ(unlink(path), 0);

    /* Missing file, and a directory. */
    ASSERT_EQ(config_load_file(c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: cannot open: %s", path, strerror(ENOENT));
    ASSERT_STR_EQ(err, want);
    ASSERT_EQ(config_load_file(c, t.path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: read error: %s", t.path, strerror(EISDIR));
    ASSERT_STR_EQ(err, want);
    config_free(c);
    tmpdir_remove(&t);
}

/* ---- command line ----------------------------------------------------------------------------- */

static int from_argv(struct proxy_config *c, char **argv, int *check, int *version, int *help, char *err, size_t len)
{
    int argc = 0;
    while (argv[argc] != NULL)
        argc++;
    return config_from_argv(c, argc, argv, check, version, help, err, len);
}

static void test_cli_precedence(void)
{
    struct tmpdir t;
    char err[512], path[PATH_MAX + 16];
    tmpdir_make(&t);
    conf_path(&t, path, sizeof(path));
    write_text(path, "workers 4\n"
                     "listen 127.0.0.1:1001\n"
                     "listen 127.0.0.1:1002\n"
                     "allow 10.0.0.0/8\n"
                     "allow 192.168.0.0/16\n"
                     "connect_ports 8443\n"
                     "cache_dir /from/file\n"
                     "max_object_size 1M\n");
    struct proxy_config *c = config_new();
    ASSERT(c != NULL);
    int check = -1, version = -1, help = -1;
    /* --workers comes before -c on the command line, and still beats the file: the file is read first. */
    char *argv[] = {"--workers",
                    "8",
                    "-c",
                    path,
                    "--listen",
                    "127.0.0.1:2001",
                    "--listen=127.0.0.1:2002",
                    "--allow",
                    "all",
                    "--cache_dir=/from/cli",
                    "--check",
                    NULL};
    ASSERT_EQ(from_argv(c, argv, &check, &version, &help, err, sizeof(err)), 0);
    ASSERT_EQ(check, 1);
    ASSERT_EQ(version, 0);
    ASSERT_EQ(help, 0);
    ASSERT_UEQ(c->workers, 8);
    ASSERT_UEQ(c->n_listen, 2); /* the first --listen replaced the file's two, the second appended */
    ASSERT_STR_EQ(c->listen[0].text, "127.0.0.1:2001");
    ASSERT_STR_EQ(c->listen[1].text, "127.0.0.1:2002");
    ASSERT_UEQ(c->n_allow, 2);         /* "all" = two rules, replacing the file's */
    ASSERT_UEQ(c->n_connect_ports, 1); /* untouched on the command line: the file's value stays */
    ASSERT_EQ(c->connect_ports[0], 8443);
    ASSERT_STR_EQ(c->cache_dir, "/from/cli");
    ASSERT_UEQ(c->max_object_size, 1 * MIB);
    ASSERT_STR_EQ(c->source_file, path);
    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    config_free(c);

    /* Later command-line values win over earlier ones for scalars. */
    c = config_new();
    ASSERT(c != NULL);
    char *argv2[] = {"--workers", "2", "--config", path, "--workers=3", NULL};
    ASSERT_EQ(from_argv(c, argv2, NULL, NULL, NULL, err, sizeof(err)), 0);
    ASSERT_UEQ(c->workers, 3);
    ASSERT_UEQ(c->n_listen, 2); /* from the file */
    ASSERT_STR_EQ(c->listen[0].text, "127.0.0.1:1001");
    config_free(c);

    /* No file: the first --allow replaces the built-in default. */
    c = config_new();
    ASSERT(c != NULL);
    char *argv3[] = {"--allow", "10.0.0.0/8", "--allow", "::1", NULL};
    ASSERT_EQ(from_argv(c, argv3, NULL, NULL, NULL, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_allow, 2);
    struct sockaddr_storage lo = sockaddr_of("127.0.0.1");
    ASSERT_EQ(config_client_allowed(c, (const struct sockaddr *)&lo), 0);
    ASSERT(c->source_file == NULL);
    config_free(c);

    ASSERT_EQ(unlink(path), 0);
    tmpdir_remove(&t);
}

/* Dashes and underscores are the same character in option names, with either value form. */
static void test_cli_dashes_and_equals(void)
{
    static const char *const spellings[] = {
        "--request-header-max-bytes",  "--request_header_max_bytes",  "--request-header_max-bytes",
        "--request-header-max-bytes=", "--request_header_max_bytes=",
    };
    char err[256];
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        struct proxy_config *c = config_new();
        ASSERT(c != NULL);
        char joined[128];
        char *argv[3] = {NULL, NULL, NULL};
        size_t n = strlen(spellings[i]);
        if (spellings[i][n - 1] == '=') {
            snprintf(joined, sizeof(joined), "%s2K", spellings[i]);
            argv[0] = joined;
        } else {
            argv[0] = (char *)spellings[i];
            argv[1] = "2K";
        }
        if (from_argv(c, argv, NULL, NULL, NULL, err, sizeof(err)) != 0) TEST_FAIL_("%s: %s", spellings[i], err);
        ASSERT_UEQ(c->request_header_max_bytes, 2 * KIB);
        config_free(c);
    }
    /* Every directive is reachable as an option with dashes (a bad value proves it was recognised). */
    for (size_t i = 0; i < N_ALL; i++) {
        char opt[64], want[128];
        snprintf(opt, sizeof(opt), "--%s", all_directives[i]);
        for (char *p = opt; *p != '\0'; p++)
            if (*p == '_') *p = '-';
        struct proxy_config *c = config_new();
        ASSERT(c != NULL);
        char *argv[] = {opt, "", NULL};
        ASSERT_EQ(from_argv(c, argv, NULL, NULL, NULL, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "command line: %s: missing value", opt);
        ASSERT_STR_EQ(err, want);
        config_free(c);
    }
    /* A multi-word value is one argv element. */
    struct proxy_config *c = config_new();
    ASSERT(c != NULL);
    char *argv[] = {"--connect-ports", "443 8443", NULL};
    ASSERT_EQ(from_argv(c, argv, NULL, NULL, NULL, err, sizeof(err)), 0);
    ASSERT_UEQ(c->n_connect_ports, 2);
    config_free(c);
}

struct cli_error_row {
    const char *name;
    const char *argv[8];
    const char *want; /* "%F" stands for the temp file's path */
};

static const struct cli_error_row cli_error_rows[] = {
    {"unknown option", {"--foo"}, "command line: unknown option '--foo'"},
    {"unknown option with =", {"--foo=1"}, "command line: unknown option '--foo'"},
    {"unknown short option", {"-x"}, "command line: unknown option '-x'"},
    {"lone dashes", {"--"}, "command line: unknown option '--'"},
    {"positional", {"stray"}, "command line: unexpected argument 'stray' (options are --name value)"},
    {"missing value at end", {"--workers", "2", "--listen"}, "command line: --listen: missing value"},
    {"empty = value", {"--listen="}, "command line: --listen: missing value"},
    {"bad port",
     {"--listen", "x:1"},
     "command line: --listen: 'x:1': host names are not accepted, give a numeric address "
     "(e.g. 127.0.0.1:3128)"},
    {"bad port named", {"--listen", "127.0.0.1:x"}, "command line: --listen: invalid port 'x'"},
    {"bad value after good", {"--cache-dir", "/a", "--workers", "abc"}, "command line: --workers: invalid number 'abc'"},
    {"option spelled as typed", {"--cache_size=1K"}, "command line: --cache_size: 1K is out of range (1M..64T)"},
    {"-c without file", {"-c"}, "command line: -c: missing value"},
    {"--config= empty", {"--config="}, "command line: --config: missing value"},
    {"-c twice", {"-c", "a", "--config", "b"}, "command line: -c/--config given more than once"},
    {"flag with value", {"--check=yes"}, "command line: --check takes no value"},
    {"missing file", {"-c", "%F"}, "%F: cannot open: No such file or directory"},
};

static void test_cli_errors(void)
{
    struct tmpdir t;
    char err[512], path[PATH_MAX + 16], want[PATH_MAX + 256];
    tmpdir_make(&t);
    conf_path(&t, path, sizeof(path)); /* never written: the "missing file" row */
    for (size_t i = 0; i < sizeof(cli_error_rows) / sizeof(cli_error_rows[0]); i++) {
        const struct cli_error_row *r = &cli_error_rows[i];
        char *argv[8] = {NULL};
        for (size_t j = 0; r->argv[j] != NULL; j++)
            argv[j] = strcmp(r->argv[j], "%F") == 0 ? path : (char *)r->argv[j];
        if (strncmp(r->want, "%F", 2) == 0)
            snprintf(want, sizeof(want), "%s%s", path, r->want + 2);
        else
            snprintf(want, sizeof(want), "%s", r->want);
        struct proxy_config *c = config_new();
        ASSERT(c != NULL);
        err[0] = '\0';
        if (from_argv(c, argv, NULL, NULL, NULL, err, sizeof(err)) != -1) TEST_FAIL_("%s: accepted", r->name);
        if (strcmp(err, want) != 0) TEST_FAIL_("%s:\n  got  \"%s\"\n  want \"%s\"", r->name, err, want);
        config_free(c);
    }

    /* An error inside the -c file keeps the file's location. */
    write_text(path, "workers 4\nworkers 999\n");
    struct proxy_config *c = config_new();
    ASSERT(c != NULL);
    char *argv[] = {"--workers", "2", "-c", path, NULL};
    ASSERT_EQ(from_argv(c, argv, NULL, NULL, NULL, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: workers: 999 is out of range (0..256)", path);
    ASSERT_STR_EQ(err, want);
    config_free(c);
    ASSERT_EQ(unlink(path), 0);
    tmpdir_remove(&t);
}

static void test_cli_flags(void)
{
    char err[256];
    struct {
        const char *argv[4];
        int check, version, help;
    } rows[] = {
        {{NULL}, 0, 0, 0},
        {{"--check"}, 1, 0, 0},
        {{"--version"}, 0, 1, 0},
        {{"--help"}, 0, 0, 1},
        {{"-h"}, 0, 0, 1},
        {{"--check", "--workers", "2"}, 1, 0, 0},
        /* --version and --help work even when the file is broken or missing: it is not read. */
        {{"--version", "-c", "/nonexistent/larder.conf"}, 0, 1, 0},
        {{"-c", "/nonexistent/larder.conf", "-h"}, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct proxy_config *c = config_new();
        ASSERT(c != NULL);
        int check = -1, version = -1, help = -1;
        if (from_argv(c, (char **)rows[i].argv, &check, &version, &help, err, sizeof(err)) != 0) TEST_FAIL_("row %zu: %s", i, err);
        ASSERT_EQ(check, rows[i].check);
        ASSERT_EQ(version, rows[i].version);
        ASSERT_EQ(help, rows[i].help);
        config_free(c);
    }
}

/* ---- validation ------------------------------------------------------------------------------- */

static void test_validate(void)
{
    char err[256];
    struct proxy_config *c;

#define VALIDATE_FAILS(mutation, want)                                                                                             \
    do {                                                                                                                           \
        c = config_new();                                                                                                          \
        ASSERT(c != NULL);                                                                                                         \
        mutation;                                                                                                                  \
        ASSERT_EQ(config_validate(c, err, sizeof(err)), -1);                                                                       \
        ASSERT_STR_EQ(err, want);                                                                                                  \
        config_free(c);                                                                                                            \
    } while (0)

    VALIDATE_FAILS(c->n_listen = 0, "listen: no address to listen on");
    VALIDATE_FAILS(config_set(c, "parent_proxy", "127.0.0.1:3128", 0, err, sizeof(err)),
                   "parent_proxy: 127.0.0.1:3128 is larder's own listen address: every request would loop");
    VALIDATE_FAILS(config_set(c, "listen", ":8080", 0, err, sizeof(err));
                   config_set(c, "parent_proxy", "127.0.0.2:8080", 0, err, sizeof(err)),
                   "parent_proxy: 127.0.0.2:8080 is larder's own listen address: every request would loop");
    VALIDATE_FAILS(c->n_allow = 0, "allow: no rule, so no client could use the proxy");
    VALIDATE_FAILS(c->workers = 300, "workers: 300 is out of range (0..256)");
    VALIDATE_FAILS(c->connect_timeout_ms = 0, "connect_timeout: 0s is out of range (1ms..24h)");
    VALIDATE_FAILS(c->first_byte_timeout_ms = 0, "first_byte_timeout: 0s is out of range (1ms..24h)");
    VALIDATE_FAILS(c->client_idle_timeout_ms = 0, "client_idle_timeout: 0s is out of range (1ms..24h)");
    VALIDATE_FAILS(c->request_header_timeout_ms = 0, "request_header_timeout: 0s is out of range (1ms..24h)");
    VALIDATE_FAILS(c->upstream_idle_timeout_ms = 0, "upstream_idle_timeout: 0s is out of range (1ms..24h)");
    VALIDATE_FAILS(c->tunnel_idle_timeout_ms = 0, "tunnel_idle_timeout: 0s is out of range (1ms..24h)");
    VALIDATE_FAILS(c->shutdown_timeout_ms = 0, "shutdown_timeout: 0s is out of range (1ms..24h)");
    VALIDATE_FAILS(c->dns_timeout_ms = 0, "dns_timeout: 0s is out of range (1ms..24h)");
    VALIDATE_FAILS(c->request_header_max_count = 0, "request_header_max_count: 0 is out of range (1..10000)");
    VALIDATE_FAILS(c->max_object_size = 2 * GIB,
                   "max_object_size (2G) is larger than cache_size (1G): no such object could be stored");
    VALIDATE_FAILS(config_set(c, "max_object_size", "2M", 0, err, sizeof(err));
                   config_set(c, "cache_size", "1M", 1, err, sizeof(err)),
                   "max_object_size (2M) is larger than cache_size (1M): no such object could be stored");
    VALIDATE_FAILS((free(c->cache_dir), c->cache_dir = strdup("")), "cache_dir: must not be empty");
    VALIDATE_FAILS((free(c->access_log), c->access_log = NULL), "access_log: must not be empty");
    VALIDATE_FAILS(config_set(c, "visible_hostname", "bad\x01name", 0, err, sizeof(err)),
                   "visible_hostname: 'bad\x01name' is not a token or host name (RFC 9110 s7.6.3)");
    VALIDATE_FAILS(config_set(c, "visible_hostname", "a\"b", 0, err, sizeof(err)),
                   "visible_hostname: 'a\"b' is not a token or host name (RFC 9110 s7.6.3)");
    VALIDATE_FAILS(config_set(c, "listen", "127.0.0.1:3128 [::1]:1 127.0.0.1:3128", 0, err, sizeof(err)),
                   "listen: 127.0.0.1:3128 is given twice");
    VALIDATE_FAILS(c->log_level = (enum log_level)7, "log_level: invalid value 7");
    VALIDATE_FAILS(c->test_hooks = 2, "test_hooks: must be on or off");
    VALIDATE_FAILS((c->allow[0].prefix = 33), "allow: rule 1 is not a valid CIDR");
#undef VALIDATE_FAILS

    /* Edges that are fine. */
    c = config_new();
    ASSERT(c != NULL);
    c->max_object_size = c->cache_size; /* equal is allowed */
    c->workers = 256;
    ASSERT_EQ(config_set(c, "listen", "127.0.0.1:0 127.0.0.1:0 [::1]:0", 0, err, sizeof(err)), 0); /* port 0 twice: two ports */
    ASSERT_EQ(config_set(c, "connect_ports", "none", 0, err, sizeof(err)), 0);                     /* CONNECT off */
    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    config_free(c);
}

/* ---- usage and the example file --------------------------------------------------------------- */

static void test_usage(void)
{
    const char *u = config_usage();
    ASSERT(u != NULL);
    for (size_t i = 0; i < N_ALL; i++) {
        char needle[64];
        snprintf(needle, sizeof(needle), "\n  %s ", all_directives[i]);
        if (strstr(u, needle) == NULL) TEST_FAIL_("usage does not list '%s'", all_directives[i]);
    }
    ASSERT(strstr(u, "-c, --config FILE") != NULL);
    ASSERT(strstr(u, "--check") != NULL);
    ASSERT(strstr(u, "--version") != NULL);
    ASSERT(strstr(u, "-h, --help") != NULL);
    ASSERT(strstr(u, "127.0.0.1:3128") != NULL);
}

/* The example sits at the repository root: ../../proxy.conf.example from this file. */
static void example_path(char *out, size_t len)
{
    const char *here = __FILE__;
    const char *slash = strrchr(here, '/');
    ASSERT(slash != NULL);
    snprintf(out, len, "%.*s/../../proxy.conf.example", (int)(slash - here), here);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) TEST_FAIL_("cannot open %s: %s", path, strerror(errno));
    ASSERT_EQ(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ASSERT(n >= 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    ASSERT(buf != NULL);
    ASSERT_EQ(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_example_file(void)
{
    char example[PATH_MAX], err[512];
    example_path(example, sizeof(example));

    /* As shipped, `larder -c proxy.conf.example --check` passes and changes nothing. */
    struct proxy_config *c = config_new(), *defaults = config_new();
    ASSERT(c != NULL && defaults != NULL);
    int check = 0;
    char *argv[] = {"-c", example, "--check", NULL};
    if (from_argv(c, argv, &check, NULL, NULL, err, sizeof(err)) != 0) TEST_FAIL_("example: %s", err);
    ASSERT_EQ(check, 1);
    ASSERT_EQ(config_validate(c, err, sizeof(err)), 0);
    assert_config_equal(c, defaults);
    config_free(c);

    /* Its `#name value` lines are the defaults: uncommented, they must still give exactly config_new(),
     * and every directive must have one. */
    char *text = read_all(example);
    size_t cap = strlen(text) + 1, used = 0;
    char *uncommented = malloc(cap);
    ASSERT(uncommented != NULL);
    bool documented[N_ALL] = {false};
    for (char *line = text, *next; line != NULL && *line != '\0'; line = next) {
        char *nl = strchr(line, '\n');
        next = nl != NULL ? nl + 1 : NULL;
        size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
        if (len < 2 || line[0] != '#' || line[1] < 'a' || line[1] > 'z') continue;
        memcpy(uncommented + used, line + 1, len - 1);
        used += len - 1;
        uncommented[used++] = '\n';
        for (size_t i = 0; i < N_ALL; i++) {
            size_t n = strlen(all_directives[i]);
            if (len - 1 > n && strncmp(line + 1, all_directives[i], n) == 0 && line[1 + n] == ' ') documented[i] = true;
        }
    }
    uncommented[used] = '\0';
    for (size_t i = 0; i < N_ALL; i++)
        if (!documented[i]) TEST_FAIL_("proxy.conf.example has no '#%s <default>' line", all_directives[i]);

    struct tmpdir t;
    tmpdir_make(&t);
    c = config_new();
    ASSERT(c != NULL);
    if (load_text(c, &t, uncommented, err, sizeof(err)) != 0) TEST_FAIL_("uncommented example: %s", err);
    assert_config_equal(c, defaults);
    config_free(c);
    tmpdir_remove(&t);
    free(uncommented);
    free(text);
    config_free(defaults);
}

int main(void)
{
    RUN_TEST(test_defaults);
    RUN_TEST(test_good_values);
    RUN_TEST(test_durations);
    RUN_TEST(test_bad_values);
    RUN_TEST(test_set_edge_arguments);
    RUN_TEST(test_listen_forms);
    RUN_TEST(test_dns_servers_forms);
    RUN_TEST(test_connect_ports);
    RUN_TEST(test_list_limits);
    RUN_TEST(test_replace_then_append);
    RUN_TEST(test_acl);
    RUN_TEST(test_acl_odd_inputs);
    RUN_TEST(test_parent_proxy);
    RUN_TEST(test_parent_bypass);
    RUN_TEST(test_parent_not_self);
    RUN_TEST(test_parent_proxy_auth);
    RUN_TEST(test_file_good);
    RUN_TEST(test_file_errors);
    RUN_TEST(test_cli_precedence);
    RUN_TEST(test_cli_dashes_and_equals);
    RUN_TEST(test_cli_errors);
    RUN_TEST(test_cli_flags);
    RUN_TEST(test_validate);
    RUN_TEST(test_usage);
    RUN_TEST(test_example_file);
    return 0;
}
