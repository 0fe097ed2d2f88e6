/*
 * reward_payload.c
 *		referral._reward_payload: the jsonb payload of a reward's event, built
 *		directly from typed arguments.  Every reward created, reversed, approved
 *		or paid appends one event, so a bulk load that converts thousands of
 *		referrals builds tens of thousands of these; jsonb_build_object looks up
 *		each argument's type and output category at every call, this does not.
 *		The result is the same jsonb value jsonb_build_object gives.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* The payload's keys, in the order of the function's arguments. */
static const char *const PayloadKeys[] = {
	"reward_id", "program_id", "referral_id", "beneficiary", "kind", "level",
	"amount", "currency", "status", "order_ref", "payout_ref"
};
#define PAYLOAD_NKEYS lengthof(PayloadKeys)

/* How each argument becomes a JSON value. */
typedef enum PayloadValue
{
	PAYLOAD_INT8, PAYLOAD_INT4, PAYLOAD_NUMERIC, PAYLOAD_TEXT
} PayloadValue;
static const PayloadValue PayloadValues[] = {
	PAYLOAD_INT8, PAYLOAD_INT8, PAYLOAD_INT8, PAYLOAD_TEXT, PAYLOAD_TEXT, PAYLOAD_INT4,
	PAYLOAD_NUMERIC, PAYLOAD_TEXT, PAYLOAD_TEXT, PAYLOAD_TEXT, PAYLOAD_TEXT
};
StaticAssertDecl(lengthof(PayloadValues) == PAYLOAD_NKEYS, "a value kind per key");

static void
push_key(JsonbParseState **state, const char *key)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	(void) pushJsonbValue(state, WJB_KEY, &v);
}

static void
push_value(JsonbParseState **state, PayloadValue kind, bool isnull, Datum value)
{
	JsonbValue	v;
	text	   *t;

	if (isnull)
		v.type = jbvNull;
	else
		switch (kind)
		{
			case PAYLOAD_INT8:
				v.type = jbvNumeric;
				v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int8_numeric, value));
				break;
			case PAYLOAD_INT4:
				v.type = jbvNumeric;
				v.val.numeric = DatumGetNumeric(DirectFunctionCall1(int4_numeric, value));
				break;
			case PAYLOAD_NUMERIC:
				v.type = jbvNumeric;
				v.val.numeric = DatumGetNumeric(value);
				break;
			case PAYLOAD_TEXT:
				t = DatumGetTextPP(value);
				v.type = jbvString;
				v.val.string.val = VARDATA_ANY(t);
				v.val.string.len = VARSIZE_ANY_EXHDR(t);
				break;
		}
	(void) pushJsonbValue(state, WJB_VALUE, &v);
}

PG_FUNCTION_INFO_V1(referral_reward_payload);
Datum
referral_reward_payload(PG_FUNCTION_ARGS)
{
	JsonbParseState *state = NULL;
	JsonbValue *result;

	if (PG_NARGS() != PAYLOAD_NKEYS)
		elog(ERROR, "referral._reward_payload takes %d arguments, got %d",
			 (int) PAYLOAD_NKEYS, PG_NARGS());
	(void) pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < (int) PAYLOAD_NKEYS; i++)
	{
		push_key(&state, PayloadKeys[i]);
		push_value(&state, PayloadValues[i], PG_ARGISNULL(i), PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i));
	}
	result = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	PG_RETURN_JSONB_P(JsonbValueToJsonb(result));
}
