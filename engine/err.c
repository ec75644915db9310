/* err: the one formatter behind every `cause` message. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>

int
err_set(char *cause, const char *fmt, ...)
{
	va_list ap;

	if (cause == NULL)
		return -1;
	va_start(ap, fmt);
	vsnprintf(cause, ERR_LEN, fmt, ap);
	va_end(ap);
	return -1;
}
