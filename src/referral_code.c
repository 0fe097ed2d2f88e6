/*
 * referral_code.c
 *		The referral_code type: text and binary I/O, the comparison
 *		operators, btree (with sort support) and hash support, and the SQL
 *		functions over generated codes (referral.is_generated,
 *		referral._generate_code, referral._typo_neighbours).
 *
 * The encoding, folding and generated codes themselves are in code_core.c;
 * this file only adapts them to the server.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/sortsupport.h"

#include "excerpt.h"
#include "referral_code.h"

/*
 * Soft errors (input functions called with an ErrorSaveContext) arrived in
 * PostgreSQL 16; before that, ereturn simply throws.
 */
#if PG_VERSION_NUM < 160000
#define ereturn(context, dummy_value, ...) \
	do { \
		(void) (context); \
		ereport(ERROR, __VA_ARGS__); \
		return dummy_value; \
	} while (0)
#endif

#define REFERRAL_CODE_SEND_VERSION	1

#define REFERRAL_CODE_FORMAT_DETAIL \
	"A referral code has 3 to 12 characters from 0-9 and A-Z; spaces and hyphens are ignored."

/*
 * Parses str into *result; on malformed input reports 22P02 through escontext
 * (soft error) or throws, and returns false.  The message quotes only an
 * excerpt of str, which may be of any length.
 */
static bool
referral_code_parse(const char *str, ReferralCode *result, Node *escontext)
{
	int64		code;
	size_t		off = 0;
	int			charlen;

	switch (code_parse(str, &code, &off))
	{
		case CODE_PARSE_OK:
			*result = code;
			return true;
		case CODE_PARSE_BAD_CHAR:
			/* name the whole (possibly multibyte) character and its position */
			charlen = Min(pg_mblen(str + off), (int) strnlen(str + off, MAX_MULTIBYTE_CHAR_LEN));
			ereturn(escontext, false,
					errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					errmsg("invalid character \"%s\" at position %d in referral code \"%s\"",
						   pnstrdup(str + off, charlen),
						   pg_mbstrlen_with_len(str, (int) off) + 1,
						   referral_excerpt(str, strlen(str))),
					errdetail(REFERRAL_CODE_FORMAT_DETAIL));
		case CODE_PARSE_TOO_SHORT:
			ereturn(escontext, false,
					errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					errmsg("referral code \"%s\" is too short",
						   referral_excerpt(str, strlen(str))),
					errdetail(REFERRAL_CODE_FORMAT_DETAIL));
		case CODE_PARSE_TOO_LONG:
			ereturn(escontext, false,
					errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
					errmsg("referral code \"%s\" is too long",
						   referral_excerpt(str, strlen(str))),
					errdetail(REFERRAL_CODE_FORMAT_DETAIL));
	}
	elog(ERROR, "unexpected referral code parse status");
	return false;				/* keep compiler quiet */
}

/* The text form of a code, upper case, palloc'd. */
char *
referral_code_to_cstring(ReferralCode code)
{
	char	   *result = palloc(CODE_MAX_LEN + 1);

	code_print(code, result);
	return result;
}

/* Parses text like referral_code_in, throwing on malformed input. */
ReferralCode
referral_code_from_cstring(const char *str)
{
	ReferralCode code = 0;

	(void) referral_code_parse(str, &code, NULL);
	return code;
}

/* The generated code of a counter under a 32-byte key. */
ReferralCode
referral_code_generate(int64 counter, const uint8 *key, size_t keylen)
{
	char		buf[CODE_GEN_LEN + 1];
	int64		code;
	size_t		off;

	if (keylen != CODE_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("referral code key must be %d bytes, not %zu", CODE_KEY_LEN, keylen)));
	if (counter < 0 || (uint64) counter >= CODE_COUNTER_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("referral code counter %lld is out of range", (long long) counter),
				 errdetail("A counter is between 0 and %lld.",
						   (long long) (CODE_COUNTER_LIMIT - 1))));
	if (!code_generate((uint64) counter, key, buf) ||
		code_parse(buf, &code, &off) != CODE_PARSE_OK)
		elog(ERROR, "generated referral code \"%s\" does not parse", buf);
	return code;
}

/* Whether a code is a generated code (alphabet and check symbol). */
bool
referral_code_is_generated_code(ReferralCode code)
{
	char		buf[CODE_MAX_LEN + 1];
	int			len = code_print(code, buf);

	return code_is_generated(buf, (size_t) len);
}

