/*
 * bench_store: what bench_store.c (the `sinkd-bench store` command and
 * its measurements) and bench_store_sd.c (the sinkd it drives) share:
 * the options, one sinkd started on a private socket and database, one
 * connection to it, and the requests the measurements send.
 */
#ifndef SINKD_BENCH_STORE_H
#define SINKD_BENCH_STORE_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <sys/un.h>

#define STORE_PART_SNAPSHOT 1
#define STORE_PART_RESTORE 2
#define STORE_PART_SIZE 4

struct sopts {
	const char *model, *sinkd, *csv, *dir, *kv;
	long threads, turns, sessions, rounds, cache, reply;
	int parts, keep;
};

/* One sinkd, one connection to it, and the files of this run. */
struct sd {
	const struct sopts *o;
	char dir[PATH_MAX], sock[sizeof ((struct sockaddr_un *)0)->sun_path];
	char db[PATH_MAX + 16], wal[PATH_MAX + 16];
	pid_t pid;
	int fd;
	uint8_t *buf;
	size_t len, cap, used;
	uint64_t id;
	FILE *csv;
	long filled;		/* sessions s0.. fed till their cache wrapped */
	uint64_t kv_bytes;	/* a session's KV and token ids in memory */
};

/* What one turn's done message says, and its time on the wire. */
struct usage {
	double prefill_ms, decode_ms, load_ms, save_ms, wall_ms;
	uint64_t saved_bytes, prompt, generated, evicted;
	int saved;
};

/*
 * The private temp dir (under --dir, $TMPDIR or /tmp) and the CSV;
 * sd_cleanup stops sinkd and removes them (not with --keep).
 */
int sd_init(struct sd *, const struct sopts *, char *cause);
void sd_cleanup(struct sd *);
/* The database file, in the temp dir, that the next sd_start uses. */
void sd_set_db(struct sd *, const char *file);

/* Starts sinkd (-c /dev/null: no user settings) and connects. */
int sd_start(struct sd *, long max_sessions, char *cause);
/* Closes the connection, ends sinkd; -1 when it ended badly. */
int sd_stop(struct sd *, char *cause);

/*
 * Requests; an error reply, or any warning (a snapshot that failed),
 * is an error with sinkd's words.
 */
int sd_create(struct sd *, const char *name, uint64_t *bytes, char *cause);
int sd_status(struct sd *, char *model, size_t size, char *cause);
/* A feed (max_tokens 0), or a complete of max_tokens ignoring EOS. */
int sd_turn(struct sd *, const char *name, const char *text, long max_tokens,
    struct usage *, char *cause);

/* One CSV row of a turn, with the file sizes after it. */
void sd_csv(struct sd *, const char *part, long n, const char *name,
    const struct usage *);
uint64_t sd_file_size(const char *path);

#endif
