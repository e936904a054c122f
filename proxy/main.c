/* larder: a forward caching HTTP proxy. main wires the modules together: configuration, logs, the
 * worker loops, signals. It is the only file that knows them all. */
#include <ares.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "proxy/cache.h"
#include "proxy/config.h"
#include "proxy/ctx.h"
#include "proxy/listener.h"
#include "proxy/worker.h"

struct app {
    struct proxy_shared shared;
    struct worker **workers;
    unsigned n_workers;
    uv_signal_t sig_term, sig_int, sig_hup;
    int stopping;
};

static void on_signal(uv_signal_t *s, int signum)
{
    struct app *app = s->data;
    if (signum == SIGHUP) {
        int a = log_file_reopen(&app->shared.access_log);
        int e = log_file_reopen(&app->shared.error_log);
        LOG_INFO(&app->shared.error_log, 0, "SIGHUP: log files reopened%s", (a || e) ? " (with errors)" : "");
        return;
    }
    if (app->stopping)
        return;
    app->stopping = 1;
    LOG_INFO(&app->shared.error_log, 0, "%s: stopping (in-flight requests get up to %llu ms)",
             signum == SIGTERM ? "SIGTERM" : "SIGINT", (unsigned long long)app->shared.cfg->shutdown_timeout_ms);
    for (unsigned i = 0; i < app->n_workers; i++)
        worker_shutdown(app->workers[i]);
}

static int write_pid_file(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -errno;
    fprintf(f, "%ld\n", (long)getpid());
    return fclose(f) == 0 ? 0 : -errno;
}

