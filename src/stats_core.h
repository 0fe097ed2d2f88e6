/*
 * stats_core.h
 *		Statistics for the analyst views (pure C, no postgres.h, no libm):
 *		the standard normal distribution and the two-proportion z-test that
 *		referral.variant_stats uses to compare an A/B variant's conversion
 *		rate with the first variant's.
 */
#ifndef STATS_CORE_H
#define STATS_CORE_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Phi(z), the standard normal cumulative distribution function: the
 * probability that a standard normal variable is at most z.  Relative error
 * below 1e-13 over the whole line (tails included: Phi(-10) = 7.6e-24, not 0);
 * 0 or 1 only where the true value is out of double's range.  NaN gives NaN.
 */
extern double stats_normal_cdf(double z);

/*
 * 1 - Phi(z), the upper tail, computed directly (not as 1 - Phi(z)), so that
 * it keeps its precision for large z.
 */
extern double stats_normal_sf(double z);

/*
 * Two-sided p-value of the pooled two-proportion z-test of x1 successes out
 * of n1 trials against x2 out of n2:
 *		p = (x1 + x2) / (n1 + n2)
 *		z = (x2/n2 - x1/n1) / sqrt(p (1 - p) (1/n1 + 1/n2))
 *		p-value = 2 (1 - Phi(|z|))
 * Returns false, leaving *p_value and *z alone, when the test is undefined:
 * a count is negative, a success count exceeds its trials, a sample is empty,
 * or the pooled proportion is 0 or 1 (no variance).  Otherwise stores the
 * p-value in [0, 1] and, when z is not NULL, the z statistic.
 */
extern bool stats_two_proportion_test(int64_t x1, int64_t n1, int64_t x2, int64_t n2,
									  double *p_value, double *z);

#endif							/* STATS_CORE_H */
