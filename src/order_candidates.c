/*
 * order_candidates.c
 *		The order trigger's first pass over the orders a statement inserted:
 *		one probe per order, in C, of the index of accepted referrals by
 *		(referee, tenant), keeping the orders whose customer was referred.
 *
 *		Most orders of a shop come from customers nobody referred.  Without this
 *		pass each of them would cost a lookup inside the trigger's SQL, and every
 *		single-row INSERT the start-up of that statement's plan; with it, an
 *		INSERT of orders of customers nobody referred runs no SQL at all, and
 *		the SQL reads only the candidates.  The SQL still decides everything:
 *		this pass may keep too many orders (a referral found here is checked
 *		again there), never too few (a customer key is compared by the same
 *		text form the SQL uses, so it applies only to key types whose output
 *		function gives what a ::text cast gives).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "order_candidates.h"

/* The referral table and its index of accepted referrals, looked up once. */
static Oid	ReferralTable = InvalidOid;
static Oid	AcceptedIndex = InvalidOid;
static AttrNumber StatusColumn = InvalidAttrNumber;
static bool InvalidationRegistered = false;

/* Forgets the cached OIDs when any relation changes (DROP/CREATE EXTENSION). */
static void
order_candidates_invalidate(Datum arg, Oid relid)
{
	ReferralTable = InvalidOid;
	AcceptedIndex = InvalidOid;
	StatusColumn = InvalidAttrNumber;
}

/*
 * Looks up (once) the referral table and its index of accepted referrals.  The
 * caller copies the OIDs: opening a relation processes invalidations, which
 * may clear the cache.
 */
static void
order_candidates_lookup(Oid schema, Oid *table, Oid *index, AttrNumber *status)
{
	if (!InvalidationRegistered)
	{
		CacheRegisterRelcacheCallback(order_candidates_invalidate, (Datum) 0);
		InvalidationRegistered = true;
	}
	if (!OidIsValid(ReferralTable) || !OidIsValid(AcceptedIndex) ||
		StatusColumn == InvalidAttrNumber)
	{
		ReferralTable = get_relname_relid("referral", schema);
		AcceptedIndex = get_relname_relid("referral_one_accepted_per_referee", schema);
		if (!OidIsValid(ReferralTable) || !OidIsValid(AcceptedIndex))
			elog(ERROR, "referral order trigger: table referral.referral or its index referral_one_accepted_per_referee is missing");
		StatusColumn = get_attnum(ReferralTable, "status");
		if (StatusColumn == InvalidAttrNumber)
			elog(ERROR, "referral order trigger: column referral.referral.status is missing");
	}
	*table = ReferralTable;
	*index = AcceptedIndex;
	*status = StatusColumn;
}

/*
 * Whether the local referral table holds the referrals.  Under Citus it may be
 * a distributed table whose rows live in shards elsewhere: then only the SQL,
 * which Citus routes, can find them.
 */
bool
order_candidates_usable(void)
{
	return !OidIsValid(get_extension_oid("citus", true));
}

bool
order_candidates_supported_type(Oid typid)
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

/* A key column of the orders table and how to turn its value into text. */
typedef struct KeyColumn
{
	AttrNumber	att;
	bool		is_text;		/* text or varchar: the value is the text */
	FmgrInfo	output;			/* otherwise its output function */
} KeyColumn;

static void
key_column_init(KeyColumn *col, Relation rel, AttrNumber att)
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

/* The column's value as text, or NULL for a NULL. */
static text *
key_column_text(KeyColumn *col, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		value = slot_getattr(slot, col->att, &isnull);

	if (isnull)
		return NULL;
	if (col->is_text)
		return DatumGetTextPP(value);
	return cstring_to_text(OutputFunctionCall(&col->output, value));
}

/* Whether a referral's status (a text datum) is 'converted'. */
static bool
status_is_converted(Datum status)
{
	text	   *t = DatumGetTextPP(status);

	return VARSIZE_ANY_EXHDR(t) == strlen("converted") &&
		memcmp(VARDATA_ANY(t), "converted", strlen("converted")) == 0;
}

