/*
 * email_core.c
 *		Normalisation of e-mail addresses for fingerprints (pure C, no
 *		postgres.h), so that one mailbox written two ways hashes alike.
 */
#include "email_core.h"

#include <stdbool.h>
#include <string.h>

/* ASCII whitespace, as trimmed around an address. */
static bool
email_core_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
		c == '\r';
}

/* ASCII lower case; every other byte (UTF-8 included) is kept. */
static unsigned char
email_core_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char) (c + ('a' - 'A')) : c;
}

/* Does d[0..len) equal the lower-case ASCII word w, ignoring case? */
static bool
email_core_domain_is(const char *d, size_t len, const char *w)
{
	size_t		wlen = strlen(w);
	size_t		i;

	if (len != wlen)
		return false;
	for (i = 0; i < len; i++)
		if (email_core_lower((unsigned char) d[i]) != (unsigned char) w[i])
			return false;
	return true;
}

/* Normalises an e-mail address; see email_core.h for the rules. */
email_core_status
email_core_normalize(const char *in, size_t len, char *out, size_t outsize,
					 size_t *outlen)
{
	size_t		start = 0;
	size_t		end = len;
	size_t		at;
	size_t		i;
	size_t		local_end;
	size_t		n = 0;
	bool		found_at = false;
	bool		gmail;
	const char *domain;
	size_t		domain_len;

	/* Trim surrounding whitespace. */
	while (start < end && email_core_is_space((unsigned char) in[start]))
		start++;
	while (end > start && email_core_is_space((unsigned char) in[end - 1]))
		end--;

	/* Split at the last '@'. */
	at = end;
	while (at > start)
	{
		if (in[at - 1] == '@')
		{
			found_at = true;
			at--;
			break;
		}
		at--;
	}
	if (!found_at)
		return EMAIL_CORE_NO_AT;

	/* No whitespace or control character may be left inside. */
	for (i = start; i < end; i++)
	{
		unsigned char c = (unsigned char) in[i];

		if (c < 0x20 || c == 0x7f || email_core_is_space(c))
			return EMAIL_CORE_BAD_CHAR;
	}

	domain = in + at + 1;
	domain_len = end - (at + 1);
	if (domain_len == 0)
		return EMAIL_CORE_EMPTY_DOMAIN;

	/* The local part ends at its first '+' (a sub-address tag). */
	local_end = start;
	while (local_end < at && in[local_end] != '+')
		local_end++;

	gmail = email_core_domain_is(domain, domain_len, "gmail.com") ||
		email_core_domain_is(domain, domain_len, "googlemail.com");
	if (gmail)
	{
		domain = "gmail.com";
		domain_len = strlen(domain);
	}

	/*
	 * Write the result.  It is never longer than the input, but out may be
	 * smaller than that: check every byte.
	 */
	for (i = start; i < local_end; i++)
	{
		if (gmail && in[i] == '.')
			continue;
		if (n + 1 >= outsize)
			goto too_small;
		out[n++] = (char) email_core_lower((unsigned char) in[i]);
	}
	if (n == 0)
		return EMAIL_CORE_EMPTY_LOCAL;
	if (n + 1 >= outsize)
		goto too_small;
	out[n++] = '@';
	for (i = 0; i < domain_len; i++)
	{
		if (n + 1 >= outsize)
			goto too_small;
		out[n++] = (char) email_core_lower((unsigned char) domain[i]);
	}
	out[n] = '\0';
	if (outlen)
		*outlen = n;
	return EMAIL_CORE_OK;

too_small:
	if (outsize > 0)
		out[n < outsize ? n : outsize - 1] = '\0';
	return EMAIL_CORE_BUFFER_TOO_SMALL;
}
