/*
 * fingerprint.c
 *		Fingerprints stored only as keyed hashes: e-mail normalisation
 *		(referral.normalize_email), HMAC-SHA256 of a normalised e-mail,
 *		device or IP (referral._fingerprint), and the random bytes behind the
 *		per-database secret (referral._random_bytes).  The hashing is
 *		PostgreSQL's own, from src/common.
 */
#include "postgres.h"

#include "common/sha2.h"
#if PG_VERSION_NUM >= 140000
#include "common/hmac.h"
#endif
#include "fmgr.h"
#include "port.h"
#include "utils/builtins.h"

#include "email_core.h"
#include "excerpt.h"
#include "fingerprint.h"

/* Largest request referral._random_bytes accepts. */
#define REFERRAL_RANDOM_BYTES_MAX	1024

/* One piece of an HMAC message. */
typedef struct hmac_part
{
	const uint8 *data;
	size_t		len;
} hmac_part;

/* ASCII whitespace, as trimmed around device identifiers. */
static bool
fingerprint_is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
		c == '\r';
}

/* HMAC-SHA256 of the concatenated parts, with PostgreSQL's SHA-256. */
static void
hmac_sha256(const uint8 *key, size_t keylen, const hmac_part *parts,
			int nparts, uint8 out[PG_SHA256_DIGEST_LENGTH])
{
#if PG_VERSION_NUM >= 140000
	pg_hmac_ctx *ctx;
	bool		ok;
	int			i;

	ctx = pg_hmac_create(PG_SHA256);
	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	ok = pg_hmac_init(ctx, key, keylen) >= 0;
	for (i = 0; ok && i < nparts; i++)
		ok = pg_hmac_update(ctx, parts[i].data, parts[i].len) >= 0;
	ok = ok && pg_hmac_final(ctx, out, PG_SHA256_DIGEST_LENGTH) >= 0;
	if (!ok)
	{
#if PG_VERSION_NUM >= 150000
		char	   *reason = pstrdup(pg_hmac_error(ctx));
#else
		char	   *reason = pstrdup("unknown error");
#endif

		pg_hmac_free(ctx);
		elog(ERROR, "could not compute HMAC-SHA256: %s", reason);
	}
	pg_hmac_free(ctx);
#else
	/* PG 13 has no common/hmac.h: RFC 2104 over pg_sha256_*. */
	uint8		k[PG_SHA256_BLOCK_LENGTH];
	uint8		pad[PG_SHA256_BLOCK_LENGTH];
	uint8		inner[PG_SHA256_DIGEST_LENGTH];
	pg_sha256_ctx ctx;
	int			i;

	memset(k, 0, sizeof(k));
	if (keylen > PG_SHA256_BLOCK_LENGTH)
	{
		pg_sha256_init(&ctx);
		pg_sha256_update(&ctx, key, keylen);
		pg_sha256_final(&ctx, k);
	}
	else
		memcpy(k, key, keylen);

	for (i = 0; i < PG_SHA256_BLOCK_LENGTH; i++)
		pad[i] = k[i] ^ 0x36;
	pg_sha256_init(&ctx);
	pg_sha256_update(&ctx, pad, sizeof(pad));
	for (i = 0; i < nparts; i++)
		pg_sha256_update(&ctx, parts[i].data, parts[i].len);
	pg_sha256_final(&ctx, inner);

	for (i = 0; i < PG_SHA256_BLOCK_LENGTH; i++)
		pad[i] = k[i] ^ 0x5c;
	pg_sha256_init(&ctx);
	pg_sha256_update(&ctx, pad, sizeof(pad));
	pg_sha256_update(&ctx, inner, sizeof(inner));
	pg_sha256_final(&ctx, out);

	explicit_bzero(k, sizeof(k));
	explicit_bzero(pad, sizeof(pad));
	explicit_bzero(inner, sizeof(inner));
#endif
}

/*
 * Normalises an e-mail address, or raises 22023 saying what is wrong with it.
 * The message never quotes the address: addresses are kept only as keyed
 * hashes, and the server log must not hold them in clear either.
 */
char *
referral_normalize_email(const char *email, size_t len, size_t *outlen)
{
	char	   *out = palloc(len + 1);
	const char *message;
	const char *detail;

	switch (email_core_normalize(email, len, out, len + 1, outlen))
	{
		case EMAIL_CORE_OK:
			return out;
		case EMAIL_CORE_NO_AT:
			message = "email address has no \"@\"";
			detail = "An email address needs an \"@\" between its local part and its domain.";
			break;
		case EMAIL_CORE_EMPTY_LOCAL:
			message = "email address has an empty local part";
			detail = "The local part, before the last \"@\", is empty (a \"+tag\" and, in Gmail addresses, dots do not count).";
			break;
		case EMAIL_CORE_EMPTY_DOMAIN:
			message = "email address has an empty domain";
			detail = "The domain, after the last \"@\", is empty.";
			break;
		case EMAIL_CORE_BAD_CHAR:
			message = "email address contains whitespace or a control character";
			detail = "An email address cannot contain whitespace or control characters.";
			break;
		default:
			elog(ERROR, "email normalisation buffer too small");
			message = detail = NULL;	/* keep compiler quiet */
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", message),
			 errdetail("%s", detail)));
	return NULL;				/* keep compiler quiet */
}

