/*
 * unicode: UTF-8 decoding and character classes (see unicode.h).
 */
#include "unicode.h"

size_t
uc_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	unsigned lo = 0x80, hi = 0xbf;
	size_t k, i;
	uint32_t v;

	*cp = s[0];
	if (s[0] < 0x80)
		return 1;
	*cp = UC_INVALID;
	if (s[0] < 0xc2 || s[0] > 0xf4)
		return 1;
	k = s[0] < 0xe0 ? 2 : s[0] < 0xf0 ? 3 : 4;
	if (s[0] == 0xe0)
		lo = 0xa0; /* overlong */
	else if (s[0] == 0xed)
		hi = 0x9f; /* surrogates */
	else if (s[0] == 0xf0)
		lo = 0x90; /* overlong */
	else if (s[0] == 0xf4)
		hi = 0x8f; /* beyond U+10FFFF */
	if (n < k || s[1] < lo || s[1] > hi)
		return 1;
	for (i = 2; i < k; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 1;
	v = s[0] & (0x7f >> k);
	for (i = 1; i < k; i++)
		v = v << 6 | (s[i] & 0x3f);
	*cp = v;
	return k;
}

size_t
uc_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Binary search for the last run starting at or before cp. */
int
uc_class(uint32_t cp)
{
	size_t lo = 0, hi = uc_nruns, mid;

	while (hi - lo > 1) {
		mid = lo + (hi - lo) / 2;
		if (uc_runs[mid] >> 3 <= cp)
			lo = mid;
		else
			hi = mid;
	}
	return (int)(uc_runs[lo] & 7);
}
