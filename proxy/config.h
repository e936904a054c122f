/* Configuration: parsed once, validated, then read-only.
 *
 * Sources, in order of increasing precedence: built-in defaults, the file given with -c, then
 * `--name value` pairs on the command line (dashes and underscores interchangeable, as redis-server
 * accepts). For a repeatable directive (listen, allow, dns_servers, connect_ports), the first
 * command-line occurrence replaces the list from the file, later ones append to it.
 *
 * Errors are reported as "file:line: what is wrong" (or "command line: --name: what is wrong") in the
 * caller's buffer, and the process exits non-zero before it listens.
 *
 * Ownership: config_new() returns a heap object freed with config_free(); every string and array in it
 * belongs to it. After startup the proxy only ever sees `const struct proxy_config *`.
 */
#ifndef LARDER_PROXY_CONFIG_H
#define LARDER_PROXY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define CONFIG_MAX_LISTEN 16
#define CONFIG_MAX_ACL 64
#define CONFIG_MAX_PORTS 64
#define CONFIG_MAX_DNS 8
#define CONFIG_MAX_BYPASS 64
#define CONFIG_MAX_HOSTNAME 253 /* RFC 1035 s2.3.4, as written without the trailing dot */

/* A socket address as written in the configuration: "127.0.0.1:3128", "[::1]:3128", ":3128" (all
 * IPv4 interfaces). Port 0 asks the kernel for a free port; larder prints the one it bound. */
struct config_addr {
    struct sockaddr_storage sa;
    socklen_t sa_len;
    char text[64]; /* as given, for messages */
};

/* One allow rule: an address family, network bytes and prefix length (CIDR). "all" is 0.0.0.0/0 plus ::/0. */
struct config_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    int prefix;
};

/* One parent_bypass entry: a network (an IP-literal host inside it goes direct) or a domain name (the
 * name itself and every name below it go direct). */
struct config_bypass {
    int is_cidr;
    struct config_cidr cidr;
    char name[CONFIG_MAX_HOSTNAME + 1]; /* lower case, no leading or trailing dot */
};

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

struct proxy_config {
    struct config_addr listen[CONFIG_MAX_LISTEN];
    size_t n_listen; /* default: 127.0.0.1:3128 */

    struct config_cidr allow[CONFIG_MAX_ACL];
    size_t n_allow; /* default: 127.0.0.0/8 and ::1/128 */

    uint16_t connect_ports[CONFIG_MAX_PORTS];
    size_t n_connect_ports; /* default: 443 */

    struct config_addr dns_servers[CONFIG_MAX_DNS];
    size_t n_dns_servers; /* default: none, meaning the system's resolver configuration */

    /* parent_proxy HOST:PORT: every request goes to this proxy instead of the origin (absolute-form
     * requests, CONNECT tunnels through it), except for hosts in parent_bypass. Default none. */
    char *parent_host; /* NULL: none. A name (resolved when dialed), an IPv4 or a bracket-less IPv6 literal */
    uint16_t parent_port;
    /* parent_proxy_auth USER:PASSWORD: the Proxy-Authorization value for the parent, ready to send
     * ("Basic <base64>", RFC 7617). NULL: none (the default). */
    char *parent_auth;
    struct config_bypass parent_bypass[CONFIG_MAX_BYPASS];
    size_t n_parent_bypass; /* default: none */

    char *cache_dir;  /* default "./larder-cache" */
    char *access_log; /* path, "-" for stdout, "none"; default "-" */
    char *error_log;  /* path, "-" for stderr; default "-" */
    enum log_level log_level; /* default info */
    char *visible_hostname;   /* name used in Via and error pages; default "larder" */
    char *pid_file;           /* default NULL: none */

    unsigned workers; /* event-loop threads; 0 (default) means one per CPU core */

    uint64_t cache_size;      /* bytes of store; default 1 GiB */
    uint64_t max_object_size; /* bytes; default 512 MiB */

