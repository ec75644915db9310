/*
 * path: making the directories a file will live in.  The daemon's
 * database and socket and the client's chat history each need them,
 * private to their user when new.
 */
#ifndef SINKD_PATH_H
#define SINKD_PATH_H

/*
 * mkdir -p of the directories before path's last component, each made
 * mode 0700 (those that exist are left as they are).  0, or -1 with
 * cause naming the directory and errno kept.
 */
int path_make_dirs(const char *path, char *cause);

#endif
