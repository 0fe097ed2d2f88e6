/*
 * test_url_core.c
 *		Unit tests of src/url_core.c: share links and RFC 3986
 *		percent-encoding.
 */
#include "url_core.h"
#include "unit.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Builds a link with a buffer of exactly the advertised size. */
static url_core_status
link(const char *base, const char *code, const char *channel, char **res,
	 size_t *badpos)
{
	size_t		size = url_core_share_link_size(strlen(base), strlen(code),
												channel,
												channel ? strlen(channel) : 0);
	char	   *out = malloc(size);
	size_t		outlen = 0;
	url_core_status st;

	st = url_core_share_link(base, strlen(base), code, strlen(code),
							 channel, channel ? strlen(channel) : 0,
							 out, size, &outlen, badpos);
	if (st == URL_CORE_OK && !unit_ok(outlen == strlen(out)))
	{
		fprintf(stderr, "outlen %zu != strlen %zu\n", outlen, strlen(out));
	}
	*res = out;
	return st;
}

static void
expect_link(const char *base, const char *code, const char *channel,
			const char *want, int line)
{
	char	   *out;
	url_core_status st = link(base, code, channel, &out, NULL);

	if (!unit_ok(st == URL_CORE_OK && strcmp(out, want) == 0))
	{
		fprintf(stderr, "%s:%d: share_link(\"%s\", \"%s\", %s) = %d \"%s\", want \"%s\"\n",
				__FILE__, line, base, code, channel ? channel : "NULL",
				(int) st, st == URL_CORE_OK ? out : "", want);
	}
	free(out);
}

static void
expect_error(const char *base, const char *code, const char *channel,
			 url_core_status want, int line)
{
	char	   *out;
	url_core_status st = link(base, code, channel, &out, NULL);

	if (!unit_ok(st == want))
	{
		fprintf(stderr, "%s:%d: share_link(\"%s\", \"%s\", %s) = %d, want %d\n",
				__FILE__, line, base, code, channel ? channel : "NULL",
				(int) st, (int) want);
	}
	free(out);
}

#define LINK(b, c, ch, want) expect_link((b), (c), (ch), (want), __LINE__)
#define LINKERR(b, c, ch, want) expect_error((b), (c), (ch), (want), __LINE__)

static void
test_examples(void)
{
	LINK("https://shop.example/", "K7QXM3PA", NULL,
		 "https://shop.example/?ref=K7QXM3PA");
	LINK("https://shop.example/p?x=1#top", "K7QXM3PA", "news letter",
		 "https://shop.example/p?x=1&ref=K7QXM3PA&utm_source=news%20letter&utm_medium=referral#top");
	LINK("https://s.example/?", "K7QXM3PA", NULL,
		 "https://s.example/?ref=K7QXM3PA");
	LINK("https://s.example/", "K7QXM3PA", "\xc3\xa9&=",
		 "https://s.example/?ref=K7QXM3PA&utm_source=%C3%A9%26%3D&utm_medium=referral");
}

static void
test_query_and_fragment(void)
{
	/* no path at all */
	LINK("https://shop.example", "AB3", NULL, "https://shop.example?ref=AB3");
	/* query ending in '&': nothing added */
	LINK("https://s.example/?a=1&", "AB3", NULL, "https://s.example/?a=1&ref=AB3");
	/* query without '&' at the end */
	LINK("https://s.example/?a=1&b=2", "AB3", "x", "https://s.example/?a=1&b=2&ref=AB3&utm_source=x&utm_medium=referral");
	/* empty query before a fragment */
	LINK("https://s.example/?#f", "AB3", NULL, "https://s.example/?ref=AB3#f");
	/* fragment without a query */
	LINK("https://s.example/#f", "AB3", NULL, "https://s.example/?ref=AB3#f");
	/* empty fragment kept */
	LINK("https://s.example/#", "AB3", NULL, "https://s.example/?ref=AB3#");
	/* a '?' inside the fragment is not the query */
	LINK("https://s.example/p#a?b=1", "AB3", NULL, "https://s.example/p?ref=AB3#a?b=1");
	/* fragment split at the FIRST '#', the rest of it kept verbatim */
	LINK("https://s.example/?q=1#a#b", "AB3", NULL, "https://s.example/?q=1&ref=AB3#a#b");
	/* a second '?' is part of the query */
	LINK("https://s.example/?q=1?", "AB3", NULL, "https://s.example/?q=1?&ref=AB3");
	/* the existing query is kept verbatim, even when not encoded */
	LINK("https://s.example/?q=%zz+1&", "AB3", NULL, "https://s.example/?q=%zz+1&ref=AB3");
	/* scheme in any case, kept as given */
	LINK("HTTP://S.example", "AB3", NULL, "HTTP://S.example?ref=AB3");
	LINK("hTtPs://s.example/x", "AB3", NULL, "hTtPs://s.example/x?ref=AB3");
	/* user info and port */
	LINK("https://u:p@s.example:8443/a/b", "AB3", NULL, "https://u:p@s.example:8443/a/b?ref=AB3");
	/* non-ASCII bytes in the base are kept */
	LINK("https://s.example/\xc3\xa9", "AB3", NULL, "https://s.example/\xc3\xa9?ref=AB3");
}

