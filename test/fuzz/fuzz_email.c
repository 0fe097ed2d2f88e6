/*
 * fuzz_email.c
 *		libFuzzer harness for src/email_core.c (links nothing else):
 *
 *		clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *			-o /tmp/fuzz_email test/fuzz/fuzz_email.c src/email_core.c
 *		/tmp/fuzz_email -max_total_time=60
 *
 * Every output buffer is a heap block of exactly the size passed, so
 * AddressSanitizer catches any write past it.  Besides memory safety it
 * checks the properties of a normalised address: never longer than the
 * input, no upper-case ASCII, no whitespace or control bytes, non-empty
 * local part and domain, no '+' in the local part, no '.' in a Gmail local
 * part, no googlemail.com, and normalising again changes nothing.
 */
#include "email_core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Is s[0..len) equal to w? */
static int
eq(const char *s, size_t len, const char *w)
{
	return len == strlen(w) && memcmp(s, w, len) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *) data;
	char	   *out = malloc(size + 1);
	char	   *again;
	char	   *small;
	size_t		outlen = 0;
	size_t		againlen = 0;
	size_t		smallsize;
	size_t		i;
	email_core_status st;
	email_core_status st2;
	const char *at;

	st = email_core_normalize(in, size, out, size + 1, &outlen);
	if (st == EMAIL_CORE_BUFFER_TOO_SMALL)
		abort();				/* len + 1 always suffices */
	if (memchr(in, '@', size) == NULL && st != EMAIL_CORE_NO_AT)
		abort();

	if (st == EMAIL_CORE_OK)
	{
		if (outlen > size || out[outlen] != '\0' || strlen(out) != outlen)
			abort();
		for (i = 0; i < outlen; i++)
		{
			unsigned char c = (unsigned char) out[i];

			if ((c >= 'A' && c <= 'Z') || c <= 0x20 || c == 0x7f)
				abort();
		}
		at = NULL;
		for (i = outlen; i > 0; i--)
			if (out[i - 1] == '@')
			{
				at = out + i - 1;
				break;
			}
		if (at == NULL || at == out || at == out + outlen - 1)
			abort();
		if (memchr(out, '+', (size_t) (at - out)) != NULL)
			abort();
		if (eq(at + 1, outlen - (size_t) (at + 1 - out), "googlemail.com"))
			abort();
		if (eq(at + 1, outlen - (size_t) (at + 1 - out), "gmail.com") &&
			memchr(out, '.', (size_t) (at - out)) != NULL)
			abort();

		/* idempotent */
		again = malloc(outlen + 1);
		if (email_core_normalize(out, outlen, again, outlen + 1, &againlen) !=
			EMAIL_CORE_OK || againlen != outlen ||
			memcmp(again, out, outlen + 1) != 0)
			abort();
		free(again);
	}

	/* a buffer of any size: the same answer, or "too small", never more */
	smallsize = size ? (size_t) data[0] % (size + 2) : 0;
	small = malloc(smallsize ? smallsize : 1);
	st2 = email_core_normalize(in, size, small, smallsize, NULL);
	if (st == EMAIL_CORE_OK)
	{
		if (smallsize > outlen)
		{
			if (st2 != EMAIL_CORE_OK || memcmp(small, out, outlen + 1) != 0)
				abort();
		}
		else if (st2 != EMAIL_CORE_BUFFER_TOO_SMALL)
			abort();
	}
	else if (st2 != st && st2 != EMAIL_CORE_BUFFER_TOO_SMALL)
		abort();
	free(small);
	free(out);
	return 0;
}
