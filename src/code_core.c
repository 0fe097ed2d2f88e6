/*
 * code_core.c
 *		Referral codes without the server: the int64 representation (parse,
 *		print, validate, fold), and generated codes (a keyed Feistel
 *		permutation of a counter, a Damm check symbol over GF(32), and the
 *		typo neighbours a "did you mean" hint offers).
 *
 * See code_core.h for the representation and the folding rules.
 */
#include <string.h>

#include "code_core.h"

/* ---- the representation ---- */

#define CODE_DIGIT_SKIP		64	/* space or hyphen: ignored */

/* base-37 digit of each input character: 0 = invalid */
static const uint8_t code_char_digit[256] = {
	[' '] = CODE_DIGIT_SKIP, ['-'] = CODE_DIGIT_SKIP, ['0'] = 1, ['1'] = 2,
	['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9,
	['9'] = 10, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15,
	['F'] = 16, ['G'] = 17, ['H'] = 18, ['I'] = 19, ['J'] = 20, ['K'] = 21,
	['L'] = 22, ['M'] = 23, ['N'] = 24, ['O'] = 25, ['P'] = 26, ['Q'] = 27,
	['R'] = 28, ['S'] = 29, ['T'] = 30, ['U'] = 31, ['V'] = 32, ['W'] = 33,
	['X'] = 34, ['Y'] = 35, ['Z'] = 36, ['a'] = 11, ['b'] = 12, ['c'] = 13,
	['d'] = 14, ['e'] = 15, ['f'] = 16, ['g'] = 17, ['h'] = 18, ['i'] = 19,
	['j'] = 20, ['k'] = 21, ['l'] = 22, ['m'] = 23, ['n'] = 24, ['o'] = 25,
	['p'] = 26, ['q'] = 27, ['r'] = 28, ['s'] = 29, ['t'] = 30, ['u'] = 31,
	['v'] = 32, ['w'] = 33, ['x'] = 34, ['y'] = 35, ['z'] = 36,
};

/*
 * Folded base-34 digit of each base-37 digit d: the rank of the folded
 * character in "0123456789ABCDEFGHJKMNPQRSTUVWXYZ", plus one.  O (25) folds
 * to 0, I (19) and L (22) to 1; the letters after I, L and O move down.
 */
#define CODE_FOLD(d) \
	((d) == 19 || (d) == 22 ? 2 : (d) == 25 ? 1 : \
	 (d) - ((d) > 19) - ((d) > 22) - ((d) > 25))

/* character of a base-37 digit; the end (0) is NUL */
#define CODE_CHAR(d) \
	((char) ((d) == 0 ? '\0' : (d) <= 10 ? '0' + (d) - 1 : 'A' + (d) - 11))

static const uint8_t code_fold_digit[37] = {
	CODE_FOLD(0), CODE_FOLD(1), CODE_FOLD(2), CODE_FOLD(3), CODE_FOLD(4),
	CODE_FOLD(5), CODE_FOLD(6), CODE_FOLD(7), CODE_FOLD(8), CODE_FOLD(9),
	CODE_FOLD(10), CODE_FOLD(11), CODE_FOLD(12), CODE_FOLD(13), CODE_FOLD(14),
	CODE_FOLD(15), CODE_FOLD(16), CODE_FOLD(17), CODE_FOLD(18), CODE_FOLD(19),
	CODE_FOLD(20), CODE_FOLD(21), CODE_FOLD(22), CODE_FOLD(23), CODE_FOLD(24),
	CODE_FOLD(25), CODE_FOLD(26), CODE_FOLD(27), CODE_FOLD(28), CODE_FOLD(29),
	CODE_FOLD(30), CODE_FOLD(31), CODE_FOLD(32), CODE_FOLD(33), CODE_FOLD(34),
	CODE_FOLD(35), CODE_FOLD(36)
};

/*
 * Tables over pairs of base-37 digits (37^2 = 1369 entries, indexed by
 * 37 * high + low), so that printing and folding take six steps, not twelve.
 * CODE_PAIRS(F) expands F(high, low) for every pair, in index order, row
 * by row (CODE_ROW(high, F)).
 */
#define CODE_ROW(h, F) \
	F(h, 0), F(h, 1), F(h, 2), F(h, 3), F(h, 4), F(h, 5), F(h, 6), F(h, 7), \
	F(h, 8), F(h, 9), F(h, 10), F(h, 11), F(h, 12), F(h, 13), F(h, 14), \
	F(h, 15), F(h, 16), F(h, 17), F(h, 18), F(h, 19), F(h, 20), F(h, 21), \
	F(h, 22), F(h, 23), F(h, 24), F(h, 25), F(h, 26), F(h, 27), F(h, 28), \
	F(h, 29), F(h, 30), F(h, 31), F(h, 32), F(h, 33), F(h, 34), F(h, 35), \
	F(h, 36)
#define CODE_PAIRS(F) \
	CODE_ROW(0, F), CODE_ROW(1, F), CODE_ROW(2, F), CODE_ROW(3, F), \
	CODE_ROW(4, F), CODE_ROW(5, F), CODE_ROW(6, F), CODE_ROW(7, F), \
	CODE_ROW(8, F), CODE_ROW(9, F), CODE_ROW(10, F), CODE_ROW(11, F), \
	CODE_ROW(12, F), CODE_ROW(13, F), CODE_ROW(14, F), CODE_ROW(15, F), \
	CODE_ROW(16, F), CODE_ROW(17, F), CODE_ROW(18, F), CODE_ROW(19, F), \
	CODE_ROW(20, F), CODE_ROW(21, F), CODE_ROW(22, F), CODE_ROW(23, F), \
	CODE_ROW(24, F), CODE_ROW(25, F), CODE_ROW(26, F), CODE_ROW(27, F), \
	CODE_ROW(28, F), CODE_ROW(29, F), CODE_ROW(30, F), CODE_ROW(31, F), \
	CODE_ROW(32, F), CODE_ROW(33, F), CODE_ROW(34, F), CODE_ROW(35, F), \
	CODE_ROW(36, F)

#define CODE_FOLD_PAIR(h, l)	(CODE_FOLD(h) * 34 + CODE_FOLD(l))
#define CODE_CHAR_PAIR(h, l)	{CODE_CHAR(h), CODE_CHAR(l)}

/* folded base-34 value (< 34^2) of each pair of base-37 digits */
static const uint16_t code_fold_pair[37 * 37] = {CODE_PAIRS(CODE_FOLD_PAIR)};

/* the two characters of each pair of base-37 digits */
static const char code_char_pair[37 * 37][2] = {CODE_PAIRS(CODE_CHAR_PAIR)};

/* 37^k for k = 0..12 */
static const uint64_t code_pow37[CODE_MAX_LEN + 1] = {
	UINT64_C(1), UINT64_C(37), UINT64_C(1369), UINT64_C(50653),
	UINT64_C(1874161), UINT64_C(69343957), UINT64_C(2565726409),
	UINT64_C(94931877133), UINT64_C(3512479453921),
	UINT64_C(129961739795077), UINT64_C(4808584372417849),
	UINT64_C(177917621779460413), UINT64_C(6582952005840035281)
};

#define CODE_POW37_2	1369u
#define CODE_POW37_4	1874161u
#define CODE_POW37_6	UINT64_C(2565726409)
#define CODE_POW34_2	1156u
#define CODE_POW34_4	1336336u
#define CODE_POW34_6	INT64_C(1544804416)

code_parse_status
code_parse(const char *str, int64_t *result, size_t *bad_offset)
{
	const unsigned char *p;
	uint64_t	v = 0;
	size_t		n = 0;

	for (p = (const unsigned char *) str; *p; p++)
	{
		uint8_t		d = code_char_digit[*p];

		if (d == CODE_DIGIT_SKIP)
			continue;
		if (d == 0)
		{
			*bad_offset = (size_t) (p - (const unsigned char *) str);
			return CODE_PARSE_BAD_CHAR;
		}
		if (n < CODE_MAX_LEN)
			v = v * 37 + d;
		n++;
	}
	if (n < CODE_MIN_LEN)
		return CODE_PARSE_TOO_SHORT;
	if (n > CODE_MAX_LEN)
		return CODE_PARSE_TOO_LONG;
	*result = (int64_t) (v * code_pow37[CODE_MAX_LEN - n]);
	return CODE_PARSE_OK;
}

/*
 * Values outside [0, CODE_VALUE_LIMIT) come from no input, recv or generator,
 * only from corrupt data: printing, folding and comparing read them as the
 * largest code so that no table is indexed out of bounds.
 */
static inline uint64_t
code_clamp(int64_t code)
{
	return (uint64_t) code < (uint64_t) CODE_VALUE_LIMIT ?
		(uint64_t) code : (uint64_t) CODE_VALUE_LIMIT - 1;
}

/*
 * The 12 base-37 digits of a representation, most significant first.  Two
 * 32-bit halves keep the divisions by the constant 37 cheap.
 */
static inline void
code_digits(int64_t code, uint8_t d[CODE_MAX_LEN])
{
	uint64_t	u = (uint64_t) code;
	uint32_t	hi = (uint32_t) (u / CODE_POW37_6);
	uint32_t	lo = (uint32_t) (u - (uint64_t) hi * CODE_POW37_6);
	int			i;

	for (i = 5; i >= 0; i--)
	{
		d[6 + i] = (uint8_t) (lo % 37);
		lo /= 37;
		d[i] = (uint8_t) (hi % 37);
		hi /= 37;
	}
}

/* Writes the six characters of half a code (some may be NUL). */
static inline void
code_print_half(uint32_t x, char *out)
{
	uint32_t	a = x / CODE_POW37_4;
	uint32_t	r = x - a * CODE_POW37_4;
	uint32_t	b = r / CODE_POW37_2;
	uint32_t	c = r - b * CODE_POW37_2;

	memcpy(out, code_char_pair[a], 2);
	memcpy(out + 2, code_char_pair[b], 2);
	memcpy(out + 4, code_char_pair[c], 2);
}

int
code_print(int64_t code, char out[CODE_MAX_LEN + 1])
{
	uint64_t	u = code_clamp(code);
	uint32_t	hi = (uint32_t) (u / CODE_POW37_6);
	int			n;

	/* the end digit prints as NUL, so the string ends where the code does */
	code_print_half(hi, out);
	code_print_half((uint32_t) (u - (uint64_t) hi * CODE_POW37_6), out + 6);
	out[CODE_MAX_LEN] = '\0';
	for (n = 0; n < CODE_MAX_LEN && out[n] != '\0'; n++)
		;
	return n;
}

bool
code_is_valid_value(int64_t code)
{
	uint8_t		d[CODE_MAX_LEN];
	bool		ended = false;
	int			i;

	if (code < 0 || code >= CODE_VALUE_LIMIT)
		return false;
	code_digits(code, d);
	for (i = 0; i < CODE_MAX_LEN; i++)
	{
		if (d[i] == 0)
		{
			if (i < CODE_MIN_LEN)
				return false;
			ended = true;
		}
		else if (ended)
			return false;
	}
	return true;
}

/* Folded base-34 value of six base-37 digits (half a code). */
static inline uint32_t
code_fold_half(uint32_t x)
{
	uint32_t	a = x / CODE_POW37_4;
	uint32_t	r = x - a * CODE_POW37_4;
	uint32_t	b = r / CODE_POW37_2;
	uint32_t	c = r - b * CODE_POW37_2;

	return code_fold_pair[a] * CODE_POW34_4 + code_fold_pair[b] * CODE_POW34_2 +
		code_fold_pair[c];
}

int64_t
code_fold_key(int64_t code)
{
	uint64_t	u = code_clamp(code);
	uint32_t	hi = (uint32_t) (u / CODE_POW37_6);
	uint32_t	lo = (uint32_t) (u - (uint64_t) hi * CODE_POW37_6);

	return (int64_t) code_fold_half(hi) * CODE_POW34_6 + code_fold_half(lo);
}

/*
 * Compares six base-37 digits (half a code) by their folded digits, from
 * the most significant, stopping at the first folded difference or as soon
 * as the remaining digits are identical: most pairs of codes differ early.
 */
static inline int
code_compare_half(uint32_t a, uint32_t b)
{
#define CODE_COMPARE_STEP(p) \
	do { \
		uint32_t	qa = a / (p); \
		uint32_t	qb = b / (p); \
		\
		if (qa != qb && code_fold_digit[qa] != code_fold_digit[qb]) \
			return code_fold_digit[qa] < code_fold_digit[qb] ? -1 : 1; \
		a -= qa * (p); \
		b -= qb * (p); \
		if (a == b) \
			return 0; \
	} while (0)

	CODE_COMPARE_STEP(69343957u);	/* 37^5 */
	CODE_COMPARE_STEP(1874161u);	/* 37^4 */
	CODE_COMPARE_STEP(50653u);	/* 37^3 */
	CODE_COMPARE_STEP(1369u);	/* 37^2 */
	CODE_COMPARE_STEP(37u);
#undef CODE_COMPARE_STEP
	if (code_fold_digit[a] != code_fold_digit[b])
		return code_fold_digit[a] < code_fold_digit[b] ? -1 : 1;
	return 0;
}

int
code_compare(int64_t a, int64_t b)
{
	uint64_t	ua = code_clamp(a);
	uint64_t	ub = code_clamp(b);
	uint32_t	ha,
				hb;
	int			r;

	if (ua == ub)
		return 0;
	ha = (uint32_t) (ua / CODE_POW37_6);
	hb = (uint32_t) (ub / CODE_POW37_6);
	if (ha != hb && (r = code_compare_half(ha, hb)) != 0)
		return r;
	return code_compare_half((uint32_t) (ua - (uint64_t) ha * CODE_POW37_6),
							 (uint32_t) (ub - (uint64_t) hb * CODE_POW37_6));
}

/* ---- generated codes ---- */

const char	code_gen_alphabet[33] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#define CODE_GEN_U	32				/* folded symbol 'U': not in the alphabet */

/* folded base-34 digit of 'U' (base-37 digit 31), the folded character code_gen_alphabet lacks */
#define CODE_FOLDED_U	CODE_FOLD(31)

/*
 * Symbol of a character, plus one (0 = not 0-9A-Z): its index in
 * code_gen_alphabet, folded as the representation folds it (O = 0, I = L =
 * 1), case-insensitive; 'U' is CODE_GEN_U.  The alphabet is the folded
 * characters without U, in the same order.
 */
static inline uint8_t
code_gen_symbol(unsigned char c)
{
	uint8_t		d = code_char_digit[c];
	uint8_t		f;

	if (d == 0 || d == CODE_DIGIT_SKIP)
		return 0;
	f = code_fold_digit[d];
	if (f < CODE_FOLDED_U)
		return f;
	return f == CODE_FOLDED_U ? CODE_GEN_U + 1 : f - 1;
}

/*
 * Multiplication by alpha (the field element x) in GF(32) = GF(2)[x] /
 * (x^5 + x^2 + 1).
 */
static inline unsigned
code_gf32_times_alpha(unsigned a)
{
	a <<= 1;
	if (a & 0x20)
		a ^= 0x25;
	return a;
}

/*
 * Damm's algorithm over the quasigroup x o y = alpha * x + y in GF(32):
 * interim starts at 0; interim = interim o d for each symbol.  Since
 * (c o x) o y = (c o y) o x only when x = y (alpha != 1), the quasigroup is
 * totally anti-symmetric and every adjacent swap is detected, as is every
 * substitution (x o y is a Latin square).  A string is valid when the final
 * interim is 0.
 */
static unsigned
code_damm(const uint8_t *sym, int n)
{
	unsigned	interim = 0;
	int			i;

	for (i = 0; i < n; i++)
		interim = code_gf32_times_alpha(interim) ^ sym[i];
	return interim;
}

char
code_check_symbol(const char payload[CODE_GEN_PAYLOAD])
{
	uint8_t		sym[CODE_GEN_PAYLOAD];
	int			i;

	for (i = 0; i < CODE_GEN_PAYLOAD; i++)
	{
		uint8_t		s = code_gen_symbol((unsigned char) payload[i]);

		/* callers pass alphabet characters; anything else counts as '0' */
		sym[i] = (s == 0 || s - 1 == CODE_GEN_U) ? 0 : (uint8_t) (s - 1);
	}

	/* the check c solves interim o c = 0, i.e. c = alpha * interim */
	return code_gen_alphabet[code_gf32_times_alpha(code_damm(sym, CODE_GEN_PAYLOAD))];
}

/* Folded symbols of an 8-character string; false if a character is not 0-9A-Z. */
static bool
code_gen_symbols(const char *str, size_t len, uint8_t sym[CODE_GEN_LEN])
{
	size_t		i;

	if (len != CODE_GEN_LEN)
		return false;
	for (i = 0; i < CODE_GEN_LEN; i++)
	{
		uint8_t		s = code_gen_symbol((unsigned char) str[i]);

		if (s == 0)
			return false;
		sym[i] = (uint8_t) (s - 1);
	}
	return true;
}

/* Whether folded symbols are a generated code: alphabet only, valid check. */
static bool
code_gen_symbols_valid(const uint8_t sym[CODE_GEN_LEN])
{
	int			i;

	for (i = 0; i < CODE_GEN_LEN; i++)
		if (sym[i] == CODE_GEN_U)
			return false;
	return code_damm(sym, CODE_GEN_LEN) == 0;
}

bool
code_is_generated(const char *str, size_t len)
{
	uint8_t		sym[CODE_GEN_LEN];

	return code_gen_symbols(str, len, sym) && code_gen_symbols_valid(sym);
}

/* Appends the string of a candidate, keeping out sorted (insertion sort). */
static int
code_add_neighbour(char out[CODE_MAX_NEIGHBOURS][CODE_GEN_LEN + 1], int n,
				   const uint8_t sym[CODE_GEN_LEN])
{
	char		s[CODE_GEN_LEN + 1];
	int			i,
				j;

	for (i = 0; i < CODE_GEN_LEN; i++)
		s[i] = code_gen_alphabet[sym[i]];
	s[CODE_GEN_LEN] = '\0';
	for (j = n; j > 0 && strcmp(out[j - 1], s) > 0; j--)
		memcpy(out[j], out[j - 1], CODE_GEN_LEN + 1);
	memcpy(out[j], s, CODE_GEN_LEN + 1);
	return n + 1;
}

int
code_typo_neighbours(const char *str, size_t len,
					 char out[CODE_MAX_NEIGHBOURS][CODE_GEN_LEN + 1])
{
	uint8_t		sym[CODE_GEN_LEN];
	uint8_t		cand[CODE_GEN_LEN];
	int			n = 0;
	int			i;
	unsigned	s;

	if (!code_gen_symbols(str, len, sym))
		return 0;

	/*
	 * One substitution.  Substituting I, L or O gives 1 or 0 again, and U is
	 * never valid, so the 32 alphabet symbols cover all 36.  The check is
	 * linear, so at most one symbol per position is valid: at most 8.
	 */
	for (i = 0; i < CODE_GEN_LEN; i++)
	{
		memcpy(cand, sym, CODE_GEN_LEN);
		for (s = 0; s < 32; s++)
		{
			if (s == sym[i])
				continue;
			cand[i] = (uint8_t) s;
			if (code_gen_symbols_valid(cand) && n < CODE_MAX_NEIGHBOURS)
				n = code_add_neighbour(out, n, cand);
		}
	}

	/* One swap of two adjacent distinct symbols: at most 7. */
	for (i = 0; i + 1 < CODE_GEN_LEN; i++)
	{
		if (sym[i] == sym[i + 1])
			continue;
		memcpy(cand, sym, CODE_GEN_LEN);
		cand[i] = sym[i + 1];
		cand[i + 1] = sym[i];
		if (code_gen_symbols_valid(cand) && n < CODE_MAX_NEIGHBOURS)
			n = code_add_neighbour(out, n, cand);
	}
	return n;
}

/* ---- the keyed permutation ---- */

#define CODE_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

#define CODE_SIPROUND \
	do { \
		v0 += v1; v1 = CODE_ROTL(v1, 13); v1 ^= v0; v0 = CODE_ROTL(v0, 32); \
		v2 += v3; v3 = CODE_ROTL(v3, 16); v3 ^= v2; \
		v0 += v3; v3 = CODE_ROTL(v3, 21); v3 ^= v0; \
		v2 += v1; v1 = CODE_ROTL(v1, 17); v1 ^= v2; v2 = CODE_ROTL(v2, 32); \
	} while (0)

uint64_t
code_siphash24(uint64_t k0, uint64_t k1, uint64_t m)
{
	uint64_t	v0 = k0 ^ UINT64_C(0x736f6d6570736575);
	uint64_t	v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
	uint64_t	v2 = k0 ^ UINT64_C(0x6c7967656e657261);
	uint64_t	v3 = k1 ^ UINT64_C(0x7465646279746573);
	uint64_t	b = UINT64_C(8) << 56;	/* message length 8, no tail bytes */

	v3 ^= m;
	CODE_SIPROUND;
	CODE_SIPROUND;
	v0 ^= m;
	v3 ^= b;
	CODE_SIPROUND;
	CODE_SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	CODE_SIPROUND;
	CODE_SIPROUND;
	CODE_SIPROUND;
	CODE_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

#define CODE_FEISTEL_ROUNDS 8

uint64_t
code_feistel(uint64_t x, const uint8_t key[CODE_KEY_LEN], unsigned half_bits)
{
	uint64_t	k[4];
	uint64_t	mask = (UINT64_C(1) << half_bits) - 1;
	uint64_t	l = (x >> half_bits) & mask;
	uint64_t	r = x & mask;
	unsigned	round;
	int			i,
				j;

	/* the key as four little-endian words, whatever the host's byte order */
	for (i = 0; i < 4; i++)
	{
		k[i] = 0;
		for (j = 7; j >= 0; j--)
			k[i] = (k[i] << 8) | key[8 * i + j];
	}

	/*
	 * Round function: SipHash-2-4 keyed by words 0-1 (even rounds) or 2-3
	 * (odd rounds), over the round number, the width and the half.
	 */
	for (round = 0; round < CODE_FEISTEL_ROUNDS; round++)
	{
		const uint64_t *rk = &k[2 * (round & 1)];
		uint64_t	f = code_siphash24(rk[0], rk[1],
									   ((uint64_t) round << 56) |
									   ((uint64_t) half_bits << 48) | r);
		uint64_t	t = l ^ (f & mask);

		l = r;
		r = t;
	}
	return (l << half_bits) | r;
}

uint64_t
code_permute(uint64_t x, const uint8_t key[CODE_KEY_LEN], unsigned half_bits,
			 uint64_t domain)
{
	/*
	 * Cycle-walking: apply the permutation until the value falls back into
	 * the domain.  x lies on a finite cycle that returns to x, so this ends;
	 * with domain >= half the width, after two steps on average.
	 */
	do
		x = code_feistel(x, key, half_bits);
	while (x >= domain);
	return x;
}

bool
code_generate(uint64_t counter, const uint8_t key[CODE_KEY_LEN],
			  char out[CODE_GEN_LEN + 1])
{
	uint64_t	payload;
	int			i;

	if (counter >= CODE_COUNTER_LIMIT)
		return false;
	payload = code_permute(counter, key, 18, CODE_COUNTER_LIMIT);
	for (i = CODE_GEN_PAYLOAD - 1; i >= 0; i--)
	{
		out[i] = code_gen_alphabet[payload & 31];
		payload >>= 5;
	}
	out[CODE_GEN_PAYLOAD] = code_check_symbol(out);
	out[CODE_GEN_LEN] = '\0';
	return true;
}