Tuplestorestate *
order_candidates(Oid schema, Relation rel, Tuplestorestate *orders,
				 AttrNumber customer_att, const char *tenant,
				 AttrNumber tenant_att, int64 *count, bool *all_converted)
{
	Tuplestorestate *candidates = tuplestore_begin_heap(false, false, work_mem);
	MemoryContext per_order = AllocSetContextCreate(CurrentMemoryContext,
													"referral order candidates",
													ALLOCSET_SMALL_SIZES);
	MemoryContext outer;
	KeyColumn	customer_col;
	KeyColumn	tenant_col = {0};
	text	   *fixed_tenant = NULL;
	Relation	referrals;
	Relation	accepted;
	Snapshot	snapshot;
	IndexScanDesc scan;
	TupleTableSlot *order;
	TupleTableSlot *referral;
	ScanKeyData keys[2];
	int			reader;
	Oid			table_oid;
	Oid			index_oid;
	AttrNumber	status_att;

	order_candidates_lookup(schema, &table_oid, &index_oid, &status_att);
	key_column_init(&customer_col, rel, customer_att);
	if (tenant_att != 0)
		key_column_init(&tenant_col, rel, tenant_att);
	else
		fixed_tenant = cstring_to_text(tenant);

	referrals = table_open(table_oid, AccessShareLock);
	accepted = index_open(index_oid, AccessShareLock);
	/* What the SQL after this pass would see: rows of this command too. */
	CommandCounterIncrement();
	snapshot = RegisterSnapshot(GetTransactionSnapshot());
	scan = index_beginscan(referrals, accepted, snapshot, 2, 0);
	referral = table_slot_create(referrals, NULL);
	order = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsMinimalTuple);

	/* A read pointer of our own: other readers of the transition table keep theirs. */
	reader = tuplestore_alloc_read_pointer(orders, EXEC_FLAG_REWIND);
	tuplestore_select_read_pointer(orders, reader);
	tuplestore_rescan(orders);

	*count = 0;
	*all_converted = true;
	while (tuplestore_gettupleslot(orders, true, false, order))
	{
		text	   *customer;
		text	   *order_tenant;
		bool		referred;

		/*
		 * The keys' text in a context reset at every order; the scan itself in
		 * the caller's (the index AM keeps state, such as killed items, that
		 * index_endscan frees).
		 */
		outer = MemoryContextSwitchTo(per_order);
		customer = key_column_text(&customer_col, order);
		order_tenant = (tenant_att != 0) ? key_column_text(&tenant_col, order) : fixed_tenant;
		MemoryContextSwitchTo(outer);
		referred = false;
		if (customer != NULL && order_tenant != NULL)
		{
			/* The index is (referee, tenant), text in the default collation. */
			ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
								   accepted->rd_indcollation[0], F_TEXTEQ,
								   PointerGetDatum(customer));
			ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
								   accepted->rd_indcollation[1], F_TEXTEQ,
								   PointerGetDatum(order_tenant));
			index_rescan(scan, keys, 2, NULL, 0);
			referred = index_getnext_slot(scan, ForwardScanDirection, referral);
		}
		MemoryContextReset(per_order);

		if (referred)
		{
			bool		isnull;
			Datum		status = slot_getattr(referral, status_att, &isnull);

			if (isnull || !status_is_converted(status))
				*all_converted = false;
			tuplestore_puttupleslot(candidates, order);
			(*count)++;
		}
	}
	tuplestore_select_read_pointer(orders, 0);

	ExecDropSingleTupleTableSlot(order);
	ExecDropSingleTupleTableSlot(referral);
	index_endscan(scan);
	UnregisterSnapshot(snapshot);
	index_close(accepted, AccessShareLock);
	table_close(referrals, AccessShareLock);
	MemoryContextDelete(per_order);
	return candidates;
}
