#include "proxy/metrics.h"

#include <inttypes.h>
#include <stdio.h>

void metrics_accumulate(struct metrics *out, const struct metrics *in)
{
#define METRICS_SUM(name) out->name += __atomic_load_n(&in->name, __ATOMIC_RELAXED);
    METRICS_COUNTERS(METRICS_SUM)
#undef METRICS_SUM
}

size_t metrics_format(const struct metrics *m, char *buf, size_t cap)
{
    size_t len = 0;
#define METRICS_LINE(name)                                                                                               \
    {                                                                                                                    \
        int n = snprintf(len < cap ? buf + len : NULL, len < cap ? cap - len : 0, "%s %" PRIu64 "\n", #name, m->name); \
        if (n > 0)                                                                                                       \
            len += (size_t)n;                                                                                            \
    }
    METRICS_COUNTERS(METRICS_LINE)
#undef METRICS_LINE
    return len;
}
