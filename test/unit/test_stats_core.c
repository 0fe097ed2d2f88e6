/*
 * test_stats_core.c
 *		Unit tests of src/stats_core.c: the standard normal distribution and
 *		the two-proportion z-test, against values computed to 20 digits
 *		with mpmath (ncdf) and by hand.
 */
#include "stats_core.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>

/* |got - want| <= rel * |want|, reported with both values when it fails. */
static void
expect_close(const char *what, double arg, double got, double want, double rel, int line)
{
	double		diff = got - want;
	double		scale = want < 0 ? -want : want;

	if (diff < 0)
		diff = -diff;
	if (!unit_ok(diff <= rel * scale))
	{
		fprintf(stderr, "%s:%d: %s(%.17g) = %.17g, want %.17g\n",
				__FILE__, line, what, arg, got, want);
	}
}

#define CDF(z, want) expect_close("cdf", (z), stats_normal_cdf(z), (want), 1e-13, __LINE__)
#define SF(z, want) expect_close("sf", (z), stats_normal_sf(z), (want), 1e-13, __LINE__)

/* The test of (x1, n1) against (x2, n2) must be defined with this p and z. */
static void
expect_test(int64_t x1, int64_t n1, int64_t x2, int64_t n2, double want_p, double want_z, int line)
{
	double		p = -1;
	double		z = 12345;

	if (!unit_ok(stats_two_proportion_test(x1, n1, x2, n2, &p, &z)))
	{
		fprintf(stderr, "%s:%d: test(%lld/%lld, %lld/%lld) undefined\n", __FILE__, line,
				(long long) x1, (long long) n1, (long long) x2, (long long) n2);
		return;
	}
	expect_close("p", (double) x1, p, want_p, 1e-12, line);
	expect_close("z", (double) x1, z, want_z, 1e-12, line);
}

/* The test must be undefined and leave its outputs alone. */
static void
expect_undefined(int64_t x1, int64_t n1, int64_t x2, int64_t n2, int line)
{
	double		p = -1;
	double		z = 12345;

	if (!unit_ok(!stats_two_proportion_test(x1, n1, x2, n2, &p, &z) && p == -1 && z == 12345))
	{
		fprintf(stderr, "%s:%d: test(%lld/%lld, %lld/%lld) should be undefined\n", __FILE__, line,
				(long long) x1, (long long) n1, (long long) x2, (long long) n2);
	}
}

#define TEST(x1, n1, x2, n2, p, z) expect_test((x1), (n1), (x2), (n2), (p), (z), __LINE__)
#define UNDEFINED(x1, n1, x2, n2) expect_undefined((x1), (n1), (x2), (n2), __LINE__)

static void
test_cdf(void)
{
	CDF(0.0, 0.5);
	CDF(1.0, 0.84134474606854294859);
	CDF(-1.0, 0.15865525393145705141);
	CDF(1.96, 0.97500210485177956379);
	CDF(-1.96, 0.024997895148220436213);
	CDF(2.5, 0.99379033467422386483);	/* where the series hands over */
	CDF(-2.5, 0.006209665325776135167);
	CDF(3.0, 0.99865010196836990547);
	CDF(-3.0, 0.0013498980316300945267);
	CDF(-5.0, 2.8665157187919391167e-7);
	CDF(-8.0, 6.2209605742717841235e-16);
	CDF(-10.0, 7.619853024160526066e-24);	/* the tail is not lost to 0 */
	CDF(-20.0, 2.7536241186062336951e-89);
	CDF(-37.0, 5.7255712225245768227e-300);
	CDF(10.0, 1.0);
	CHECK(stats_normal_cdf(-50.0) == 0.0);
	CHECK(stats_normal_cdf(50.0) == 1.0);
	CHECK(stats_normal_cdf(1.0 / 0.0) == 1.0);
	CHECK(stats_normal_cdf(-1.0 / 0.0) == 0.0);
	{
		double		nan = 0.0 / 0.0;

		CHECK(stats_normal_cdf(nan) != stats_normal_cdf(nan));
		CHECK(stats_normal_sf(nan) != stats_normal_sf(nan));
	}
}

static void
test_sf(void)
{
	double		z;

	SF(0.0, 0.5);
	SF(1.96, 0.024997895148220436213);
	SF(-1.96, 0.97500210485177956379);
	SF(5.0, 2.8665157187919391167e-7);
	SF(8.0, 6.2209605742717841235e-16);
	SF(10.0, 7.619853024160526066e-24);

	/* Two-sided p-value of z = 1.96: the textbook 5%. */
	expect_close("2sf", 1.96, 2.0 * stats_normal_sf(1.96), 0.049995790296440872426, 1e-13, __LINE__);

	/* Symmetry and monotonicity across both methods and their hand-over. */
	for (z = -12.0; z <= 12.0; z += 0.03125)
	{
		expect_close("cdf+sf", z, stats_normal_cdf(z) + stats_normal_sf(z), 1.0, 1e-15, __LINE__);
		expect_close("sym", z, stats_normal_cdf(-z), stats_normal_sf(z), 1e-13, __LINE__);
		CHECK(stats_normal_cdf(z) <= stats_normal_cdf(z + 0.03125));
	}
}

static void
test_two_proportion(void)
{
	double		p;

	/* 1/4 against 2/2: pooled 1/2, se = sqrt(1/4 * 3/4) = sqrt(3)/4, z = (3/4)/se = sqrt(3). */
	TEST(1, 4, 2, 2, 0.083264516663550401855, 1.7320508075688772935);
	/* 5% against 7% of 1000: p just above 0.05; swapped, z changes sign, p stays. */
	TEST(50, 1000, 70, 1000, 0.059685605532426280337, 1.8831089428867735702);
	TEST(70, 1000, 50, 1000, 0.059685605532426280337, -1.8831089428867735702);
	TEST(120, 1000, 150, 1000, 0.049640386865368789199, 1.9630498076223551856);
	TEST(1, 10, 0, 10, 0.30490178817878833006, -1.0259783520851540955);
	TEST(0, 10, 10, 10, 7.7442164310440836377e-6, 4.4721359549995793928);
	TEST(1, 1000000, 30, 1000000, 1.9027682021710905614e-7, 5.2085941255373668399);
	TEST(3000000, 10000000, 3010000, 10000000, 1.0761249024366103804e-6, 4.8771813518410773894);

	/* Equal rates: z = 0, p = 1 exactly. */
	p = -1;
	CHECK(stats_two_proportion_test(5, 100, 5, 100, &p, NULL) && p == 1.0);
	CHECK(stats_two_proportion_test(1, 3, 2, 6, &p, NULL) && p > 0.9999999999999 && p <= 1.0);

	/* Undefined: an empty sample, no variance, impossible counts. */
	UNDEFINED(0, 0, 1, 10);
	UNDEFINED(1, 10, 0, 0);
	UNDEFINED(0, 10, 0, 20);	/* pooled 0 */
	UNDEFINED(10, 10, 20, 20);	/* pooled 1 */
	UNDEFINED(-1, 10, 1, 10);
	UNDEFINED(11, 10, 1, 10);
	UNDEFINED(1, 10, 1, -10);
}

int
main(void)
{
	test_cdf();
	test_sf();
	test_two_proportion();
	return unit_summary("test_stats_core");
}
