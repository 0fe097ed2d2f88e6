/*
 * fuzz_url.c
 *		libFuzzer harness for src/url_core.c (links nothing else):
 *
 *		clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *			-o /tmp/fuzz_url test/fuzz/fuzz_url.c src/url_core.c
 *		/tmp/fuzz_url -max_total_time=60
 *
 * Input: one flag byte (bit 0: a channel is given), then base, code and
 * channel separated by 0xFE bytes.  The output buffer is a heap block of
 * exactly url_core_share_link_size() bytes, so AddressSanitizer catches any
 * write past it.  A link that is built is parsed back independently: the
 * base up to its fragment, the right separator, ref=<code>, the UTM
 * parameters, the fragment; every value must be unreserved bytes and
 * upper-case %XX only and decode to the input.
 */
#include "url_core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
		c == '~';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;					/* lower case is not what we emit */
}

/*
 * Checks that p (at most avail bytes) starts with the encoding of
 * want[0..wantlen), followed by a byte that is not part of a value;
 * returns the number of bytes consumed.
 */
static size_t
expect_encoded(const char *p, size_t avail, const char *want, size_t wantlen)
{
	size_t		n = 0;
	size_t		i;

	for (i = 0; i < wantlen; i++)
	{
		unsigned char c = (unsigned char) want[i];

		if (is_unreserved(c))
		{
			if (n >= avail || p[n] != (char) c)
				abort();
			n += 1;
		}
		else
		{
			if (n + 3 > avail || p[n] != '%' || hexval(p[n + 1]) < 0 ||
				hexval(p[n + 2]) < 0 ||
				hexval(p[n + 1]) * 16 + hexval(p[n + 2]) != c)
				abort();
			n += 3;
		}
	}
	/* the value ends here: what follows is '&', '#' or the end */
	if (n < avail && p[n] != '&' && p[n] != '#')
		abort();
	return n;
}

/* Independent base URL check. */
static int
base_ok(const char *b, size_t len)
{
	size_t		i;
	size_t		h;

	for (i = 0; i < len; i++)
		if ((unsigned char) b[i] <= 0x20 || (unsigned char) b[i] == 0x7f)
			return 0;
	if (len >= 7 && strncasecmp(b, "http://", 7) == 0)
		h = 7;
	else if (len >= 8 && strncasecmp(b, "https://", 8) == 0)
		h = 8;
	else
		return 0;
	return h < len && b[h] != '/' && b[h] != '?' && b[h] != '#';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *) data + 1;
	const char *end = (const char *) data + size;
	const char *base;
	const char *code;
	const char *chan = NULL;
	const char *sep;
	size_t		base_len;
	size_t		code_len;
	size_t		chan_len = 0;
	size_t		bufsize;
	size_t		outlen = 0;
	size_t		badpos = 0;
	char	   *out;
	char	   *small;
	size_t		smallsize;
	url_core_status st;
	url_core_status st2;

	if (size < 1)
		return 0;
	base = p;
	sep = memchr(p, 0xFE, (size_t) (end - p));
	base_len = (size_t) ((sep ? sep : end) - base);
	code = sep ? sep + 1 : end;
	sep = memchr(code, 0xFE, (size_t) (end - code));
	code_len = (size_t) ((sep ? sep : end) - code);
	if (data[0] & 1)
	{
		chan = sep ? sep + 1 : end;
		chan_len = (size_t) (end - chan);
	}

	bufsize = url_core_share_link_size(base_len, code_len, chan, chan_len);
	if (bufsize == 0)
		abort();
	out = malloc(bufsize);
	st = url_core_share_link(base, base_len, code, code_len, chan, chan_len,
							 out, bufsize, &outlen, &badpos);
	if (st == URL_CORE_BUFFER_TOO_SMALL)
		abort();				/* the advertised size always suffices */
	if ((st == URL_CORE_OK || st == URL_CORE_EMPTY_CODE ||
		 st == URL_CORE_EMPTY_CHANNEL) != base_ok(base, base_len))
		abort();
	if (st == URL_CORE_BAD_CHAR &&
		(badpos >= base_len || ((unsigned char) base[badpos] > 0x20 &&
								(unsigned char) base[badpos] != 0x7f)))
		abort();

	if (st == URL_CORE_OK)
	{
		const char *hash = memchr(base, '#', base_len);
		size_t		head = hash ? (size_t) (hash - base) : base_len;
		const char *q = memchr(base, '?', head);
		size_t		n = 0;

		if (outlen >= bufsize || out[outlen] != '\0')
			abort();
		if (memcmp(out, base, head) != 0)
			abort();
		n = head;
		if (q == NULL)
		{
			if (out[n++] != '?')
				abort();
		}
		else if (q != base + head - 1 && base[head - 1] != '&')
		{
			if (out[n++] != '&')
				abort();
		}
		if (outlen - n < 4 || memcmp(out + n, "ref=", 4) != 0)
			abort();
		n += 4;
		n += expect_encoded(out + n, outlen - n, code, code_len);
		if (chan)
		{
			if (outlen - n < 12 || memcmp(out + n, "&utm_source=", 12) != 0)
				abort();
			n += 12;
			n += expect_encoded(out + n, outlen - n, chan, chan_len);
			if (outlen - n < 20 || memcmp(out + n, "&utm_medium=referral", 20) != 0)
				abort();
			n += 20;
		}
		if (outlen - n != base_len - head ||
			memcmp(out + n, base + head, base_len - head) != 0)
			abort();
	}

	/* any smaller buffer: "too small", never a write past it */
	smallsize = size > 1 ? (size_t) data[size - 1] * 3 % (bufsize + 1) : 0;
	small = malloc(smallsize ? smallsize : 1);
	st2 = url_core_share_link(base, base_len, code, code_len, chan, chan_len,
							  small, smallsize, NULL, NULL);
	if (st == URL_CORE_OK)
	{
		if (smallsize > outlen)
		{
			if (st2 != URL_CORE_OK || memcmp(small, out, outlen + 1) != 0)
				abort();
		}
		else if (st2 != URL_CORE_BUFFER_TOO_SMALL)
			abort();
	}
	else if (st2 != st)
		abort();
	free(small);

	/* url_core_encode: the length is 1 per unreserved byte, 3 otherwise */
	{
		size_t		want = 0;
		size_t		i;
		char	   *enc = malloc(3 * code_len + 1);

		for (i = 0; i < code_len; i++)
			want += is_unreserved((unsigned char) code[i]) ? 1 : 3;
		if (url_core_encode(code, code_len, enc, 3 * code_len) != want)
			abort();
		if (url_core_encode(code, code_len, enc, code_len / 2) != want)
			abort();
		free(enc);
	}
	free(out);
	return 0;
}
