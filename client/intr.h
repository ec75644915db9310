/*
 * intr: Ctrl-C as an event.  SIGINT writes a byte to a pipe; code that
 * waits (the connection's reads and writes, the chat prompt) polls the
 * pipe's read end beside its own descriptor, so a Ctrl-C can never be
 * lost between a check and a blocking call.
 *
 * Process-wide state: the pipe and the SIGINT disposition (installed by
 * intr_init, which only sink's main() calls).
 */
#ifndef SINK_INTR_H
#define SINK_INTR_H

/* Creates the pipe and installs the handler.  0, or -1 with cause. */
int	intr_init(char *cause);
/* The descriptor that is readable once SIGINT arrived; -1 before init. */
int	intr_fd(void);
/* How many SIGINTs arrived since the last call (empties the pipe). */
int	intr_take(void);

#endif
