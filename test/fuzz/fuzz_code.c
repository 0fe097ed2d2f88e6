/*
 * fuzz_code.c
 *		libFuzzer harness for src/code_core.c (links no server code):
 *
 *		clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
 *			-o /tmp/fuzz_code test/fuzz/fuzz_code.c src/code_core.c
 *		/tmp/fuzz_code -max_total_time=60
 *
 * (test/fuzz/run.sh builds and runs it; `make fuzz` runs it for longer.)
 *
 * Every input is used four ways, each against an oracle written here from
 * the specification, not from code_core.c:
 *
 * 1. The input as a NUL-terminated string for code_parse: a string of
 *    0-9A-Za-z, spaces and hyphens with 3 to 12 code characters parses, to
 *    a value that is valid, prints as the input upper-cased without
 *    separators and parses back to itself; otherwise the error is the right
 *    one (the first bad character and its offset, too short, too long).
 * 2. Bytes of the input as two arbitrary int64 values (corrupt data
 *    included): printing never writes past its 13-byte heap buffer; for
 *    valid values code_compare and code_fold_key order codes like their
 *    folded spellings (O = 0, I = L = 1) under strcmp, a prefix first, and
 *    for any values code_compare is antisymmetric and agrees with the
 *    folded keys.
 * 3. Seven bytes as a payload of the generated alphabet: the check symbol
 *    makes a generated code and is the only one of the 32 that does; every
 *    substitution (by any of 0-9A-Z, either case, in a position the input
 *    picks) that changes the folded symbol and every swap of two adjacent
 *    distinct symbols is detected; folding and case do not
 *    matter; code_typo_neighbours of a code with one typo names the
 *    original, and everything it names is a generated code one typo away.
 * 4. A key and a counter from the input: code_generate gives a generated
 *    code, distinct counters give distinct codes, counters past the limit
 *    are refused.
 * Arbitrary bytes also go to code_is_generated and code_typo_neighbours,
 * whose output array is a heap block of exactly its declared size.
 */
#include "code_core.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef char neighbours_t[CODE_MAX_NEIGHBOURS][CODE_GEN_LEN + 1];

static const char alphabet32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
static const char all36[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* Upper-cases an ASCII letter. */
static char
upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char) (c - 'a' + 'A') : c;
}

/* The folded spelling of a code character: upper case, O as 0, I and L as 1. */
static char
fold(char c)
{
	c = upper(c);
	if (c == 'O')
		return '0';
	if (c == 'I' || c == 'L')
		return '1';
	return c;
}

static int
is_code_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		(c >= 'a' && c <= 'z');
}

static int
sign(long long x)
{
	return (x > 0) - (x < 0);
}

/* Reads 8 bytes little-endian at p (the caller checks there are 8). */
static int64_t
read_i64(const uint8_t *p)
{
	uint64_t	v = 0;
	int			i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return (int64_t) v;
}

/* Prints a code into an exactly sized heap buffer; returns the malloc'd string. */
static char *
print_heap(int64_t v, int *len)
{
	char	   *out = malloc(CODE_MAX_LEN + 1);

	*len = code_print(v, out);
	if (*len < 0 || *len > CODE_MAX_LEN || out[*len] != '\0' ||
		strlen(out) != (size_t) *len)
		abort();
	return out;
}

