/*
 * conf: see conf.h.  sinkd.conf holds "key = value" lines; '#' starts
 * a comment; keys are the long option names.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "mem.h"
#include "path.h"
#include "proto.h"
#include "seq.h"

/*
 * C_SIZE: bytes, with an optional K, M, G or T suffix (powers of 1024).
 * C_MODE and C_KV are strings that must name a cache mode or KV type.
 */
enum conf_type { C_STR, C_LONG, C_LEVEL, C_SIZE, C_MODE, C_KV };

struct conf_opt {
	const char *name;
	int short_opt;
	enum conf_type type;
	size_t off;
	long min, max;
	const char *help;
};

#define OFF(f) offsetof(struct conf, f)

static const struct conf_opt conf_opts[] = {
	{ "model", 'm', C_STR, OFF(model), 0, 0,
	    "GGUF model file (required)" },
	{ "socket", 's', C_STR, OFF(socket), 0, 0,
	    "listening socket (default $SINKD_SOCKET, then "
	    "$XDG_RUNTIME_DIR/sinkd/sock)" },
	{ "threads", 't', C_LONG, OFF(threads), 1, 512,
	    "compute threads (default: cores)" },
	{ "max-batch", 0, C_LONG, OFF(max_batch), 1, 256,
	    "generating sessions one forward pass takes at once (default "
	    "16); the batch's memory is sized for it at startup" },
	{ "chunk", 0, C_LONG, OFF(chunk), 1, 4096,
	    "prompt tokens one forward pass takes, at most (default 64)" },
	{ "prefill-share", 0, C_LONG, OFF(prefill_share), 1, 100000,
	    "while other sessions generate, how much longer (percent) a "
	    "prompt being read may make their steps (default 50)" },
	{ "store-nice", 0, C_LONG, OFF(store_nice), 0, 19,
	    "niceness the store thread (snapshots, imports, forks) adds "
	    "to the daemon's, leaving the cores to the streams (default "
	    "10; 0: none)" },
	{ "log", 0, C_STR, OFF(log_file), 0, 0,
	    "log to this file instead of stderr (reopened on SIGHUP)" },
	{ "log-level", 0, C_LEVEL, OFF(log_level), 0, 0,
	    "error, warn, info (default) or debug" },
	{ "group", 'g', C_STR, OFF(group), 0, 0,
	    "also serve this group's members (socket mode 0660)" },
	{ "db", 0, C_STR, OFF(db), 0, 0,
	    "the conversations' database (default $XDG_STATE_HOME/sinkd/"
	    "sinkd.db; ':memory:' keeps nothing)" },
	{ "db-max-size", 0, C_SIZE, OFF(db_max_size), 0, LONG_MAX,
	    "largest the database may grow, bytes (default 0: no limit)" },
	{ "max-sessions", 0, C_LONG, OFF(max_sessions), 1, 1000000,
	    "sessions held in memory at once; the least recently used "
	    "idle ones wait in the database (default 256)" },
	{ "max-memory", 0, C_SIZE, OFF(max_memory), 0, LONG_MAX,
	    "bytes of KV cache held in memory at once, likewise (default: "
	    "half the RAM; 0: no limit)" },
	{ "max-clients", 0, C_LONG, OFF(max_clients), 1, 100000,
	    "connections at most (default 64)" },
	{ "max-frame", 0, C_LONG, OFF(max_frame), 1024, 16 << 20,
	    "largest request frame in bytes (default 1 MiB)" },
	{ "max-tokens", 0, C_LONG, OFF(max_tokens), 1, 1 << 24,
	    "tokens one request may generate (default 4096)" },
	{ "max-prompt", 0, C_LONG, OFF(max_prompt), 1, 64 << 20,
	    "bytes of text in one request (default 1 MiB)" },
	{ "max-queue", 0, C_LONG, OFF(max_queue), 0, 1024,
	    "requests waiting per session before 'busy' (default 4)" },
	{ "max-output", 0, C_LONG, OFF(max_output), 4096, 1L << 30,
	    "bytes queued to one client before its request is cancelled "
	    "(default 4 MiB)" },
	{ "cache", 0, C_LONG, OFF(cache), 2, 1 << 26,
	    "default cache size of new sessions, tokens (default 1024)" },
	{ "sinks", 0, C_LONG, OFF(sinks), 0, 1 << 26,
	    "default attention sinks of new sessions (default 4)" },
	{ "mode", 0, C_MODE, OFF(mode), 0, 0,
	    "default cache mode: streaming, window, recompute, dense" },
	{ "kv", 0, C_KV, OFF(kv), 0, 0, "default KV storage: f32 or f16" },
	{ "chat-template", 0, C_STR, OFF(chat_template), 0, 0,
	    "chat format of new sessions, a name 'sink templates' lists "
	    "(default: the model's tokenizer.chat_template as recognised)" },
};

