/*
 * bench_dscen: the single, sessions and prefill scenarios of
 * `sinkd-bench daemon`, and the streams the other scenarios run beside
 * their disturbance.  A gap is the time between two tokens of one turn
 * as the client reads them; the first token of a turn has none, so
 * prompts and turn ends never count as gaps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_daemon.h"
#include "err.h"
#include "opt.h"

#define PREFILL_STREAMS 2

void
dconns_close(struct dconn *c, int k)
{
	int i;

	for (i = 0; i < k; i++)
		dconn_close(&c[i]);
}

const char *
dratio(char *buf, size_t len, double a, double b)
{
	if (b > 0)
		snprintf(buf, len, "%.2fx", a / b);
	else
		snprintf(buf, len, "-");
	return buf;
}

void
dpct_row(const char *label, struct dpct p)
{
	printf("  %-34s %6ld %8.2f %8.2f %8.2f\n", label, p.n, p.p50 * 1e3,
	    p.p99 * 1e3, p.max * 1e3);
}

static void
dpct_head(void)
{
	printf("  %-34s %6s %8s %8s %8s\n", "", "gaps", "p50 ms", "p99 ms",
	    "max ms");
}

int
dstreams_start(struct dconn *c, int k, const char *sock, const char *prefix,
    long cache, long n, char *cause)
{
	char name[64];
	int i;

	dconn_init(c, k);
	for (i = 0; i < k; i++) {
		snprintf(name, sizeof name, "%s%d", prefix, i);
		if (dconn_open(&c[i], sock, cause) != 0 ||
		    dconn_create(&c[i], name, cache, cause) != 0 ||
		    dconn_complete(&c[i], name, DB_PROMPT, n, cause) != 0)
			return -1;
	}
	return 0;
}

int
dstreams_step(struct dconn *c, int k, const char *prefix, long n, int more,
    int ms, int *busy, char *cause)
{
	char name[64];
	int i;

	if (dconn_pump(c, k, ms, cause) != 0)
		return -1;
	*busy = 0;
	for (i = 0; i < k; i++) {
		if (c[i].sent == c[i].finals && more) {
			snprintf(name, sizeof name, "%s%d", prefix, i);
			if (dconn_complete(&c[i], name, DB_PROMPT, n,
			    cause) != 0)
				return -1;
		}
		*busy += c[i].sent != c[i].finals;
	}
	return 0;
}

struct dpct
dstreams_alone(const char *sock, int k, const char *prefix, long cache,
    long n, int turns, char *cause, int *rc)
{
	struct dconn c[DB_MAX_SESS];
	struct dpct p = { 0 };
	int i, busy = 1, done;

	*rc = dstreams_start(c, k, sock, prefix, cache, n, cause);
	while (*rc == 0 && busy > 0) {
		/* create + the first turn are two finals, each turn one more */
		for (done = 1, i = 0; i < k; i++)
			done &= c[i].finals >= turns + 1;
		*rc = dstreams_step(c, k, prefix, n, !done, 100, &busy, cause);
	}
	if (*rc == 0)
		p = dpct_window(c, k, NULL, 0, 0);
	dconns_close(c, k);
	return p;
}

/* ---- single ---- */

double
dconn_decode_rate(const struct dconn *c)
{
	/*
	 * A tiny model's tokens can all come in one read: then from the
	 * request on.
	 */
	if (c->t_last > c->t_first)
		return (double)(c->tokens - 1) / (c->t_last - c->t_first);
	return (double)c->tokens / (c->t_last - c->t_send);
}

