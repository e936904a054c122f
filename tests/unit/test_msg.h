/* Building message heads for table-driven unit tests. */
#ifndef LARDER_TEST_MSG_H
#define LARDER_TEST_MSG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/arena.h"
#include "http/http_date.h"
#include "http/http_msg.h"
#include "test_util.h"

/* A message in arena `a` with the fields of `spec`: "Name: value" lines separated by '\n'. A value
 * "@N" becomes the IMF-fixdate of t0 + N, so rows can say "Date: @0\nExpires: @3600". */
static inline struct http_msg *test_msg(struct arena *a, int is_request, enum http_method method, const char *spec,
                                        int64_t t0)
{
    struct http_msg *m = arena_alloc(a, sizeof(*m));
    ASSERT(m != NULL);
    http_msg_init(m, is_request);
    m->method = method;
    m->status = 200;
    for (const char *p = spec; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *colon = memchr(p, ':', len);
        ASSERT(colon != NULL);
        const char *v = colon + 1, *end = p + len;
        while (v < end && *v == ' ')
            v++;
        char date[HTTP_DATE_BUFSZ];
        if (v < end && *v == '@') {
            ASSERT_EQ(http_date_format(t0 + strtoll(v + 1, NULL, 10), date), HTTP_DATE_LEN);
            v = date;
            end = date + HTTP_DATE_LEN;
        }
        ASSERT_EQ(http_msg_add(m, a, p, (size_t)(colon - p), v, (size_t)(end - v)), 0);
        p = nl ? nl + 1 : NULL;
    }
    return m;
}

#endif
