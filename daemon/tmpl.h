/*
 * tmpl: the chat formats this sinkd offers (engine/chat.h): a formatter
 * of every family for the model's vocabulary, the default of new
 * sessions (the model's tokenizer.chat_template as recognised, or
 * --chat-template), and the warning when the model's template is one
 * sinkd does not recognise (then the default is plain).  Made once at
 * startup, read-only after: the loop and the worker share it.
 */
#ifndef SINKD_TMPL_H
#define SINKD_TMPL_H

#include "chat.h"
#include "model.h"

struct tmpl {
	struct chat c[CHAT_N];
	int dflt;		/* family of new sessions */
	int model_fam;		/* the model's template's, -1: unrecognised */
	char warning[ERR_LEN];	/* non-empty: the model's was not recognised */
};

/* name: --chat-template (NULL: the model's).  0 or -1 with cause. */
int tmpl_init(struct tmpl *, const struct model *, const char *name,
    char *cause);
void tmpl_free(struct tmpl *);
/* The warning a session of family fam carries ("" for none). */
const char *tmpl_warning(const struct tmpl *, int fam);

#endif
