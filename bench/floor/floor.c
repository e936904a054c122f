/* floor: the benchmark's reference server, not a cache and not part of larder.
 *
 * It answers GET for the origin's files from memory with one writev per response and does nothing
 * else: no parsing beyond the request line, no headers but Content-Length, no logging, no timers. What
 * it costs per request on the proxy's core is what the kernel's TCP costs for that response, the
 * least any proxy can spend, so the benchmark shows it beside the caches as the floor a target ratio
 * has to fit under (bench/README.md).
 *
 *   floor PORT DOCROOT       listens on 127.0.0.1:PORT; serves DOCROOT/<path> (absolute-form or
 *                            origin-form targets; the query is ignored); one thread, epoll, keep-alive.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FILES 16
#define MAX_HEAD 8192

struct file {
    char path[256];
    char head[128];
    size_t head_len;
    char *body;
    size_t body_len;
};

struct conn {
    int fd;
    char in[MAX_HEAD];
    size_t in_len;
    const struct file *out; /* the response being written, or NULL */
    size_t sent;            /* bytes of head + body written */
};

struct server {
    const char *docroot;
    struct file files[MAX_FILES];
    size_t n_files;
};

static const struct file *load(struct server *sv, const char *path, size_t len)
{
    for (size_t i = 0; i < sv->n_files; i++)
        if (strlen(sv->files[i].path) == len && memcmp(sv->files[i].path, path, len) == 0)
            return &sv->files[i];
    if (sv->n_files == MAX_FILES || len >= sizeof(sv->files[0].path) || memmem(path, len, "..", 2) != NULL)
        return NULL;
    char full[512];
    snprintf(full, sizeof(full), "%s%.*s", sv->docroot, (int)len, path);
    int fd = open(full, O_RDONLY);
    if (fd < 0)
        return NULL;
    struct stat st;
    struct file *f = &sv->files[sv->n_files];
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (f->body = malloc(st.st_size ? st.st_size : 1)) == NULL) {
        close(fd);
        return NULL;
    }
    f->body_len = 0;
    while (f->body_len < (size_t)st.st_size) {
        ssize_t r = read(fd, f->body + f->body_len, st.st_size - f->body_len);
        if (r <= 0) {
            close(fd);
            free(f->body);
            return NULL;
        }
        f->body_len += r;
    }
    close(fd);
    memcpy(f->path, path, len);
    f->path[len] = '\0';
    f->head_len = snprintf(f->head, sizeof(f->head),
                           "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: application/octet-stream\r\n\r\n",
                           f->body_len);
    sv->n_files++;
    return f;
}

static const struct file not_found = {
    .head = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", .head_len = 45, .body = "", .body_len = 0};

/* The path of "GET <target> HTTP/1.1": after the authority of an absolute-form target, up to '?'. */
static const struct file *route(struct server *sv, const char *line, size_t len)
{
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL)
        return &not_found;
    const char *t = sp + 1, *end = memchr(t, ' ', line + len - t);
    if (end == NULL)
        return &not_found;
    if ((size_t)(end - t) > 7 && memcmp(t, "http://", 7) == 0) {
        const char *slash = memchr(t + 7, '/', end - (t + 7));
        t = slash ? slash : end;
    }
    const char *q = memchr(t, '?', end - t);
    if (q != NULL)
        end = q;
    const struct file *f = load(sv, t, end - t);
    return f ? f : &not_found;
}

/* 0: wait for the socket; -1: close it. */
static int serve(struct server *sv, struct conn *c)
{
    for (;;) {
        while (c->out != NULL) {
            const struct file *f = c->out;
            size_t total = f->head_len + f->body_len;
            struct iovec iov[2];
            int n = 0;
            if (c->sent < f->head_len) {
                iov[n++] = (struct iovec){(char *)f->head + c->sent, f->head_len - c->sent};
                iov[n++] = (struct iovec){f->body, f->body_len};
            } else {
                iov[n++] = (struct iovec){f->body + (c->sent - f->head_len), total - c->sent};
            }
            ssize_t w = writev(c->fd, iov, n);
            if (w < 0)
                return errno == EAGAIN ? 0 : -1;
            c->sent += w;
            if (c->sent == total)
                c->out = NULL;
        }
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end != NULL) {
            char *eol = memchr(c->in, '\r', end - c->in + 1);
            c->out = route(sv, c->in, eol - c->in);
            c->sent = 0;
            size_t used = end + 4 - c->in;
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
            continue;
        }
        if (c->in_len == sizeof(c->in))
            return -1;
        ssize_t r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
        if (r == 0)
            return -1;
        if (r < 0)
            return errno == EAGAIN ? 0 : -1;
        c->in_len += r;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: floor PORT DOCROOT\n");
        return 2;
    }
    struct server sv = {.docroot = argv[2]};
    signal(SIGPIPE, SIG_IGN);
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 4096) != 0) {
        perror("floor: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0 && errno != EINTR) {
            perror("floor: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct conn *nc = calloc(1, sizeof(*nc));
                    if (nc == NULL) {
                        close(fd);
                        continue;
                    }
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    nc->fd = fd;
                    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = nc};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
                }
                continue;
            }
            if (serve(&sv, c) < 0) {
                close(c->fd);
                free(c);
            }
        }
    }
}
