/*
 * stats.c
 *		referral.two_proportion_p_value: the glue between SQL and
 *		stats_core.c, for the p_value column of referral.variant_stats.
 */
#include "postgres.h"

#include "fmgr.h"

#include "stats_core.h"

/* Rejects a count pair that cannot be successes out of trials. */
static void
stats_check_counts(int64 successes, int64 trials, const char *which)
{
	if (trials < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("trials_%s must not be negative (got " INT64_FORMAT ")", which, trials)));
	if (successes < 0 || successes > trials)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("successes_%s must be between 0 and trials_%s (got " INT64_FORMAT " of " INT64_FORMAT ")",
						which, which, successes, trials)));
}

/* Two-sided p-value of the pooled two-proportion z-test; NULL when undefined. */
PG_FUNCTION_INFO_V1(referral_two_proportion_p_value);
Datum
referral_two_proportion_p_value(PG_FUNCTION_ARGS)
{
	int64		x1 = PG_GETARG_INT64(0);
	int64		n1 = PG_GETARG_INT64(1);
	int64		x2 = PG_GETARG_INT64(2);
	int64		n2 = PG_GETARG_INT64(3);
	double		p;

	stats_check_counts(x1, n1, "a");
	stats_check_counts(x2, n2, "b");
	if (!stats_two_proportion_test(x1, n1, x2, n2, &p, NULL))
		PG_RETURN_NULL();		/* an empty sample, or a pooled rate of 0 or 1 */
	PG_RETURN_FLOAT8(p);
}
