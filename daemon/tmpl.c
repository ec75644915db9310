/* tmpl: see tmpl.h. */
#include "tmpl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int
tmpl_init(struct tmpl *t, const struct model *m, const char *name,
    char *cause)
{
	char names[256], why[ERR_LEN] = "", *text = NULL;
	struct gguf_str s;
	int i, rc;

	memset(t, 0, sizeof *t);
	rc = gguf_get_str(m->gguf, "tokenizer.chat_template", &s, why);
	if (rc == 0 && (text = strndup(s.ptr, (size_t)s.len)) == NULL)
		return err_set(cause, "out of memory");
	t->model_fam = chat_detect(text, text != NULL ? strlen(text) : 0);
	if (t->model_fam < 0)
		snprintf(t->warning, sizeof t->warning, "the model's chat "
		    "template is not one sinkd recognises: its turns are in "
		    "sinkd's plain format (see 'sink templates'; sinkd "
		    "--chat-template NAME or sink new --template NAME choose "
		    "one)");
	t->dflt = t->model_fam >= 0 ? t->model_fam : CHAT_PLAIN;
	if (name != NULL && (t->dflt = chat_find(name)) < 0) {
		free(text);
		chat_names(names, sizeof names);
		return err_set(cause, "--chat-template '%s' is not a chat "
		    "template sinkd knows (%s)", name, names);
	}
	for (i = 0; i < CHAT_N; i++) {
		if (chat_init_tok(&t->c[i], i, m->tok, i == t->model_fam ?
		    text : NULL, cause) != 0) {
			free(text);
			tmpl_free(t);
			return -1;
		}
	}
	free(text);
	if (t->warning[0] != '\0' && name == NULL)
		log_warn("%s", t->warning);
	log_info("chat template of new sessions: %s%s", chat_name(t->dflt),
	    name != NULL ? " (--chat-template)" : t->model_fam >= 0 ?
	    " (the model's)" : "");
	return 0;
}

void
tmpl_free(struct tmpl *t)
{
	int i;

	for (i = 0; i < CHAT_N; i++)
		chat_free(&t->c[i]);
}

const char *
tmpl_warning(const struct tmpl *t, int fam)
{
	return fam == CHAT_PLAIN && t->model_fam < 0 ? t->warning : "";
}