/* Parameters the link sets that the query already has: replaced in place. */
static void
test_existing_parameters(void)
{
	/* ref replaced where it stands, the others and their order kept */
	LINK("https://s.example/?ref=OLD", "AB3", NULL, "https://s.example/?ref=AB3");
	LINK("https://s.example/?a=1&ref=OLD&b=2#f", "AB3", NULL,
		 "https://s.example/?a=1&ref=AB3&b=2#f");
	LINK("https://s.example/?ref=OLD&a=1", "AB3", NULL, "https://s.example/?ref=AB3&a=1");
	/* an empty value, no '=' at all, a value holding '=' */
	LINK("https://s.example/?ref=&a=1", "AB3", NULL, "https://s.example/?ref=AB3&a=1");
	LINK("https://s.example/?a=1&ref", "AB3", NULL, "https://s.example/?a=1&ref=AB3");
	LINK("https://s.example/?ref==x=y", "AB3", NULL, "https://s.example/?ref=AB3");
	/* repetitions dropped: the link names ref once */
	LINK("https://s.example/?ref=A&b=1&ref=B&ref&c=2", "AB3", NULL,
		 "https://s.example/?ref=AB3&b=1&c=2");
	/* names are compared byte for byte: these are other parameters */
	LINK("https://s.example/?REF=1&refx=2&xref=3&re=4", "AB3", NULL,
		 "https://s.example/?REF=1&refx=2&xref=3&re=4&ref=AB3");
	LINK("https://s.example/?a=ref=1", "AB3", NULL, "https://s.example/?a=ref=1&ref=AB3");
	/* a ref in the fragment is not the query's */
	LINK("https://s.example/?a=1#ref=OLD", "AB3", NULL, "https://s.example/?a=1&ref=AB3#ref=OLD");
	LINK("https://s.example/#?ref=OLD", "AB3", NULL, "https://s.example/?ref=AB3#?ref=OLD");
	/* the new value is encoded */
	LINK("https://s.example/?ref=OLD", "A B", NULL, "https://s.example/?ref=A%20B");

	/* with a channel: utm_source and utm_medium replaced as well */
	LINK("https://s.example/?utm_source=old&x=1&utm_medium=email&ref=OLD#top", "AB3", "news letter",
		 "https://s.example/?utm_source=news%20letter&x=1&utm_medium=referral&ref=AB3#top");
	/* the missing ones added at the end, in the usual order */
	LINK("https://s.example/?utm_medium=cpc&x=1", "AB3", "mail",
		 "https://s.example/?utm_medium=referral&x=1&ref=AB3&utm_source=mail");
	LINK("https://s.example/?utm_source=a&utm_source=b&x=1&", "AB3", "mail",
		 "https://s.example/?utm_source=mail&x=1&ref=AB3&utm_medium=referral");
	/* without a channel, UTM parameters are the shop's own: kept as they are */
	LINK("https://s.example/?utm_source=old&utm_medium=email&ref=OLD", "AB3", NULL,
		 "https://s.example/?utm_source=old&utm_medium=email&ref=AB3");
	/* other UTM parameters are kept */
	LINK("https://s.example/?utm_campaign=spring", "AB3", "x",
		 "https://s.example/?utm_campaign=spring&ref=AB3&utm_source=x&utm_medium=referral");
	/* empty segments between other parameters are kept */
	LINK("https://s.example/?a=1&&ref=OLD&", "AB3", NULL, "https://s.example/?a=1&&ref=AB3&");
	LINK("https://s.example/?&ref=OLD", "AB3", NULL, "https://s.example/?&ref=AB3");
}

/* Replacing never needs more room than the advertised size. */
static void
test_existing_parameters_size(void)
{
	const char *bases[] = {
		"https://s.example/?ref",
		"https://s.example/?ref&utm_source&utm_medium",
		"https://s.example/?ref=&utm_source=&utm_medium=",
		"https://s.example/?utm_medium&ref&utm_source#f",
		"https://s.example/?ref&ref&ref&utm_medium&utm_medium",
	};
	size_t		i;

	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++)
	{
		char	   *out;

		CHECK(link(bases[i], "A B", " ", &out, NULL) == URL_CORE_OK);
		CHECK(strstr(out, "ref=A%20B") != NULL);
		CHECK(strstr(out, "utm_source=%20") != NULL);
		CHECK(strstr(out, "utm_medium=referral") != NULL);
		free(out);
	}
}

