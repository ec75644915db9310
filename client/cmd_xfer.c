/*
 * cmd_xfer: moving a session between daemons: export (the daemon's data
 * messages, concatenated, are the file: written raw to stdout or, with
 * -o, to FILE.tmp renamed to FILE once the daemon's ok has come) and
 * import (a file sent in parts well under the daemon's frame limit,
 * each waiting for its ok).  Neither holds a whole file in memory.
 */
#include "cmd.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

/* Most of the file sent per import request. */
#define IMPORT_PART (512u << 10)
/* Room left in a frame for the keys beside the data. */
#define IMPORT_SLACK (4u << 10)

/* Where an export goes. */
struct sink_file {
	int		 fd;
	const char	*path;		/* -o FILE, or NULL for stdout */
	char		*tmp;		/* FILE.tmp, written first */
	uint64_t	 bytes;
};

static int
write_all(int fd, const char *p, size_t len, char *cause)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) < 0) {
			if (errno == EINTR)
				continue;
			return err_set(cause, "%s", strerror(errno));
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A data message: its bytes go out as they are (cmd_ctx's on_data). */
static int
export_data(struct cmd_ctx *c, const struct conn_msg *m)
{
	struct sink_file *f = c->data_arg;
	char cause[ERR_LEN];
	const void *data;
	size_t len;

	if (proto_get_bin(&m->msg, "data", 1, SIZE_MAX, &data, &len,
	    cause) != 0) {
		fprintf(stderr, "sink: the daemon sent a bad data message: "
		    "%s\n", cause);
		return EXIT_FAIL;
	}
	if (write_all(f->fd, data, len, cause) != 0) {
		fprintf(stderr, "sink: writing %s: %s\n", f->path != NULL ?
		    f->tmp : "stdout", cause);
		return EXIT_FAIL;
	}
	f->bytes += len;
	return 0;
}

/* FILE.tmp, new and private: a stale one from a failed run goes. */
static int
export_open(struct sink_file *f)
{
	size_t n = strlen(f->path) + sizeof ".tmp";

	if ((f->tmp = malloc(n)) == NULL) {
		fprintf(stderr, "sink: out of memory\n");
		return EXIT_FAIL;
	}
	snprintf(f->tmp, n, "%s.tmp", f->path);
	if (unlink(f->tmp) == -1 && errno != ENOENT) {
		fprintf(stderr, "sink: cannot remove %s: %s\n", f->tmp,
		    strerror(errno));
		return EXIT_FAIL;
	}
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (f->fd == -1) {
		fprintf(stderr, "sink: cannot create %s: %s\n", f->tmp,
		    strerror(errno));
		return EXIT_FAIL;
	}
	return 0;
}

/* Drops FILE.tmp after a failure; FILE itself is never touched. */
static void
export_abort(struct sink_file *f)
{
	if (f->path != NULL && f->fd != -1) {
		close(f->fd);
		unlink(f->tmp);
	}
	free(f->tmp);
}

/* FILE.tmp on disk, then renamed to FILE: 0 or an exit status. */
static int
export_commit(struct sink_file *f)
{
	const char *what = "sync";
	int fd = f->fd, e;

	f->fd = -1;
	if (fsync(fd) == 0) {
		what = "close";
		if (close(fd) == 0) {
			what = "rename";
			if (rename(f->tmp, f->path) == 0) {
				free(f->tmp);
				return 0;
			}
		}
		e = errno;
	} else {
		e = errno;
		close(fd);
	}
	fprintf(stderr, "sink: %s %s: %s\n", what, f->tmp, strerror(e));
	unlink(f->tmp);
	free(f->tmp);
	return EXIT_FAIL;
}

/* Checks made before connecting: 0 or EXIT_USAGE. */
static int
export_check(const struct cmd_ctx *c)
{
	if (c->o.output != NULL)
		return 0;
	if (c->o.json) {
		fprintf(stderr, "sink: with --json, stdout carries the "
		    "messages: give the export a file with -o FILE (see sink "
		    "--help)\n");
		return EXIT_USAGE;
	}
	if (isatty(STDOUT_FILENO)) {
		fprintf(stderr, "sink: sink export writes binary data: "
		    "redirect it to a file (or use -o FILE)\n");
		return EXIT_USAGE;
	}
	return 0;
}

/* The final reply: ok only when every byte it counts was written. */
static int
export_end(struct cmd_ctx *c, struct sink_file *f, struct conn_msg *m)
{
	uint64_t bytes;

	if (m->kind != PROTO_K_OK) {
		export_abort(f);
		return cmd_end(c, PROTO_OP_EXPORT, 0, m);
	}
	if (proto_get_u64(&m->msg, "bytes", 0, 0, UINT64_MAX, &bytes,
	    NULL) == 0 && bytes != f->bytes) {
		fprintf(stderr, "sink: the export is incomplete: the daemon "
		    "sent %llu bytes of %llu\n", (unsigned long long)f->bytes,
		    (unsigned long long)bytes);
		export_abort(f);
		conn_msg_free(m);
		return EXIT_FAIL;
	}
	if (f->path != NULL && export_commit(f) != 0) {
		conn_msg_free(m);
		return EXIT_FAIL;
	}
	if (f->path == NULL)
		free(f->tmp);
	return cmd_end(c, PROTO_OP_EXPORT, 0, m);
}

int
cmd_export(struct cmd_ctx *c)
{
	struct sink_file f = { .fd = c->o.output != NULL ? -1 :
	    STDOUT_FILENO, .path = c->o.output };
	const char *name = cmd_name_arg(c, 0);
	struct conn_msg m;
	uint64_t id;
	int r;

	if ((r = export_check(c)) != 0 || (r = cmd_connect(c)) != 0)
		return r;
	c->out.session = name;
	c->out.file = c->o.output;
	if (f.path != NULL && (r = export_open(&f)) != 0) {
		export_abort(&f);
		return r;
	}
	id = conn_begin(c->conn, PROTO_OP_EXPORT, 1);
	proto_put_cstr(conn_out(c->conn), "name", name);
	c->on_data = export_data;
	c->data_arg = &f;
	if ((r = cmd_send(c, PROTO_OP_EXPORT)) == 0)
		r = cmd_wait(c, id, PROTO_OP_EXPORT, 0, NULL, &m);
	c->on_data = NULL;
	if (r != 0) {
		export_abort(&f);
		return r;
	}
	return export_end(c, &f, &m);
}

/* The file being imported. */
struct import_file {
	int		 fd;
	const char	*path;		/* as given, or "stdin" */
	char		*buf;
	size_t		 len, cap;
	int		 eof;
	uint64_t	 total;		/* its size, 0 when unknown */
	uint64_t	 sent;
};

/* Reads until buf holds want bytes or the file ends: 0 or exit status. */
static int
import_fill(struct import_file *im, size_t want)
{
	char cause[ERR_LEN];
	ssize_t n;

	if (want > im->cap)
		want = im->cap;
	while (!im->eof && im->len < want) {
		n = cmd_read_fd(im->fd, im->buf + im->len, want - im->len,
		    cause);
		if (n == -2)
			return EXIT_INTR;
		if (n < 0) {
			fprintf(stderr, "sink: reading %s: %s\n", im->path,
			    cause);
			return EXIT_FAIL;
		}
		if (n == 0)
			im->eof = 1;
		im->len += (size_t)n;
	}
	return 0;
}

/* Opens FILE (or takes stdin for "-"): 0 or an exit status. */
static int
import_open(struct import_file *im, const char *arg)
{
	struct stat st;

	memset(im, 0, sizeof *im);
	im->fd = -1;
	if (strcmp(arg, "-") == 0) {
		if (isatty(STDIN_FILENO)) {
			fprintf(stderr, "sink: import - reads the export from "
			    "stdin: sink import - < FILE\n");
			return EXIT_USAGE;
		}
		im->fd = STDIN_FILENO;
		im->path = "stdin";
	} else {
		im->path = arg;
		if ((im->fd = open(arg, O_RDONLY | O_CLOEXEC)) == -1) {
			fprintf(stderr, "sink: cannot open %s: %s\n", arg,
			    strerror(errno));
			return EXIT_FAIL;
		}
	}
	if (fstat(im->fd, &st) == 0 && S_ISREG(st.st_mode))
		im->total = (uint64_t)st.st_size;
	im->cap = IMPORT_PART + 1;
	if ((im->buf = malloc(im->cap)) == NULL) {
		fprintf(stderr, "sink: out of memory\n");
		return EXIT_FAIL;
	}
	return 0;
}

static void
import_close(struct import_file *im)
{
	if (im->fd > STDIN_FILENO)
		close(im->fd);
	free(im->buf);
}

/* One part; 0 with *m the reply, or an exit status. */
static int
import_part(struct cmd_ctx *c, const char *name, const char *data,
    size_t len, int more, struct conn_msg *m)
{
	struct proto_out *o;
	uint64_t id;
	int r;

	id = conn_begin(c->conn, PROTO_OP_IMPORT, 2 + (name != NULL));
	o = conn_out(c->conn);
	proto_put_bin(o, "data", data, len);
	proto_put_bool(o, "more", more);
	if (name != NULL)
		proto_put_cstr(o, "name", name);
	if ((r = cmd_send(c, PROTO_OP_IMPORT)) != 0)
		return r;
	return cmd_wait(c, id, PROTO_OP_IMPORT, 0, NULL, m);
}

/*
 * The parts, each at most part bytes; one byte read past a part tells
 * whether more follow, so that the last says more=false.
 */
static int
import_send(struct cmd_ctx *c, struct import_file *im, const char *name,
    size_t part)
{
	struct conn_msg m;
	size_t n;
	int more, r;

	for (;;) {
		if ((r = import_fill(im, part + 1)) != 0)
			return r;
		more = im->len > part;
		n = more ? part : im->len;
		if ((r = import_part(c, name, im->buf, n, more, &m)) != 0)
			return r;
		im->sent += n;
		if (!more || m.kind != PROTO_K_OK)
			return cmd_end(c, PROTO_OP_IMPORT, 0, &m);
		c->out.ops->message(&c->out, PROTO_OP_IMPORT, &m);
		conn_msg_free(&m);
		c->out.ops->sent(&c->out, im->sent, im->total);
		memmove(im->buf, im->buf + n, im->len - n);
		im->len -= n;
	}
}

/* The largest part the daemon's frame limit (from hello) leaves room for. */
static size_t
import_part_size(const struct cmd_ctx *c)
{
	size_t max = conn_max_out(c->conn);

	max = max > 2 * IMPORT_SLACK ? max - IMPORT_SLACK : max / 2;
	return max < IMPORT_PART ? max : IMPORT_PART;
}

int
cmd_import(struct cmd_ctx *c)
{
	struct import_file im;
	const char *name = c->o.argc > 1 ? c->o.argv[1] : NULL;
	int r;

	if ((r = import_open(&im, c->o.argv[0])) != 0 ||
	    (r = import_fill(&im, im.cap)) != 0) {
		import_close(&im);
		return r;
	}
	/* An empty file is a mistake worth a message, not a connection. */
	if (im.len == 0) {
		fprintf(stderr, "sink: %s is empty: not a file made by sink "
		    "export\n", im.path);
		import_close(&im);
		return EXIT_FAIL;
	}
	c->out.file = im.path;
	c->out.session = name;
	if ((r = cmd_connect(c)) == 0)
		r = import_send(c, &im, name, import_part_size(c));
	import_close(&im);
	return r;
}
