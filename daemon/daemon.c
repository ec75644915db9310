/*
 * daemon: startup, signals as loop events, the worker's events, the
 * systemd watchdog's keep-alives, and an orderly stop whose exit status
 * says whether everything was saved.
 */
#include "daemon.h"

#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blas.h"
#include "client.h"
#include "conf.h"
#include "job.h"
#include "kernels.h"
#include "listen.h"
#include "log.h"
#include "persist.h"
#include "request.h"
#include "store.h"
#include "storeq.h"
#include "systemd.h"
#include "worker.h"

void
daemon_run_next(struct daemon *d, struct session *s)
{
	struct job *j = s->queue;

	if (s->running != NULL || j == NULL || d->stopping || s->exporting ||
	    s->storing > 0)
		return;
	s->queue = j->next;
	if (s->queue == NULL)
		s->queue_tail = NULL;
	s->n_queued--;
	j->next = NULL;
	s->running = j;
	persist_touch(d, s);
	/* The worker loads it (or rebuilds it): make room first. */
	if (!s->resident || j->kind == JOB_REBUILD) {
		persist_budget(d, s, s->resident ? 0 : s->info.bytes,
		    s->resident ? 0 : 1);
		s->resident = 1;
	}
	d->n_jobs++;
	worker_submit(d->worker, j);
}

void
daemon_stop(struct daemon *d, const char *why)
{
	size_t i;

	if (d->stopping)
		return;
	d->stopping = 1;
	log_info("stopping (%s): %d requests to end", why, d->n_jobs);
	systemd_notify("STOPPING=1");
	listen_stop(d);
	for (i = 0; i < d->sessions.n; i++)
		request_stop_session(d, d->sessions.v[i], STOP_SHUTDOWN);
	if (d->n_jobs == 0)
		event_base_loopbreak(d->base);
}

static void
worker_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	struct wevent *e, *n;

	(void)fd;
	(void)what;
	for (e = worker_take(d->worker); e != NULL; e = n) {
		n = e->next;
		e->next = NULL;
		if (e->kind == PROTO_K_DONE)
			request_job_done(d, e->job);
		else
			request_job_event(d, e->job, e->kind, e->text, e->len,
			    e->token);
		wevent_free(e);
	}
	if (d->stopping && d->n_jobs == 0)
		event_base_loopbreak(d->base);
}

static void
store_cb(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;

	(void)fd;
	(void)what;
	storeq_complete(d->storeq);
	if (d->stopping && d->n_jobs == 0)
		event_base_loopbreak(d->base);
}

