/*
 * url_core.h
 *		Share links: a base URL with ref=CODE and UTM parameters set as
 *		query parameters, percent-encoded per RFC 3986 (pure C, no
 *		postgres.h).
 */
#ifndef URL_CORE_H
#define URL_CORE_H

#include <stddef.h>

/* Outcome of url_core_check_base() and url_core_share_link(). */
typedef enum url_core_status
{
	URL_CORE_OK = 0,
	URL_CORE_EMPTY_BASE,		/* base URL is the empty string */
	URL_CORE_BAD_CHAR,			/* whitespace or control character in base */
	URL_CORE_BAD_SCHEME,		/* base does not start with http:// or https:// */
	URL_CORE_NO_HOST,			/* nothing between "scheme://" and / ? # */
	URL_CORE_EMPTY_CODE,		/* code is the empty string */
	URL_CORE_EMPTY_CHANNEL,		/* channel given but empty */
	URL_CORE_BUFFER_TOO_SMALL	/* out cannot hold the result and its NUL */
} url_core_status;

/*
 * Checks a base URL: non-empty, no whitespace or control characters
 * (bytes below 0x20, 0x7F), starting with http:// or https:// (any case)
 * followed by a non-empty authority.  On URL_CORE_BAD_CHAR, *badpos (when
 * not NULL) is the 0-based byte offset of the offending character.
 */
extern url_core_status url_core_check_base(const char *base, size_t len,
										   size_t *badpos);

/*
 * Percent-encodes in[0..len) into out per RFC 3986: unreserved characters
 * (A-Z a-z 0-9 - . _ ~) stay, every other byte becomes %XX (upper-case
 * hex).  Writes at most outsize bytes; returns the encoded length, which
 * is larger than outsize when out was too small (nothing is NUL-terminated).
 */
extern size_t url_core_encode(const char *in, size_t len, char *out,
							  size_t outsize);

/*
 * Size of the buffer (NUL included) that url_core_share_link() needs at
 * most for these lengths, or 0 when that would overflow size_t.
 */
extern size_t url_core_share_link_size(size_t base_len, size_t code_len,
									   const char *channel,
									   size_t channel_len);

/*
 * Builds the share link: base[0..base_len) with "ref=<code>" and, when
 * channel is not NULL, "utm_source=<channel>" and "utm_medium=referral" in
 * its query.  The fragment (from the first '#') is split off and put back
 * at the end; the query starts after the first '?' before it.  A parameter
 * the query already has (same name, byte for byte, before its first '=')
 * gets the new value where it stands, and its repetitions are dropped;
 * every other parameter is kept as it is, in its place.  Those the query
 * lacks are added at its end, in the order above, after an '&' unless the
 * query so far is empty or ends in '&' ('?' is added when there is none).
 * On URL_CORE_OK out holds the NUL-terminated link and *outlen (when not
 * NULL) its length.  No byte at or past out[outsize] is ever written.
 * *badpos is set as url_core_check_base() does.
 */
extern url_core_status url_core_share_link(const char *base, size_t base_len,
										   const char *code, size_t code_len,
										   const char *channel,
										   size_t channel_len,
										   char *out, size_t outsize,
										   size_t *outlen, size_t *badpos);

#endif							/* URL_CORE_H */
