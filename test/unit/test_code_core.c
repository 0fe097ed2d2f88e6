/*
 * test_code_core.c
 *		Unit tests of src/code_core.c: parse/print round trips, folding in
 *		every position, ordering against folded strings, every parse error,
 *		representation validation, SipHash, the Feistel permutation, and the
 *		check symbol's detection of every substitution and adjacent swap.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "code_core.h"
#include "unit.h"

/* deterministic pseudo-random numbers (splitmix64) */
static uint64_t rng_state = 42;

static uint64_t
rng(void)
{
	uint64_t	z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static const char all36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

static const uint8_t test_key[CODE_KEY_LEN] = {
	0x3a, 0x91, 0x5c, 0x07, 0xe2, 0x44, 0xbd, 0x18,
	0x6f, 0xa0, 0x23, 0xd9, 0x71, 0x0e, 0xc5, 0x86,
	0x2b, 0xf4, 0x59, 0x93, 0x1d, 0x67, 0xae, 0x30,
	0xcc, 0x05, 0x7b, 0xe8, 0x42, 0x9f, 0x16, 0x5d
};

/* the parsed value of a string that must parse */
static int64_t
must_parse(const char *s)
{
	int64_t		v = -1;
	size_t		off = 0;
	code_parse_status st = code_parse(s, &v, &off);

	CHECK_MSG(st == CODE_PARSE_OK, "parse \"%s\" gave status %d", s, (int) st);
	return v;
}

/* folded spelling of a 0-9A-Z string, for comparisons */
static void
fold_string(const char *s, char *out)
{
	for (; *s; s++, out++)
		*out = (*s == 'O') ? '0' : (*s == 'I' || *s == 'L') ? '1' : *s;
	*out = '\0';
}

static int
sign(int x)
{
	return (x > 0) - (x < 0);
}

/* the folded key computed from the string: base 34 over 12 positions */
static int64_t
reference_fold_key(const char *s)
{
	static const char folded[] = "0123456789ABCDEFGHJKMNPQRSTUVWXYZ";
	char		f[CODE_MAX_LEN + 1];
	int64_t		key = 0;
	int			i;

	fold_string(s, f);
	for (i = 0; i < CODE_MAX_LEN; i++)
	{
		const char *p = (i < (int) strlen(f)) ? strchr(folded, f[i]) : NULL;

		key = key * 34 + (p ? (p - folded) + 1 : 0);
	}
	return key;
}

static void
test_round_trips(void)
{
	static const struct
	{
		const char *in;
		const char *out;
	}			cases[] = {
		{"ABC", "ABC"},
		{"abc", "ABC"},
		{"k7qx-m3pa", "K7QXM3PA"},
		{"K7QXM3PA", "K7QXM3PA"},
		{" k 7 q x - m 3 p a ", "K7QXM3PA"},
		{"--a-b-c--", "ABC"},
		{"OLIVIA10", "OLIVIA10"},
		{"olivia10", "OLIVIA10"},
		{"0L1V1A10", "0L1V1A10"},
		{"000", "000"},
		{"ZZZZZZZZZZZZ", "ZZZZZZZZZZZZ"},
		{"zzzz zzzz zzzz", "ZZZZZZZZZZZZ"},
		{"000000000000", "000000000000"},
		{"123456789012", "123456789012"},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		char		buf[CODE_MAX_LEN + 1];
		int64_t		v = must_parse(cases[i].in);
		int			n = code_print(v, buf);

		CHECK_MSG(strcmp(buf, cases[i].out) == 0, "\"%s\" printed \"%s\", want \"%s\"",
			  cases[i].in, buf, cases[i].out);
		CHECK_MSG(n == (int) strlen(cases[i].out), "length %d for \"%s\"", n, cases[i].in);
		CHECK_MSG(code_is_valid_value(v), "parsed \"%s\" not valid", cases[i].in);
		CHECK_MSG(must_parse(buf) == v, "reparse of \"%s\"", buf);
	}

	/* random strings of every length: print(parse(s)) == s */
	for (i = 0; i < 200000; i++)
	{
		char		s[CODE_MAX_LEN + 1];
		char		buf[CODE_MAX_LEN + 1];
		int			len = CODE_MIN_LEN + (int) (rng() % (CODE_MAX_LEN - CODE_MIN_LEN + 1));
		int			j;
		int64_t		v;

		for (j = 0; j < len; j++)
			s[j] = all36[rng() % 36];
		s[len] = '\0';
		v = must_parse(s);
		code_print(v, buf);
		CHECK_MSG(strcmp(s, buf) == 0, "round trip \"%s\" -> \"%s\"", s, buf);
		CHECK_MSG(v >= 0 && v < CODE_VALUE_LIMIT, "range of \"%s\"", s);
		CHECK_MSG(code_is_valid_value(v), "valid \"%s\"", s);
	}
}

static void
test_errors(void)
{
	static const struct
	{
		const char *in;
		code_parse_status st;
		size_t		off;
	}			cases[] = {
		{"", CODE_PARSE_TOO_SHORT, 0},
		{"A", CODE_PARSE_TOO_SHORT, 0},
		{"AB", CODE_PARSE_TOO_SHORT, 0},
		{"A-B", CODE_PARSE_TOO_SHORT, 0},
		{"   ", CODE_PARSE_TOO_SHORT, 0},
		{"---", CODE_PARSE_TOO_SHORT, 0},
		{"ABCDEFGHJKMNP", CODE_PARSE_TOO_LONG, 0},
		{"ABCD-EFGH-JKMN-P", CODE_PARSE_TOO_LONG, 0},
		{"0123456789012345678901234567890123456789", CODE_PARSE_TOO_LONG, 0},
		{"AB-#X", CODE_PARSE_BAD_CHAR, 3},
		{"#", CODE_PARSE_BAD_CHAR, 0},
		{"ABC_D", CODE_PARSE_BAD_CHAR, 3},
		{"ABC\tD", CODE_PARSE_BAD_CHAR, 3},
		{"ABCD.", CODE_PARSE_BAD_CHAR, 4},
		{"AB\xc3\xa9X", CODE_PARSE_BAD_CHAR, 2},	/* e acute in UTF-8 */
		{"ABCDEFGHJKMNPQRS!", CODE_PARSE_BAD_CHAR, 16},	/* bad char beats too long */
		{"A!", CODE_PARSE_BAD_CHAR, 1},	/* bad char beats too short */
		{"ABC+", CODE_PARSE_BAD_CHAR, 3},
		{"ABC\n", CODE_PARSE_BAD_CHAR, 3},
	};
	size_t		i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
	{
		int64_t		v = 12345;
		size_t		off = 999;
		code_parse_status st = code_parse(cases[i].in, &v, &off);

		CHECK_MSG(st == cases[i].st, "case %zu: status %d, want %d", i, (int) st, (int) cases[i].st);
		if (cases[i].st == CODE_PARSE_BAD_CHAR)
			CHECK_MSG(off == cases[i].off, "case %zu: offset %zu, want %zu", i, off, cases[i].off);
		CHECK_MSG(v == 12345, "case %zu: result written on error", i);
	}

	/* every byte that is not 0-9, A-Z, a-z, space or hyphen is rejected */
	for (i = 1; i < 256; i++)
	{
		char		s[5] = {'A', 'B', (char) i, 'C', '\0'};
		int64_t		v;
		size_t		off = 99;
		code_parse_status st = code_parse(s, &v, &off);
		int			ok = (i >= '0' && i <= '9') || (i >= 'A' && i <= 'Z') ||
			(i >= 'a' && i <= 'z');

		if (ok)
			CHECK_MSG(st == CODE_PARSE_OK, "byte %zu rejected", i);
		else if (i == ' ' || i == '-')
			CHECK_MSG(st == CODE_PARSE_OK, "separator %zu rejected", i);
		else
			CHECK_MSG(st == CODE_PARSE_BAD_CHAR && off == 2, "byte %zu: status %d offset %zu", i, (int) st, off);
	}
}

static void
test_valid_values(void)
{
	CHECK_MSG(!code_is_valid_value(-1), "negative");
	CHECK_MSG(!code_is_valid_value(INT64_MIN), "INT64_MIN");
	CHECK_MSG(!code_is_valid_value(INT64_MAX), "INT64_MAX");
	CHECK_MSG(!code_is_valid_value(CODE_VALUE_LIMIT), "limit");
	CHECK_MSG(code_is_valid_value(CODE_VALUE_LIMIT - 1), "limit - 1 (ZZZZZZZZZZZZ)");
	CHECK_MSG(!code_is_valid_value(0), "zero: empty code");
	/* "AB": too short */
	CHECK_MSG(!code_is_valid_value((int64_t) (11 * UINT64_C(177917621779460413) + 12 * UINT64_C(4808584372417849))), "two characters");
	/* a digit after the end: "ABC" then 0 then 1 */
	CHECK_MSG(!code_is_valid_value(must_parse("ABC") + 1), "gap");
	CHECK_MSG(code_is_valid_value(must_parse("ABC")), "ABC");
	CHECK_MSG(code_is_valid_value(must_parse("ABCD")), "ABCD");
	CHECK_MSG(must_parse("ABC") < must_parse("ABCD"), "prefix");

	/* corrupt values read as the largest code, never out of bounds */
	{
		char		buf[CODE_MAX_LEN + 1];
		int64_t		zz = must_parse("ZZZZZZZZZZZZ");

		CHECK_MSG(code_print(-1, buf) == 12 && strcmp(buf, "ZZZZZZZZZZZZ") == 0, "print -1: %s", buf);
		CHECK_MSG(code_print(INT64_MAX, buf) == 12, "print INT64_MAX");
		CHECK_MSG(code_compare(INT64_MIN, zz) == 0, "compare INT64_MIN");
		CHECK_MSG(code_fold_key(INT64_MAX) == code_fold_key(zz), "fold INT64_MAX");
	}
}

static void
test_folding(void)
{
	static const char base[] = "ABCDEFGHJKMN";	/* no foldable letters */
	static const char *pairs[][2] = {
		{"O", "0"}, {"I", "1"}, {"L", "1"}, {"I", "L"}, {"o", "0"}, {"i", "1"}, {"l", "1"}
	};
	int			len,
				pos;
	size_t		k;

	for (len = CODE_MIN_LEN; len <= CODE_MAX_LEN; len++)
		for (pos = 0; pos < len; pos++)
			for (k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++)
			{
				char		a[CODE_MAX_LEN + 1],
							b[CODE_MAX_LEN + 1],
							pa[CODE_MAX_LEN + 1],
							pb[CODE_MAX_LEN + 1];
				int64_t		va,
							vb;

				memcpy(a, base, len);
				memcpy(b, base, len);
				a[len] = b[len] = '\0';
				a[pos] = pairs[k][0][0];
				b[pos] = pairs[k][1][0];
				va = must_parse(a);
				vb = must_parse(b);
				CHECK_MSG(va != vb, "%s and %s same spelling", a, b);
				CHECK_MSG(code_fold_key(va) == code_fold_key(vb), "%s and %s fold apart", a, b);
				CHECK_MSG(code_compare(va, vb) == 0 && code_compare(vb, va) == 0,
					  "%s and %s compare unequal", a, b);
				code_print(va, pa);
				code_print(vb, pb);
				CHECK_MSG(pa[pos] == (char) (pairs[k][0][0] & ~0x20) || pa[pos] == pairs[k][0][0],
					  "%s printed %s", a, pa);
				CHECK_MSG(pa[pos] != pb[pos], "%s and %s print alike", pa, pb);

				/* a real difference in that position is not folded away */
				b[pos] = '2';
				vb = must_parse(b);
				CHECK_MSG(code_compare(va, vb) != 0, "%s equals %s", a, b);
			}

	/* the spec's example */
	CHECK_MSG(code_compare(must_parse("OLIVIA10"), must_parse("0L1V1A10")) == 0, "OLIVIA10");
	CHECK_MSG(code_compare(must_parse("OLIVIA10"), must_parse("olivia1o")) == 0, "olivia1o");
	CHECK_MSG(code_compare(must_parse("OLIVIA10"), must_parse("OLIVIA11")) < 0, "OLIVIA11");
}

static void
test_ordering(void)
{
	int			i;

	/* random pairs, biased to share prefixes and foldable letters */
	for (i = 0; i < 300000; i++)
	{
		static const char pool[] = "01OILABZ9";
		char		a[CODE_MAX_LEN + 1],
					b[CODE_MAX_LEN + 1],
					fa[CODE_MAX_LEN + 1],
					fb[CODE_MAX_LEN + 1];
		int			la = CODE_MIN_LEN + (int) (rng() % 10);
		int			lb = CODE_MIN_LEN + (int) (rng() % 10);
		int			j;
		int64_t		va,
					vb;

		for (j = 0; j < la; j++)
			a[j] = (i & 1) ? pool[rng() % 9] : all36[rng() % 36];
		for (j = 0; j < lb; j++)
			b[j] = (i & 1) ? pool[rng() % 9] : all36[rng() % 36];
		a[la] = b[lb] = '\0';
		if (i % 3 == 0)
			memcpy(b, a, (la < lb ? la : lb) / 2 + 1);
		va = must_parse(a);
		vb = must_parse(b);
		fold_string(a, fa);
		fold_string(b, fb);
		CHECK_MSG(code_compare(va, vb) == sign(strcmp(fa, fb)),
			  "compare %s %s = %d, strcmp of folded = %d", a, b,
			  code_compare(va, vb), strcmp(fa, fb));
		CHECK_MSG(code_compare(vb, va) == -code_compare(va, vb), "antisymmetry %s %s", a, b);
		/* the folded key (abbreviated sort key, hash input) agrees */
		CHECK_MSG(code_fold_key(va) == reference_fold_key(a), "fold key of %s", a);
		CHECK_MSG(sign((code_fold_key(va) > code_fold_key(vb)) - (code_fold_key(va) < code_fold_key(vb))) ==
			  code_compare(va, vb), "fold keys of %s %s disagree with compare", a, b);
	}
	CHECK_MSG(code_compare(must_parse("ABC"), must_parse("ABC0")) < 0, "prefix first");
	CHECK_MSG(code_compare(must_parse("ZZZ"), must_parse("000000000000")) > 0, "Z after 0");
	CHECK_MSG(code_compare(must_parse("9ZZ"), must_parse("A00")) < 0, "digits before letters");
}

static void
test_siphash(void)
{
	/* reference vector: key 00..0f, message 00..07 */
	CHECK_MSG(code_siphash24(UINT64_C(0x0706050403020100), UINT64_C(0x0f0e0d0c0b0a0908),
						 UINT64_C(0x0706050403020100)) == UINT64_C(0x93f5f5799a932462),
		  "SipHash-2-4 reference vector");
}

static int
cmp_code(const void *a, const void *b)
{
	return memcmp(a, b, CODE_GEN_LEN + 1);
}

static void
test_permutation(void)
{
	uint64_t   *seen = calloc(65536, sizeof(uint64_t));
	uint64_t	x;
	int			i;
	int			fixed = 0;

	/* the 16-bit Feistel network is a bijection */
	for (x = 0; x < 65536; x++)
	{
		uint64_t	y = code_feistel(x, test_key, 8);

		CHECK_MSG(y < 65536, "feistel(%llu) = %llu out of range", (unsigned long long) x, (unsigned long long) y);
		if (y < 65536)
			seen[y]++;
	}
	for (x = 0; x < 65536; x++)
		CHECK_MSG(seen[x] == 1, "feistel image %llu hit %llu times", (unsigned long long) x, (unsigned long long) seen[x]);

	/* cycle-walking keeps a bijection on a domain that is not a power of 2 */
	memset(seen, 0, 65536 * sizeof(uint64_t));
	for (x = 0; x < 40000; x++)
	{
		uint64_t	y = code_permute(x, test_key, 8, 40000);

		CHECK_MSG(y < 40000, "permute(%llu) = %llu out of domain", (unsigned long long) x, (unsigned long long) y);
		if (y < 40000)
			seen[y]++;
		fixed += (y == x);
	}
	for (x = 0; x < 40000; x++)
		CHECK_MSG(seen[x] == 1, "permute image %llu hit %llu times", (unsigned long long) x, (unsigned long long) seen[x]);
	CHECK_MSG(fixed < 20, "%d fixed points: not much of a permutation", fixed);
	free(seen);

	/* the full-size permutation differs per key and stays in the domain */
	{
		uint8_t		key2[CODE_KEY_LEN];
		int			same = 0;

		memcpy(key2, test_key, CODE_KEY_LEN);
		key2[31] ^= 1;
		for (i = 0; i < 1000; i++)
		{
			uint64_t	a = code_permute((uint64_t) i, test_key, 18, CODE_COUNTER_LIMIT);
			uint64_t	b = code_permute((uint64_t) i, key2, 18, CODE_COUNTER_LIMIT);

			CHECK_MSG(a < CODE_COUNTER_LIMIT, "payload out of range");
			same += (a == b);
		}
		CHECK_MSG(same == 0, "%d of 1000 payloads unchanged by a key bit", same);
	}
}

static void
test_generate_unique(void)
{
	enum
	{
		N = 100001
	};
	char		(*codes)[CODE_GEN_LEN + 1] = malloc((size_t) N * (CODE_GEN_LEN + 1));
	char		buf[CODE_MAX_LEN + 1];
	int			i;
	int			dups = 0;

	for (i = 0; i < N; i++)
	{
		CHECK_MSG(code_generate((uint64_t) i, test_key, codes[i]), "generate %d", i);
		CHECK_MSG(strlen(codes[i]) == CODE_GEN_LEN, "length of %s", codes[i]);
		CHECK_MSG(code_is_generated(codes[i], CODE_GEN_LEN), "%s not generated", codes[i]);
		CHECK_MSG(strspn(codes[i], code_gen_alphabet) == CODE_GEN_LEN, "%s outside the alphabet", codes[i]);
		if (i < 1000)
		{
			/* a generated code is a referral code that prints as itself */
			int64_t		v = must_parse(codes[i]);

			code_print(v, buf);
			CHECK_MSG(strcmp(buf, codes[i]) == 0, "%s printed %s", codes[i], buf);
		}
	}
	/* deterministic */
	code_generate(12345, test_key, buf);
	CHECK_MSG(strcmp(buf, codes[12345]) == 0, "generate not deterministic");

	qsort(codes, N, CODE_GEN_LEN + 1, cmp_code);
	for (i = 1; i < N; i++)
		dups += (strcmp(codes[i - 1], codes[i]) == 0);
	CHECK_MSG(dups == 0, "%d duplicate codes among counters 0..%d", dups, N - 1);

	/* the counter range */
	CHECK_MSG(code_generate(CODE_COUNTER_LIMIT - 1, test_key, buf), "last counter");
	CHECK_MSG(!code_generate(CODE_COUNTER_LIMIT, test_key, buf), "counter 2^35 accepted");
	CHECK_MSG(!code_generate(UINT64_MAX, test_key, buf), "counter 2^64-1 accepted");

	free(codes);
}

/* whether s is one substitution or one adjacent swap away from t */
static int
one_typo(const char *s, const char *t)
{
	int			diff[CODE_GEN_LEN];
	int			n = 0;
	int			i;

	for (i = 0; i < CODE_GEN_LEN; i++)
		if (s[i] != t[i])
			diff[n++] = i;
	if (n == 1)
		return 1;
	return n == 2 && diff[1] == diff[0] + 1 &&
		s[diff[0]] == t[diff[1]] && s[diff[1]] == t[diff[0]];
}

static int
in_list(char list[CODE_MAX_NEIGHBOURS][CODE_GEN_LEN + 1], int n, const char *s)
{
	int			i;

	for (i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return 1;
	return 0;
}

static void
test_check_symbol(void)
{
	int			c;
	long		subs = 0,
				swaps = 0;

	for (c = 0; c < 5000; c++)
	{
		char		code[CODE_GEN_LEN + 1];
		char		typo[CODE_GEN_LEN + 1];
		char		nb[CODE_MAX_NEIGHBOURS][CODE_GEN_LEN + 1];
		int			pos,
					n,
					i;
		size_t		s;

		code_generate((uint64_t) c * 6700417u, test_key, code);
		CHECK_MSG(code_check_symbol(code) == code[CODE_GEN_LEN - 1], "check of %s", code);
		CHECK_MSG(code_typo_neighbours(code, CODE_GEN_LEN, nb) == 0, "%s has neighbours", code);

		for (pos = 0; pos < CODE_GEN_LEN; pos++)
			for (s = 0; s < 32; s++)
			{
				if (code_gen_alphabet[s] == code[pos])
					continue;
				memcpy(typo, code, sizeof(typo));
				typo[pos] = code_gen_alphabet[s];
				subs++;
				CHECK_MSG(!code_is_generated(typo, CODE_GEN_LEN), "substitution %s of %s undetected", typo, code);
				if (c < 300)
				{
					n = code_typo_neighbours(typo, CODE_GEN_LEN, nb);
					CHECK_MSG(in_list(nb, n, code), "%s not suggested for %s", code, typo);
					for (i = 0; i < n; i++)
					{
						CHECK_MSG(code_is_generated(nb[i], CODE_GEN_LEN), "suggestion %s invalid", nb[i]);
						CHECK_MSG(one_typo(nb[i], typo), "suggestion %s not one typo from %s", nb[i], typo);
						CHECK_MSG(i == 0 || strcmp(nb[i - 1], nb[i]) < 0, "suggestions unsorted");
					}
				}
			}

		/* the four symbols outside the alphabet: U is invalid, I L O fold */
		for (pos = 0; pos < CODE_GEN_LEN; pos++)
		{
			static const char other[] = "UILOuilo";

			for (s = 0; s < 8; s++)
			{
				char		f = (other[s] == 'O' || other[s] == 'o') ? '0' :
					(other[s] == 'U' || other[s] == 'u') ? 'U' : '1';

				memcpy(typo, code, sizeof(typo));
				typo[pos] = other[s];
				if (f == code[pos])
					CHECK_MSG(code_is_generated(typo, CODE_GEN_LEN), "folded %s of %s rejected", typo, code);
				else
				{
					CHECK_MSG(!code_is_generated(typo, CODE_GEN_LEN), "substitution %s of %s undetected", typo, code);
					n = code_typo_neighbours(typo, CODE_GEN_LEN, nb);
					CHECK_MSG(in_list(nb, n, code), "%s not suggested for %s", code, typo);
				}
			}
		}

		for (pos = 0; pos + 1 < CODE_GEN_LEN; pos++)
		{
			if (code[pos] == code[pos + 1])
				continue;
			memcpy(typo, code, sizeof(typo));
			typo[pos] = code[pos + 1];
			typo[pos + 1] = code[pos];
			swaps++;
			CHECK_MSG(!code_is_generated(typo, CODE_GEN_LEN), "swap %s of %s undetected", typo, code);
			n = code_typo_neighbours(typo, CODE_GEN_LEN, nb);
			CHECK_MSG(in_list(nb, n, code), "%s not suggested for swap %s", code, typo);
			CHECK_MSG(n <= CODE_MAX_NEIGHBOURS, "too many suggestions");
		}

		/* case-insensitive */
		for (i = 0; i < CODE_GEN_LEN; i++)
			typo[i] = (char) ((code[i] >= 'A' && code[i] <= 'Z') ? code[i] + 32 : code[i]);
		typo[CODE_GEN_LEN] = '\0';
		CHECK_MSG(code_is_generated(typo, CODE_GEN_LEN), "lower case %s rejected", typo);
	}
	CHECK_MSG(subs == 5000L * 8 * 31, "%ld substitutions tried", subs);
	CHECK_MSG(swaps > 5000L * 6, "only %ld swaps tried", swaps);

	/* not generated: wrong length, bad characters */
	{
		char		nb[CODE_MAX_NEIGHBOURS][CODE_GEN_LEN + 1];
		char		code[CODE_GEN_LEN + 1];

		code_generate(7, test_key, code);
		CHECK_MSG(!code_is_generated(code, CODE_GEN_LEN - 1), "7 characters");
		CHECK_MSG(!code_is_generated("", 0), "empty");
		CHECK_MSG(!code_is_generated("0000000#", 8), "bad character");
		CHECK_MSG(code_is_generated("00000000", 8), "all zeros has check 0");
		CHECK_MSG(code_typo_neighbours(code, CODE_GEN_LEN - 1, nb) == 0, "neighbours of 7 characters");
		CHECK_MSG(code_typo_neighbours("ABC#EFGH", 8, nb) == 0, "neighbours with a bad character");
		/* U in two places: no single typo fixes it */
		CHECK_MSG(code_typo_neighbours("UU000000", 8, nb) == 0, "neighbours with two U");
	}
}

int
main(void)
{
	test_round_trips();
	test_errors();
	test_valid_values();
	test_folding();
	test_ordering();
	test_siphash();
	test_permutation();
	test_generate_unique();
	test_check_symbol();

	return unit_summary("test_code_core");
}