/* Part 1: the parser against the text form of SPEC.md. */
static void
check_parse(const uint8_t *data, size_t size)
{
	char	   *str = malloc(size + 1);
	char		expect[CODE_MAX_LEN + 1];
	size_t		len;
	size_t		i;
	size_t		n = 0;
	size_t		first_bad = (size_t) -1;
	size_t		bad_offset = (size_t) -1;
	int64_t		value = -1;
	code_parse_status st;

	memcpy(str, data, size);
	str[size] = '\0';
	len = strlen(str);

	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) str[i];

		if (c == ' ' || c == '-')
			continue;
		if (!is_code_char(c))
		{
			first_bad = i;
			break;
		}
		if (n < CODE_MAX_LEN)
			expect[n] = upper((char) c);
		n++;
	}

	st = code_parse(str, &value, &bad_offset);
	if (first_bad != (size_t) -1)
	{
		if (st != CODE_PARSE_BAD_CHAR || bad_offset != first_bad)
			abort();
	}
	else if (n < CODE_MIN_LEN)
	{
		if (st != CODE_PARSE_TOO_SHORT)
			abort();
	}
	else if (n > CODE_MAX_LEN)
	{
		if (st != CODE_PARSE_TOO_LONG)
			abort();
	}
	else
	{
		char	   *printed;
		int			plen;
		int64_t		again = -1;
		size_t		off = 0;

		if (st != CODE_PARSE_OK)
			abort();
		if (value < 0 || value >= CODE_VALUE_LIMIT || !code_is_valid_value(value))
			abort();
		expect[n] = '\0';
		printed = print_heap(value, &plen);
		if ((size_t) plen != n || memcmp(printed, expect, n + 1) != 0)
			abort();
		if (code_parse(printed, &again, &off) != CODE_PARSE_OK || again != value)
			abort();
		/* lower case and separators parse to the same value */
		for (i = 0; i < n; i++)
			if (expect[i] >= 'A' && expect[i] <= 'Z')
				expect[i] = (char) (expect[i] - 'A' + 'a');
		if (code_parse(expect, &again, &off) != CODE_PARSE_OK || again != value)
			abort();
		free(printed);
	}
	free(str);
}

/* The folded printed spelling of a valid value. */
static void
folded_spelling(int64_t v, char out[CODE_MAX_LEN + 1])
{
	char	   *p;
	int			len;
	int			i;

	p = print_heap(v, &len);
	for (i = 0; i <= len; i++)
		out[i] = fold(p[i]);
	free(p);
}

/* Part 2: printing, folding and ordering of arbitrary int64 values. */
static void
check_values(int64_t a, int64_t b, int64_t c)
{
	int			ab = code_compare(a, b);
	int			ba = code_compare(b, a);
	int			len;
	char	   *p;

	if (ab < -1 || ab > 1 || ab != -ba || code_compare(a, a) != 0)
		abort();
	if (ab != (code_fold_key(a) > code_fold_key(b)) - (code_fold_key(a) < code_fold_key(b)))
		abort();
	/* transitivity */
	if (ab <= 0 && code_compare(b, c) <= 0 && code_compare(a, c) > 0)
		abort();

	/* printing any value stays inside the buffer */
	p = print_heap(a, &len);
	free(p);
	p = print_heap(b, &len);
	free(p);

	if (code_is_valid_value(a) && code_is_valid_value(b))
	{
		char		fa[CODE_MAX_LEN + 1];
		char		fb[CODE_MAX_LEN + 1];
		int64_t		again = -1;
		size_t		off = 0;

		folded_spelling(a, fa);
		folded_spelling(b, fb);
		if (sign(strcmp(fa, fb)) != ab)
			abort();
		if ((strcmp(fa, fb) == 0) != (code_fold_key(a) == code_fold_key(b)))
			abort();
		p = print_heap(a, &len);
		if (len < CODE_MIN_LEN || code_parse(p, &again, &off) != CODE_PARSE_OK ||
			again != a)
			abort();
		free(p);
	}
	else if (!code_is_valid_value(a) && a >= 0 && a < CODE_VALUE_LIMIT)
	{
		/* an in-range value that is not valid has a 0 digit inside or is short */
		p = print_heap(a, &len);
		if (len >= CODE_MIN_LEN)
		{
			int64_t		again = -1;
			size_t		off = 0;

			/* it prints a prefix that parses to another value */
			if (code_parse(p, &again, &off) == CODE_PARSE_OK && again == a)
				abort();
		}
		free(p);
	}
}

/* Whether a NUL-terminated string is a generated code. */
static int
is_generated_str(const char *s)
{
	return code_is_generated(s, strlen(s));
}

/* Whether b is a (folded) single substitution or adjacent swap of a (8 chars each). */
static int
one_typo_apart(const char *a, const char *b)
{
	int			diff[CODE_GEN_LEN];
	int			nd = 0;
	int			i;

	for (i = 0; i < CODE_GEN_LEN; i++)
		if (fold(a[i]) != fold(b[i]))
			diff[nd++] = i;
	if (nd == 1)
		return 1;
	return nd == 2 && diff[1] == diff[0] + 1 &&
		fold(a[diff[0]]) == fold(b[diff[1]]) &&
		fold(a[diff[1]]) == fold(b[diff[0]]);
}

