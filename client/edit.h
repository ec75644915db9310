/*
 * edit: the chat prompt on a terminal, with line editing and a history
 * kept in a file (libedit's readline interface).  The line is read in
 * libedit's callback mode, one character whenever poll says stdin has
 * one, with the interrupt pipe (intr.h) in the same poll: a Ctrl-C at
 * the prompt is seen at once, as with the plain line reader.
 *
 * The history file is $XDG_STATE_HOME/sinkd/chat_history (else
 * ~/.local/state/sinkd/chat_history), mode 0600, at most EDIT_HISTORY
 * lines; lines longer than EDIT_HISTORY_LINE bytes are not kept.
 *
 * Process-wide state (libedit's): one user, cmd_chat.
 */
#ifndef SINK_EDIT_H
#define SINK_EDIT_H

#define EDIT_HISTORY		500
#define EDIT_HISTORY_LINE	4096

/* Sets libedit up and loads the history (a missing file is fine). */
void	edit_open(void);
/* Saves nothing more; the terminal is left as it was found. */
void	edit_close(void);
/*
 * Reads a line after prompt: 1 with *line (malloc'd, no newline), 0 at
 * Ctrl-D or the end of stdin, -2 on Ctrl-C, -1 with cause.
 */
int	edit_line(const char *prompt, char **line, char *cause);
/* Adds line to the history and rewrites the file (errors: a warning). */
void	edit_remember(const char *line);

#endif
