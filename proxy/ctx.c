#include "proxy/ctx.h"

#include <time.h>

int64_t ctx_now_s(const struct proxy_ctx *ctx)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec + __atomic_load_n(&ctx->shared->clock_offset_s, __ATOMIC_RELAXED);
}