/* HMAC-SHA256(key, kind || ':' || normalised value); see fingerprint.h. */
void
referral_fingerprint(const uint8 *key, size_t keylen, const char *kind,
					 const char *value, size_t valuelen,
					 uint8 out[REFERRAL_FINGERPRINT_LEN])
{
	hmac_part	parts[3];
	const char *norm;
	size_t		normlen;

	if (keylen != REFERRAL_FINGERPRINT_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("fingerprint key must be %d bytes long, not %zu",
						REFERRAL_FINGERPRINT_KEY_LEN, keylen)));

	if (strcmp(kind, "email") == 0)
		norm = referral_normalize_email(value, valuelen, &normlen);
	else if (strcmp(kind, "device") == 0)
	{
		size_t		start = 0;
		size_t		end = valuelen;
		char	   *dev;
		size_t		i;

		while (start < end && fingerprint_is_space((unsigned char) value[start]))
			start++;
		while (end > start && fingerprint_is_space((unsigned char) value[end - 1]))
			end--;
		if (start == end)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("device identifier must not be empty")));
		normlen = end - start;
		dev = palloc(normlen);
		for (i = 0; i < normlen; i++)
		{
			unsigned char c = (unsigned char) value[start + i];

			dev[i] = (c >= 'A' && c <= 'Z') ? (char) (c + ('a' - 'A')) : (char) c;
		}
		norm = dev;
	}
	else if (strcmp(kind, "customer") == 0)
	{
		/* A customer key (forget's pseudonyms): compared exactly, as the key is. */
		norm = value;
		normlen = valuelen;
	}
	else if (strcmp(kind, "ip") == 0)
	{
		if (valuelen == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("IP address must not be empty")));
		norm = value;
		normlen = valuelen;
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown fingerprint kind \"%s\"",
						referral_excerpt(kind, strlen(kind))),
				 errhint("Valid kinds are \"email\", \"device\", \"ip\" and \"customer\".")));

	parts[0].data = (const uint8 *) kind;
	parts[0].len = strlen(kind);
	parts[1].data = (const uint8 *) ":";
	parts[1].len = 1;
	parts[2].data = (const uint8 *) norm;
	parts[2].len = normlen;
	hmac_sha256(key, keylen, parts, lengthof(parts), out);
}

/* referral.normalize_email(text): the canonical spelling of an address. */
PG_FUNCTION_INFO_V1(referral_normalize_email_sql);
Datum
referral_normalize_email_sql(PG_FUNCTION_ARGS)
{
	text	   *email = PG_GETARG_TEXT_PP(0);
	char	   *norm;
	size_t		normlen;

	norm = referral_normalize_email(VARDATA_ANY(email),
									VARSIZE_ANY_EXHDR(email), &normlen);
	PG_RETURN_TEXT_P(cstring_to_text_with_len(norm, normlen));
}

/* referral._fingerprint(key, kind, value): the stored keyed hash. */
PG_FUNCTION_INFO_V1(referral_fingerprint_sql);
Datum
referral_fingerprint_sql(PG_FUNCTION_ARGS)
{
	bytea	   *key = PG_GETARG_BYTEA_PP(0);
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	text	   *value = PG_GETARG_TEXT_PP(2);
	bytea	   *result = palloc(VARHDRSZ + REFERRAL_FINGERPRINT_LEN);

	referral_fingerprint((const uint8 *) VARDATA_ANY(key),
						 VARSIZE_ANY_EXHDR(key), kind,
						 VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value),
						 (uint8 *) VARDATA(result));
	SET_VARSIZE(result, VARHDRSZ + REFERRAL_FINGERPRINT_LEN);
	PG_RETURN_BYTEA_P(result);
}

/* referral._random_bytes(n): n cryptographically strong random bytes. */
PG_FUNCTION_INFO_V1(referral_random_bytes);
Datum
referral_random_bytes(PG_FUNCTION_ARGS)
{
	int32		n = PG_GETARG_INT32(0);
	bytea	   *result;

	if (n < 1 || n > REFERRAL_RANDOM_BYTES_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("number of random bytes must be between 1 and %d, not %d",
						REFERRAL_RANDOM_BYTES_MAX, n)));

	result = palloc(VARHDRSZ + n);
	if (!pg_strong_random(VARDATA(result), n))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate random bytes")));
	SET_VARSIZE(result, VARHDRSZ + n);
	PG_RETURN_BYTEA_P(result);
}
