/*
 * stats_core.c
 *		The standard normal distribution and the two-proportion z-test,
 *		without libm (the unit tests link no -lm): exp and sqrt are computed
 *		here to double precision.
 *
 *		Phi(z) comes from two expansions, each used where it has no
 *		cancellation (G. Marsaglia, "Evaluating the Normal Distribution",
 *		J. Stat. Software 11(4), 2004):
 *		- |z| < 2.5: Phi(z) = 1/2 + phi(z) (z + z^3/3 + z^5/(3*5) + ...),
 *		  a series of positive terms;
 *		- |z| >= 2.5: the upper tail as the continued fraction
 *		  1 - Phi(z) = phi(z) / (z + 1/(z + 2/(z + 3/(z + ...)))),
 *		  evaluated backwards from a fixed depth.
 */
#include "stats_core.h"

#include <string.h>

#define STATS_LN2_HI	6.93147180369123816490e-01	/* ln 2, upper bits */
#define STATS_LN2_LO	1.90821492927058770002e-10	/* ln 2 - STATS_LN2_HI */
#define STATS_INV_LN2	1.44269504088896338700e+00	/* 1 / ln 2 */
#define STATS_INV_SQRT_2PI 0.398942280401432677939946059934	/* 1 / sqrt(2 pi) */
#define STATS_SERIES_LIMIT 2.5	/* below: the series; from here on: the fraction */
#define STATS_FRACTION_DEPTH 160	/* terms of the continued fraction */

/* 2^k as a double, for -1022 <= k <= 1023. */
static double
stats_pow2(int k)
{
	uint64_t	bits = (uint64_t) (k + 1023) << 52;
	double		d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

/* e^x to double precision: x = k ln 2 + r, |r| <= ln 2 / 2, Taylor on r. */
static double
stats_exp(double x)
{
	double		kd;
	int			k;
	double		r;
	double		y;

	if (x != x)
		return x;
	if (x > 709.782712893384)
		return 1e308 * 10.0;	/* overflow: +infinity */
	if (x < -745.2)
		return 0.0;

	kd = x * STATS_INV_LN2;
	kd = kd < 0 ? kd - 0.5 : kd + 0.5;
	k = (int) kd;				/* x / ln 2 rounded to the nearest integer */
	r = (x - k * STATS_LN2_HI) - k * STATS_LN2_LO;

	/* Taylor series to r^13 / 13!: the next term is below 2^-60 of e^r. */
	y = 1.0 + r * (1.0 + r / 2 * (1.0 + r / 3 * (1.0 + r / 4 * (1.0 + r / 5 *
		(1.0 + r / 6 * (1.0 + r / 7 * (1.0 + r / 8 * (1.0 + r / 9 *
		(1.0 + r / 10 * (1.0 + r / 11 * (1.0 + r / 12 * (1.0 + r / 13))))))))))));

	if (k > 1023)
		return y * stats_pow2(k - 1) * 2.0;
	if (k < -1022)
		return y * stats_pow2(k + 200) * stats_pow2(-200);	/* subnormal result */
	return y * stats_pow2(k);
}

/* sqrt(v) for v >= 0 by Newton's method from an exponent-halving guess. */
static double
stats_sqrt(double v)
{
	uint64_t	bits;
	double		s;
	double		prev;
	int			i;

	if (!(v > 0.0))
		return v == 0.0 ? 0.0 : (v - v) / (v - v);	/* 0, or NaN for v < 0, NaN */
	if (v > 1.7976931348623157e308)
		return v;				/* +infinity */

	memcpy(&bits, &v, sizeof(bits));
	bits = (bits >> 1) + ((uint64_t) 1023 << 51);
	memcpy(&s, &bits, sizeof(s));
	for (i = 0; i < 100; i++)
	{
		prev = s;
		s = 0.5 * (s + v / s);
		if (s == prev)
			break;
	}
	return s;
}

/* The standard normal density. */
static double
stats_normal_pdf(double z)
{
	return STATS_INV_SQRT_2PI * stats_exp(-0.5 * z * z);
}

/* 1 - Phi(z) for z >= 0. */
static double
stats_upper_tail(double z)
{
	if (z < STATS_SERIES_LIMIT)
	{
		double		z2 = z * z;
		double		term = z;
		double		sum = z;
		int			n;

		for (n = 1; n < 200; n++)
		{
			term *= z2 / (2 * n + 1);
			sum += term;
			if (term < sum * 1e-17)
				break;
		}
		return 0.5 - stats_normal_pdf(z) * sum;
	}
	else
	{
		double		t = z;
		int			n;

		if (z > 40.0)
			return 0.0;			/* below 1e-349: out of double's range */
		for (n = STATS_FRACTION_DEPTH; n >= 1; n--)
			t = z + n / t;
		return stats_normal_pdf(z) / t;
	}
}

double
stats_normal_cdf(double z)
{
	if (z != z)
		return z;
	return z >= 0 ? 1.0 - stats_upper_tail(z) : stats_upper_tail(-z);
}

double
stats_normal_sf(double z)
{
	if (z != z)
		return z;
	return z >= 0 ? stats_upper_tail(z) : 1.0 - stats_upper_tail(-z);
}

bool
stats_two_proportion_test(int64_t x1, int64_t n1, int64_t x2, int64_t n2,
						  double *p_value, double *z)
{
	double		pooled;
	double		variance;
	double		zz;
	double		p;

	if (x1 < 0 || x2 < 0 || n1 <= 0 || n2 <= 0 || x1 > n1 || x2 > n2)
		return false;
	/* Counts as doubles: exact up to 2^53, and the ratios need no more. */
	pooled = ((double) x1 + (double) x2) / ((double) n1 + (double) n2);
	if (!(pooled > 0.0 && pooled < 1.0))
		return false;
	variance = pooled * (1.0 - pooled) * (1.0 / (double) n1 + 1.0 / (double) n2);
	zz = ((double) x2 / (double) n2 - (double) x1 / (double) n1) / stats_sqrt(variance);

	p = 2.0 * stats_upper_tail(zz < 0 ? -zz : zz);
	if (p > 1.0)
		p = 1.0;
	*p_value = p;
	if (z != NULL)
		*z = zz;
	return true;
}
