/*
 * log: see log.h.  One mutex around each line, so lines from the loop
 * and the workers never interleave.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "err.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_file;		/* NULL: stderr */
static char *log_path;
static enum log_level log_max = LOG_INFO;
static int log_journal;		/* journald reads "<N>" prefixes */

static const char *const level_names[] = { "error", "warn", "info",
	"debug" };
static const int level_prio[] = { 3, 4, 6, 7 };

int
log_level_parse(const char *s, enum log_level *l)
{
	size_t i;

	for (i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*l = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int
log_open(const char *path, enum log_level level, char *cause)
{
	FILE *f = NULL;

	if (path != NULL && (f = fopen(path, "a")) == NULL)
		return err_set(cause, "log file %s: %s", path, strerror(errno));
	pthread_mutex_lock(&log_lock);
	if (log_file != NULL)
		fclose(log_file);
	free(log_path);
	log_file = f;
	log_path = path != NULL ? strdup(path) : NULL;
	log_max = level;
	log_journal = path == NULL && getenv("JOURNAL_STREAM") != NULL;
	pthread_mutex_unlock(&log_lock);
	return 0;
}

int
log_reopen(char *cause)
{
	char *path;
	int rc;

	if (log_path == NULL)
		return 0;
	if ((path = strdup(log_path)) == NULL)
		return err_set(cause, "out of memory");
	rc = log_open(path, log_max, cause);
	free(path);
	return rc;
}

void
log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_file != NULL)
		fclose(log_file);
	free(log_path);
	log_file = NULL;
	log_path = NULL;
	pthread_mutex_unlock(&log_lock);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	FILE *f;
	char stamp[32];
	struct tm tm;
	time_t now;
	va_list ap;

	if (level > log_max)
		return;
	pthread_mutex_lock(&log_lock);
	f = log_file != NULL ? log_file : stderr;
	if (log_journal)
		fprintf(f, "<%d>", level_prio[level]);
	else {
		now = time(NULL);
		strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S",
		    localtime_r(&now, &tm));
		fprintf(f, "%s sinkd[%s]: ", stamp, level_names[level]);
	}
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	fflush(f);
	pthread_mutex_unlock(&log_lock);
}
