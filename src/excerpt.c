/*
 * excerpt.c
 *		The excerpt of a user's input that error messages quote, for the C
 *		modules (referral_excerpt) and for SQL (referral._excerpt), so that
 *		one rule bounds every message: a huge input must not make a huge
 *		message, nor land whole in the server log.
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "excerpt.h"
#include "excerpt_core.h"

/* The input's first characters, "..." when cut; see excerpt.h. */
char *
referral_excerpt(const char *s, size_t len)
{
	bool		cut;
	size_t		n = excerpt_core_prefix_len(s, len, EXCERPT_CORE_MAX_CHARS,
											pg_mblen, &cut);

	if (!cut)
		return pnstrdup(s, n);
	return psprintf("%.*s%s", (int) n, s, EXCERPT_CORE_ELLIPSIS);
}

/* referral._excerpt(text): a value as error messages quote it. */
PG_FUNCTION_INFO_V1(referral_excerpt_sql);
Datum
referral_excerpt_sql(PG_FUNCTION_ARGS)
{
	text	   *value = PG_GETARG_TEXT_PP(0);

	PG_RETURN_TEXT_P(cstring_to_text(referral_excerpt(VARDATA_ANY(value),
													  VARSIZE_ANY_EXHDR(value))));
}