#define N_OPTS (sizeof conf_opts / sizeof conf_opts[0])

void
conf_defaults(struct conf *c)
{
	memset(c, 0, sizeof *c);
	c->threads = sysconf(_SC_NPROCESSORS_ONLN);
	c->log_level = LOG_INFO;
	c->max_batch = 16;
	c->chunk = 64;
	c->prefill_share = 50;
	c->store_nice = 10;
	c->max_sessions = 256;
	c->max_memory = (long)mem_half_ram();
	c->max_clients = 64;
	c->max_frame = 1 << 20;
	c->max_tokens = 4096;
	c->max_prompt = 1 << 20;
	c->max_queue = 4;
	c->max_output = 4 << 20;
	c->cache = 1024;
	c->sinks = 4;
}

void
conf_free(struct conf *c)
{
	size_t i;

	for (i = 0; i < N_OPTS; i++) {
		if (conf_opts[i].type == C_STR || conf_opts[i].type == C_MODE ||
		    conf_opts[i].type == C_KV)
			free(*(char **)(void *)((char *)c + conf_opts[i].off));
	}
	free(c->config);
	memset(c, 0, sizeof *c);
}

void
conf_usage(FILE *f)
{
	size_t i;
	char name[40];

	fprintf(f, "usage: sinkd -m MODEL [--socket PATH] [-t THREADS] "
	    "[-c CONFIG] [-n] [-d] [options]\n"
	    "  -c, --config FILE     settings file (default "
	    "$XDG_CONFIG_HOME/sinkd/sinkd.conf if present)\n"
	    "  -n, --check           check the settings and the model, then "
	    "exit\n"
	    "  -d, --daemon          detach from the terminal\n"
	    "      --check-db        verify the database (--db) offline, "
	    "then exit\n");
	for (i = 0; i < N_OPTS; i++) {
		if (conf_opts[i].short_opt != 0)
			snprintf(name, sizeof name, "-%c, --%s",
			    conf_opts[i].short_opt, conf_opts[i].name);
		else
			snprintf(name, sizeof name, "    --%s",
			    conf_opts[i].name);
		fprintf(f, "  %-21s %s\n", name, conf_opts[i].help);
	}
}

static int
size_parse(const char *v, long *out)
{
	static const char units[] = "KMGT";
	const char *u;
	char *end;
	long n;
	int shift = 0;

	errno = 0;
	n = strtol(v, &end, 10);
	if (end == v || errno != 0 || n < 0)
		return -1;
	if (*end != '\0') {
		if ((u = strchr(units, toupper((unsigned char)*end))) == NULL ||
		    *end == '\0' || (end[1] != '\0' && strcasecmp(end + 1,
		    "iB") != 0 && strcasecmp(end + 1, "B") != 0))
			return -1;
		shift = 10 * (int)(u - units + 1);
	}
	if (shift > 0 && n > (LONG_MAX >> shift))
		return -1;
	*out = n << shift;
	return 0;
}

