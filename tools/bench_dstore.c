/*
 * bench_dstore: the import and snapshot scenarios of `sinkd-bench
 * daemon`: work the store thread does (an import parsed and written, a
 * fork inside the database, each finished turn's snapshot) must not
 * show in another session's stream.  The stream is measured alone
 * first, then beside the work, on the same daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_daemon.h"
#include "err.h"
#include "opt.h"

#define IMPORT_PART (512 * 1024)
#define N_FORKS 4
#define SNAP_TURNS 3		/* sessions taking short turns */
#define SNAP_TOKENS 4		/* tokens in each of their turns */

static int
put_op(struct dconn *c, const char *op, const char *name, const char *new,
    char *cause)
{
	struct proto_out out;
	int rc;

	proto_out_init(&out);
	proto_pack_map(&out, new != NULL ? 4 : 3);
	proto_put_cstr(&out, "op", op);
	proto_put_u64(&out, "id", 5);
	proto_put_cstr(&out, "name", name);
	if (new != NULL)
		proto_put_cstr(&out, "new", new);
	rc = dconn_send(c, &out, cause);
	proto_out_free(&out);
	return rc;
}

/* The next part of the file: `more` on all but the last. */
static int
import_part(struct dconn *c, const uint8_t *file, size_t len, size_t *off,
    char *cause)
{
	struct proto_out out;
	size_t n = len - *off < IMPORT_PART ? len - *off : IMPORT_PART;
	int more = *off + n < len, rc;

	proto_out_init(&out);
	proto_pack_map(&out, more ? 5 : 4);
	proto_put_cstr(&out, "op", "import");
	proto_put_u64(&out, "id", 6);
	proto_put_cstr(&out, "name", "imported");
	proto_put_bin(&out, "data", file + *off, n);
	if (more)
		proto_put_bool(&out, "more", 1);
	rc = dconn_send(c, &out, cause);
	proto_out_free(&out);
	*off += n;
	return rc;
}

/*
 * A session holding about import_mib MiB of cache, exported into
 * e->data: the file the import then sends.
 */
static int
make_export(struct dopts *o, struct dconn *e, const char *sock,
    char *cause)
{
	size_t per;
	long cache, got;
	char *text;
	int rc;

	if (dkv_token_bytes(o, &per, cause) != 0)
		return -1;
	cache = (long)(((size_t)o->import_mib << 20) / per);
	cache = cache < 16 ? 16 : cache;
	if ((text = dtext_tokens(o, cache, &got, cause)) == NULL)
		return -1;
	fprintf(stderr, "import: filling a session of %ld tokens (%.1f MiB "
	    "of cache)\n", cache, (double)cache * (double)per / 1048576);
	if ((rc = dconn_open(e, sock, cause)) == 0 &&
	    (rc = dconn_create(e, "big", cache, cause)) == 0 &&
	    (rc = dconn_feed(e, "big", text, cause)) == 0 &&
	    (rc = dconn_wait(e, 2, cause)) == 0) {
		fprintf(stderr, "import: exporting it\n");
		e->keep_data = 1;
		if ((rc = put_op(e, "export", "big", NULL, cause)) == 0)
			rc = dconn_wait(e, 3, cause);
		e->keep_data = 0;
	}
	free(text);
	return rc;
}

/* One stream's gaps while `what` runs: import (0) or N_FORKS forks. */
static int
beside(const struct dopts *o, const char *sock, struct dconn *e, int what,
    struct dpct *p, double *took, char *cause)
{
	struct dconn s[2];
	char name[32];
	double win[2] = { 0, 0 };
	size_t off = 0;
	int busy = 1, rc, f0 = e->finals, forks = 0, done = 0;

	s[1] = *e;		/* pumped with the stream */
	rc = dstreams_start(s, 1, sock, what ? "forkside" : "importside",
	    o->cache, o->n_tokens, cause);
	while (rc == 0 && (busy > 0 || !done)) {
		if ((rc = dconn_pump(s, 2, 100, cause)) != 0 ||
		    (rc = dstreams_step(s, 1, what ? "forkside" : "importside",
		    o->n_tokens, !done, 0, &busy, cause)) != 0)
			break;
		if (s[0].tokens < 2 || done || s[1].sent != s[1].finals)
			continue;
		if (s[1].finals == f0)
			win[0] = opt_now();
		if (!what && off < e->data_len)
			rc = import_part(&s[1], e->data, e->data_len, &off,
			    cause);
		else if (what && forks < N_FORKS) {
			snprintf(name, sizeof name, "fork%d", forks++);
			rc = put_op(&s[1], "fork", "big", name, cause);
		} else {
			done = 1;
			win[1] = s[1].t_final;
		}
	}
	*e = s[1];
	if (rc == 0) {
		*p = dpct_window(s, 1, win, 1, 1);
		*took = win[1] - win[0];
	}
	dconn_close(&s[0]);
	return rc;
}

