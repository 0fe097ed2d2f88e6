/*
 * email_core.h
 *		Normalisation of e-mail addresses for fingerprints (pure C, no
 *		postgres.h): two spellings of one mailbox give the same string.
 */
#ifndef EMAIL_CORE_H
#define EMAIL_CORE_H

#include <stddef.h>

/* Outcome of email_core_normalize(). */
typedef enum email_core_status
{
	EMAIL_CORE_OK = 0,
	EMAIL_CORE_NO_AT,			/* no '@' at all */
	EMAIL_CORE_EMPTY_LOCAL,		/* nothing (left) before the '@' */
	EMAIL_CORE_EMPTY_DOMAIN,	/* nothing after the last '@' */
	EMAIL_CORE_BAD_CHAR,		/* whitespace or control character inside */
	EMAIL_CORE_BUFFER_TOO_SMALL /* out cannot hold the result and its NUL */
} email_core_status;

/*
 * Normalises the e-mail address in[0..len) into out (outsize bytes):
 *	- surrounding ASCII whitespace is trimmed;
 *	- ASCII letters are lower-cased (other bytes are kept as they are);
 *	- the address is split at its LAST '@';
 *	- a '+tag' is dropped from the local part (from its first '+' on);
 *	- for gmail.com and googlemail.com, dots are removed from the local
 *	  part and the domain becomes gmail.com.
 * An address without '@', with an empty local part (also after the steps
 * above) or domain, or with whitespace or a control character left inside,
 * is not an e-mail address.
 *
 * The result is never longer than the input, so outsize = len + 1 always
 * suffices.  On EMAIL_CORE_OK out holds the result, NUL-terminated, and
 * *outlen (when not NULL) its length; on any other status out is either
 * untouched or holds a NUL-terminated partial result, and no byte at or
 * past out[outsize] is ever written.
 */
extern email_core_status email_core_normalize(const char *in, size_t len,
											  char *out, size_t outsize,
											  size_t *outlen);

#endif							/* EMAIL_CORE_H */