static void
test_encoding(void)
{
	char		buf[64];
	size_t		n;
	int			c;

	/* unreserved stay */
	LINK("https://s.example/", "AB3", "AZaz09-._~", "https://s.example/?ref=AB3&utm_source=AZaz09-._~&utm_medium=referral");
	/* space is %20, '+' is %2B, reserved characters encoded */
	LINK("https://s.example/", "AB3", "a b+c", "https://s.example/?ref=AB3&utm_source=a%20b%2Bc&utm_medium=referral");
	LINK("https://s.example/", "AB3", "?#/:@!$'()*,;%", "https://s.example/?ref=AB3&utm_source=%3F%23%2F%3A%40%21%24%27%28%29%2A%2C%3B%25&utm_medium=referral");
	/* the code is encoded as well */
	LINK("https://s.example/", "A B", NULL, "https://s.example/?ref=A%20B");
	/* control bytes and high bytes in values are encoded */
	LINK("https://s.example/", "X", "\t\x7f\xff", "https://s.example/?ref=X&utm_source=%09%7F%FF&utm_medium=referral");

	/* every byte: unreserved kept, others as %XX upper case */
	for (c = 1; c < 256; c++)
	{
		char		in = (char) c;
		char		want[4];
		int			unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';

		n = url_core_encode(&in, 1, buf, sizeof(buf));
		if (unreserved)
			CHECK(n == 1 && buf[0] == (char) c);
		else
		{
			snprintf(want, sizeof(want), "%%%02X", c);
			CHECK(n == 3 && memcmp(buf, want, 3) == 0);
		}
	}
	/* embedded NUL is a byte like any other */
	n = url_core_encode("a\0b", 3, buf, sizeof(buf));
	CHECK(n == 5 && memcmp(buf, "a%00b", 5) == 0);
	/* a short buffer: the length is still reported, nothing written past */
	memset(buf, 'Z', sizeof(buf));
	n = url_core_encode("  ", 2, buf, 4);
	CHECK(n == 6 && memcmp(buf, "%20%", 4) == 0 && buf[4] == 'Z');
}

static void
test_errors(void)
{
	size_t		badpos = 999;
	char	   *out;

	LINKERR("", "AB3", NULL, URL_CORE_EMPTY_BASE);
	LINKERR("shop.example/", "AB3", NULL, URL_CORE_BAD_SCHEME);
	LINKERR("ftp://shop.example/", "AB3", NULL, URL_CORE_BAD_SCHEME);
	LINKERR("https:/shop.example/", "AB3", NULL, URL_CORE_BAD_SCHEME);
	LINKERR("https:shop.example", "AB3", NULL, URL_CORE_BAD_SCHEME);
	LINKERR("//shop.example/", "AB3", NULL, URL_CORE_BAD_SCHEME);
	LINKERR("httpx://shop.example/", "AB3", NULL, URL_CORE_BAD_SCHEME);
	LINKERR("/p?x=1", "AB3", NULL, URL_CORE_BAD_SCHEME);
	LINKERR("http", "AB3", NULL, URL_CORE_BAD_SCHEME);
	LINKERR("https://", "AB3", NULL, URL_CORE_NO_HOST);
	LINKERR("https:///path", "AB3", NULL, URL_CORE_NO_HOST);
	LINKERR("http://?x", "AB3", NULL, URL_CORE_NO_HOST);
	LINKERR("http://#x", "AB3", NULL, URL_CORE_NO_HOST);
	LINKERR(" https://shop.example/", "AB3", NULL, URL_CORE_BAD_CHAR);
	LINKERR("https://shop.example/ ", "AB3", NULL, URL_CORE_BAD_CHAR);
	LINKERR("https://shop.example/a b", "AB3", NULL, URL_CORE_BAD_CHAR);
	LINKERR("https://shop.example/\n", "AB3", NULL, URL_CORE_BAD_CHAR);
	LINKERR("https://shop.example/\t", "AB3", NULL, URL_CORE_BAD_CHAR);
	LINKERR("https://shop.example/\x7f", "AB3", NULL, URL_CORE_BAD_CHAR);
	LINKERR("https://shop.example/\x01", "AB3", NULL, URL_CORE_BAD_CHAR);
	LINKERR("https://shop.example/", "", NULL, URL_CORE_EMPTY_CODE);
	LINKERR("https://shop.example/", "AB3", "", URL_CORE_EMPTY_CHANNEL);
	/* the base is checked first */
	LINKERR("nope", "", "", URL_CORE_BAD_SCHEME);

	CHECK(link("https://shop.example/a b", "AB3", NULL, &out, &badpos) == URL_CORE_BAD_CHAR);
	CHECK(badpos == 22);
	free(out);
	CHECK(url_core_check_base("https://x", 9, NULL) == URL_CORE_OK);
	/* length bounds the input, not a NUL */
	CHECK(url_core_check_base("https://x", 8, NULL) == URL_CORE_NO_HOST);
	CHECK(url_core_check_base("https://x\0", 10, &badpos) == URL_CORE_BAD_CHAR && badpos == 9);
}

