/*
 * reward_core.c
 *		Server-independent parts of reward calculation: the minor unit of each
 *		currency, to which reward amounts are rounded.
 */
#include <stddef.h>
#include <string.h>

#include "reward_core.h"

/* ISO 4217 currencies whose minor unit is not the cent. */
static const struct
{
	const char *code;
	int			decimals;
}			reward_minor_units[] = {
	{"BHD", 3}, {"BIF", 0}, {"CLF", 4}, {"CLP", 0}, {"DJF", 0}, {"GNF", 0},
	{"IQD", 3}, {"ISK", 0}, {"JOD", 3}, {"JPY", 0}, {"KMF", 0}, {"KRW", 0},
	{"KWD", 3}, {"LYD", 3}, {"OMR", 3}, {"PYG", 0}, {"RWF", 0}, {"TND", 3},
	{"UGX", 0}, {"UYI", 0}, {"UYW", 4}, {"VND", 0}, {"VUV", 0}, {"XAF", 0},
	{"XOF", 0}, {"XPF", 0},
};

int
reward_currency_decimals(const char *currency)
{
	size_t		i;

	if (currency == NULL)
		return 2;
	for (i = 0; i < sizeof(reward_minor_units) / sizeof(reward_minor_units[0]); i++)
		if (strcmp(currency, reward_minor_units[i].code) == 0)
			return reward_minor_units[i].decimals;
	return 2;
}
