/* RFC 9110 s13 preconditions that a cache evaluates itself against a stored response (RFC 9111 s4.3.2). */
#include "http/cache_policy.h"

#include <errno.h>

#include "http/http_date.h"

enum cp_cond_result cp_eval_conditionals(const struct http_msg *req, const struct http_msg *stored, int64_t response_time,
                                         int64_t now)
{
    /* s4.3.2: for stored 200 and 206 responses; RFC 9110 s13.2.2: 304 only answers GET and HEAD. */
    if (stored->status != 200 && stored->status != 206) return CP_COND_NONE;
    if (req->method != HTTP_METHOD_GET && req->method != HTTP_METHOD_HEAD) return CP_COND_NONE;

    /* RFC 9110 s13.2.2 step 3, s13.1.2: If-None-Match, weak comparison; "*" is false when we have a
     * representation, which we do. */
    struct http_etag cur;
    int have_etag = http_etag_get(stored, &cur) == 0;
    int inm = http_etag_list_match(req, "If-None-Match", have_etag ? &cur : NULL, 1);
    if (inm != -ENOENT) return inm == 1 ? CP_COND_NOT_MODIFIED : CP_COND_NONE; /* a malformed list: send the response */

    /* Step 4, s13.1.3: If-Modified-Since, only without If-None-Match; ignored when not one valid date. */
    int64_t ims;
    if (http_date_field(req, "If-Modified-Since", now, &ims) < 0) return CP_COND_NONE;
    /* s4.3.2: without Last-Modified, use the stored Date, or the time the response was received. */
    int64_t modified;
    if (http_date_field(stored, "Last-Modified", response_time, &modified) < 0 &&
        http_date_field(stored, "Date", response_time, &modified) < 0)
        modified = response_time;
    /* s13.1.3: "earlier or equal to the date provided in the field value, the condition is false" */
    return modified <= ims ? CP_COND_NOT_MODIFIED : CP_COND_NONE;
}

int cp_304_keeps(const struct http_msg *resp, const struct http_field *f)
{
    static const char *const names[] = {"Content-Location", "Date", "ETag", "Vary", "Cache-Control", "Expires"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (http_name_eq(f->name, f->name_len, names[i])) return 1;
    /* "Last-Modified might be useful if the response does not have an ETag field" */
    return http_name_eq(f->name, f->name_len, "Last-Modified") && http_msg_find(resp, "ETag") == NULL;
}
