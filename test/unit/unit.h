/*
 * unit.h
 *		The harness every test/unit/test_*.c shares: CHECK(cond) and
 *		CHECK_MSG(cond, fmt, ...) count a check and report a failed one (the
 *		first 50) with file and line; a helper that reports its own failures
 *		counts its check with unit_ok(cond); main returns unit_summary(name).
 */
#ifndef REFERRAL_TEST_UNIT_H
#define REFERRAL_TEST_UNIT_H

#include <stdbool.h>
#include <stdio.h>

static int	unit_checks = 0;
static int	unit_failures = 0;

/* Counts one check; returns ok. */
static inline bool
unit_ok(bool ok)
{
	unit_checks++;
	if (!ok)
		unit_failures++;
	return ok;
}

/*
 * Counts one check of expr at file:line; when it failed (and is among the
 * first 50 failures) prints "file:line: check failed: expr" without the
 * newline and returns true, so that the caller can add details.
 */
static inline bool
unit_check_failed(bool ok, const char *file, int line, const char *expr)
{
	if (unit_ok(ok) || unit_failures > 50)
		return false;
	fprintf(stderr, "%s:%d: check failed: %s", file, line, expr);
	return true;
}

#define CHECK(cond) \
	do { \
		if (unit_check_failed((cond) ? true : false, __FILE__, __LINE__, #cond)) \
			fputc('\n', stderr); \
	} while (0)

#define CHECK_MSG(cond, ...) \
	do { \
		if (unit_check_failed((cond) ? true : false, __FILE__, __LINE__, #cond)) \
		{ \
			fputs(": ", stderr); \
			fprintf(stderr, __VA_ARGS__); \
			fputc('\n', stderr); \
		} \
	} while (0)

/* Prints how many checks passed or failed; returns main's exit status. */
static inline int
unit_summary(const char *name)
{
	if (unit_failures)
	{
		fprintf(stderr, "%s: %d of %d checks failed\n", name, unit_failures, unit_checks);
		return 1;
	}
	printf("%s: %d checks passed\n", name, unit_checks);
	return 0;
}

#endif							/* REFERRAL_TEST_UNIT_H */
