#include "proxy/access_log.h"

#include <stdio.h>
#include <string.h>

/* Squid writes URL and type as they are but never lets a space split a field: escape what would. */
static void put_field(char *out, size_t cap, const char *s)
{
    size_t j = 0;
    if (s == NULL || *s == '\0')
        s = "-";
    for (size_t i = 0; s[i] != '\0' && j + 4 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '%') {
            j += (size_t)snprintf(out + j, cap - j, "%%%02X", c);
        } else {
            out[j++] = (char)c;
        }
    }
    out[j] = '\0';
}

void access_log_write(struct log_file *lf, const struct access_entry *e)
{
    if (lf == NULL || lf->fd < 0)
        return;
    char url[4096], type[256], method[64];
    put_field(url, sizeof(url), e->url);
    put_field(type, sizeof(type), e->type);
    put_field(method, sizeof(method), e->method);
    char line[4600];
    int n = snprintf(line, sizeof(line), "%.3f %6llu %s %s/%03d %llu %s %s - %s/%s %s\n", e->end_time,
                     (unsigned long long)e->elapsed_ms, e->client ? e->client : "-", e->result ? e->result : "NONE",
                     e->status, (unsigned long long)e->bytes, method, url, e->hierarchy ? e->hierarchy : "HIER_NONE",
                     e->peer && *e->peer ? e->peer : "-", type);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    log_file_write(lf, line, (size_t)n);
}