int
dscen_single(struct dopts *o, char *cause)
{
	struct dconn c[100];
	struct dsrv s;
	double ef, et, e50, e99, first[100], tps[100];
	struct dpct sp;
	char name[32];
	long r;
	int rc;

	fprintf(stderr, "single: the engine alone, %ld runs\n", o->reps);
	if (dengine_run(o, &ef, &et, &e50, &e99, cause) != 0)
		return -1;
	if (dsrv_start(&s, o, cause) != 0)
		return -1;
	fprintf(stderr, "single: through sinkd, %ld runs\n", o->reps);
	dconn_init(c, (int)o->reps);
	rc = 0;
	for (r = 0; rc == 0 && r < o->reps; r++) {
		snprintf(name, sizeof name, "single%ld", r);
		if ((rc = dconn_open(&c[r], s.sock, cause)) == 0)
			rc = dconn_run_turn(&c[r], name, o->cache,
			    o->n_tokens, cause);
		if (rc == 0 && c[r].tokens != o->n_tokens)
			rc = err_set(cause, "%ld tokens, not %ld", c[r].tokens,
			    o->n_tokens);
		if (rc == 0) {
			first[r] = c[r].t_first - c[r].t_send;
			tps[r] = dconn_decode_rate(&c[r]);
		}
	}
	if (rc == 0) {
		sp = dpct_window(c, (int)o->reps, NULL, 0, 0);
		printf("\nsingle: one greedy session of %ld tokens, medians "
		    "of %ld runs\n", o->n_tokens, o->reps);
		printf("  %-16s %12s %14s %10s %10s\n", "", "decode tok/s",
		    "first token ms", "gap p50 ms", "gap p99 ms");
		printf("  %-16s %12.1f %14.2f %10.2f %10.2f\n", "engine alone",
		    et, ef * 1e3, e50 * 1e3, e99 * 1e3);
		et = stats_of(tps, (int)o->reps).median;
		ef = stats_of(first, (int)o->reps).median;
		printf("  %-16s %12.1f %14.2f %10.2f %10.2f\n",
		    "through sinkd", et, ef * 1e3, sp.p50 * 1e3, sp.p99 * 1e3);
		printf("  sinkd/engine: decode %.1f%%\n",
		    100.0 * et / o->engine_tps);
	}
	dconns_close(c, (int)o->reps);
	dsrv_stop(&s);
	return rc;
}

/* ---- sessions ---- */

/* k sessions at once, one turn each; prints the row. */
static int
sessions_row(struct dopts *o, const char *sock, int k, double *one,
    char *cause)
{
	struct dconn c[DB_MAX_SESS + 1];
	double rate[DB_MAX_SESS], first[DB_MAX_SESS], t0 = 1e300, t1 = 0;
	struct dpct gp;
	struct stats rs, fs;
	char prefix[32], name[64];
	long total = 0;
	int i, busy = 1, rc;

	snprintf(prefix, sizeof prefix, "s%d-", k);
	rc = dstreams_start(c, k, sock, prefix, o->cache, o->n_tokens,
	    cause);
	while (rc == 0 && busy > 0)
		rc = dstreams_step(c, k, prefix, o->n_tokens, 0, 1000, &busy,
		    cause);
	for (i = 0; rc == 0 && i < k; i++) {
		if (c[i].tokens != o->n_tokens)
			rc = err_set(cause, "%ld tokens, not %ld",
			    c[i].tokens, o->n_tokens);
		total += c[i].tokens;
		t0 = c[i].t_send < t0 ? c[i].t_send : t0;
		t1 = c[i].t_last > t1 ? c[i].t_last : t1;
		/* From its request on: waiting for a turn counts. */
		rate[i] = (double)c[i].tokens / (c[i].t_last - c[i].t_send);
		/* Its create's commit, then a place in a prompt pass. */
		first[i] = (c[i].t_first - c[i].t_send) * 1e3;
	}
	if (rc == 0) {
		gp = dpct_window(c, k, NULL, 0, 0);
		rs = stats_of(rate, k);
		fs = stats_of(first, k);
		printf("  %8d %12.1f %9.1f %9.1f %9.1f %9.2f %9.2f %9.2f "
		    "%9.1f %9.1f\n", k, (double)total / (t1 - t0), rs.min,
		    rs.median, rs.max, gp.p50 * 1e3, gp.p99 * 1e3,
		    gp.max * 1e3, fs.median, fs.max);
		if (k == 1)
			*one = dconn_decode_rate(&c[0]);
	}
	/* Sessions go when measured: the next row starts with none. */
	for (i = 0; rc == 0 && i < k; i++) {
		snprintf(name, sizeof name, "%s%d", prefix, i);
		if ((rc = dconn_delete(&c[0], name, cause)) == 0)
			rc = dconn_wait(&c[0], c[0].sent, cause);
	}
	dconns_close(c, k);
	return rc;
}

