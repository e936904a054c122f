#include "proxy/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int log_file_open(struct log_file *lf, const char *path, int default_fd, int level)
{
    lf->fd = -1;
    lf->path = NULL;
    lf->level = level;
    if (path == NULL || strcmp(path, "-") == 0) {
        lf->fd = default_fd;
        return 0;
    }
    if (strcmp(path, "none") == 0)
        return 0;
    lf->path = strdup(path);
    if (lf->path == NULL)
        return -ENOMEM;
    lf->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (lf->fd < 0) {
        int e = errno;
        free(lf->path);
        lf->path = NULL;
        return -e;
    }
    return 0;
}

int log_file_reopen(struct log_file *lf)
{
    if (lf->path == NULL)
        return 0;
    int fd = open(lf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    /* dup2 replaces the descriptor atomically: a concurrent write goes to the old or the new file. */
    if (dup2(fd, lf->fd) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    close(fd);
    return 0;
}

void log_file_close(struct log_file *lf)
{
    if (lf->path != NULL && lf->fd >= 0)
        close(lf->fd);
    free(lf->path);
    lf->path = NULL;
    lf->fd = -1;
}

void log_file_write(struct log_file *lf, const char *line, size_t len)
{
    if (lf->fd < 0 || len == 0)
        return;
    /* A log line that cannot be written is lost rather than retried: logging must never stall the loop. */
    ssize_t n = write(lf->fd, line, len);
    (void)n;
}

void log_msg(struct log_file *lf, enum log_level level, uint64_t txn_id, const char *fmt, ...)
{
    if (lf == NULL || lf->fd < 0 || (int)level > lf->level)
        return;
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    int n = (int)strftime(line, sizeof(line), "%Y/%m/%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof(line) - (size_t)n, ".%03ld %s ", (long)(tv.tv_usec / 1000), names[level]);
    if (txn_id != 0)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "[txn %llu] ", (unsigned long long)txn_id);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    log_file_write(lf, line, len);
}
