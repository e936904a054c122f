#include "proxy/worker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/client_conn.h"
#include "proxy/listener.h"
#include "proxy/origin_conn.h"
#include "proxy/resolver.h"
#include "proxy/txn.h"

#define WORKER_BUF_BLOCK (64 * 1024)
#define WORKER_BUF_FREE_MAX LARDER_POOL(256)
#define WORKER_DRAIN_POLL_MS 20
#define WORKER_ACCESS_BUF (64 * 1024)
#define WORKER_BIG_BUF_FREE_MAX LARDER_POOL(64) /* 16 MiB kept: a burst of large hits does not mmap and munmap 256 KiB per chunk */

struct worker {
    struct proxy_ctx ctx;
    uv_loop_t loop;
    uv_async_t wakeup;     /* shutdown requests from other threads */
    uv_timer_t deadline;   /* shutdown_timeout */
    uv_timer_t drain_poll; /* during shutdown: have the last connections gone? */
    uv_thread_t thread;
    int shutdown_requested; /* written by any thread with atomics */
    int shutdown_started;
    int finishing;
};

struct proxy_ctx *worker_ctx(struct worker *w)
{
    return &w->ctx;
}

/* Every connection is gone or is being closed: close the loop's own handles so uv_run returns. */
static void finish(struct worker *w)
{
    if (w->finishing)
        return;
    w->finishing = 1;
    struct proxy_ctx *ctx = &w->ctx;
    while (!list_empty(&ctx->clients))
        client_conn_close(container_of(ctx->clients.next, struct client_conn, link));
    txn_abort_background(ctx);
    origin_pool_close_all(ctx);
    if (ctx->resolver != NULL) {
        resolver_close(ctx->resolver, NULL, NULL);
        ctx->resolver = NULL;
    }
    cache_loop_close(&ctx->cache);
    uv_close((uv_handle_t *)&ctx->flight_wakeup, NULL);
    uv_close((uv_handle_t *)&ctx->access_flush, NULL);
    uv_close((uv_handle_t *)&w->wakeup, NULL);
    uv_close((uv_handle_t *)&w->deadline, NULL);
    uv_close((uv_handle_t *)&w->drain_poll, NULL);
}

static void on_deadline(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->ctx.n_clients > 0)
        LOG_WARN(w->ctx.log, 0, "shutdown_timeout reached: closing %zu connection(s)", w->ctx.n_clients);
    finish(w);
}

static void on_drain_poll(uv_timer_t *t)
{
    struct worker *w = t->data;
    if (w->ctx.n_clients == 0)
        finish(w);
}

static void begin_shutdown(struct worker *w)
{
    if (w->shutdown_started)
        return;
    w->shutdown_started = 1;
    struct proxy_ctx *ctx = &w->ctx;
    ctx->shutting_down = 1;
    listener_close_all(ctx);
    origin_pool_close_all(ctx);
    /* Idle keep-alive connections go now; busy ones finish their transaction without keep-alive. */
    struct list_node *n = ctx->clients.next;
    while (n != &ctx->clients) {
        struct list_node *next = n->next;
        client_conn_shutdown(container_of(n, struct client_conn, link));
        n = next;
    }
    uv_timer_start(&w->deadline, on_deadline, ctx->cfg->shutdown_timeout_ms, 0);
    uv_timer_start(&w->drain_poll, on_drain_poll, 0, WORKER_DRAIN_POLL_MS);
}

static void on_access_flush(uv_check_t *c)
{
    struct proxy_ctx *ctx = c->data;
    access_log_flush(&ctx->access);
}

static void on_flight_wakeup(uv_async_t *a)
{
    txn_flights_progressed(a->data);
}

static void on_wakeup(uv_async_t *a)
{
    struct worker *w = a->data;
    if (__atomic_load_n(&w->shutdown_requested, __ATOMIC_ACQUIRE))
        begin_shutdown(w);
}

