/*
 * daemon_harness: what the daemon tests share to drive a real sinkd.
 * It owns the test's temp dir (and, if asked, an empty run dir inside
 * it that sinkd is started in), the one daemon under test (its socket
 * and process: start, wait, stop, kill after a failed test), and
 * connections to it: framed requests out, parsed messages in, with the
 * check assertions every test makes on them.  One daemon at a time:
 * its pid, socket and the dirs are the process-wide state of this
 * module, read through dh_pid(), dh_sock(), dh_tmpdir(), dh_rundir().
 */
#ifndef DAEMON_HARNESS_H
#define DAEMON_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define DH_BUF (1 << 20) /* a connection's input buffer: the largest frame */

/* One connection: frames in, parsed messages out. */
struct dh_conn {
	int fd;
	uint8_t *buf;	/* DH_BUF bytes */
	size_t len;
	size_t used;	/* bytes of the frame msg was parsed from */
	struct proto_msg msg;
	int have;
};

/*
 * Makes /tmp/sinkd-test-<name>-XXXXXX (and <it>/run, where sinkd then
 * runs, if rundir); ignores SIGPIPE.  dh_teardown removes it all.
 */
void		 dh_setup(const char *name, int rundir);
void		 dh_teardown(void);
void		 dh_each_teardown(void);
const char	*dh_tmpdir(void);
const char	*dh_rundir(void);
const char	*dh_sock(void);
pid_t		 dh_pid(void);

/* The synthetic tiny model, scale times wider and deeper, in tmpdir. */
void		 dh_write_model(char *, size_t, const char *, int);

/*
 * The absolute path of a program of $SINKD_BUILDDIR (else .), valid
 * until the next call.
 */
const char	*dh_bin(const char *);

/*
 * Starts sinkd -m model --socket <sock>, then the arguments of base
 * (NULL-terminated; may be NULL), then the extra ones (NULL-terminated).
 */
void		 dh_start(const char *, const char *const *, ...);
int		 dh_wait(void);
void		 dh_stop(void);
const char	*dh_fate(void);

int		 dh_dial(void);
void		 dh_open(struct dh_conn *);
void		 dh_close(struct dh_conn *);
void		 dh_send_raw(struct dh_conn *, const void *, size_t);
void		 dh_rq(struct dh_conn *, const char *, uint64_t,
		     const char *, ...);
struct proto_msg *dh_pop(struct dh_conn *);
ssize_t		 dh_fill(struct dh_conn *);
struct proto_msg *dh_next(struct dh_conn *);

int		 dh_is_kind(const struct proto_msg *, const char *);
int		 dh_code_is(const struct proto_msg *, const char *);
uint64_t	 dh_id_of(const struct proto_msg *);
struct proto_msg *dh_expect(struct dh_conn *, const char *, uint64_t);
void		 dh_expect_error(struct dh_conn *, uint64_t, const char *,
		     const char *);
const char	*dh_drain(struct dh_conn *, uint64_t, char *, size_t,
		     int32_t *, int, int *);

#endif
