/*
 * customer_orders.c
 *		referral._customer_has_orders: whether a customer has any order in a
 *		tracked table, for redeem's existing_customer rule.
 *
 *		Two things make this C rather than a query:
 *
 *		- Safety.  redeem runs with the extension owner's rights, and a query
 *		  over the shop's table would run code its owner may have written
 *		  (domain checks, casts, operators, folded index expressions).  This
 *		  reads the heap and its plain btree indexes directly, comparing only
 *		  through the built-in types' own input, output and btree support
 *		  functions, after checking the column's type at every call.
 *
 *		- Races.  An order inserted by a transaction still in progress must
 *		  count: otherwise a first order and a redeem of the same customer,
 *		  committed at once, would each miss the other.  The scan uses a
 *		  dirty snapshot, and waits for the inserting (or deleting)
 *		  transaction of any matching row, then looks again.
 *
 *		A customer key that is not the column value's own text form ('0042'
 *		for an integer column) has no orders, as the order trigger matches
 *		customers by that text form.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* One key column of the shop's table: its built-in base type and text form. */
typedef struct OrderKey
{
	const char *name;			/* column name */
	Oid			base_type;		/* int2, int4, int8, uuid, text or varchar */
	const char *key;			/* the value looked for, as text */
} OrderKey;

/* The base type of a column's type, following domains. */
static Oid
column_base_type(Oid relid, AttrNumber attnum)
{
	return getBaseType(get_atttype(relid, attnum));
}

/*
 * Errors unless the column exists with one of the types track_orders accepts
 * (checked at every use: ALTER COLUMN ... TYPE comes later).
 */
static AttrNumber
checked_column(Relation rel, const OrderKey *key, const Oid *allowed, int nallowed)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), key->name);
	Oid			base;
	int			i;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of tracked table \"%s\" does not exist",
						key->name, RelationGetRelationName(rel)),
				 errhint("Call referral.untrack_orders() and track the table again.")));
	base = column_base_type(RelationGetRelid(rel), attnum);
	for (i = 0; i < nallowed; i++)
		if (base == allowed[i])
			return attnum;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of tracked table \"%s\" has type %s, which referral cannot compare safely",
					key->name, RelationGetRelationName(rel), format_type_be(base)),
			 errhint("Call referral.untrack_orders() and track the table again with a column of a supported type.")));
	return InvalidAttrNumber;	/* not reached */
}

/*
 * Whether key is the canonical text form of a value of the base type, so that
 * the type's input function takes it without an error and its output gives
 * it back.
 */
static bool
key_is_canonical(Oid base_type, const char *key)
{
	size_t		len = strlen(key);
	size_t		i;

	switch (base_type)
	{
		case TEXTOID:
		case VARCHAROID:
			return true;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			{
				bool		negative = (key[0] == '-');
				const char *digits = negative ? key + 1 : key;
				size_t		ndigits = strlen(digits);
				uint64		limit = (base_type == INT2OID) ? PG_INT16_MAX :
				(base_type == INT4OID) ? PG_INT32_MAX : PG_INT64_MAX;
				uint64		value = 0;

				/* No sign on zero, no leading zeros, no '+', no spaces. */
				if (ndigits == 0 || ndigits > 19 || (digits[0] == '0' && (ndigits > 1 || negative)))
					return false;
				for (i = 0; i < ndigits; i++)
				{
					if (digits[i] < '0' || digits[i] > '9')
						return false;
					value = value * 10 + (uint64) (digits[i] - '0');	/* 19 digits fit */
				}
				/* The most negative value is one further from zero than the limit. */
				return value <= limit + (negative ? 1 : 0);
			}
		case UUIDOID:
			if (len != 36)
				return false;
			for (i = 0; i < len; i++)
			{
				bool		dash = (i == 8 || i == 13 || i == 18 || i == 23);

				if (dash ? key[i] != '-' :
					!((key[i] >= '0' && key[i] <= '9') || (key[i] >= 'a' && key[i] <= 'f')))
					return false;
			}
			return true;
		default:
			return false;
	}
}

/* The value's text form by the base type's built-in output function. */
static char *
value_text(Oid base_type, Datum value)
{
	Oid			output;
	bool		varlena;

	getTypeOutputInfo(base_type, &output, &varlena);
	return OidOutputFunctionCall(output, value);
}

/* Whether the slot's column holds the key (by text form, NULL never). */
static bool
slot_matches(TupleTableSlot *slot, AttrNumber attnum, const OrderKey *key)
{
	bool		isnull;
	Datum		value = slot_getattr(slot, attnum, &isnull);

	return !isnull && strcmp(value_text(key->base_type, value), key->key) == 0;
}

/*
 * Whether a row that the dirty snapshot returned settles the question: it is
 * the customer's (and the tenant's, unless tenant_att is InvalidAttrNumber),
 * and either committed, setting *found, or still being inserted or deleted by
 * the transaction it sets *wait_for to.
 */
static bool
row_settles(TupleTableSlot *slot, AttrNumber customer_att, const OrderKey *customer,
			AttrNumber tenant_att, const OrderKey *tenant, const SnapshotData *dirty,
			bool *found, TransactionId *wait_for)
{
	if (!slot_matches(slot, customer_att, customer) ||
		(tenant_att != InvalidAttrNumber && !slot_matches(slot, tenant_att, tenant)))
		return false;
	if (TransactionIdIsValid(dirty->xmin) || TransactionIdIsValid(dirty->xmax))
		*wait_for = TransactionIdIsValid(dirty->xmin) ? dirty->xmin : dirty->xmax;
	else
		*found = true;
	return true;
}