int
dscen_sessions(struct dopts *o, char *cause)
{
	struct dconn w;
	struct dsrv s;
	double f, t, p50, p99, one = 0;
	int i, rc;

	if (o->engine_tps == 0) {
		fprintf(stderr, "sessions: the engine alone, %ld runs\n",
		    o->reps);
		if (dengine_run(o, &f, &t, &p50, &p99, cause) != 0)
			return -1;
	}
	if (dsrv_start(&s, o, cause) != 0)
		return -1;
	/* One turn first: the model's pages and the allocator warm up. */
	if ((rc = dconn_open(&w, s.sock, cause)) == 0)
		rc = dconn_run_turn(&w, "warm", o->cache, 8, cause);
	dconn_close(&w);
	if (rc == 0) {
		printf("\nsessions: N sessions at once, one turn of %ld "
		    "tokens each\n", o->n_tokens);
		printf("  %8s %12s %29s %29s %19s\n", "", "aggregate",
		    "per-session tok/s", "gap between tokens, ms",
		    "first token, ms");
		printf("  %8s %12s %9s %9s %9s %9s %9s %9s %9s %9s\n",
		    "sessions", "tok/s", "min", "median", "max", "p50", "p99",
		    "max", "median", "max");
	}
	for (i = 0; rc == 0 && i < o->n_sess; i++) {
		fprintf(stderr, "sessions: %ld at once\n", o->sess[i]);
		rc = sessions_row(o, s.sock, (int)o->sess[i], &one, cause);
		fflush(stdout);
	}
	if (rc == 0 && one > 0)
		printf("  one session alone %.1f tok/s, the engine alone %.1f "
		    "tok/s: %.1f%%\n", one, o->engine_tps,
		    100.0 * one / o->engine_tps);
	dsrv_stop(&s);
	return rc;
}

/* ---- prefill ---- */

static void
prefill_table(const struct dopts *o, struct dpct alone, struct dpct during,
    long got, double took)
{
	char r1[16], r2[16];

	printf("\nprefill: %d streams (turns of %ld tokens) while another "
	    "client feeds a %ld-token prompt\n", PREFILL_STREAMS,
	    o->n_tokens, got);
	dpct_head();
	dpct_row("streams alone", alone);
	dpct_row("streams during the prefill", during);
	printf("  p99 during/alone: %s (goal <= 2x); max during/alone: %s\n",
	    dratio(r1, sizeof r1, during.p99, alone.p99),
	    dratio(r2, sizeof r2, during.max, alone.max));
	printf("  the prompt: %ld tokens in %.2f s, %.1f tok/s\n", got, took,
	    (double)got / took);
}

int
dscen_prefill(struct dopts *o, char *cause)
{
	struct dconn c[PREFILL_STREAMS + 1], *f = &c[PREFILL_STREAMS];
	struct dpct alone, during;
	struct dsrv s;
	double win[2];
	long got = 0;
	char *text;
	int i, busy = 1, rc, started;

	if ((text = dtext_tokens(o, o->prefill, &got, cause)) == NULL)
		return -1;
	if (dsrv_start(&s, o, cause) != 0) {
		free(text);
		return -1;
	}
	fprintf(stderr, "prefill: %d streams alone\n", PREFILL_STREAMS);
	alone = dstreams_alone(s.sock, PREFILL_STREAMS, "alone", o->cache,
	    o->n_tokens, 2, cause, &rc);
	dconn_init(c, PREFILL_STREAMS + 1);
	if (rc == 0 && (rc = dconn_open(f, s.sock, cause)) == 0 &&
	    (rc = dconn_create(f, "feeder", 0, cause)) == 0)
		rc = dconn_wait(f, 1, cause);
	if (rc == 0) {
		fprintf(stderr, "prefill: feeding %ld tokens beside %d "
		    "streams\n", got, PREFILL_STREAMS);
		rc = dstreams_start(c, PREFILL_STREAMS, s.sock, "beside",
		    o->cache, o->n_tokens, cause);
	}
	/* The streams keep taking turns until the prompt is in. */
	while (rc == 0 && (busy > 0 || f->finals < 2)) {
		if ((rc = dconn_pump(c, PREFILL_STREAMS + 1, 100, cause)) != 0 ||
		    (rc = dstreams_step(c, PREFILL_STREAMS, "beside",
		    o->n_tokens, f->finals < 2, 0, &busy, cause)) != 0)
			break;
		/* The prompt goes once every stream is generating. */
		for (started = 1, i = 0; i < PREFILL_STREAMS; i++)
			started &= c[i].tokens >= 2;
		if (started && f->sent == 1)
			rc = dconn_feed(f, "feeder", text, cause);
	}
	if (rc == 0) {
		win[0] = f->t_send;
		win[1] = f->t_final;
		during = dpct_window(c, PREFILL_STREAMS, win, 1, 1);
		if (during.n == 0)
			rc = err_set(cause, "no stream token during the "
			    "prefill");
		else
			prefill_table(o, alone, during, got, win[1] - win[0]);
	}
	free(text);
	dconns_close(c, PREFILL_STREAMS + 1);
	dsrv_stop(&s);
	return rc;
}