static void
signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct daemon *d = arg;
	char cause[ERR_LEN];

	(void)what;
	if (sig == SIGHUP) {
		if (log_reopen(cause) != 0)
			log_error("SIGHUP: %s", cause);
		else
			log_info("SIGHUP: log reopened");
		return;
	}
	daemon_stop(d, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static int
resolve_group(struct daemon *d, char *cause)
{
	struct group gr, *gp;
	char buf[4096];

	d->group = (gid_t)-1;
	if (d->conf->group == NULL)
		return 0;
	if (getgrnam_r(d->conf->group, &gr, buf, sizeof buf, &gp) != 0 ||
	    gp == NULL)
		return err_set(cause, "no group named '%s'", d->conf->group);
	d->group = gr.gr_gid;
	return 0;
}

static int
setup_events(struct daemon *d, char *cause)
{
	if ((d->base = event_base_new()) == NULL)
		return err_set(cause, "cannot start the event loop");
	d->ev_worker = event_new(d->base, worker_fd(d->worker),
	    EV_READ | EV_PERSIST, worker_cb, d);
	d->ev_store = event_new(d->base, storeq_fd(d->storeq),
	    EV_READ | EV_PERSIST, store_cb, d);
	d->ev_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->ev_int = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->ev_hup = evsignal_new(d->base, SIGHUP, signal_cb, d);
	if (d->ev_worker == NULL || d->ev_store == NULL || d->ev_term == NULL ||
	    d->ev_int == NULL || d->ev_hup == NULL ||
	    event_add(d->ev_worker, NULL) != 0 ||
	    event_add(d->ev_store, NULL) != 0 ||
	    event_add(d->ev_term, NULL) != 0 || event_add(d->ev_int, NULL) ||
	    event_add(d->ev_hup, NULL) != 0)
		return err_set(cause, "cannot set up events");
	return 0;
}

/* What is queued to clients goes out, for a second at most. */
static void
flush_clients(struct daemon *d)
{
	struct timeval tv = { 1, 0 };
	struct client *c, *n;

	for (c = d->clients; c != NULL; c = n) {
		n = c->next;
		if (client_queued(c) == 0)
			continue;
		c->closing = 1;
	}
	event_base_loopexit(d->base, &tv);
	while (d->clients != NULL && d->clients->closing &&
	    event_base_loop(d->base, EVLOOP_ONCE) == 0)
		;
	client_close_all(d);
}

static void
teardown(struct daemon *d)
{
	listen_stop(d);
	if (d->base != NULL)
		client_close_all(d);
	worker_free(d->worker);
	/* After the worker, which hands it finished jobs; drains it. */
	storeq_free(d->storeq);
	if (d->ev_worker != NULL)
		event_free(d->ev_worker);
	if (d->ev_store != NULL)
		event_free(d->ev_store);
	if (d->ev_term != NULL)
		event_free(d->ev_term);
	if (d->ev_int != NULL)
		event_free(d->ev_int);
	if (d->ev_hup != NULL)
		event_free(d->ev_hup);
	if (d->ev_watchdog != NULL)
		event_free(d->ev_watchdog);
	if (d->base != NULL)
		event_base_free(d->base);
	sess_table_free(&d->sessions);
	store_close(d->store);
	tmpl_free(&d->tmpl);
	model_close(d->model);
}

/*
 * The keep-alive comes from the loop itself, so a loop that stops
 * turning (a deadlock, a handler that never returns) stops it, and
 * systemd restarts sinkd.
 */
static void
watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	systemd_notify("WATCHDOG=1");
}

static int
setup_watchdog(struct daemon *d, char *cause)
{
	uint64_t usec = systemd_watchdog_usec();
	struct timeval tv;

	if (usec == 0)
		return 0;
	/* Twice per interval, as systemd advises. */
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	if ((d->ev_watchdog = event_new(d->base, -1, EV_PERSIST, watchdog_cb,
	    d)) == NULL || event_add(d->ev_watchdog, &tv) != 0)
		return err_set(cause, "cannot set up the watchdog timer");
	log_info("systemd watchdog: a keep-alive every %.3f s",
	    (double)usec / 1e6);
	return 0;
}

/*
 * What is not saved at the end is lost: a failed final snapshot makes
 * the exit status say so (DAEMON_EXIT_UNSAVED), with each session named.
 */
static int
final_save(struct daemon *d)
{
	char names[512];
	size_t n;

	/* What the store thread still holds is written first. */
	storeq_drain(d->storeq);
	n = persist_flush(d, names, sizeof names);

	if (n == 0)
		return DAEMON_EXIT_OK;
	log_error("%zu session%s not saved, their last turns are lost: %s",
	    n, n == 1 ? " was" : "s were", names);
	return DAEMON_EXIT_UNSAVED;
}

