/* Log files: the error log (leveled lines) and the access log (Squid native format, see access_log.h).
 *
 * A log file is one O_APPEND descriptor shared by every loop thread. Each line is formatted in a
 * stack buffer and written with a single write(2), so lines from several threads never interleave.
 * SIGHUP reopens the path and dup2()s the new descriptor over the old one: writers never see a
 * closed descriptor, so no lock is needed.
 *
 * Ownership: main opens and closes log files; loops only write.
 */
#ifndef LARDER_PROXY_LOG_H
#define LARDER_PROXY_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include "proxy/config.h"

struct log_file {
    int fd;          /* -1 when disabled ("none") */
    char *path;      /* NULL for stdout/stderr */
    int level;       /* lines above this level are dropped (error log only) */
};

/* path "-" means the default stream (fd 1 or 2), "none" disables. 0 or -errno. */
int log_file_open(struct log_file *lf, const char *path, int default_fd, int level);
/* Reopen after rotation; keeps the old descriptor if the path cannot be opened. 0 or -errno. */
int log_file_reopen(struct log_file *lf);
void log_file_close(struct log_file *lf);
/* Writes one whole line (a newline is added if missing). */
void log_file_write(struct log_file *lf, const char *line, size_t len);

/* Error-log line: "2026/11/28 04:03:18.123 ERROR [txn 42] text". txn_id 0 omits the bracket. */
void log_msg(struct log_file *lf, enum log_level level, uint64_t txn_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define LOG_ERROR(lf, id, ...) log_msg((lf), LOG_LEVEL_ERROR, (id), __VA_ARGS__)
#define LOG_WARN(lf, id, ...) log_msg((lf), LOG_LEVEL_WARN, (id), __VA_ARGS__)
#define LOG_INFO(lf, id, ...) log_msg((lf), LOG_LEVEL_INFO, (id), __VA_ARGS__)
#define LOG_DEBUG(lf, id, ...)                                                                                           \
    do {                                                                                                                 \
        if ((lf)->level >= LOG_LEVEL_DEBUG)                                                                              \
            log_msg((lf), LOG_LEVEL_DEBUG, (id), __VA_ARGS__);                                                           \
    } while (0)

#endif
