/*
 * sink: the shell's client of sinkd.  This file owns the command line:
 * the subcommand table, the options (each in a group that says which
 * subcommands take it), their checks, usage() (kept identical to the
 * SYNOPSIS of sink(1): tests/test_client.sh compares them), and main().
 *
 * Options before the first argument apply to any subcommand.  When that
 * argument is not a subcommand's name, everything from it on is the text
 * of a chat turn, dashes and all: `sink -- ls` sends the word "ls".
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "err.h"
#include "intr.h"

static const struct cmd_entry cmd_table[] = {
	{ NULL, "[-s NAME] [TEXT...]", CMD_O_SESSION | CMD_O_TURN |
	    CMD_O_NOCREATE | CMD_O_SAMPLE, 0, -1, CMD_A_TEXT, NULL, cmd_say },
	{ "chat", "chat [-s NAME]", CMD_O_SESSION | CMD_O_TURN |
	    CMD_O_NOCREATE | CMD_O_SAMPLE, 0, 0, CMD_A_NAMES, NULL,
	    cmd_chat },
	{ "complete", "complete [-s NAME] [TEXT...]", CMD_O_SESSION |
	    CMD_O_TURN | CMD_O_NOCREATE | CMD_O_SAMPLE, 0, -1, CMD_A_TEXT,
	    NULL, cmd_complete },
	{ "feed", "feed [-s NAME] < FILE", CMD_O_SESSION | CMD_O_NOCREATE,
	    0, 0, CMD_A_NAMES, NULL, cmd_feed },
	{ "new", "new NAME [--system TEXT] [--template NAME] [--mode M] "
	    "[--cache N] [--sinks N] [--kv f32|f16]", CMD_O_CREATE | CMD_O_SAMPLE, 1, 1, CMD_A_NAMES,
	    "a session name", cmd_new },
	{ "ls", "ls", 0, 0, 0, CMD_A_NAMES, NULL, cmd_ls },
	{ "show", "show [NAME] [--turns N]", CMD_O_SESSION | CMD_O_SHOW, 0, 1,
	    CMD_A_NAMES, NULL, cmd_show },
	{ "log", "log [NAME] [--from N] [--turns N]", CMD_O_SESSION |
	    CMD_O_SHOW | CMD_O_LOG, 0, 1, CMD_A_NAMES, NULL, cmd_log },
	{ "rm", "rm NAME...", 0, 1, -1, CMD_A_NAMES, "a session name",
	    cmd_rm },
	{ "reset", "reset [NAME]", CMD_O_SESSION, 0, 1, CMD_A_NAMES, NULL,
	    cmd_reset },
	{ "rebuild", "rebuild [NAME]", CMD_O_SESSION, 0, 1, CMD_A_NAMES, NULL,
	    cmd_rebuild },
	{ "fork", "fork NAME NEW", 0, 2, 2, CMD_A_NAMES,
	    "two session names: NAME and NEW", cmd_fork },
	{ "export", "export [NAME] [-o FILE]", CMD_O_SESSION | CMD_O_OUTPUT,
	    0, 1, CMD_A_NAMES, NULL, cmd_export },
	{ "import", "import FILE [NAME]", 0, 1, 2, CMD_A_FILE,
	    "a file made by sink export (- for stdin)", cmd_import },
	{ "cancel", "cancel [-s NAME]", CMD_O_SESSION, 0, 0, CMD_A_NAMES,
	    NULL, cmd_cancel },
	{ "status", "status", 0, 0, 0, CMD_A_NAMES, NULL, cmd_status },
	{ "templates", "templates", 0, 0, 0, CMD_A_NAMES, NULL,
	    cmd_templates },
};
#define N_CMDS (sizeof cmd_table / sizeof cmd_table[0])

enum {
	O_JSON = 256, O_TEMP, O_TOP_K, O_TOP_P, O_MIN_P, O_REPEAT, O_SEED,
	O_STOP, O_MAX_INPUT, O_NO_CREATE, O_SYSTEM, O_SINKS, O_CACHE, O_MODE,
	O_KV, O_TURNS, O_FROM, O_VERSION, O_TEMPLATE
};

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, 'S' },
	{ "session", required_argument, NULL, 's' },
	{ "json", no_argument, NULL, O_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, O_VERSION },
	{ "max-tokens", required_argument, NULL, 'n' },
	{ "temp", required_argument, NULL, O_TEMP },
	{ "top-k", required_argument, NULL, O_TOP_K },
	{ "top-p", required_argument, NULL, O_TOP_P },
	{ "min-p", required_argument, NULL, O_MIN_P },
	{ "repeat-penalty", required_argument, NULL, O_REPEAT },
	{ "seed", required_argument, NULL, O_SEED },
	{ "stop", required_argument, NULL, O_STOP },
	{ "max-input", required_argument, NULL, O_MAX_INPUT },
	{ "no-create", no_argument, NULL, O_NO_CREATE },
	{ "system", required_argument, NULL, O_SYSTEM },
	{ "template", required_argument, NULL, O_TEMPLATE },
	{ "sinks", required_argument, NULL, O_SINKS },
	{ "cache", required_argument, NULL, O_CACHE },
	{ "mode", required_argument, NULL, O_MODE },
	{ "kv", required_argument, NULL, O_KV },
	{ "turns", required_argument, NULL, O_TURNS },
	{ "from", required_argument, NULL, O_FROM },
	{ "output", required_argument, NULL, 'o' },
	{ NULL, 0, NULL, 0 }
};
#define N_OPTS (sizeof long_opts / sizeof long_opts[0] - 1)
/* "+": options end at the first argument; ":": report missing values. */
#define SHORT_OPTS "+:S:s:n:o:qvh"

