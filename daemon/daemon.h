/*
 * daemon: the state the loop thread shares among the daemon's modules,
 * and the entry point that main.c calls.
 *
 * Threads: struct daemon is the loop thread's.  The worker reads model
 * and tmpl (set before it starts, never changed); the store thread
 * reads model and uses store (whose calls lock it: store.h).
 */
#ifndef SINKD_DAEMON_H
#define SINKD_DAEMON_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "conf.h"
#include "model.h"
#include "session.h"
#include "tmpl.h"

struct event_base;
struct event;
struct evconnlistener;
struct worker;
struct client;
struct store;
struct storeq;

struct daemon {
	struct conf *conf;
	struct model *model;
	struct event_base *base;
	struct evconnlistener *listener;
	struct event *ev_worker, *ev_store, *ev_term, *ev_int, *ev_hup;
	struct event *ev_watchdog;	/* keep-alives to systemd, if asked */
	int socket_made;	/* we bound conf->socket: remove it at exit */
	struct worker *worker;
	struct sess_table sessions;
	struct store *store;
	struct storeq *storeq;	/* the store thread (storeq.h) */
	struct tmpl tmpl;	/* the chat formats */
	uint64_t tick;		/* session uses, for least-recently-used */
	uint64_t import_bytes;	/* parts of imports held, all clients */
	char **reserved;	/* names store jobs are making (persist.h) */
	size_t n_reserved;
	struct client *clients;
	int n_clients;
	uint64_t next_serial;
	gid_t group;		/* -1: none */
	time_t started;
	uint64_t tokens_in, tokens_out, requests;
	int n_jobs;		/* jobs submitted and not yet done */
	int stopping;
};

/*
 * sinkd's exit statuses (sinkd(8), EXIT STATUS).  The systemd units keep
 * DAEMON_EXIT_CONFIG from restarting: the same settings would fail again.
 */
enum daemon_exit {
	DAEMON_EXIT_OK = 0,
	DAEMON_EXIT_FAIL = 1,	/* could not run: out of memory, the loop */
	DAEMON_EXIT_CONFIG = 2,	/* settings, model, socket, database */
	DAEMON_EXIT_UNSAVED = 3	/* stopped, but some turns are not saved */
};

int daemon_main(int argc, char **argv);

/* Starts a session's next queued job, if it is idle (request.c). */
void daemon_run_next(struct daemon *, struct session *);
/* Asks every job to stop; the loop ends once they have (daemon.c). */
void daemon_stop(struct daemon *, const char *why);

#endif