/* Sets one option from text; cause names `where`. */
static int
conf_set(struct conf *c, const struct conf_opt *o, const char *v,
    const char *where, char *cause)
{
	char *end, **sp;
	long n;
	enum log_level l;
	enum seq_mode mode;
	enum kv_type kv;

	switch (o->type) {
	case C_MODE:
		if (seq_mode_parse(v, &mode) != 0)
			return err_set(cause, "%s: '%s' is not a cache mode "
			    "(streaming, window, recompute, dense)", where, v);
		/* FALLTHROUGH */
	case C_KV:
		if (o->type == C_KV && seq_kv_parse(v, &kv) != 0)
			return err_set(cause, "%s: '%s' is not a KV type (f32, "
			    "f16)", where, v);
		/* FALLTHROUGH */
	case C_STR:
		sp = (char **)(void *)((char *)c + o->off);
		free(*sp);
		if ((*sp = strdup(v)) == NULL)
			return err_set(cause, "out of memory");
		return 0;
	case C_LEVEL:
		if (log_level_parse(v, &l) != 0)
			return err_set(cause, "%s: '%s' is not a log level "
			    "(error, warn, info, debug)", where, v);
		*(long *)(void *)((char *)c + o->off) = (long)l;
		return 0;
	case C_LONG:
		errno = 0;
		n = strtol(v, &end, 10);
		if (end == v || *end != '\0' || errno != 0 || n < o->min ||
		    n > o->max)
			return err_set(cause, "%s: '%s' is not a whole number "
			    "from %ld to %ld", where, v, o->min, o->max);
		*(long *)(void *)((char *)c + o->off) = n;
		return 0;
	case C_SIZE:
		if (size_parse(v, &n) != 0 || n < o->min || n > o->max)
			return err_set(cause, "%s: '%s' is not a size in bytes "
			    "(a whole number, K, M, G or T after it)", where, v);
		*(long *)(void *)((char *)c + o->off) = n;
		return 0;
	}
	return err_set(cause, "%s: bad option", where);
}

static const struct conf_opt *
find_opt(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < N_OPTS; i++) {
		if (strlen(conf_opts[i].name) == len &&
		    strncmp(conf_opts[i].name, name, len) == 0)
			return &conf_opts[i];
	}
	return NULL;
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* One "key = value" line of the config file. */
static int
conf_line(struct conf *c, char *line, const char *where, char *cause)
{
	const struct conf_opt *o;
	char *eq, *key, *val;

	if ((eq = strchr(line, '#')) != NULL)
		*eq = '\0';
	line = trim(line);
	if (*line == '\0')
		return 0;
	if ((eq = strchr(line, '=')) == NULL)
		return err_set(cause, "%s: expected 'key = value'", where);
	*eq = '\0';
	key = trim(line);
	val = trim(eq + 1);
	if ((o = find_opt(key, strlen(key))) == NULL)
		return err_set(cause, "%s: unknown setting '%s'", where, key);
	return conf_set(c, o, val, where, cause);
}

static int
conf_file(struct conf *c, const char *path, int must_exist, char *cause)
{
	char line[4096], where[1024];
	FILE *f = fopen(path, "r");
	int n = 0, rc = 0;

	if (f == NULL) {
		if (!must_exist && errno == ENOENT)
			return 0;
		return err_set(cause, "config %s: %s", path, strerror(errno));
	}
	while (rc == 0 && fgets(line, sizeof line, f) != NULL) {
		n++;
		snprintf(where, sizeof where, "%s:%d", path, n);
		if (strchr(line, '\n') == NULL && !feof(f))
			rc = err_set(cause, "%s: line too long", where);
		else
			rc = conf_line(c, line, where, cause);
	}
	fclose(f);
	return rc;
}

/* $XDG_CONFIG_HOME/sinkd/sinkd.conf, or ~/.config/sinkd/sinkd.conf. */
static void
default_config(char *buf, size_t len)
{
	const char *x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");

	if (x != NULL && *x == '/')
		snprintf(buf, len, "%s/sinkd/sinkd.conf", x);
	else if (h != NULL && *h == '/')
		snprintf(buf, len, "%s/.config/sinkd/sinkd.conf", h);
	else
		buf[0] = '\0';
}