static void
usage(FILE *f)
{
	size_t i;

	for (i = 0; i < N_CMDS; i++)
		fprintf(f, "%s sink [options] %s\n", i == 0 ? "usage:" :
		    "      ", cmd_table[i].usage);
	fprintf(f, "\n"
"TEXT, and stdin when it is not a terminal, is one chat turn in session NAME\n"
"(\"default\" unless -s; created on first use); the reply streams to stdout.\n"
"With neither, at a terminal, sink is sink chat: lines are edited as in a\n"
"shell, with a history in $XDG_STATE_HOME/sinkd/chat_history; if sinkd\n"
"restarts, chat waits for it (up to 30 s) and sends the line again.\n"
"Sessions outlive sinkd in its database: log prints a transcript, fork copies\n"
"a session, export and import move one between sinkds (of the same model),\n"
"rebuild makes a new cache from the transcript (for a damaged session).\n"
"  -s, --session NAME   the session (default: default)\n"
"  -S, --socket PATH    sinkd's socket (default: $SINKD_SOCKET, then\n"
"                       $XDG_RUNTIME_DIR/sinkd/sock, /tmp/sinkd-UID/sock)\n"
"  --json               print each message from the daemon as a JSON line\n"
"                       (log: each turn as {\"n\", \"role\", \"text\"})\n"
"  -n, --max-tokens N   tokens to generate at most\n"
"  --temp T             temperature (0 = greedy)\n"
"  --top-k K, --top-p P, --min-p P, --repeat-penalty R, --seed S\n"
"                       sampling; with new, these and -n are the session's\n"
"                       defaults, otherwise they hold for this turn only\n"
"  --stop STR           end the reply at STR (repeatable)\n"
"  --max-input BYTES    largest stdin, or chat line, to send (default 1M)\n"
"  --no-create          fail instead of creating a missing session\n"
"  --system TEXT        (new) system prompt, kept in the cache for good\n"
"  --template NAME      (new) the chat template its turns are written in\n"
"                       (sink templates lists them; default: sinkd's)\n"
"  --mode M             (new) streaming, window, recompute or dense\n"
"  --cache N            (new) cache size in tokens, sinks included\n"
"  --sinks N            (new) attention sinks kept\n"
"  --kv f32|f16         (new) cache storage\n"
"  --turns N            (show) recent turns to show (default 4);\n"
"                       (log) only the last N turns\n"
"  --from N             (log) start at turn N (turns count from 0)\n"
"  -o, --output FILE    (export) write FILE (mode 0600) instead of stdout\n"
"  -q, --quiet          no summaries or notes\n"
"  -v, --verbose        token counts and speeds after each reply\n"
"  -h, --help           this help\n"
"  --version            print the version\n");
}

