/*
 * excerpt_core.c
 *		The prefix of a user's input that an error message quotes (pure C,
 *		no postgres.h); the server's character lengths come in as a function.
 */
#include "excerpt_core.h"

/* Bytes of the first maxchars characters; see excerpt_core.h. */
size_t
excerpt_core_prefix_len(const char *s, size_t len, size_t maxchars,
						int (*charlen) (const char *), bool *cut)
{
	size_t		n = 0;
	size_t		chars = 0;

	while (n < len && chars < maxchars)
	{
		int			l = charlen(s + n);
		size_t		step = l < 1 ? 1 : (size_t) l;

		if (step > len - n)
			break;
		n += step;
		chars++;
	}
	if (cut)
		*cut = n < len;
	return n;
}
