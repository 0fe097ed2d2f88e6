/*
 * order_keys.c
 *		A key column of a shop's orders table (customer, tenant, order id) as
 *		text, read in C the way the order trigger's SQL reads it: the C passes
 *		apply only to key types whose output function gives what a ::text cast
 *		gives, so that C and SQL compare the same text.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "order_keys.h"

bool
order_key_supported_type(Oid typid)
{
	switch (getBaseType(typid))
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case UUIDOID:
		case TEXTOID:
		case VARCHAROID:
			return true;
		default:
			return false;
	}
}

void
order_key_column_init(OrderKeyColumn *col, Relation rel, AttrNumber att)
{
	Oid			typid = TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid;
	Oid			base = getBaseType(typid);
	Oid			output;
	bool		varlena;

	col->att = att;
	col->is_text = (base == TEXTOID || base == VARCHAROID);
	if (!col->is_text)
	{
		getTypeOutputInfo(typid, &output, &varlena);
		fmgr_info(output, &col->output);
	}
}

text *
order_key_column_text(OrderKeyColumn *col, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		value = slot_getattr(slot, col->att, &isnull);

	if (isnull)
		return NULL;
	if (col->is_text)
		return DatumGetTextPP(value);
	return cstring_to_text(OutputFunctionCall(&col->output, value));
}