/* Which subcommands take each option (0: all of them). */
static unsigned
opt_group(int val)
{
	switch (val) {
	case 's':
		return CMD_O_SESSION;
	case 'n': case O_TEMP: case O_TOP_K: case O_TOP_P: case O_MIN_P:
	case O_REPEAT: case O_SEED:
		return CMD_O_SAMPLE;
	case O_STOP: case O_MAX_INPUT:
		return CMD_O_TURN;
	case O_NO_CREATE:
		return CMD_O_NOCREATE;
	case O_SYSTEM: case O_SINKS: case O_CACHE: case O_MODE: case O_KV:
	case O_TEMPLATE:
		return CMD_O_CREATE;
	case O_TURNS:
		return CMD_O_SHOW;
	case O_FROM:
		return CMD_O_LOG;
	case 'o':
		return CMD_O_OUTPUT;
	default:
		return 0;
	}
}

static int
bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("sink: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see sink --help)\n", stderr);
	return EXIT_USAGE;
}

static int
num_long(const char *opt, const char *arg, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v < min || v > max)
		return bad_usage("%s takes a whole number from %ld to %ld, not "
		    "'%s'", opt, min, max, arg);
	*out = v;
	return 0;
}

static int
num_double(const char *opt, const char *arg, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || !isfinite(v) ||
	    v < 0 || v > max)
		return bad_usage("%s takes a number from 0 to %g, not '%s'",
		    opt, max, arg);
	*out = v;
	return 0;
}

static int
num_u64(const char *opt, const char *arg, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || *arg == '-')
		return bad_usage("%s takes a whole number from 0 to 2^64-1, "
		    "not '%s'", opt, arg);
	*out = v;
	return 0;
}

/* A byte count with an optional K, M or G (binary) suffix. */
static int
num_size(const char *opt, const char *arg, size_t *out)
{
	unsigned long long v, mul = 1;
	char *end;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (*end == 'k' || *end == 'K')
		mul = 1ull << 10;
	else if (*end == 'm' || *end == 'M')
		mul = 1ull << 20;
	else if (*end == 'g' || *end == 'G')
		mul = 1ull << 30;
	if (mul > 1)
		end++;
	if (errno != 0 || end == arg || *end != '\0' || *arg == '-' ||
	    v == 0 || v > (1ull << 30) / mul)
		return bad_usage("%s takes a size from 1 byte to 1G, not '%s'",
		    opt, arg);
	*out = (size_t)(v * mul);
	return 0;
}

static int
check_name(const char *what, const char *name)
{
	if (proto_session_name_ok(name, strlen(name)))
		return 0;
	return bad_usage("%s '%s' is not a session name: 1 to %d letters, "
	    "digits, '-', '_' or '.', not starting with '.'", what, name,
	    PROTO_NAME_MAX);
}

static int
one_of(const char *opt, const char *arg, const char *const *ok,
    const char **out)
{
	const char *const *p;

	for (p = ok; *p != NULL; p++)
		if (strcmp(arg, *p) == 0) {
			*out = *p;
			return 0;
		}
	return bad_usage("unknown %s '%s'", opt, arg);
}

static int
set_text_opt(struct cmd_opts *o, int val, char *arg)
{
	static const char *const modes[] = { "streaming", "window",
		"recompute", "dense", NULL };
	static const char *const kvs[] = { "f32", "f16", NULL };

	switch (val) {
	case O_STOP:
		if (o->n_stop == CMD_MAX_STOP)
			return bad_usage("at most %d --stop strings",
			    CMD_MAX_STOP);
		if (*arg == '\0' || !proto_utf8_valid((uint8_t *)arg,
		    strlen(arg)))
			return bad_usage("--stop takes a non-empty UTF-8 text");
		o->stop[o->n_stop++] = arg;
		return 0;
	case O_SYSTEM:
		cmd_fix_utf8(arg, strlen(arg), "--system");
		o->system = arg;
		return 0;
	case O_TEMPLATE:
		/* The daemon knows the names: it names them on a bad one. */
		if (*arg == '\0' || strlen(arg) > 64)
			return bad_usage("--template takes a name from 'sink "
			    "templates'");
		o->tmpl = arg;
		return 0;
	case O_MODE:
		return one_of("--mode", arg, modes, &o->mode);
	case O_KV:
		return one_of("--kv", arg, kvs, &o->kv);
	default:
		if (check_name("-s", arg) != 0)
			return EXIT_USAGE;
		o->session = arg;
		return 0;
	}
}

