/*
 * reward_calc.c
 *		Reward arithmetic in numeric: fixed + percent/100 x order amount, cut to
 *		the rule's cap, rounded half up to the currency's minor unit.  Exact to
 *		the cent (never a float), and cheap enough to run for every reward of a
 *		bulk load.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/numeric.h"

#include "reward_core.h"

/* numeric value of a small integer. */
static Datum
numeric_of(int32 value)
{
	return DirectFunctionCall1(int4_numeric, Int32GetDatum(value));
}

/* The decimals of a currency given as text. */
static int
currency_decimals_of(text *currency)
{
	char	   *code = text_to_cstring(currency);
	int			decimals = reward_currency_decimals(code);

	pfree(code);
	return decimals;
}

/* referral.currency_decimals(text): decimals of the currency's minor unit. */
PG_FUNCTION_INFO_V1(referral_currency_decimals);
Datum
referral_currency_decimals(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(currency_decimals_of(PG_GETARG_TEXT_PP(0)));
}

/*
 * referral.reward_amount(order_amount, percent, fixed, cap, currency): NULL for
 * a NULL order amount; a NULL percent or fixed counts as 0, a NULL cap as none
 * and a NULL currency as two decimals.  Rounding is numeric's, half away from
 * zero, which for the positive amounts here is half up.
 */
PG_FUNCTION_INFO_V1(referral_reward_amount);
Datum
referral_reward_amount(PG_FUNCTION_ARGS)
{
	Datum		amount;
	Datum		value;
	int			decimals;

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	amount = PG_GETARG_DATUM(0);

	value = PG_ARGISNULL(2) ? numeric_of(0) : PG_GETARG_DATUM(2);
	if (!PG_ARGISNULL(1))
		value = DirectFunctionCall2(numeric_add, value,
									DirectFunctionCall2(numeric_div,
														DirectFunctionCall2(numeric_mul,
																			PG_GETARG_DATUM(1),
																			amount),
														numeric_of(100)));
	if (!PG_ARGISNULL(3) &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, value, PG_GETARG_DATUM(3))) > 0)
		value = PG_GETARG_DATUM(3);

	decimals = PG_ARGISNULL(4) ? 2 : currency_decimals_of(PG_GETARG_TEXT_PP(4));
	PG_RETURN_DATUM(DirectFunctionCall2(numeric_round, value, Int32GetDatum(decimals)));
}
