/*
 * test_reward_core.c
 *		Unit tests of reward_core.c: currency minor units.
 */
#include <stdio.h>

#include "reward_core.h"
#include "unit.h"

static void
expect(const char *currency, int decimals)
{
	int			got = reward_currency_decimals(currency);

	if (!unit_ok(got == decimals))
	{
		printf("currency %s: %d decimals, expected %d\n", currency ? currency : "(null)", got, decimals);
	}
}

int
main(void)
{
	expect("USD", 2);
	expect("EUR", 2);
	expect("JPY", 0);
	expect("KRW", 0);
	expect("KWD", 3);
	expect("BHD", 3);
	expect("CLF", 4);
	expect("XPF", 0);
	expect("jpy", 2);			/* codes are upper case; anything else is unknown */
	expect("", 2);
	expect(NULL, 2);
	return unit_summary("test_reward_core");
}