    /* Timeouts in milliseconds. */
    uint64_t connect_timeout_ms;        /* default 10000 */
    uint64_t first_byte_timeout_ms;     /* upstream response head after request sent; default 60000 */
    uint64_t client_idle_timeout_ms;    /* keep-alive idle between client requests; default 60000 */
    uint64_t request_header_timeout_ms; /* whole request head must arrive within; default 30000 */
    uint64_t upstream_idle_timeout_ms;  /* idle pooled upstream connections, and a stalled upstream body; default 60000 */
    uint64_t tunnel_idle_timeout_ms;    /* CONNECT tunnel with no traffic either way; default 600000 */
    uint64_t shutdown_timeout_ms;       /* SIGTERM: how long in-flight requests may finish; default 10000 */
    uint64_t dns_timeout_ms;            /* per query attempt; default 5000 */

    /* Limits. */
    uint64_t request_header_max_bytes; /* default 65536 */
    uint64_t request_header_max_count; /* default 100 */
    uint64_t max_uri_length;           /* default 8192 */
    uint64_t max_client_connections;   /* default 10000 */
    uint64_t max_connections_per_client; /* default 0: unlimited */
    uint64_t request_body_max_bytes;   /* default 0: unlimited */
    uint64_t upstream_max_idle_per_origin; /* pooled idle connections per host:port; default 8 */
    uint64_t client_send_buffer;       /* SO_SNDBUF of client sockets: SEND_BUFFER_AUTO (default) sizes it by
                                        * the handshake RTT (proxy/send_buffer.h), 0 leaves autotuning */
    uint64_t dns_cache_max_ttl_s;      /* cap on how long a DNS answer is reused; default 300 */

    int test_hooks; /* "test_hooks on": enables the /larder/clock endpoint that moves the cache clock. Never in production. */

    char *source_file; /* the -c file, or NULL */

    /* Bookkeeping, not a setting: which source last replaced each repeatable list (listen, allow,
     * connect_ports, dns_servers, parent_bypass): 0 built-in default, 1 file, 2 command line. It drives
     * the replace-then-append rule across separate config_set() calls. */
    unsigned char list_origin[5];
};

/* Defaults as documented in proxy.conf.example. NULL on allocation failure. */
struct proxy_config *config_new(void);
void config_free(struct proxy_config *c);

/* Reads `path` line by line. 0, or -1 with "path:line: reason" in err. */
int config_load_file(struct proxy_config *c, const char *path, char *err, size_t err_len);

/* Parses one directive, as from a file line or a --name value pair (value = the rest of the line,
 * space-separated words for multi-valued directives). `from_cli` selects the replace-then-append rule for
 * repeatable directives. 0, or -1 with the reason (without location) in err. */
int config_set(struct proxy_config *c, const char *name, const char *value, int from_cli, char *err, size_t err_len);

/* Parses argv after the program name: -c FILE, --check, --version, --help and --name value pairs.
 * Loads the -c file first whatever its position, then applies the --name pairs in order.
 * Sets *check, *version, *help when those flags are present. 0, or -1 with the reason in err. */
int config_from_argv(struct proxy_config *c, int argc, char **argv, int *check, int *version, int *help, char *err,
                     size_t err_len);

/* Cross-directive checks after everything is loaded. 0, or -1 with the reason in err. */
int config_validate(const struct proxy_config *c, char *err, size_t err_len);

/* Is this client address inside one of the allow rules? */
int config_client_allowed(const struct proxy_config *c, const struct sockaddr *sa);

/* 1 when a request for `host` (as in the URI: lower case, an IPv6 literal without brackets) goes
 * straight to the origin: no parent_proxy, or host matches a parent_bypass entry. 0: via the parent. */
int config_goes_direct(const struct proxy_config *c, const char *host);

/* Room for config_parent_name(): the words, a host of CONFIG_MAX_HOSTNAME, ':' and a port. */
#define CONFIG_PARENT_NAME_MAX (CONFIG_MAX_HOSTNAME + 24)
/* "parent proxy HOST:PORT" into buf (CONFIG_PARENT_NAME_MAX bytes), for messages, and as the pool key
 * of connections to the parent (no origin authority contains a space). Returns buf. */
const char *config_parent_name(const struct proxy_config *c, char *buf, size_t len);
/* Is CONNECT to this port allowed? */
int config_connect_port_allowed(const struct proxy_config *c, unsigned port);

/* Text for --help: every directive, its argument and default. */
const char *config_usage(void);

#endif