/* One option's value into o: 0, or EXIT_USAGE after saying why. */
static int
set_opt(struct cmd_opts *o, int val, char *arg)
{
	switch (val) {
	case 'S':
		o->socket = arg;
		return 0;
	case 'n':
		return num_long("-n", arg, 1, 1L << 30, &o->max_tokens);
	case O_TEMP:
		return num_double("--temp", arg, 1000, &o->temp);
	case O_TOP_K:
		return num_long("--top-k", arg, 0, 1L << 30, &o->top_k);
	case O_TOP_P:
		return num_double("--top-p", arg, 1, &o->top_p);
	case O_MIN_P:
		return num_double("--min-p", arg, 1, &o->min_p);
	case O_REPEAT:
		return num_double("--repeat-penalty", arg, 1000,
		    &o->repeat_penalty);
	case O_SEED:
		o->has_seed = 1;
		return num_u64("--seed", arg, &o->seed);
	case O_MAX_INPUT:
		return num_size("--max-input", arg, &o->max_input);
	case O_SINKS:
		return num_long("--sinks", arg, 0, 1L << 30, &o->sinks);
	case O_CACHE:
		return num_long("--cache", arg, 1, 1L << 30, &o->cache);
	case O_TURNS:
		return num_long("--turns", arg, 0, 1000000, &o->turns);
	case O_FROM:
		return num_long("--from", arg, 0, LONG_MAX, &o->from);
	case 'o':
		if (*arg == '\0')
			return bad_usage("-o takes a file name");
		o->output = arg;
		return 0;
	case O_JSON:
		o->json = 1;
		return 0;
	case O_NO_CREATE:
		o->no_create = 1;
		return 0;
	case 'q':
		o->quiet = 1;
		o->verbose = 0;
		return 0;
	case 'v':
		o->verbose = 1;
		o->quiet = 0;
		return 0;
	default:
		return set_text_opt(o, val, arg);
	}
}

static const char *
opt_name(int val, char *buf, size_t size)
{
	size_t i;

	for (i = 0; i < N_OPTS; i++)
		if (long_opts[i].val == val)
			snprintf(buf, size, "--%s", long_opts[i].name);
	return buf;
}

/* A getopt error: unknown option or missing value. */
static int
getopt_error(int c, char **argv)
{
	char buf[64];

	if (c == ':') {
		if (optopt != 0)
			return bad_usage("%s needs a value",
			    opt_name(optopt, buf, sizeof buf));
		return bad_usage("%s needs a value", argv[optind - 1]);
	}
	if (optopt != 0)
		return bad_usage("unknown option -%c", optopt);
	return bad_usage("unknown option %s", argv[optind - 1]);
}

/* The options seen, to check them against the subcommand. */
struct seen {
	int	 val[N_OPTS];
	size_t	 n;
};

static void
see(struct seen *seen, int val)
{
	size_t i;

	for (i = 0; i < seen->n; i++)
		if (seen->val[i] == val)
			return;
	if (seen->n < N_OPTS)
		seen->val[seen->n++] = val;
}

/*
 * getopt_long over argv, from argv[1] on.  0, -1 when the help or the
 * version was printed, or EXIT_USAGE.
 */
static int
parse_opts(struct cmd_opts *o, int argc, char **argv, int permute,
    struct seen *seen)
{
	int c, r;

	/* GNU: start over, reading SHORT_OPTS's '+' again. */
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, permute ? SHORT_OPTS + 1 :
	    SHORT_OPTS, long_opts, NULL)) != -1) {
		if (c == '?' || c == ':')
			return getopt_error(c, argv);
		if (c == 'h') {
			usage(stdout);
			return -1;
		}
		if (c == O_VERSION) {
			printf("sink %s (protocol %d.%d)\n", PACKAGE_VERSION,
			    PROTO_MAJOR, PROTO_MINOR);
			return -1;
		}
		if ((r = set_opt(o, c, optarg)) != 0)
			return r;
		see(seen, c);
	}
	return 0;
}