/* $SINKD_SOCKET, $XDG_RUNTIME_DIR/sinkd/sock, or /tmp/sinkd-UID/sock. */
static int
default_socket(struct conf *c, char *cause)
{
	const char *x = getenv("XDG_RUNTIME_DIR"), *s = getenv("SINKD_SOCKET");
	char buf[512];

	if (s != NULL && *s != '\0')
		snprintf(buf, sizeof buf, "%s", s);
	else if (x != NULL && *x == '/')
		snprintf(buf, sizeof buf, "%s/sinkd/sock", x);
	else
		snprintf(buf, sizeof buf, "/tmp/sinkd-%u/sock",
		    (unsigned)geteuid());
	if ((c->socket = strdup(buf)) == NULL)
		return err_set(cause, "out of memory");
	return 0;
}

/* $XDG_STATE_HOME/sinkd/sinkd.db, or ~/.local/state/sinkd/sinkd.db. */
static int
default_db(struct conf *c, int create_dir, char *cause)
{
	const char *x = getenv("XDG_STATE_HOME"), *h = getenv("HOME");
	char buf[1024];

	if (x != NULL && *x == '/')
		snprintf(buf, sizeof buf, "%s/sinkd/sinkd.db", x);
	else if (h != NULL && *h == '/')
		snprintf(buf, sizeof buf, "%s/.local/state/sinkd/sinkd.db", h);
	else
		return err_set(cause, "no database: neither XDG_STATE_HOME nor "
		    "HOME is set; give --db PATH");
	if (create_dir && path_make_dirs(buf, cause) != 0)
		return -1;
	if ((c->db = strdup(buf)) == NULL)
		return err_set(cause, "out of memory");
	return 0;
}

static struct option *
long_options(void)
{
	struct option *lo = calloc(N_OPTS + 7, sizeof *lo);
	size_t i;

	if (lo == NULL)
		return NULL;
	for (i = 0; i < N_OPTS; i++) {
		lo[i].name = conf_opts[i].name;
		lo[i].has_arg = required_argument;
		lo[i].val = 256 + (int)i;
	}
	lo[i++] = (struct option){ "config", required_argument, NULL, 'c' };
	lo[i++] = (struct option){ "check", no_argument, NULL, 'n' };
	lo[i++] = (struct option){ "daemon", no_argument, NULL, 'd' };
	lo[i++] = (struct option){ "check-db", no_argument, NULL, 'D' };
	lo[i++] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[i++] = (struct option){ "version", no_argument, NULL, 'V' };
	return lo;
}

static const struct conf_opt *
by_short(int c)
{
	size_t i;

	for (i = 0; i < N_OPTS; i++)
		if (conf_opts[i].short_opt == c)
			return &conf_opts[i];
	return NULL;
}

/* Pass 1 finds -c, --help, --version; pass 2 applies the rest. */
static int
conf_argv(struct conf *c, int argc, char **argv, int pass,
    const struct option *lo, char *cause)
{
	const struct conf_opt *o;
	char where[64];
	int ch;

	optind = 1;
	opterr = pass == 1;
	while ((ch = getopt_long(argc, argv, "m:s:t:g:c:ndhV", lo, NULL)) !=
	    -1) {
		if (ch == '?')
			return pass == 1 ? err_set(cause, "bad usage (see "
			    "--help)") : 0;
		if (pass == 1) {
			if (ch == 'h' || ch == 'V')
				return ch;
			if (ch == 'c' && (free(c->config), c->config =
			    strdup(optarg)) == NULL)
				return err_set(cause, "out of memory");
			continue;
		}
		if (ch == 'n' || ch == 'd' || ch == 'c' || ch == 'D') {
			c->check_only |= ch == 'n';
			c->daemonize |= ch == 'd';
			c->check_db |= ch == 'D';
			continue;
		}
		o = ch >= 256 ? &conf_opts[ch - 256] : by_short(ch);
		snprintf(where, sizeof where, "--%s", o->name);
		if (conf_set(c, o, optarg, where, cause) != 0)
			return -1;
	}
	if (optind < argc)
		return err_set(cause, "unexpected argument '%s'", argv[optind]);
	return 0;
}

