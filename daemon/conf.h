/*
 * conf: the daemon's settings, from sinkd.conf and the command line
 * (which wins).  One table lists every setting once: its option name
 * (also its config-file key), its type, range and help line, so the two
 * sources, --help and sinkd.conf(5) cannot drift apart.
 */
#ifndef SINKD_CONF_H
#define SINKD_CONF_H

#include <stdint.h>
#include <stdio.h>

#include "log.h"

struct conf {
	char *model, *socket, *config, *log_file, *group, *chat_template;
	long threads, log_level, max_batch, chunk, prefill_share, store_nice;
	long max_sessions, max_clients, max_frame, max_tokens, max_prompt;
	long max_queue, max_output;
	long max_memory, db_max_size;
	char *db;
	long cache, sinks;
	char *mode, *kv;
	int check_only, daemonize, check_db;
};

/* Defaults; socket and config resolved from the environment. */
void conf_defaults(struct conf *);
void conf_free(struct conf *);
/*
 * Reads argv, and the config file it names (-c) or the default one if
 * it exists.  0 to run, 1 when --help or --version was printed, -1 with
 * cause on a bad setting (naming the option or file:line).
 */
int conf_load(struct conf *, int argc, char **argv, char *cause);
void conf_usage(FILE *);

struct seq_opts;
struct model;
/* The cache options of a new session before its request's own. */
void conf_seq_opts(const struct conf *, struct seq_opts *);
/*
 * Whether new sessions could run on this model with these defaults, as
 * a session's creation would check them: 0, or -1 with cause.
 */
int conf_check_model(const struct conf *, const struct model *,
    char *cause);

#endif