/* Checks what code_typo_neighbours says about s, using a heap array of its exact size. */
static int
check_neighbours(const char *s, size_t len, const char *must_contain)
{
	neighbours_t *out = malloc(sizeof(neighbours_t));
	int			n = code_typo_neighbours(s, len, *out);
	int			found = 0;
	int			i;

	if (n < 0 || n > CODE_MAX_NEIGHBOURS)
		abort();
	if (n > 0 && (len != CODE_GEN_LEN || code_is_generated(s, len)))
		abort();
	for (i = 0; i < n; i++)
	{
		const char *g = (*out)[i];

		if (strlen(g) != CODE_GEN_LEN || !is_generated_str(g) ||
			!one_typo_apart(s, g))
			abort();
		if (i > 0 && strcmp((*out)[i - 1], g) >= 0)
			abort();			/* sorted, no duplicates */
		if (must_contain && strcmp(g, must_contain) == 0)
			found = 1;
	}
	if (must_contain && !found)
		abort();
	free(out);
	return n;
}

/* Part 3: the check symbol. */
static void
check_check_symbol(const uint8_t *data, size_t size)
{
	char		code[CODE_GEN_LEN + 1];
	char		typo[CODE_GEN_LEN + 1];
	char	   *heap;
	int			i;
	int			s;
	int			valid_checks = 0;

	if (size < CODE_GEN_PAYLOAD)
		return;
	for (i = 0; i < CODE_GEN_PAYLOAD; i++)
		code[i] = alphabet32[data[i] & 31];
	/* code_check_symbol reads exactly 7 bytes: give it a heap block of 7 */
	heap = malloc(CODE_GEN_PAYLOAD);
	memcpy(heap, code, CODE_GEN_PAYLOAD);
	code[CODE_GEN_PAYLOAD] = code_check_symbol(heap);
	free(heap);
	code[CODE_GEN_LEN] = '\0';
	if (strchr(alphabet32, code[CODE_GEN_PAYLOAD]) == NULL ||
		code[CODE_GEN_PAYLOAD] == '\0')
		abort();

	heap = malloc(CODE_GEN_LEN);
	memcpy(heap, code, CODE_GEN_LEN);
	if (!code_is_generated(heap, CODE_GEN_LEN))
		abort();
	free(heap);
	/* shorter or longer strings are never generated codes */
	if (code_is_generated(code, CODE_GEN_LEN - 1))
		abort();

	/* exactly one of the 32 check symbols is valid */
	memcpy(typo, code, sizeof(code));
	for (s = 0; s < 32; s++)
	{
		typo[CODE_GEN_PAYLOAD] = alphabet32[s];
		valid_checks += is_generated_str(typo);
	}
	if (valid_checks != 1)
		abort();

	/* case and folding do not matter; U is never in a generated code */
	memcpy(typo, code, sizeof(code));
	for (i = 0; i < CODE_GEN_LEN; i++)
	{
		uint8_t		d = data[(size_t) i % size];

		if (typo[i] == '0' && (d & 32))
			typo[i] = (d & 64) ? 'o' : 'O';
		else if (typo[i] == '1' && (d & 32))
			typo[i] = "IiLl"[(d >> 6) & 3];
		else if (typo[i] >= 'A' && typo[i] <= 'Z' && (d & 128))
			typo[i] = (char) (typo[i] - 'A' + 'a');
	}
	if (!is_generated_str(typo))
		abort();
	if (check_neighbours(typo, CODE_GEN_LEN, NULL) != 0)
		abort();

	/*
	 * Every substitution by any code character, either case, is detected: all
	 * 36 characters in one position, chosen by the input (the unit tests try
	 * every position of a few codes; here many codes, one position each).
	 */
	i = data[size - 1] % CODE_GEN_LEN;
	for (s = 0; s < 36; s++)
	{
		memcpy(typo, code, sizeof(code));
		typo[i] = all36[s];
		if ((data[(size_t) s % size] & 1) && typo[i] >= 'A')
			typo[i] = (char) (typo[i] - 'A' + 'a');
		if (fold(typo[i]) == fold(code[i]))
		{
			if (!is_generated_str(typo))
				abort();		/* a spelling of the same code */
			continue;
		}
		if (is_generated_str(typo))
			abort();
	}

	/* every swap of two adjacent distinct symbols is detected */
	for (i = 0; i + 1 < CODE_GEN_LEN; i++)
	{
		if (code[i] == code[i + 1])
			continue;
		memcpy(typo, code, sizeof(code));
		typo[i] = code[i + 1];
		typo[i + 1] = code[i];
		if (is_generated_str(typo))
			abort();
	}

	/* a code with one typo (chosen by the input) has the code among its neighbours */
	if (size >= CODE_GEN_PAYLOAD + 2)
	{
		unsigned	pick = data[CODE_GEN_PAYLOAD];
		unsigned	with = data[CODE_GEN_PAYLOAD + 1];

		memcpy(typo, code, sizeof(code));
		if (pick & 128)
		{
			i = (int) (pick % (CODE_GEN_LEN - 1));
			typo[i] = code[i + 1];
			typo[i + 1] = code[i];
		}
		else
		{
			i = (int) (pick % CODE_GEN_LEN);
			typo[i] = all36[with % 36];
		}
		if (strcmp(typo, code) != 0 && fold(typo[i]) != fold(code[i]))
			check_neighbours(typo, CODE_GEN_LEN, code);
	}
}

