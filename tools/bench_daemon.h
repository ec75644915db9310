/*
 * bench_daemon.h: what the parts of `sinkd-bench daemon` share.
 *
 * bench_daemon.c	options, the engine alone, the scenario table
 * bench_dsrv.c		a sinkd of our own on a private socket and database
 * bench_dconn.c	one client connection: requests out, replies in,
 *			each token's arrival time and the gap before it
 * bench_dscen.c	the sessions and prefill scenarios
 * bench_dstore.c	the import/fork and snapshot scenarios
 *
 * Everything runs on one thread: connections are polled together and
 * every time is opt_now() when the bytes were read.
 */
#ifndef SINKD_BENCH_DAEMON_H
#define SINKD_BENCH_DAEMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define DB_PROMPT "Once upon a time"
#define DB_MAX_SESS 64

enum {
	DB_SINGLE = 1, DB_SESSIONS = 2, DB_PREFILL = 4, DB_IMPORT = 8,
	DB_SNAPSHOT = 16
};

struct dopts {
	const char *model, *sinkd;
	long n_tokens, threads, reps, cache, prefill, import_mib;
	long chunk, max_batch;	/* sinkd's --chunk, --max-batch; 0: its own */
	long share;		/* sinkd's --prefill-share; 0: its own */
	long store_nice;	/* sinkd's --store-nice; -1: its own */
	long sess[8];
	int n_sess;
	unsigned scenarios;
	double engine_tps;	/* the engine alone, once measured; else 0 */
};

/* A sinkd of our own: its process, its directory, socket and database. */
struct dsrv {
	pid_t pid;
	char dir[64], sock[96], db[96];
};

int dsrv_start(struct dsrv *, const struct dopts *, char *cause);
void dsrv_stop(struct dsrv *);

/* One gap between two tokens of the same turn: when it ended, how long. */
struct dgap {
	double t, gap;
};

struct dconn {
	int fd;
	uint8_t *buf;
	size_t len, cap;
	double t_send;		/* of the last request */
	double t_first, t_last;	/* first and last token of the last turn */
	long tokens;		/* all turns */
	long turn_tokens;	/* this turn */
	struct dgap *gaps;
	long n_gaps, gaps_cap;
	int sent;		/* requests so far */
	int finals;		/* final replies so far: ok, session, done */
	double t_final;		/* when the last one came */
	int keep_data;		/* collect data messages (an export) */
	uint8_t *data;
	size_t data_len, data_cap;
};

/* n connections closed, as dconn_close may take them. */
void dconn_init(struct dconn *, int n);
int dconn_open(struct dconn *, const char *sock, char *cause);
void dconn_close(struct dconn *);
/* Frames out (written whole) and sets t_send. */
int dconn_send(struct dconn *, struct proto_out *, char *cause);
/* Reads what is there; -1 on an error reply or a closed connection. */
int dconn_read(struct dconn *, char *cause);
/* Reads c until it has had `finals` final replies (60 s at most). */
int dconn_wait(struct dconn *, int finals, char *cause);
/* Polls the n connections (fd >= 0) up to ms and reads the ready ones. */
int dconn_pump(struct dconn *, int n, int ms, char *cause);
/* Requests; each adds one final reply. */
int dconn_create(struct dconn *, const char *name, long cache, char *cause);
int dconn_complete(struct dconn *, const char *name, const char *text,
    long max_tokens, char *cause);
int dconn_feed(struct dconn *, const char *name, const char *text,
    char *cause);
int dconn_delete(struct dconn *, const char *name, char *cause);
/* Tokens after the first over the time since the first (one turn). */
double dconn_decode_rate(const struct dconn *);
/* create + complete, and waits for both. */
int dconn_run_turn(struct dconn *, const char *name, long cache, long n,
    char *cause);

/* Percentiles of gaps, in seconds. */
struct dpct {
	long n;
	double p50, p99, max;
};
/*
 * The gaps of n_conns connections whose span [t - gap, t] overlaps one
 * of the windows [wins[2i], wins[2i + 1]] (inside), or none (!inside).
 */
struct dpct dpct_window(const struct dconn *, int n_conns,
    const double *wins, int n_wins, int inside);
/* Percentiles of v (sorted in place). */
struct dpct dpct_of(double *v, long n);

/* Text of at least n tokens of this model; the caller frees it. */
char *dtext_tokens(const struct dopts *, long n, long *got, char *cause);
/* KV bytes one token takes in a session with f32 storage. */
int dkv_token_bytes(const struct dopts *, size_t *out, char *cause);

/*
 * k streams: sessions PREFIX0.. created, each turn n tokens.  Start sends
 * every first turn; step reads for up to ms and, while `more`, starts a
 * new turn on each stream that finished one.  *busy: streams in a turn.
 */
int dstreams_start(struct dconn *, int k, const char *sock,
    const char *prefix, long cache, long n, char *cause);
int dstreams_step(struct dconn *, int k, const char *prefix, long n,
    int more, int ms, int *busy, char *cause);
/* Streams alone until each has done `turns` turns; then closed. */
struct dpct dstreams_alone(const char *sock, int k, const char *prefix,
    long cache, long n, int turns, char *cause, int *rc);
void dconns_close(struct dconn *, int k);
/* a / b as "1.23x", or "-" when b is 0: a ratio of nothing. */
const char *dratio(char *buf, size_t len, double a, double b);
/* "  LABEL  gaps p50 p99 max" in milliseconds. */
void dpct_row(const char *label, struct dpct);

int dscen_sessions(struct dopts *, char *cause);
int dscen_prefill(struct dopts *, char *cause);
int dscen_import(struct dopts *, char *cause);
int dscen_snapshot(struct dopts *, char *cause);
int dscen_single(struct dopts *, char *cause);
/* The engine alone: decode tok/s of a greedy loop (also sets engine_tps). */
int dengine_run(struct dopts *, double *first, double *tps, double *p50,
    double *p99, char *cause);

#endif
