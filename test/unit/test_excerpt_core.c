/*
 * test_excerpt_core.c
 *		Unit tests of src/excerpt_core.c: the prefix of an input that error
 *		messages quote, cut on character boundaries.
 */
#include "excerpt_core.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* UTF-8 character length from the lead byte, as pg_mblen does in UTF8. */
static int
utf8_len(const char *s)
{
	unsigned char c = (unsigned char) *s;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		return 2;
	if ((c & 0xf0) == 0xe0)
		return 3;
	if ((c & 0xf8) == 0xf0)
		return 4;
	return 1;
}

/* A single-byte encoding. */
static int
byte_len(const char *s)
{
	(void) s;
	return 1;
}

/* A broken length function: never below 1 is taken, so no endless loop. */
static int
zero_len(const char *s)
{
	(void) s;
	return 0;
}

static size_t
prefix(const char *s, size_t maxchars, int (*charlen) (const char *), int *cut)
{
	bool		c = false;
	size_t		n = excerpt_core_prefix_len(s, strlen(s), maxchars, charlen, &c);

	*cut = c;
	return n;
}

static void
test_short_inputs_are_kept(void)
{
	int			cut;

	CHECK(prefix("", 32, utf8_len, &cut) == 0 && !cut);
	CHECK(prefix("K7QX-M3PA", 32, utf8_len, &cut) == 9 && !cut);
	/* exactly maxchars: not cut */
	CHECK(prefix("0123456789abcdef0123456789abcdef", 32, utf8_len, &cut) == 32 && !cut);
	/* 32 characters of two bytes each: 64 bytes, not cut */
	{
		char		s[65];
		int			i;

		for (i = 0; i < 32; i++)
			memcpy(s + 2 * i, "\xc3\xa9", 2);
		s[64] = '\0';
		CHECK(prefix(s, 32, utf8_len, &cut) == 64 && !cut);
	}
}

static void
test_long_inputs_are_cut(void)
{
	int			cut;

	CHECK(prefix("0123456789abcdef0123456789abcdefX", 32, utf8_len, &cut) == 32 && cut);
	CHECK(prefix("abcdef", 3, byte_len, &cut) == 3 && cut);
	CHECK(prefix("abcdef", 0, byte_len, &cut) == 0 && cut);
	/* "aé日😀b": cut after whole characters only */
	CHECK(prefix("a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80" "b", 1, utf8_len, &cut) == 1 && cut);
	CHECK(prefix("a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80" "b", 2, utf8_len, &cut) == 3 && cut);
	CHECK(prefix("a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80" "b", 3, utf8_len, &cut) == 6 && cut);
	CHECK(prefix("a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80" "b", 4, utf8_len, &cut) == 10 && cut);
	CHECK(prefix("a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80" "b", 5, utf8_len, &cut) == 11 && !cut);
}

static void
test_truncated_character_is_left_out(void)
{
	int			cut;

	/* a lead byte of three with only two bytes left: stop before it */
	CHECK(prefix("ab\xe6\x97", 32, utf8_len, &cut) == 2 && cut);
	CHECK(prefix("abc", 32, zero_len, &cut) == 3 && !cut);
	CHECK(excerpt_core_prefix_len("abc", 3, 2, utf8_len, NULL) == 2);
}

static void
test_huge_input(void)
{
	size_t		len = 1024 * 1024;
	char	   *s = malloc(len);
	bool		cut = false;

	memset(s, 'A', len);
	CHECK(excerpt_core_prefix_len(s, len, EXCERPT_CORE_MAX_CHARS, utf8_len, &cut) ==
		  EXCERPT_CORE_MAX_CHARS);
	CHECK(cut);
	free(s);
}

int
main(void)
{
	test_short_inputs_are_kept();
	test_long_inputs_are_cut();
	test_truncated_character_is_left_out();
	test_huge_input();
	return unit_summary("test_excerpt_core");
}
