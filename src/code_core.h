/*
 * code_core.h
 *		Referral codes without the server: parsing, printing and folding of
 *		the referral_code representation, and the generated codes (keyed
 *		permutation of a counter, Damm check symbol, typo neighbours).
 *
 * Plain C99; no postgres.h.  Every symbol is prefixed with "code_".
 *
 * Representation.  A code is held in an int64 exactly as it was issued: its
 * characters are base-37 digits (0 = end of code, 1..10 = '0'..'9',
 * 11..36 = 'A'..'Z'), most significant first, over CODE_MAX_LEN positions
 * padded with 0.  37^12 < 2^63, so every code is a non-negative int64.
 *
 * Folding.  'O' reads as '0', 'I' and 'L' as '1'.  Equality, ordering and
 * hashing use the folded key: the folded spelling as base-34 digits (0 = end,
 * 1..33 = the 33 folded symbols in ASCII order), so that comparing folded
 * keys as integers sorts like the folded strings under C collation, a prefix
 * before its extensions.
 */
#ifndef CODE_CORE_H
#define CODE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CODE_MIN_LEN		3
#define CODE_MAX_LEN		12

/* 37^12: every valid representation is in [0, CODE_VALUE_LIMIT) */
#define CODE_VALUE_LIMIT	INT64_C(6582952005840035281)

/* result of code_parse */
typedef enum code_parse_status
{
	CODE_PARSE_OK = 0,
	CODE_PARSE_BAD_CHAR,		/* a character outside 0-9, A-Z, a-z, ' ', '-' */
	CODE_PARSE_TOO_SHORT,		/* fewer than CODE_MIN_LEN code characters */
	CODE_PARSE_TOO_LONG			/* more than CODE_MAX_LEN code characters */
} code_parse_status;

/*
 * Parses a NUL-terminated string: case-insensitive, spaces and hyphens
 * ignored anywhere.  On CODE_PARSE_BAD_CHAR, *bad_offset is the byte offset
 * of the first bad character (the first one wins over length errors).
 */
extern code_parse_status code_parse(const char *str, int64_t *result,
									size_t *bad_offset);

/*
 * Writes the spelling (upper case) and a NUL to out; returns its length.
 * Printing, folding and comparing read values outside [0, CODE_VALUE_LIMIT),
 * which only corrupt data holds, as ZZZZZZZZZZZZ.
 */
extern int	code_print(int64_t code, char out[CODE_MAX_LEN + 1]);

/* Whether an int64 is a well-formed representation (for binary input). */
extern bool code_is_valid_value(int64_t code);

/* The folded key: equal for codes that read alike, ordered like them. */
extern int64_t code_fold_key(int64_t code);

/*
 * -1, 0 or 1 comparing two codes as their folded keys compare, without
 * computing them (stops at the first folded difference).
 */
extern int	code_compare(int64_t a, int64_t b);

/* ---- generated codes ---- */

#define CODE_GEN_LEN		8
#define CODE_GEN_PAYLOAD	7
#define CODE_KEY_LEN		32
/* counters (and payloads) are in [0, CODE_COUNTER_LIMIT) */
#define CODE_COUNTER_LIMIT	(UINT64_C(1) << 35)
/* at most one substitution per position and one per adjacent swap */
#define CODE_MAX_NEIGHBOURS (CODE_GEN_LEN + CODE_GEN_LEN - 1)

/* "0123456789ABCDEFGHJKMNPQRSTVWXYZ": 0-9A-Z without I, L, O, U */
extern const char code_gen_alphabet[33];

/* SipHash-2-4 of one 8-byte little-endian message m under key (k0, k1). */
extern uint64_t code_siphash24(uint64_t k0, uint64_t k1, uint64_t m);

/*
 * The keyed Feistel network over 2 * half_bits bits (half_bits in 1..31),
 * 8 rounds, round function SipHash-2-4.  A bijection on [0, 2^(2*half_bits)).
 */
extern uint64_t code_feistel(uint64_t x, const uint8_t key[CODE_KEY_LEN],
							 unsigned half_bits);

/*
 * The Feistel network restricted to [0, domain) by cycle-walking; requires
 * x < domain <= 2^(2*half_bits).  A bijection on [0, domain).
 */
extern uint64_t code_permute(uint64_t x, const uint8_t key[CODE_KEY_LEN],
							 unsigned half_bits, uint64_t domain);

/*
 * The generated code of a counter: 7 payload symbols (the 35-bit keyed
 * permutation of the counter) and a Damm check symbol, NUL-terminated.
 * Returns false (and writes nothing) when counter >= CODE_COUNTER_LIMIT.
 */
extern bool code_generate(uint64_t counter, const uint8_t key[CODE_KEY_LEN],
						  char out[CODE_GEN_LEN + 1]);

/* The Damm check symbol (a code_gen_alphabet character) of 7 symbols. */
extern char code_check_symbol(const char payload[CODE_GEN_PAYLOAD]);

/*
 * Whether len characters (case-insensitive, folded: O = 0, I = L = 1) are a
 * generated code: CODE_GEN_LEN symbols of code_gen_alphabet with a valid
 * check symbol.
 */
extern bool code_is_generated(const char *str, size_t len);

/*
 * The generated codes one typo away from an 8-character code (folded,
 * case-insensitive): one substitution by any symbol, or one swap of two
 * adjacent distinct symbols, that gives a valid check symbol.  Writes them
 * sorted, NUL-terminated, to out and returns how many (0 when the input is
 * not 8 characters of 0-9A-Z, and 0 when it is itself a generated code).
 */
extern int	code_typo_neighbours(const char *str, size_t len,
								 char out[CODE_MAX_NEIGHBOURS][CODE_GEN_LEN + 1]);

#endif							/* CODE_CORE_H */