/* Every buffer size: exact size works, smaller fails, nothing past. */
static void
test_buffer_bounds(void)
{
	const char *base = "https://shop.example/p?x=1#top";
	const char *code = "K7QXM3PA";
	const char *channel = "news letter";
	char		full[256];
	size_t		fulllen;
	size_t		size;
	size_t		bound = url_core_share_link_size(strlen(base), strlen(code),
												 channel, strlen(channel));

	CHECK(url_core_share_link(base, strlen(base), code, strlen(code), channel,
							  strlen(channel), full, sizeof(full), &fulllen,
							  NULL) == URL_CORE_OK);
	CHECK(bound >= fulllen + 1);
	/* the bound is tight for an all-encoded worst case */
	CHECK(url_core_share_link_size(21, 3, "x", 1) ==
		  21 + 1 + 4 + 9 + 1 + 12 + 3 + 20);
	for (size = 0; size <= fulllen + 2; size++)
	{
		char		guard[300];
		size_t		outlen = 0;
		url_core_status st;
		size_t		i;

		memset(guard, 'Z', sizeof(guard));
		st = url_core_share_link(base, strlen(base), code, strlen(code),
								 channel, strlen(channel), guard, size,
								 &outlen, NULL);
		if (size >= fulllen + 1)
		{
			CHECK(st == URL_CORE_OK);
			CHECK(outlen == fulllen && strcmp(guard, full) == 0);
		}
		else
		{
			CHECK(st == URL_CORE_BUFFER_TOO_SMALL);
			if (size > 0)
				CHECK(guard[size - 1] == '\0');
		}
		for (i = size; i < sizeof(guard); i++)
			CHECK(guard[i] == 'Z');
	}
	/* overflowing sizes are reported as 0, never wrapped */
	CHECK(url_core_share_link_size(SIZE_MAX - 3, 1, NULL, 0) == 0);
	CHECK(url_core_share_link_size(10, SIZE_MAX / 2, NULL, 0) == 0);
	CHECK(url_core_share_link_size(10, 1, "x", SIZE_MAX / 3 + 1) == 0);
	CHECK(url_core_share_link_size(10, 1, "x", SIZE_MAX / 3) == 0);
}

/* A huge channel: the advertised size is enough and exact for %XX. */
static void
test_huge(void)
{
	size_t		n = 1000000;
	char	   *ch = malloc(n);
	char	   *out;
	url_core_status st;
	const char *base = "https://s.example/";

	CHECK(ch != NULL);
	if (!ch)
		return;
	memset(ch, ' ', n);
	st = url_core_share_link(base, strlen(base), "AB3", 3, ch, n, NULL, 0,
							 NULL, NULL);
	CHECK(st == URL_CORE_BUFFER_TOO_SMALL);
	st = link(base, "AB3", NULL, &out, NULL);
	CHECK(st == URL_CORE_OK);
	free(out);
	{
		size_t		size = url_core_share_link_size(strlen(base), 3, ch, n);
		size_t		outlen;

		out = malloc(size);
		st = url_core_share_link(base, strlen(base), "AB3", 3, ch, n, out,
								 size, &outlen, NULL);
		CHECK(st == URL_CORE_OK);
		CHECK(outlen == strlen(base) + 1 + 4 + 3 + 12 + 3 * n + 20);
		CHECK(memcmp(out + strlen(base) + 20, "%20%20", 6) == 0);
		CHECK(strcmp(out + outlen - 20, "&utm_medium=referral") == 0);
		free(out);
	}
	free(ch);
}

int
main(void)
{
	test_examples();
	test_query_and_fragment();
	test_existing_parameters();
	test_existing_parameters_size();
	test_encoding();
	test_errors();
	test_buffer_bounds();
	test_huge();
	return unit_summary("test_url_core");
}
