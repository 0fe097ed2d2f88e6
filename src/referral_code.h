/*
 * referral_code.h
 *		The referral_code type for C callers: its Datum representation and
 *		helpers to print, parse and generate codes (src/referral_code.c).
 *
 * A referral_code is an int64 passed by value holding the code as issued
 * (see code_core.h); compare with code_compare(), never with ==, since codes
 * that read alike (O = 0, I = L = 1) are equal.
 */
#ifndef REFERRAL_CODE_H
#define REFERRAL_CODE_H

#include "fmgr.h"

#include "code_core.h"

typedef int64 ReferralCode;

#define DatumGetReferralCode(X)		((ReferralCode) DatumGetInt64(X))
#define ReferralCodeGetDatum(X)		Int64GetDatum((int64) (X))
#define PG_GETARG_REFERRAL_CODE(n)	DatumGetReferralCode(PG_GETARG_DATUM(n))
#define PG_RETURN_REFERRAL_CODE(x)	return ReferralCodeGetDatum(x)

/* most typo neighbours referral_code_neighbours() returns */
#define REFERRAL_CODE_MAX_NEIGHBOURS	CODE_MAX_NEIGHBOURS

/* The text form, upper case, palloc'd. */
extern char *referral_code_to_cstring(ReferralCode code);

/* Parses text like the type's input function; 22P02 on malformed input. */
extern ReferralCode referral_code_from_cstring(const char *str);

/*
 * The generated code of a counter under a 32-byte key; 22023 when the key is
 * not 32 bytes or the counter is outside [0, 2^35).
 */
extern ReferralCode referral_code_generate(int64 counter, const uint8 *key,
										   size_t keylen);

/* Whether a code is a generated code (alphabet and check symbol). */
extern bool referral_code_is_generated_code(ReferralCode code);

/*
 * The generated codes one substitution or adjacent swap away from code,
 * sorted; returns how many were written to out.
 */
extern int	referral_code_neighbours(ReferralCode code,
									 ReferralCode out[REFERRAL_CODE_MAX_NEIGHBOURS]);

#endif							/* REFERRAL_CODE_H */