/* *path made absolute against the working directory (NULL stays). */
static int
absolute(char **path, char *cause)
{
	char cwd[4096], *p;
	size_t len;

	if (*path == NULL || (*path)[0] == '/')
		return 0;
	if (getcwd(cwd, sizeof cwd) == NULL)
		return err_set(cause, "getcwd: %s", strerror(errno));
	len = strlen(cwd) + strlen(*path) + 2;
	if ((p = malloc(len)) == NULL)
		return err_set(cause, "out of memory");
	snprintf(p, len, "%s/%s", cwd, *path);
	free(*path);
	*path = p;
	return 0;
}

int
conf_load(struct conf *c, int argc, char **argv, char *cause)
{
	struct option *lo = long_options();
	char def[512];
	int rc;

	if (lo == NULL)
		return err_set(cause, "out of memory");
	rc = conf_argv(c, argc, argv, 1, lo, cause);
	if (rc == 'h' || rc == 'V') {
		if (rc == 'h')
			conf_usage(stdout);
		else
			printf("sinkd %s (protocol %d.%d)\n", PACKAGE_VERSION,
			    PROTO_MAJOR, PROTO_MINOR);
		free(lo);
		return 1;
	}
	default_config(def, sizeof def);
	if (rc == 0 && (c->config != NULL || def[0] != '\0'))
		rc = conf_file(c, c->config != NULL ? c->config : def,
		    c->config != NULL, cause);
	if (rc == 0)
		rc = conf_argv(c, argc, argv, 2, lo, cause);
	free(lo);
	if (rc == 0 && c->socket == NULL)
		rc = default_socket(c, cause);
	/* -d changes to / : paths used later must not depend on the cwd. */
	if (rc == 0)
		rc = absolute(&c->socket, cause);
	if (rc == 0)
		rc = absolute(&c->log_file, cause);
	if (rc == 0 && c->db == NULL)
		rc = default_db(c, !c->check_db && !c->check_only, cause);
	if (rc == 0 && strcmp(c->db, ":memory:") != 0)
		rc = absolute(&c->db, cause);
	/* Like the socket's, the database's directory is made if need be. */
	if (rc == 0 && strcmp(c->db, ":memory:") != 0 && !c->check_db &&
	    !c->check_only)
		rc = path_make_dirs(c->db, cause);
	if (rc == 0 && c->model == NULL && !c->check_db)
		rc = err_set(cause, "no model: give -m MODEL (or model = in "
		    "sinkd.conf)");
	return rc;
}

void
conf_seq_opts(const struct conf *c, struct seq_opts *so)
{
	seq_opts_default(so);
	so->n_cache = (int32_t)c->cache;
	/* conf_set let only valid names in. */
	if (c->mode != NULL)
		seq_mode_parse(c->mode, &so->mode);
	if (c->kv != NULL)
		seq_kv_parse(c->kv, &so->kv_type);
	so->n_sink = so->mode == SEQ_STREAMING ? (int32_t)c->sinks : -1;
}

int
conf_check_model(const struct conf *c, const struct model *m, char *cause)
{
	struct seq_opts so;
	char why[ERR_LEN];

	conf_seq_opts(c, &so);
	if (seq_check_opts(m, &so, why) != 0)
		return err_set(cause, "the settings of new sessions (--cache "
		    "%ld, --sinks %ld, --mode %s, --kv %s) would fail every "
		    "turn: %s", c->cache, c->sinks, seq_mode_name(so.mode),
		    seq_kv_name(so.kv_type), why);
	return 0;
}