static const struct cmd_entry *
find_cmd(const char *name)
{
	size_t i;

	for (i = 1; i < N_CMDS; i++)
		if (strcmp(cmd_table[i].name, name) == 0)
			return &cmd_table[i];
	return NULL;
}

/* The options seen fit e, and so do its arguments. */
static int
check_cmd(const struct cmd_entry *e, const struct seen *seen,
    const struct cmd_opts *o)
{
	const char *name = e->name != NULL ? e->name : "TEXT";
	char buf[64];
	size_t i;
	int j;

	for (i = 0; i < seen->n; i++) {
		if ((opt_group(seen->val[i]) & ~e->opts) != 0)
			return bad_usage("%s does not apply to sink %s",
			    opt_name(seen->val[i], buf, sizeof buf), name);
	}
	if (o->argc < e->min_args)
		return bad_usage("sink %s needs %s", name, e->need);
	if (e->max_args >= 0 && o->argc > e->max_args)
		return bad_usage("too many arguments for sink %s: '%s'", name,
		    o->argv[e->max_args]);
	if (e->args == CMD_A_TEXT)
		return 0;
	for (j = e->args == CMD_A_FILE; j < o->argc; j++)
		if (check_name("the name", o->argv[j]) != 0)
			return EXIT_USAGE;
	return 0;
}

/* The whole command line: 0, -1 (help printed), or EXIT_USAGE. */
static int
parse(struct cmd_opts *o, int argc, char **argv, const struct cmd_entry **ep)
{
	const struct cmd_entry *e = &cmd_table[0];
	struct seen seen;
	int r, first;

	seen.n = 0;
	if ((r = parse_opts(o, argc, argv, 0, &seen)) != 0)
		return r;
	first = optind;
	/* After "--" even a subcommand's name is text. */
	if (first < argc && strcmp(argv[first - 1], "--") != 0 &&
	    (e = find_cmd(argv[first])) != NULL) {
		argc -= first;
		argv += first;
		if ((r = parse_opts(o, argc, argv, e->args != CMD_A_TEXT,
		    &seen)) != 0)
			return r;
		first = optind;
	} else
		e = &cmd_table[0];
	o->argc = argc - first;
	o->argv = argv + first;
	*ep = e;
	return check_cmd(e, &seen, o);
}

static void
opts_init(struct cmd_opts *o)
{
	memset(o, 0, sizeof *o);
	o->max_tokens = o->cache = o->sinks = o->top_k = o->turns = -1;
	o->from = -1;
	o->temp = o->top_p = o->min_p = o->repeat_penalty = -1;
	o->max_input = CMD_MAX_INPUT;
}

int
main(int argc, char **argv)
{
	const struct cmd_entry *e;
	struct cmd_ctx c;
	char cause[ERR_LEN];
	int r;

	memset(&c, 0, sizeof c);
	opts_init(&c.o);
	if ((r = parse(&c.o, argc, argv, &e)) != 0)
		return r == -1 ? EXIT_OK : r;
	/* Nothing to send and a person at a terminal: a conversation. */
	if (e->name == NULL && c.o.argc == 0 && isatty(STDIN_FILENO) &&
	    isatty(STDOUT_FILENO))
		e = find_cmd("chat");
	if (c.o.socket != NULL)
		snprintf(c.socket, sizeof c.socket, "%s", c.o.socket);
	else if (conn_default_path(c.socket, sizeof c.socket, cause) == -1) {
		fprintf(stderr, "sink: %s\n", cause);
		return EXIT_FAIL;
	}
	out_init(&c.out, c.o.json);
	c.out.quiet = c.o.quiet;
	c.out.verbose = c.o.verbose;
	c.out.session = cmd_session(&c);
	c.out.socket = c.socket;
	if (intr_init(cause) == -1) {
		fprintf(stderr, "sink: %s\n", cause);
		return EXIT_FAIL;
	}
	r = e->exec(&c);
	cmd_disconnect(&c);
	return r;
}
