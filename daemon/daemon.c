/*
 * daemon: startup, the listening socket and its access control, signals
 * as loop events, the worker's events, and an orderly stop.
 */
#include "daemon.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "blas.h"
#include "client.h"
#include "job.h"
#include "log.h"
#include "persist.h"
#include "request.h"
#include "store.h"
#include "worker.h"

void
daemon_run_next(struct daemon *d, struct session *s)
{
	struct job *j = s->queue;

	if (s->running != NULL || j == NULL || d->stopping || s->exporting)
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
	if (d->listener != NULL) {
		evconnlistener_free(d->listener);
		d->listener = NULL;
	}
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

/* Whether a peer may talk to us: our own user, root, or the group. */
static int
allowed(const struct daemon *d, const struct ucred *cr)
{
	struct passwd pw, *pp;
	struct group gr, *gp;
	char buf[4096];
	char **m;

	if (cr->uid == geteuid() || cr->uid == 0)
		return 1;
	if (d->group == (gid_t)-1)
		return 0;
	if (cr->gid == d->group)
		return 1;
	if (getpwuid_r(cr->uid, &pw, buf, sizeof buf, &pp) != 0 || pp == NULL)
		return 0;
	if (getgrgid_r(d->group, &gr, buf, sizeof buf, &gp) != 0 || gp == NULL)
		return 0;
	for (m = gr.gr_mem; *m != NULL; m++)
		if (strcmp(*m, pw.pw_name) == 0)
			return 1;
	return 0;
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int len, void *arg)
{
	struct daemon *d = arg;
	struct ucred cr;
	socklen_t cl = sizeof cr;
	struct client *c;

	(void)l;
	(void)sa;
	(void)len;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0 ||
	    !allowed(d, &cr)) {
		log_warn("connection from uid %d refused",
		    cl == sizeof cr ? (int)cr.uid : -1);
		close(fd);
		return;
	}
	if ((c = client_new(d, fd, cr.uid, cr.gid, cr.pid)) == NULL) {
		log_error("out of memory for a client");
		close(fd);
		return;
	}
	if (d->n_clients > d->conf->max_clients)
		client_fail(c, PROTO_E_LIMIT, "too many clients "
		    "(max-clients)");
}

/* mkdir -p of the socket's directory, private to us. */
static int
make_dir(const char *path, char *cause)
{
	char dir[sizeof ((struct sockaddr_un *)0)->sun_path], *p;

	snprintf(dir, sizeof dir, "%s", path);
	if ((p = strrchr(dir, '/')) == NULL || p == dir)
		return 0;
	*p = '\0';
	for (p = dir + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST)
			return err_set(cause, "%s: %s", dir, strerror(errno));
		*p = '/';
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return err_set(cause, "%s: %s", dir, strerror(errno));
	return 0;
}

/* Refuses a socket another sinkd answers on; removes a stale one. */
static int
claim_path(const struct sockaddr_un *sun, char *cause)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;
	struct stat st;

	if (fd < 0)
		return err_set(cause, "socket: %s", strerror(errno));
	rc = connect(fd, (const struct sockaddr *)sun, sizeof *sun);
	close(fd);
	if (rc == 0)
		return err_set(cause, "another sinkd already serves %s",
		    sun->sun_path);
	if (lstat(sun->sun_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return err_set(cause, "%s exists and is not a socket",
			    sun->sun_path);
		log_info("removing stale socket %s", sun->sun_path);
		unlink(sun->sun_path);
	}
	return 0;
}

static int
listen_on(struct daemon *d, char *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *path = d->conf->socket;
	int fd;

	if (strlen(path) >= sizeof sun.sun_path)
		return err_set(cause, "socket path %s is too long", path);
	strcpy(sun.sun_path, path);
	if (make_dir(path, cause) != 0 || claim_path(&sun, cause) != 0)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0)
		return err_set(cause, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 ||
	    chmod(path, d->group != (gid_t)-1 ? 0660 : 0600) != 0 ||
	    (d->group != (gid_t)-1 && chown(path, (uid_t)-1, d->group) != 0)) {
		err_set(cause, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	d->listener = evconnlistener_new(d->base, accept_cb, d,
	    LEV_OPT_CLOSE_ON_FREE, 64, fd);
	if (d->listener == NULL) {
		close(fd);
		return err_set(cause, "%s: cannot listen", path);
	}
	return 0;
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
	d->ev_term = evsignal_new(d->base, SIGTERM, signal_cb, d);
	d->ev_int = evsignal_new(d->base, SIGINT, signal_cb, d);
	d->ev_hup = evsignal_new(d->base, SIGHUP, signal_cb, d);
	if (d->ev_worker == NULL || d->ev_term == NULL || d->ev_int == NULL ||
	    d->ev_hup == NULL || event_add(d->ev_worker, NULL) != 0 ||
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
	if (d->listener != NULL)
		evconnlistener_free(d->listener);
	if (d->base != NULL)
		client_close_all(d);
	worker_free(d->worker);
	if (d->ev_worker != NULL)
		event_free(d->ev_worker);
	if (d->ev_term != NULL)
		event_free(d->ev_term);
	if (d->ev_int != NULL)
		event_free(d->ev_int);
	if (d->ev_hup != NULL)
		event_free(d->ev_hup);
	if (d->base != NULL)
		event_base_free(d->base);
	sess_table_free(&d->sessions);
	store_close(d->store);
	model_close(d->model);
}

/*
 * Tells systemd (Type=notify) how we are: one datagram of "READY=1" or
 * "STOPPING=1" to $NOTIFY_SOCKET, which may be abstract ("@...").
 */
static void
notify(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (path == NULL || (*path != '/' && *path != '@') ||
	    (len = strlen(path)) >= sizeof sun.sun_path)
		return;
	memcpy(sun.sun_path, path, len);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	if (sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sun,
	    (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_warn("NOTIFY_SOCKET: %s", strerror(errno));
	close(fd);
}

static int
serve(struct daemon *d, char *cause)
{
	if (d->conf->daemonize && daemon(0, 0) != 0)
		return err_set(cause, "cannot detach: %s", strerror(errno));
	if (persist_open(d, cause) != 0 ||
	    (d->worker = worker_new(d->model, d->store, (int)d->conf->threads,
	    cause)) == NULL || setup_events(d, cause) != 0 ||
	    listen_on(d, cause) != 0)
		return -1;
	d->started = time(NULL);
	log_info("serving %s on %s (%ld threads)", d->model->desc,
	    d->conf->socket, d->conf->threads);
	notify("READY=1");
	event_base_dispatch(d->base);
	notify("STOPPING=1");
	persist_flush(d);
	flush_clients(d);
	unlink(d->conf->socket);
	log_info("stopped");
	return 0;
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
			return 0;
		fprintf(stderr, "sinkd: %s\n", cause);
		return 2;
	}
	rc = log_open(conf.log_file, (enum log_level)conf.log_level, cause);
	if (rc == 0 && conf.check_db)
		return check_db(&conf, cause);
	if (rc == 0 && (rc = resolve_group(&d, cause)) == 0 &&
	    (d.model = model_open(conf.model, NULL, cause)) == NULL)
		rc = -1;
	if (rc == 0 && conf.check_only)
		printf("sinkd: settings and model are fine: %s; socket %s\n",
		    d.model->desc, conf.socket);
	else if (rc == 0)
		rc = serve(&d, cause);
	if (rc != 0)
		log_error("%s", cause);
	teardown(&d);
	log_close();
	conf_free(&conf);
	return rc != 0;
}
