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
 * write past it.  A link that is built is parsed back independently (see
 * check_link): the base up to its query, each parameter of the link once
 * with its value, the base's other parameters in their order, the
 * fragment; every value must be unreserved bytes and upper-case %XX only
 * and decode to the input.
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

/* A query segment: bytes between '?', '&' and the end of the query. */
typedef struct segment
{
	const char *p;
	size_t		len;
} segment;

/* Splits q[0..len) at every '&'; returns the number of segments (>= 1). */
static size_t
split_query(const char *q, size_t len, segment *segs)
{
	size_t		n = 0;
	size_t		start = 0;
	size_t		i;

	for (i = 0; i <= len; i++)
		if (i == len || q[i] == '&')
		{
			segs[n].p = q + start;
			segs[n].len = i - start;
			n++;
			start = i + 1;
		}
	return n;
}

/*
 * Which parameter of the link a segment names (the bytes before its first
 * '='): 0 ref, 1 utm_source, 2 utm_medium (these two only with a channel),
 * -1 another one.
 */
static int
param_of(const segment *s, int with_channel)
{
	size_t		n = 0;

	while (n < s->len && s->p[n] != '=')
		n++;
	if (n == 3 && memcmp(s->p, "ref", 3) == 0)
		return 0;
	if (with_channel && n == 10 && memcmp(s->p, "utm_source", 10) == 0)
		return 1;
	if (with_channel && n == 10 && memcmp(s->p, "utm_medium", 10) == 0)
		return 2;
	return -1;
}

/*
 * Parses a built link back: the base up to its query, then a query holding
 * ref=<code> (and utm_source=<channel>, utm_medium=referral with a channel)
 * exactly once each, the base's other non-empty parameters in their order,
 * a parameter the base had where it stood (after as many others), the new
 * ones after every other in the order ref, utm_source, utm_medium; then the
 * fragment.  Values are unreserved bytes and upper-case %XX only and
 * decode to the input.
 */
static void
check_link(const char *base, size_t base_len, const char *code,
		   size_t code_len, const char *chan, size_t chan_len,
		   const char *out, size_t outlen, size_t bufsize)
{
	const char *hash = memchr(base, '#', base_len);
	size_t		head = hash ? (size_t) (hash - base) : base_len;
	const char *q = memchr(base, '?', head);
	size_t		pre = q ? (size_t) (q - base) + 1 : head;
	size_t		frag = base_len - head;
	size_t		oq_len;
	segment    *bsegs;
	segment    *osegs;
	size_t		nb = 0;
	size_t		no;
	size_t		i;
	int			with_channel = chan != NULL;
	int			nparams = with_channel ? 3 : 1;
	long		base_before[3] = {-1, -1, -1};	/* others before it in base */
	long		out_before[3] = {-1, -1, -1};
	size_t		out_index[3] = {0, 0, 0};
	size_t		others_b = 0;
	size_t		others_o = 0;
	size_t		ib;

	if (outlen >= bufsize || out[outlen] != '\0')
		abort();
	if (outlen < pre + (q ? 0 : 1) + frag || memcmp(out, base, pre) != 0)
		abort();
	if (!q && out[pre++] != '?')
		abort();
	if (memcmp(out + outlen - frag, base + head, frag) != 0)
		abort();
	oq_len = outlen - frag - pre;
	if (memchr(out + pre, '#', oq_len) != NULL)
		abort();

	bsegs = malloc(sizeof(segment) * (head + 1));
	osegs = malloc(sizeof(segment) * (oq_len + 1));
	if (q)
		nb = split_query(q + 1, head - (size_t) (q + 1 - base), bsegs);
	no = split_query(out + pre, oq_len, osegs);

	for (i = 0; i < nb; i++)
	{
		int			k = param_of(&bsegs[i], with_channel);

		if (k >= 0 && base_before[k] < 0)
			base_before[k] = (long) others_b;
		else if (k < 0 && bsegs[i].len > 0)
			others_b++;
	}

	ib = 0;
	for (i = 0; i < no; i++)
	{
		int			k = param_of(&osegs[i], with_channel);

		if (k >= 0)
		{
			const segment *s = &osegs[i];

			if (out_before[k] >= 0)
				abort();		/* named twice */
			out_before[k] = (long) others_o;
			out_index[k] = i;
			if (k == 0)
			{
				if (s->len < 4 || memcmp(s->p, "ref=", 4) != 0 ||
					expect_encoded(s->p + 4, s->len - 4, code, code_len) != s->len - 4)
					abort();
			}
			else if (k == 1)
			{
				if (s->len < 11 || memcmp(s->p, "utm_source=", 11) != 0 ||
					expect_encoded(s->p + 11, s->len - 11, chan, chan_len) != s->len - 11)
					abort();
			}
			else if (s->len != 19 || memcmp(s->p, "utm_medium=referral", 19) != 0)
				abort();
		}
		else if (osegs[i].len > 0)
		{
			/* the next non-empty other segment of the base, unchanged */
			while (ib < nb && (bsegs[ib].len == 0 || param_of(&bsegs[ib], with_channel) >= 0))
				ib++;
			if (ib >= nb || bsegs[ib].len != osegs[i].len ||
				memcmp(bsegs[ib].p, osegs[i].p, osegs[i].len) != 0)
				abort();
			ib++;
			others_o++;
		}
	}
	if (others_o != others_b)
		abort();
	for (i = 0; i < (size_t) nparams; i++)
	{
		size_t		j;

		if (out_before[i] < 0)
			abort();			/* missing */
		if (base_before[i] >= 0 ? out_before[i] != base_before[i]
			: out_before[i] != (long) others_o)
			abort();
		for (j = i + 1; j < (size_t) nparams; j++)
			if (base_before[i] < 0 && base_before[j] < 0 && out_index[i] > out_index[j])
				abort();
	}
	free(bsegs);
	free(osegs);
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
		check_link(base, base_len, code, code_len, chan, chan_len, out, outlen,
				   bufsize);

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