int worker_init(struct worker **out, struct proxy_shared *shared, unsigned id, const int *ports, char *err,
                size_t err_len)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    const struct proxy_config *cfg = shared->cfg;
    struct proxy_ctx *ctx = &w->ctx;
    uv_loop_init(&w->loop);
    ctx->loop = &w->loop;
    ctx->cfg = cfg;
    ctx->shared = shared;
    ctx->log = &shared->error_log;
    if (access_log_buf_init(&ctx->access, &shared->access_log, WORKER_ACCESS_BUF) != 0)
        LOG_WARN(ctx->log, 0, "access log: no buffer, writing line by line");
    uv_check_init(&w->loop, &ctx->access_flush);
    ctx->access_flush.data = ctx;
    uv_check_start(&ctx->access_flush, on_access_flush);
    uv_unref((uv_handle_t *)&ctx->access_flush); /* it never keeps the loop alive by itself */
    ctx->worker_id = id;
    ctx->next_txn_id = (uint64_t)id << 48; /* ids stay unique across workers */
    list_init(&ctx->clients);
    list_init(&ctx->origins_idle);
    list_init(&ctx->detached);
    list_init(&ctx->followers);
    list_init(&ctx->paused_leaders);
    uv_async_init(&w->loop, &ctx->flight_wakeup, on_flight_wakeup);
    ctx->flight_wakeup.data = ctx;
    buf_pool_init(&ctx->bufs, WORKER_BUF_BLOCK, WORKER_BUF_FREE_MAX);
    buf_pool_init(&ctx->big_bufs, STORE_CHUNK_SIZE, WORKER_BIG_BUF_FREE_MAX);
    buf_pool_init(&ctx->scratch_bufs, OUTQ_SCRATCH_SIZE, WORKER_BUF_FREE_MAX);
    uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    w->wakeup.data = w;
    uv_timer_init(&w->loop, &w->deadline);
    w->deadline.data = w;
    uv_timer_init(&w->loop, &w->drain_poll);
    w->drain_poll.data = w;
    if (shared->cache != NULL && cache_loop_init(&ctx->cache, shared->cache, &w->loop) != 0) {
        snprintf(err, err_len, "cannot attach to the store");
        goto fail;
    }
    int rc = resolver_new(&ctx->resolver, &w->loop, cfg);
    if (rc != 0) {
        ctx->resolver = NULL;
        snprintf(err, err_len, "cannot start the DNS resolver: %s", strerror(-rc));
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_listen; i++) {
        struct listener *l;
        rc = listener_open(ctx, &cfg->listen[i], ports ? ports[i] : 0, &l);
        if (rc != 0) {
            snprintf(err, err_len, "listen %s: %s", cfg->listen[i].text, uv_strerror(rc));
            goto fail;
        }
    }
    *out = w;
    return 0;
fail:
    listener_close_all(ctx);
    finish(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    buf_pool_destroy(&ctx->bufs);
    buf_pool_destroy(&ctx->big_bufs);
    buf_pool_destroy(&ctx->scratch_bufs);
    access_log_buf_free(&ctx->access);
    free(w);
    return -1;
}

int worker_run(struct worker *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return 0;
}

static void thread_main(void *arg)
{
    worker_run(arg);
}

int worker_start_thread(struct worker *w)
{
    return uv_thread_create(&w->thread, thread_main, w);
}

int worker_join(struct worker *w)
{
    return uv_thread_join(&w->thread);
}

void worker_shutdown(struct worker *w)
{
    __atomic_store_n(&w->shutdown_requested, 1, __ATOMIC_RELEASE);
    uv_async_send(&w->wakeup);
}

void worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    int rc = uv_loop_close(&w->loop);
    if (rc != 0)
        LOG_WARN(w->ctx.log, 0, "event loop closed with handles still open");
    txn_pool_drain(&w->ctx);
    access_log_buf_free(&w->ctx.access); /* lines of the last iteration */
    buf_pool_destroy(&w->ctx.bufs);
    buf_pool_destroy(&w->ctx.big_bufs);
    buf_pool_destroy(&w->ctx.scratch_bufs);
    free(w);
}
