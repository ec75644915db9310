/*
 * log: the daemon's one logging module.  Lines go to stderr, or to a
 * file (--log), with a level; under systemd (JOURNAL_STREAM set) each
 * line starts with the syslog priority prefix "<N>" that journald reads,
 * and carries no timestamp of its own.  Thread-safe: workers log too.
 */
#ifndef SINKD_LOG_H
#define SINKD_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

/* path NULL: stderr.  0, or -1 with cause. */
int log_open(const char *path, enum log_level, char *cause);
/* Reopens the log file (SIGHUP, after rotation); stderr: nothing. */
int log_reopen(char *cause);
void log_close(void);
int log_level_parse(const char *, enum log_level *);

void log_msg(enum log_level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