/*
 * A plain, valid, non-partial btree index of rel whose first column is
 * attnum with the base type's built-in default operator class; NULL if none.
 * The caller closes it.  Whether it is partial is read from the catalog row:
 * RelationGetIndexPredicate would fold the predicate, running the owner's
 * functions in it with our rights.
 */
static Relation
usable_index(Relation rel, AttrNumber attnum, Oid base_type, Oid *equal_proc)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;

	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;
		Oid			opcintype = index->rd_opcintype[0];

		if (form->indisvalid && form->indisready && form->indkey.values[0] == attnum &&
			index->rd_rel->relam == BTREE_AM_OID &&
			heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			index->rd_opfamily[0] < FirstNormalObjectId &&
			(opcintype == base_type || (base_type == VARCHAROID && opcintype == TEXTOID)))
		{
			Oid			op = get_opfamily_member(index->rd_opfamily[0], opcintype, opcintype,
												 BTEqualStrategyNumber);

			if (OidIsValid(op))
			{
				*equal_proc = get_opcode(op);
				list_free(indexes);
				return index;
			}
		}
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	return NULL;
}

/*
 * Whether one heap relation (a leaf) holds a row of the customer (and tenant).
 * Returns false with *wait_for set when a matching row's transaction is still
 * in progress: the caller waits for it and asks again.
 */
static bool
leaf_has_orders(Relation rel, const OrderKey *customer, const OrderKey *tenant,
				TransactionId *wait_for)
{
	SnapshotData dirty;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	static const Oid customer_types[] = {INT2OID, INT4OID, INT8OID, UUIDOID, TEXTOID, VARCHAROID};
	static const Oid tenant_types[] = {TEXTOID, VARCHAROID, INT2OID, INT4OID, INT8OID};
	AttrNumber	customer_att = checked_column(rel, customer, customer_types, lengthof(customer_types));
	AttrNumber	tenant_att = (tenant->name != NULL) ?
		checked_column(rel, tenant, tenant_types, lengthof(tenant_types)) : InvalidAttrNumber;
	OrderKey	leaf_customer = *customer;
	OrderKey	leaf_tenant = *tenant;
	Oid			equal_proc = InvalidOid;
	Relation	index;
	bool		found = false;

	*wait_for = InvalidTransactionId;
	leaf_customer.base_type = column_base_type(RelationGetRelid(rel), customer_att);
	if (!key_is_canonical(leaf_customer.base_type, customer->key))
	{
		ExecDropSingleTupleTableSlot(slot);
		return false;
	}
	if (tenant_att != InvalidAttrNumber)
		leaf_tenant.base_type = column_base_type(RelationGetRelid(rel), tenant_att);

	InitDirtySnapshot(dirty);
	index = usable_index(rel, customer_att, leaf_customer.base_type, &equal_proc);
	if (index != NULL)
	{
		Oid			input;
		Oid			ioparam;
		ScanKeyData scankey;
		IndexScanDesc scan;

		getTypeInputInfo(leaf_customer.base_type, &input, &ioparam);
		ScanKeyEntryInitialize(&scankey, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], equal_proc,
							   OidInputFunctionCall(input, (char *) customer->key, ioparam, -1));
		scan = index_beginscan(rel, index, &dirty, 1, 0);
		index_rescan(scan, &scankey, 1, NULL, 0);
		while (index_getnext_slot(scan, ForwardScanDirection, slot))
			if (row_settles(slot, customer_att, &leaf_customer, tenant_att, &leaf_tenant,
							&dirty, &found, wait_for))
				break;
		index_endscan(scan);
		index_close(index, AccessShareLock);
	}
	else
	{
		TableScanDesc scan = table_beginscan(rel, &dirty, 0, NULL);

		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
			if (row_settles(slot, customer_att, &leaf_customer, tenant_att, &leaf_tenant,
							&dirty, &found, wait_for))
				break;
		table_endscan(scan);
	}
	ExecDropSingleTupleTableSlot(slot);
	return found;
}

PG_FUNCTION_INFO_V1(referral_customer_has_orders);

/*
 * referral._customer_has_orders(orders regclass, customer_column name,
 * tenant_column name, tenant text, customer text) RETURNS boolean.
 * tenant_column NULL: the table holds one tenant's orders, and tenant is not
 * compared.
 */
Datum
referral_customer_has_orders(PG_FUNCTION_ARGS)
{
	Oid			relid;
	OrderKey	customer = {0};
	OrderKey	tenant = {0};
	List	   *relids;
	ListCell   *lc;
	bool		found = false;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(4) ||
		(!PG_ARGISNULL(2) && PG_ARGISNULL(3)))
		PG_RETURN_NULL();
	relid = PG_GETARG_OID(0);
	customer.name = NameStr(*PG_GETARG_NAME(1));
	customer.key = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (!PG_ARGISNULL(2))
	{
		tenant.name = NameStr(*PG_GETARG_NAME(2));
		tenant.key = text_to_cstring(PG_GETARG_TEXT_PP(3));
	}

	/* Every relation with rows: the table, or each partition of a partitioned one. */
	relids = find_all_inheritors(relid, AccessShareLock, NULL);
	foreach(lc, relids)
	{
		Relation	rel = table_open(lfirst_oid(lc), NoLock);
		TransactionId wait_for;

		if (!RELKIND_HAS_STORAGE(rel->rd_rel->relkind))
		{
			table_close(rel, NoLock);
			continue;
		}
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			found = leaf_has_orders(rel, &customer, &tenant, &wait_for);
			if (!TransactionIdIsValid(wait_for))
				break;
			XactLockTableWait(wait_for, rel, NULL, XLTW_None);
		}
		table_close(rel, NoLock);
		if (found)
			break;
	}
	PG_RETURN_BOOL(found);
}