/* The generated codes one typo away from code, sorted. */
int
referral_code_neighbours(ReferralCode code,
						 ReferralCode out[REFERRAL_CODE_MAX_NEIGHBOURS])
{
	char		buf[CODE_MAX_LEN + 1];
	char		nb[CODE_MAX_NEIGHBOURS][CODE_GEN_LEN + 1];
	int			len = code_print(code, buf);
	int			n = code_typo_neighbours(buf, (size_t) len, nb);
	int			i;

	for (i = 0; i < n; i++)
	{
		int64		v;
		size_t		off;

		if (code_parse(nb[i], &v, &off) != CODE_PARSE_OK)
			elog(ERROR, "referral code neighbour \"%s\" does not parse", nb[i]);
		out[i] = v;
	}
	return n;
}

/* ---- I/O ---- */

/* referral_code input: text to code, soft errors where the server has them */
PG_FUNCTION_INFO_V1(referral_code_in);
Datum
referral_code_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	ReferralCode code;

	if (!referral_code_parse(str, &code, fcinfo->context))
		PG_RETURN_NULL();
	PG_RETURN_REFERRAL_CODE(code);
}

/* referral_code output: the code as issued, upper case, no separators */
PG_FUNCTION_INFO_V1(referral_code_out);
Datum
referral_code_out(PG_FUNCTION_ARGS)
{
	PG_RETURN_CSTRING(referral_code_to_cstring(PG_GETARG_REFERRAL_CODE(0)));
}

/* referral_code binary input: version byte 1, then the int64, validated */
PG_FUNCTION_INFO_V1(referral_code_recv);
Datum
referral_code_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int			version = pq_getmsgbyte(buf);
	int64		code;

	if (version != REFERRAL_CODE_SEND_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("unsupported referral code binary format version %d", version),
				 errdetail("This server reads version %d.", REFERRAL_CODE_SEND_VERSION)));
	if (buf->len - buf->cursor < (int) sizeof(int64))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("referral code binary input has %d bytes after the version byte, not %d",
						buf->len - buf->cursor, (int) sizeof(int64))));
	code = pq_getmsgint64(buf);
	if (!code_is_valid_value(code))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid referral code value %lld in binary input", (long long) code)));
	PG_RETURN_REFERRAL_CODE(code);
}

/* referral_code binary output: version byte 1, then the int64 */
PG_FUNCTION_INFO_V1(referral_code_send);
Datum
referral_code_send(PG_FUNCTION_ARGS)
{
	ReferralCode code = PG_GETARG_REFERRAL_CODE(0);
	StringInfoData buf;

	pq_begintypsend(&buf);
	pq_sendbyte(&buf, REFERRAL_CODE_SEND_VERSION);
	pq_sendint64(&buf, code);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---- comparison ---- */

/* the = operator: the codes read alike */
PG_FUNCTION_INFO_V1(referral_code_eq);
Datum
referral_code_eq(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(code_compare(PG_GETARG_REFERRAL_CODE(0), PG_GETARG_REFERRAL_CODE(1)) == 0);
}

/* the <> operator */
PG_FUNCTION_INFO_V1(referral_code_ne);
Datum
referral_code_ne(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(code_compare(PG_GETARG_REFERRAL_CODE(0), PG_GETARG_REFERRAL_CODE(1)) != 0);
}

/* the < operator, on folded codes */
PG_FUNCTION_INFO_V1(referral_code_lt);
Datum
referral_code_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(code_compare(PG_GETARG_REFERRAL_CODE(0), PG_GETARG_REFERRAL_CODE(1)) < 0);
}

/* the <= operator, on folded codes */
PG_FUNCTION_INFO_V1(referral_code_le);
Datum
referral_code_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(code_compare(PG_GETARG_REFERRAL_CODE(0), PG_GETARG_REFERRAL_CODE(1)) <= 0);
}

/* the > operator, on folded codes */
PG_FUNCTION_INFO_V1(referral_code_gt);
Datum
referral_code_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(code_compare(PG_GETARG_REFERRAL_CODE(0), PG_GETARG_REFERRAL_CODE(1)) > 0);
}

/* the >= operator, on folded codes */
PG_FUNCTION_INFO_V1(referral_code_ge);
Datum
referral_code_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(code_compare(PG_GETARG_REFERRAL_CODE(0), PG_GETARG_REFERRAL_CODE(1)) >= 0);
}

/* btree support 1: -1, 0 or 1 */
PG_FUNCTION_INFO_V1(referral_code_cmp);
Datum
referral_code_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(code_compare(PG_GETARG_REFERRAL_CODE(0), PG_GETARG_REFERRAL_CODE(1)));
}

