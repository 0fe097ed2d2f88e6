/*
 * share_link.c
 *		referral._share_link: the glue between SQL and url_core.c, which
 *		adds ref=CODE and UTM parameters to a shop's URL.  The public
 *		referral.share_link(referral_code, ...) wraps it in SQL.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "excerpt.h"
#include "url_core.h"

/* Raises the 22023 error that a url_core status stands for, quoting an excerpt. */
static void
share_link_report(url_core_status status, const char *base, size_t base_len,
				  size_t badpos)
{
	switch (status)
	{
		case URL_CORE_OK:
			return;
		case URL_CORE_EMPTY_BASE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("base URL must not be empty"),
					 errhint("Pass an absolute URL, such as https://shop.example/.")));
			break;
		case URL_CORE_BAD_CHAR:
			{
				unsigned char c = (unsigned char) base[badpos];

				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("base URL must not contain whitespace or control characters"),
						 errdetail("Character %d is byte 0x%02X.",
								   pg_mbstrlen_with_len(base, (int) badpos) + 1,
								   c),
						 errhint("Percent-encode it as %%%02X.", c)));
			}
			break;
		case URL_CORE_BAD_SCHEME:
		case URL_CORE_NO_HOST:
			{
				const char *excerpt = referral_excerpt(base, base_len);

				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 status == URL_CORE_BAD_SCHEME ?
						 errmsg("base URL \"%s\" does not start with http:// or https://",
								excerpt) :
						 errmsg("base URL \"%s\" has no host", excerpt),
						 errhint("Pass an absolute URL, such as https://shop.example/.")));
			}
			break;
		case URL_CORE_EMPTY_CODE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("referral code must not be empty")));
			break;
		case URL_CORE_EMPTY_CHANNEL:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("channel must not be empty"),
					 errhint("Pass NULL for a link without a channel.")));
			break;
		case URL_CORE_BUFFER_TOO_SMALL:
			elog(ERROR, "share link buffer too small");
			break;
	}
	elog(ERROR, "unexpected url_core status %d", (int) status);
}

/* referral._share_link(code, base_url, channel): the link to share. */
PG_FUNCTION_INFO_V1(referral_share_link);
Datum
referral_share_link(PG_FUNCTION_ARGS)
{
	text	   *code;
	text	   *base;
	text	   *channel = NULL;
	const char *chan_data = NULL;
	size_t		chan_len = 0;
	size_t		size;
	size_t		outlen = 0;
	size_t		badpos = 0;
	text	   *result;
	url_core_status status;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_NULL();
	code = PG_GETARG_TEXT_PP(0);
	base = PG_GETARG_TEXT_PP(1);
	if (!PG_ARGISNULL(2))
	{
		channel = PG_GETARG_TEXT_PP(2);
		chan_data = VARDATA_ANY(channel);
		chan_len = VARSIZE_ANY_EXHDR(channel);
	}

	size = url_core_share_link_size(VARSIZE_ANY_EXHDR(base),
									VARSIZE_ANY_EXHDR(code),
									chan_data, chan_len);
	if (size == 0 || size > MaxAllocSize - VARHDRSZ)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("share link would be too long")));

	result = palloc(VARHDRSZ + size);
	status = url_core_share_link(VARDATA_ANY(base), VARSIZE_ANY_EXHDR(base),
								 VARDATA_ANY(code), VARSIZE_ANY_EXHDR(code),
								 chan_data, chan_len,
								 VARDATA(result), size, &outlen, &badpos);
	if (status != URL_CORE_OK)
		share_link_report(status, VARDATA_ANY(base), VARSIZE_ANY_EXHDR(base),
						  badpos);
	SET_VARSIZE(result, VARHDRSZ + outlen);
	PG_RETURN_TEXT_P(result);
}