int
dscen_import(struct dopts *o, char *cause)
{
	struct dpct alone, imp = { 0 }, fork = { 0 };
	struct dconn e;
	struct dsrv s;
	double ti = 0, tf = 0;
	char r[4][16];
	size_t bytes;
	int rc;

	if (dsrv_start(&s, o, cause) != 0)
		return -1;
	dconn_init(&e, 1);
	if ((rc = make_export(o, &e, s.sock, cause)) == 0) {
		fprintf(stderr, "import: a stream alone\n");
		alone = dstreams_alone(s.sock, 1, "alone", o->cache,
		    o->n_tokens, 2, cause, &rc);
	}
	bytes = e.data_len;
	if (rc == 0) {
		fprintf(stderr, "import: %.1f MiB beside a stream\n",
		    (double)bytes / 1048576);
		rc = beside(o, s.sock, &e, 0, &imp, &ti, cause);
	}
	if (rc == 0) {
		fprintf(stderr, "import: %d forks beside a stream\n", N_FORKS);
		rc = beside(o, s.sock, &e, 1, &fork, &tf, cause);
	}
	if (rc == 0) {
		printf("\nimport: one stream (turns of %ld tokens) beside an "
		    "import of a %.1f MiB export file,\nthen %d forks of "
		    "that full session\n", o->n_tokens,
		    (double)bytes / 1048576, N_FORKS);
		printf("  %-34s %6s %8s %8s %8s %8s\n", "", "gaps", "p50 ms",
		    "p99 ms", "max ms", "took s");
		printf("  %-34s %6ld %8.2f %8.2f %8.2f\n", "stream alone",
		    alone.n, alone.p50 * 1e3, alone.p99 * 1e3,
		    alone.max * 1e3);
		printf("  %-34s %6ld %8.2f %8.2f %8.2f %8.2f\n",
		    "stream during the import", imp.n, imp.p50 * 1e3,
		    imp.p99 * 1e3, imp.max * 1e3, ti);
		printf("  %-34s %6ld %8.2f %8.2f %8.2f %8.2f\n",
		    "stream during the forks", fork.n, fork.p50 * 1e3,
		    fork.p99 * 1e3, fork.max * 1e3, tf);
		printf("  during/alone: import p99 %s, max %s; forks p99 %s, "
		    "max %s\n", dratio(r[0], sizeof r[0], imp.p99, alone.p99),
		    dratio(r[1], sizeof r[1], imp.max, alone.max),
		    dratio(r[2], sizeof r[2], fork.p99, alone.p99),
		    dratio(r[3], sizeof r[3], fork.max, alone.max));
	}
	dconn_close(&e);
	dsrv_stop(&s);
	return rc;
}

/* ---- snapshot ---- */

int
dscen_snapshot(struct dopts *o, char *cause)
{
	struct dconn c[1 + SNAP_TURNS];
	struct dpct alone, near, rest;
	struct dsrv s;
	double *win = NULL, *w, save[4096];
	int i, busy = 1, n_win = 0, cap = 0, rc, seen[1 + SNAP_TURNS] = { 0 };
	char name[32], r[16];

	if (dsrv_start(&s, o, cause) != 0)
		return -1;
	fprintf(stderr, "snapshot: a stream alone\n");
	alone = dstreams_alone(s.sock, 1, "alone", o->cache, o->n_tokens, 2,
	    cause, &rc);
	dconn_init(c, 1 + SNAP_TURNS);
	if (rc == 0) {
		fprintf(stderr, "snapshot: a stream beside %d sessions taking "
		    "%d-token turns\n", SNAP_TURNS, SNAP_TOKENS);
		rc = dstreams_start(c, 1, s.sock, "long", o->cache,
		    o->n_tokens, cause);
	}
	if (rc == 0)
		rc = dstreams_start(c + 1, SNAP_TURNS, s.sock, "short",
		    o->cache, SNAP_TOKENS, cause);
	for (i = 0; i <= SNAP_TURNS; i++)
		seen[i] = 1;	/* the create's reply */
	/* Two long turns; short turns, each saved, all along. */
	while (rc == 0 && busy > 0) {
		if ((rc = dconn_pump(c, 1 + SNAP_TURNS, 100, cause)) != 0 ||
		    (rc = dstreams_step(c, 1, "long", o->n_tokens,
		    c[0].finals < 3, 0, &busy, cause)) != 0)
			break;
		for (i = 1; rc == 0 && i <= SNAP_TURNS; i++) {
			if (c[i].finals == seen[i])
				continue;
			seen[i] = c[i].finals;
			if (n_win == cap) {
				cap = cap ? cap * 2 : 64;
				if ((w = realloc(win, (size_t)cap * 2 *
				    sizeof *w)) == NULL) {
					rc = err_set(cause, "out of memory");
					break;
				}
				win = w;
			}
			/* The snapshot: after the last token, before done. */
			win[2 * n_win] = c[i].t_last;
			win[2 * n_win + 1] = c[i].t_final;
			if (n_win < 4096)
				save[n_win] = c[i].t_final - c[i].t_last;
			n_win++;
			if (c[0].finals < 3) {
				snprintf(name, sizeof name, "short%d", i - 1);
				rc = dconn_complete(&c[i], name, DB_PROMPT,
				    SNAP_TOKENS, cause);
			}
		}
		for (i = 1; i <= SNAP_TURNS; i++)
			busy += c[i].sent != c[i].finals;
	}
	if (rc == 0) {
		near = dpct_window(c, 1, win, n_win, 1);
		rest = dpct_window(c, 1, win, n_win, 0);
		printf("\nsnapshot: one stream (turns of %ld tokens) beside %d "
		    "sessions taking %d-token turns,\neach turn saved before "
		    "its done; the stream's gaps that overlap a save vs the "
		    "rest\n", o->n_tokens, SNAP_TURNS, SNAP_TOKENS);
		printf("  %-34s %6s %8s %8s %8s\n", "", "gaps", "p50 ms",
		    "p99 ms", "max ms");
		dpct_row("stream alone", alone);
		dpct_row("beside turns, overlapping a save", near);
		dpct_row("beside turns, the rest", rest);
		printf("  turns saved: %d, last token to done: median %.2f "
		    "ms; p99 overlapping/rest: %s\n", n_win,
		    n_win > 0 ? stats_of(save, n_win < 4096 ? n_win :
		    4096).median * 1e3 : 0.0,
		    dratio(r, sizeof r, near.p99, rest.p99));
	}
	free(win);
	dconns_close(c, 1 + SNAP_TURNS);
	dsrv_stop(&s);
	return rc;
}