/* Serves until stopped: a DAEMON_EXIT_* status, with cause if not 0. */
static int
serve(struct daemon *d, char *cause)
{
	struct worker_opts wo;
	int rc;

	if (d->conf->daemonize && daemon(0, 0) != 0) {
		err_set(cause, "cannot detach: %s", strerror(errno));
		return DAEMON_EXIT_FAIL;
	}
	if (persist_open(d, cause) != 0)
		return DAEMON_EXIT_CONFIG;
	wo.threads = (int)d->conf->threads;
	wo.max_batch = (int)d->conf->max_batch;
	wo.chunk = (int)d->conf->chunk;
	wo.prefill_share = (int)d->conf->prefill_share;
	if ((d->storeq = storeq_new((int)d->conf->store_nice, cause)) ==
	    NULL || (d->worker = worker_new(d->model, &d->tmpl, d->store,
	    d->storeq, &wo, cause)) == NULL ||
	    setup_events(d, cause) != 0 ||
	    setup_watchdog(d, cause) != 0)
		return DAEMON_EXIT_FAIL;
	if (listen_start(d, cause) != 0)
		return DAEMON_EXIT_CONFIG;
	d->started = time(NULL);
	log_info("serving %s on %s (%ld threads, batches of up to %ld "
	    "sessions and %ld prompt tokens; %s kernels, %zu MiB of weights "
	    "in memory, %zu MiB of them repacked into panels)",
	    d->model->desc, d->conf->socket, d->conf->threads,
	    d->conf->max_batch, d->conf->chunk,
	    kern_isa_name(kern_current_isa()), d->model->weights_size >> 20,
	    d->model->panel_bytes >> 20);
	systemd_notify("READY=1");
	/* daemon_stop has told systemd and closed the socket. */
	event_base_dispatch(d->base);
	rc = final_save(d);
	flush_clients(d);
	log_info("stopped%s", rc != 0 ? ", not everything saved" : "");
	return rc;
}

/* sinkd --check-db: the model (if given) only for the fingerprints. */
static int
check_db(struct conf *conf, char *cause)
{
	struct model *m = NULL;
	int rc;

	if (conf->model != NULL && (m = model_open(conf->model, NULL,
	    cause)) == NULL) {
		fprintf(stderr, "sinkd: %s\n", cause);
		rc = 2;
	} else
		rc = persist_check_db(conf, m, stdout);
	model_close(m);
	log_close();
	conf_free(conf);
	return rc;
}

/* What must hold before serving: the group, the model, the defaults. */
static int
prepare(struct daemon *d, char *cause)
{
	if (resolve_group(d, cause) != 0 ||
	    (d->model = model_open(d->conf->model, NULL, cause)) == NULL ||
	    conf_check_model(d->conf, d->model, cause) != 0 ||
	    tmpl_init(&d->tmpl, d->model, d->conf->chat_template, cause) != 0)
		return -1;
	return 0;
}

int
daemon_main(int argc, char **argv)
{
	struct conf conf;
	struct daemon d = { .conf = &conf };
	char cause[ERR_LEN] = "";
	int rc;

	blas_prepare(argv);
	signal(SIGPIPE, SIG_IGN);
	conf_defaults(&conf);
	if ((rc = conf_load(&conf, argc, argv, cause)) != 0) {
		conf_free(&conf);
		if (rc > 0)
			return DAEMON_EXIT_OK;
		fprintf(stderr, "sinkd: %s\n", cause);
		return DAEMON_EXIT_CONFIG;
	}
	if (log_open(conf.log_file, (enum log_level)conf.log_level,
	    cause) != 0) {
		fprintf(stderr, "sinkd: %s\n", cause);
		conf_free(&conf);
		return DAEMON_EXIT_CONFIG;
	}
	if (conf.check_db)
		return check_db(&conf, cause);
	if (prepare(&d, cause) != 0)
		rc = DAEMON_EXIT_CONFIG;
	else if (conf.check_only)
		printf("sinkd: settings and model are fine: %s; socket %s\n",
		    d.model->desc, conf.socket);
	else
		rc = serve(&d, cause);
	if (rc != DAEMON_EXIT_OK && rc != DAEMON_EXIT_UNSAVED)
		log_error("%s", cause);
	teardown(&d);
	log_close();
	conf_free(&conf);
	return rc;
}