/* sort support: the full comparator */
static int
referral_code_fastcmp(Datum x, Datum y, SortSupport ssup)
{
	return code_compare(DatumGetReferralCode(x), DatumGetReferralCode(y));
}

/* sort support: abbreviated keys are folded keys, compared as integers */
static int
referral_code_abbrev_cmp(Datum x, Datum y, SortSupport ssup)
{
	int64		a = DatumGetInt64(x);
	int64		b = DatumGetInt64(y);

	return (a > b) - (a < b);
}

/* sort support: the folded key, computed once per value instead of per comparison */
static Datum
referral_code_abbrev_convert(Datum original, SortSupport ssup)
{
	return Int64GetDatum(code_fold_key(DatumGetReferralCode(original)));
}

/* sort support: the folded key is exact (ties are equal codes), never abort */
static bool
referral_code_abbrev_abort(int memtupcount, SortSupport ssup)
{
	return false;
}

/* btree support 2: sort support, with folded keys as abbreviated keys */
PG_FUNCTION_INFO_V1(referral_code_sortsupport);
Datum
referral_code_sortsupport(PG_FUNCTION_ARGS)
{
	SortSupport ssup = (SortSupport) PG_GETARG_POINTER(0);

	if (ssup->abbreviate)
	{
		ssup->comparator = referral_code_abbrev_cmp;
		ssup->abbrev_converter = referral_code_abbrev_convert;
		ssup->abbrev_abort = referral_code_abbrev_abort;
		ssup->abbrev_full_comparator = referral_code_fastcmp;
	}
	else
		ssup->comparator = referral_code_fastcmp;
	PG_RETURN_VOID();
}

/* hash support 1: hashint8 of the folded key, so equal codes hash alike */
PG_FUNCTION_INFO_V1(referral_code_hash);
Datum
referral_code_hash(PG_FUNCTION_ARGS)
{
	int64		key = code_fold_key(PG_GETARG_REFERRAL_CODE(0));

	/* as hashint8 does for a non-negative value */
	return hash_uint32((uint32) key ^ (uint32) (key >> 32));
}

/* hash support 2: hashint8extended of the folded key */
PG_FUNCTION_INFO_V1(referral_code_hash_extended);
Datum
referral_code_hash_extended(PG_FUNCTION_ARGS)
{
	int64		key = code_fold_key(PG_GETARG_REFERRAL_CODE(0));

	return hash_uint32_extended((uint32) key ^ (uint32) (key >> 32),
								(uint64) PG_GETARG_INT64(1));
}

/* ---- generated codes ---- */

/* referral.is_generated: 8 symbols of the unambiguous alphabet, valid check */
PG_FUNCTION_INFO_V1(referral_code_is_generated);
Datum
referral_code_is_generated(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(referral_code_is_generated_code(PG_GETARG_REFERRAL_CODE(0)));
}

/* referral._generate_code: the code of a counter under a 32-byte key */
PG_FUNCTION_INFO_V1(referral_code_generate_sql);
Datum
referral_code_generate_sql(PG_FUNCTION_ARGS)
{
	int64		counter = PG_GETARG_INT64(0);
	bytea	   *key = PG_GETARG_BYTEA_PP(1);

	PG_RETURN_REFERRAL_CODE(referral_code_generate(counter,
												   (const uint8 *) VARDATA_ANY(key),
												   VARSIZE_ANY_EXHDR(key)));
}

/* referral._typo_neighbours: generated codes one typo away, as an array */
PG_FUNCTION_INFO_V1(referral_code_typo_neighbours);
Datum
referral_code_typo_neighbours(PG_FUNCTION_ARGS)
{
	ReferralCode codes[REFERRAL_CODE_MAX_NEIGHBOURS];
	Datum		elems[REFERRAL_CODE_MAX_NEIGHBOURS];
	Oid			arraytype = get_fn_expr_rettype(fcinfo->flinfo);
	Oid			elemtype = OidIsValid(arraytype) ? get_element_type(arraytype) : InvalidOid;
	int			n;
	int			i;

	if (!OidIsValid(elemtype))
		elog(ERROR, "could not determine the referral_code array type");

	n = referral_code_neighbours(PG_GETARG_REFERRAL_CODE(0), codes);
	if (n == 0)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(elemtype));
	for (i = 0; i < n; i++)
		elems[i] = ReferralCodeGetDatum(codes[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, elemtype, sizeof(int64),
										  true, TYPALIGN_DOUBLE));
}