int main(int argc, char **argv)
{
    char err[1024];
    struct proxy_config *cfg = config_new();
    if (cfg == NULL) {
        fprintf(stderr, "larder: out of memory\n");
        return 1;
    }
    int check = 0, version = 0, help = 0;
    if (config_from_argv(cfg, argc - 1, argv + 1, &check, &version, &help, err, sizeof(err)) != 0) {
        fprintf(stderr, "larder: %s\n", err);
        config_free(cfg);
        return 2;
    }
    if (help) {
        fputs(config_usage(), stdout);
        config_free(cfg);
        return 0;
    }
    if (version) {
        printf("larder %s (libuv %s, c-ares %s)\n", LARDER_VERSION, uv_version_string(), ares_version(NULL));
        config_free(cfg);
        return 0;
    }
    if (config_validate(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "larder: %s\n", err);
        config_free(cfg);
        return 2;
    }
    if (check) {
        printf("larder: configuration OK\n");
        config_free(cfg);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN);
    /* A full disk or a file-size limit makes LMDB's writes fail with EFBIG/ENOSPC, which the store
     * reports; the signal would instead kill the process. */
    signal(SIGXFSZ, SIG_IGN);
    if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS) {
        fprintf(stderr, "larder: cannot initialise c-ares\n");
        return 1;
    }
    struct app app;
    memset(&app, 0, sizeof(app));
    app.shared.cfg = cfg;
    if (flight_table_init(&app.shared.flights) != 0) {
        fprintf(stderr, "larder: out of memory\n");
        return 1;
    }
    if (cfg->max_connections_per_client > 0 && client_limit_init(&app.shared.per_client, cfg->max_client_connections) != 0) {
        fprintf(stderr, "larder: out of memory\n");
        return 1;
    }
    int rc = log_file_open(&app.shared.error_log, cfg->error_log, STDERR_FILENO, (int)cfg->log_level);
    if (rc == 0)
        rc = log_file_open(&app.shared.access_log, cfg->access_log, STDOUT_FILENO, LOG_LEVEL_DEBUG);
    if (rc != 0) {
        fprintf(stderr, "larder: cannot open log file: %s\n", strerror(-rc));
        return 1;
    }

    /* The cache is optional at run time: a store that cannot be opened (unwritable cache_dir, a
     * corrupt or foreign file) is reported, and larder forwards without caching rather than not at all. */
    if (cache_open(&app.shared.cache, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "larder: cache disabled: %s\n", err);
        LOG_ERROR(&app.shared.error_log, 0, "cache disabled: %s", err);
        app.shared.cache = NULL;
    } else {
        struct store_counters sc;
        store_counters_get(app.shared.cache->store, &sc);
        if (sc.discarded_at_open > 0) {
            /* A store from an older larder: emptied at open (store.h), said once, loudly. */
            fprintf(stderr, "larder: cache_dir %s was written by an older larder; its %llu objects were discarded\n",
                    cfg->cache_dir, (unsigned long long)sc.discarded_at_open);
            LOG_WARN(&app.shared.error_log, 0, "cache_dir %s was written by an older larder; its %llu objects were discarded",
                     cfg->cache_dir, (unsigned long long)sc.discarded_at_open);
        }
    }

    unsigned n = cfg->workers ? cfg->workers : (unsigned)uv_available_parallelism();
    if (n == 0)
        n = 1;
    app.workers = calloc(n, sizeof(*app.workers));
    struct proxy_ctx **ctxs = calloc(n, sizeof(*ctxs));
    int *ports = calloc(cfg->n_listen ? cfg->n_listen : 1, sizeof(int));
    if (app.workers == NULL || ctxs == NULL || ports == NULL) {
        fprintf(stderr, "larder: out of memory\n");
        return 1;
    }
    app.shared.workers = ctxs;
    for (unsigned i = 0; i < n; i++) {
        if (worker_init(&app.workers[i], &app.shared, i, i == 0 ? NULL : ports, err, sizeof(err)) != 0) {
            fprintf(stderr, "larder: %s\n", err);
            LOG_ERROR(&app.shared.error_log, 0, "startup failed: %s", err);
            return 1;
        }
        ctxs[i] = worker_ctx(app.workers[i]);
        app.n_workers = i + 1;
        app.shared.n_workers = i + 1;
        if (i == 0) {
            /* Later workers bind the ports the first one got (port 0 resolves once). Listeners are
             * linked newest first. */
            size_t k = cfg->n_listen;
            for (struct listener *l = ctxs[0]->listeners; l != NULL && k > 0; l = l->next) {
                k--;
                ports[k] = l->bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&l->bound)->sin6_port)
                                                          : ntohs(((struct sockaddr_in *)&l->bound)->sin_port);
            }
            for (size_t j = 0; j < cfg->n_listen; j++) {
                struct sockaddr_storage ss = cfg->listen[j].sa;
                if (ss.ss_family == AF_INET6)
                    ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)ports[j]);
                else
                    ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)ports[j]);
                char text[80];
                listener_format(&ss, text, sizeof(text));
                printf("larder: listening on %s\n", text);
                LOG_INFO(&app.shared.error_log, 0, "listening on %s", text);
            }
        }
    }
    if (cfg->pid_file != NULL && (rc = write_pid_file(cfg->pid_file)) != 0)
        LOG_WARN(&app.shared.error_log, 0, "cannot write pid_file %s: %s", cfg->pid_file, strerror(-rc));

    uv_loop_t *loop0 = worker_ctx(app.workers[0])->loop;
    uv_signal_t *sigs[] = {&app.sig_term, &app.sig_int, &app.sig_hup};
    int signums[] = {SIGTERM, SIGINT, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(loop0, sigs[i]);
        sigs[i]->data = &app;
        uv_signal_start(sigs[i], on_signal, signums[i]);
        uv_unref((uv_handle_t *)sigs[i]); /* signals alone do not keep the loop running */
    }
    for (unsigned i = 1; i < n; i++)
        worker_start_thread(app.workers[i]);
    LOG_INFO(&app.shared.error_log, 0, "larder %s ready: %u worker(s)", LARDER_VERSION, n);
    printf("larder: ready\n");
    fflush(stdout);

    worker_run(app.workers[0]);
    for (unsigned i = 1; i < n; i++)
        worker_join(app.workers[i]);
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)sigs[i], NULL);
    uv_run(loop0, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < n; i++)
        worker_free(app.workers[i]);
    cache_close(app.shared.cache);
    flight_table_destroy(&app.shared.flights);
    client_limit_destroy(&app.shared.per_client);
    LOG_INFO(&app.shared.error_log, 0, "stopped");
    if (cfg->pid_file != NULL)
        unlink(cfg->pid_file);
    log_file_close(&app.shared.access_log);
    log_file_close(&app.shared.error_log);
    ares_library_cleanup();
    free(app.workers);
    free(ctxs);
    free(ports);
    config_free(cfg);
    return 0;
}