/* Part 4: generated codes from a key and counters. */
static void
check_generate(const uint8_t *data, size_t size)
{
	uint8_t		key[CODE_KEY_LEN];
	uint64_t	counter;
	char	   *a;
	char	   *b;
	int64_t		v = -1;
	size_t		off = 0;

	if (size < CODE_KEY_LEN + 8)
		return;
	memcpy(key, data, CODE_KEY_LEN);
	counter = (uint64_t) read_i64(data + CODE_KEY_LEN);

	a = malloc(CODE_GEN_LEN + 1);
	b = malloc(CODE_GEN_LEN + 1);
	/* counters past the limit are refused and write nothing */
	memset(a, 'x', CODE_GEN_LEN + 1);
	if (counter >= CODE_COUNTER_LIMIT &&
		(code_generate(counter, key, a) || a[0] != 'x'))
		abort();
	counter %= CODE_COUNTER_LIMIT;
	if (!code_generate(counter, key, a) || strlen(a) != CODE_GEN_LEN ||
		!is_generated_str(a))
		abort();
	if (strspn(a, alphabet32) != CODE_GEN_LEN)
		abort();
	if (code_check_symbol(a) != a[CODE_GEN_PAYLOAD])
		abort();
	if (code_parse(a, &v, &off) != CODE_PARSE_OK || !code_is_valid_value(v))
		abort();
	/* a bijection: the neighbouring counter gives another code */
	if (!code_generate(counter ^ 1, key, b) || strcmp(a, b) == 0)
		abort();
	/* the same key and counter give the same code */
	if (!code_generate(counter, key, b) || strcmp(a, b) != 0)
		abort();
	free(a);
	free(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int64_t		a = 0;
	int64_t		b = 0;
	int64_t		c = 0;
	char	   *copy;

	check_parse(data, size);

	if (size >= 24)
	{
		a = read_i64(data);
		b = read_i64(data + 8);
		c = read_i64(data + 16);
		check_values(a, b, c);
		/* the same values brought into range, where most are valid codes */
		check_values((int64_t) ((uint64_t) a % (uint64_t) CODE_VALUE_LIMIT),
					 (int64_t) ((uint64_t) b % (uint64_t) CODE_VALUE_LIMIT),
					 (int64_t) ((uint64_t) c % (uint64_t) CODE_VALUE_LIMIT));
	}
	else if (size > 0)
	{
		int64_t		v = -1;
		size_t		off = 0;
		char	   *str = malloc(size + 1);

		/* short inputs: compare the parsed input with its prefixes */
		memcpy(str, data, size);
		str[size] = '\0';
		if (code_parse(str, &v, &off) == CODE_PARSE_OK)
		{
			size_t		cut = strlen(str);

			while (cut > 0)
			{
				int64_t		w = -1;

				str[--cut] = '\0';
				if (code_parse(str, &w, &off) == CODE_PARSE_OK)
					check_values(v, w, v);
			}
		}
		free(str);
	}

	check_check_symbol(data, size);
	check_generate(data, size);

	/* arbitrary bytes as a generated code and as a typo: memory safety and the properties */
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	code_is_generated(copy, size);
	check_neighbours(copy, size, NULL);
	free(copy);
	return 0;
}
