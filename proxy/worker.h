/* One event loop and everything attached to it (its context, resolver, listeners, connections).
 * Worker 0 runs on the main thread; the others each run on a thread of their own. Workers share
 * nothing mutable but the log descriptors and the read-only configuration.
 *
 * Shutdown (SIGTERM/SIGINT): worker_shutdown() may be called from any thread; it wakes the loop,
 * which stops accepting, closes idle connections, lets in-flight transactions finish until
 * shutdown_timeout, then closes everything, so uv_run() returns with no handle left.
 */
#ifndef LARDER_PROXY_WORKER_H
#define LARDER_PROXY_WORKER_H

#include <uv.h>

#include "proxy/ctx.h"

struct worker;

/* Creates the loop and context, binds listeners (ports[i] overrides the port of listen[i] when
 * nonzero, so later workers reuse the ports worker 0 got). 0, or -1 with a message in err. */
int worker_init(struct worker **out, struct proxy_shared *shared, unsigned id, const int *ports, char *err,
                size_t err_len);
struct proxy_ctx *worker_ctx(struct worker *w);
/* Runs the loop on the calling thread until shutdown completes. */
int worker_run(struct worker *w);
/* Starts worker_run() on a new thread. */
int worker_start_thread(struct worker *w);
int worker_join(struct worker *w);
/* Thread-safe: begin graceful shutdown. */
void worker_shutdown(struct worker *w);
/* Thread-safe: reopen log files (SIGHUP) is done by main directly; nothing per worker. */
void worker_free(struct worker *w);

#endif
