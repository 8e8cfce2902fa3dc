#include "core/core_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_level = -1; /* resolved from the environment on first use */

static int level_from_env(void)
{
    const char *e = getenv("EDDY_LOG_LEVEL");
    if (!e)
        return CORE_LOG_INFO;
    if (!strcmp(e, "debug"))
        return CORE_LOG_DEBUG;
    if (!strcmp(e, "warn"))
        return CORE_LOG_WARN;
    if (!strcmp(e, "error"))
        return CORE_LOG_ERROR;
    return CORE_LOG_INFO;
}

void core_log_set_level(core_log_level_t level)
{
    log_level = (int)level;
}

int core_log_enabled(core_log_level_t level)
{
    if (log_level < 0)
        log_level = level_from_env();
    return (int)level >= log_level;
}

void core_log(core_log_level_t level, const char *module, const char *fmt, ...)
{
    static const char *names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    if (!core_log_enabled(level))
        return;
    char line[2048];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)(tv.tv_usec / 1000), names[level], module);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
