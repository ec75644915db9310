/*
 * bench_dsrv: a sinkd of the benchmark's own, on a socket and a database
 * in a private directory, so that no user setting or earlier session
 * changes what is measured.  The database is a file (not ':memory:'):
 * snapshots and imports then write and sync as they do in service.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_daemon.h"
#include "err.h"

static void
rm_dir(struct dsrv *s)
{
	char p[128];

	unlink(s->sock);
	unlink(s->db);
	snprintf(p, sizeof p, "%s-wal", s->db);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", s->db);
	unlink(p);
	rmdir(s->dir);
}

static void
run_sinkd(const struct dopts *o, const struct dsrv *s)
{
	char threads[32], chunk[48], batch[48], share[48], nice[48];
	char *argv[32];
	/* Limits raised so that only the sizes asked for bound the runs. */
	const char *fixed[] = { o->sinkd, "-c", "/dev/null", "-m", o->model,
	    "--socket", s->sock, "--db", s->db, "-t", threads,
	    "--max-tokens", "16777216", "--max-clients", "200",
	    "--max-prompt", "67108864", "--max-frame", "4194304",
	    "--max-sessions", "1000", "--log-level", "warn" };
	int n;

	snprintf(threads, sizeof threads, "%ld", o->threads);
	for (n = 0; n < (int)(sizeof fixed / sizeof fixed[0]); n++)
		argv[n] = (char *)fixed[n];
	if (o->share > 0) {
		snprintf(share, sizeof share, "--prefill-share=%ld", o->share);
		argv[n++] = share;
	}
	if (o->chunk > 0) {
		snprintf(chunk, sizeof chunk, "--chunk=%ld", o->chunk);
		argv[n++] = chunk;
	}
	if (o->max_batch > 0) {
		snprintf(batch, sizeof batch, "--max-batch=%ld", o->max_batch);
		argv[n++] = batch;
	}
	if (o->store_nice >= 0) {
		snprintf(nice, sizeof nice, "--store-nice=%ld", o->store_nice);
		argv[n++] = nice;
	}
	argv[n] = NULL;
	execv(o->sinkd, argv);
	fprintf(stderr, "sinkd-bench: cannot run %s: %s\n", o->sinkd,
	    strerror(errno));
	_exit(127);
}

int
dsrv_start(struct dsrv *s, const struct dopts *o, char *cause)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int i, fd;

	memset(s, 0, sizeof *s);
	snprintf(s->dir, sizeof s->dir, "/tmp/sinkd-bench-XXXXXX");
	if (mkdtemp(s->dir) == NULL)
		return err_set(cause, "mkdtemp: %s", strerror(errno));
	snprintf(s->sock, sizeof s->sock, "%s/sock", s->dir);
	snprintf(s->db, sizeof s->db, "%s/sinkd.db", s->dir);
	if ((s->pid = fork()) < 0) {
		rm_dir(s);
		return err_set(cause, "fork: %s", strerror(errno));
	}
	if (s->pid == 0)
		run_sinkd(o, s);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", s->sock);
	for (i = 0; i < 1200; i++) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&sun,
		    sizeof sun) == 0) {
			close(fd);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = -1;
			break;
		}
		usleep(50000);
	}
	err_set(cause, "%s did not start on %s", o->sinkd, s->sock);
	dsrv_stop(s);
	return -1;
}

void
dsrv_stop(struct dsrv *s)
{
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, NULL, 0);
		s->pid = -1;
	}
	rm_dir(s);
}
