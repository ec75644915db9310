/*
 * client: see client.h.
 */
#include "client.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "job.h"
#include "log.h"
#include "proto.h"
#include "request.h"
#include "xfer.h"

static void client_free(struct client *);

/* The client's jobs: the running ones stop, the queued ones go. */
static void
drop_jobs(struct client *c)
{
	struct sess_table *t = &c->d->sessions;
	struct job **pp, *j;
	size_t i;

	for (i = 0; i < t->n; i++) {
		struct session *s = t->v[i];
		if (s->running != NULL && s->running->client == c->serial)
			atomic_store(&s->running->stop, STOP_GONE);
		for (pp = &s->queue; (j = *pp) != NULL;) {
			if (j->client != c->serial) {
				pp = &j->next;
				continue;
			}
			*pp = j->next;
			s->n_queued--;
			job_free(j);
		}
		s->queue_tail = NULL;
		for (j = s->queue; j != NULL; j = j->next)
			s->queue_tail = j;
	}
}

static void
read_frames(struct client *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t max = (size_t)c->d->conf->max_frame, body;
	unsigned char hdr[4], *p;
	char cause[ERR_LEN];

	while (!c->closing && evbuffer_get_length(in) >= 4) {
		/* A client that does not read its replies gets no more. */
		if (client_queued(c) > (size_t)c->d->conf->max_output) {
			if (!c->paused)
				log_debug("client %llu: %zu bytes of replies "
				    "unread: not reading its requests",
				    (unsigned long long)c->serial,
				    client_queued(c));
			c->paused = 1;
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		evbuffer_copyout(in, hdr, 4);
		body = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
		    (size_t)hdr[2] << 8 | hdr[3];
		/* The header alone: -1 for a bad length, else 0 (need more). */
		if (proto_frame_check(hdr, 4, max, &body, cause) < 0) {
			client_fail(c, body == 0 ? PROTO_E_BAD_REQUEST :
			    PROTO_E_TOO_LARGE, cause);
			return;
		}
		body = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
		    (size_t)hdr[2] << 8 | hdr[3];
		if (evbuffer_get_length(in) < 4 + body)
			return;
		if ((p = evbuffer_pullup(in, (ssize_t)(4 + body))) == NULL) {
			client_fail(c, PROTO_E_INTERNAL, "out of memory");
			return;
		}
		request_handle(c, p + 4, body);
		evbuffer_drain(in, 4 + body);
	}
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	read_frames(arg);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
	struct client *c = arg;

	if (c->closing && evbuffer_get_length(bufferevent_get_output(bev)) ==
	    0) {
		client_free(c);
		return;
	}
	if (c->export != NULL && !c->closing)
		xfer_pump(c);
	if (c->paused && !c->closing && client_queued(c) <=
	    (size_t)c->d->conf->max_output / 2) {
		c->paused = 0;
		bufferevent_enable(c->bev, EV_READ);
		read_frames(c);
	}
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct client *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		log_debug("client %llu: %s", (unsigned long long)c->serial,
		    what & BEV_EVENT_EOF ? "closed" : "error");
		client_free(c);
	}
}

struct client *
client_new(struct daemon *d, int fd, uid_t uid, gid_t gid, pid_t pid)
{
	struct client *c = calloc(1, sizeof *c);

	if (c == NULL)
		return NULL;
	c->bev = bufferevent_socket_new(d->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		free(c);
		return NULL;
	}
	c->d = d;
	c->serial = ++d->next_serial;
	c->uid = uid;
	c->gid = gid;
	c->pid = pid;
	c->next = d->clients;
	d->clients = c;
	d->n_clients++;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	/* write_cb runs as the output drains below half the cap. */
	bufferevent_setwatermark(c->bev, EV_WRITE,
	    (size_t)d->conf->max_output / 2, 0);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	log_debug("client %llu: uid %u pid %d", (unsigned long long)c->serial,
	    (unsigned)uid, (int)pid);
	return c;
}

static void
client_free(struct client *c)
{
	struct client **pp;

	drop_jobs(c);
	xfer_end(c);
	for (pp = &c->d->clients; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	c->d->n_clients--;
	bufferevent_free(c->bev);
	xfer_import_drop(c);
	free(c);
}

struct client *
client_find(struct daemon *d, uint64_t serial)
{
	struct client *c;

	for (c = d->clients; c != NULL; c = c->next)
		if (c->serial == serial)
			return c;
	return NULL;
}

void
client_send(struct client *c, const char *data, size_t len)
{
	if (!c->closing)
		bufferevent_write(c->bev, data, len);
}

size_t
client_queued(const struct client *c)
{
	return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void
client_fail(struct client *c, int code, const char *msg)
{
	struct proto_out o;
	const char *data;
	size_t len;

	log_info("client %llu: %s: %s", (unsigned long long)c->serial,
	    proto_err_name((enum proto_err)code), msg);
	proto_out_init(&o);
	proto_encode_error(&o, 0, (enum proto_err)code, "%s", msg);
	if (proto_out_finish(&o, PROTO_MAX_FRAME, &data, &len, NULL) == 0)
		client_send(c, data, len);
	proto_out_free(&o);
	/* Its requests end now, whether or not it ever reads again. */
	drop_jobs(c);
	xfer_end(c);
	/* Freed by write_cb once the error is out: never in a callback. */
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
}

void
client_close_all(struct daemon *d)
{
	while (d->clients != NULL)
		client_free(d->clients);
}
