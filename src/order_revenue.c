/*
 * order_revenue.c
 *		The most common write of the order trigger, in C: a later order of a
 *		referee whose referral is converted, in a program without
 *		recurring_window, is revenue, one row of referral.attributed_order.
 *		A single-row INSERT of such an order then runs no SQL at all, and a
 *		bulk load writes those rows without planning or joining anything.
 *
 *		It decides as the trigger's revenue statement does (order_trigger.c,
 *		order_sql_revenue): the order is paid, its id and amount are set and
 *		the amount is a finite number at least the program's
 *		min_order_amount, its time lies in the program's active period and
 *		not before the redeem, it is not the order that converted the referral,
 *		and it is not attributed yet.  Anything else it cannot settle (a
 *		pending referral, recurring_window, an attributed row of a transaction
 *		still in progress) goes on to the SQL, and so does every order of a
 *		table it cannot read exactly so (see order_revenue_begin).
 *
 *		Only built-in types are read, through their own functions: no code of
 *		the table's owner runs here.  Tuples go in through the executor's own
 *		heap and index insertion, with every index of attributed_order; should
 *		that table gain triggers, CHECK constraints or generated columns, which
 *		this path would bypass, its rows are left to the SQL.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "order_keys.h"
#include "order_revenue.h"
#include "referral_names.h"

/* Programs remembered per statement (a statement's orders name few). */
#define REVENUE_PROGRAMS	8

/* The columns of attributed_order, in the order of their values below. */
enum
{
	AO_TENANT, AO_SOURCE, AO_ORDER_REF, AO_PROGRAM, AO_REFERRAL, AO_AMOUNT,
	AO_ORDERED_AT, AO_CONVERTING, AO_CREATED_AT, AO_REVERSED_AT, AO_NCOLUMNS
};
static const char *const AttributedColumns[AO_NCOLUMNS] = {
	"tenant", "order_source", "order_ref", "program_id", "referral_id", "amount",
	"ordered_at", "converting", "created_at", "reversed_at"
};

/* What decides whether an order of a program qualifies. */
typedef struct ProgramTerms
{
	int64		id;
	text	   *tenant;
	bool		recurring;		/* recurring_window is set */
	Datum		min_order_amount;	/* numeric */
	TimestampTz starts_at;
	bool		open_ended;		/* ends_at is NULL */
	TimestampTz ends_at;
} ProgramTerms;

/* A primary key probed by named columns: which value each index column takes. */
typedef struct KeyProbe
{
	Relation	index;
	int			nkeys;
	int			value_of[INDEX_MAX_KEYS];	/* index column -> value position */
	RegProcedure equal[INDEX_MAX_KEYS];
	ScanKeyData keys[INDEX_MAX_KEYS];
	IndexScanDesc scan;
} KeyProbe;

struct OrderRevenueWriter
{
	MemoryContext context;		/* the writer's own; per_order under it */
	MemoryContext per_order;
	text	   *source;
	TimestampTz now;

	/* The orders table. */
	OrderKeyColumn id;
	AttrNumber	amount_att;
	Oid			amount_type;	/* base type: an integer type or numeric */
	OrderKeyColumn status;		/* att 0: no status column */
	Datum	   *paid;
	int			npaid;
	AttrNumber	at_att;			/* 0: the transaction time */

	/* referral.referral, as the caller's slot holds it. */
	AttrNumber	r_id;
	AttrNumber	r_program;
	AttrNumber	r_created;
	AttrNumber	r_converting_order;
	AttrNumber	r_converting_source;

	/* referral.program. */
	Relation	programs;
	KeyProbe	program_key;
	TupleTableSlot *program_slot;
	AttrNumber	p_recurring;
	AttrNumber	p_min_amount;
	AttrNumber	p_starts;
	AttrNumber	p_ends;
	ProgramTerms known[REVENUE_PROGRAMS];
	int			nknown;

	/* referral.attributed_order. */
	Relation	attributed;
	KeyProbe	attributed_key;
	TupleTableSlot *attributed_slot;
	SnapshotData dirty;
	AttrNumber	ao_att[AO_NCOLUMNS];
	EState	   *estate;
	ResultRelInfo *result;
	TupleTableSlot *insert_slot;

	int64		recorded;
};

static AttrNumber
column_of(Relation rel, const char *name)
{
	return get_attnum(RelationGetRelid(rel), name);
}

static Oid
column_base_type(Relation rel, AttrNumber att)
{
	return getBaseType(TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid);
}

bool
orders_have_unique_id(Relation rel, AttrNumber id_att)
{
	List	   *indexes;
	ListCell   *lc;
	bool		found = false;

	/*
	 * A partition's or an inheritance parent's own index says nothing of the
	 * ids of its siblings or children, whose orders share its source label.
	 */
	if (rel->rd_rel->relispartition ||
		(rel->rd_rel->relkind == RELKIND_RELATION && rel->rd_rel->relhassubclass))
		return false;
	indexes = RelationGetIndexList(rel);

	foreach(lc, indexes)
	{
		HeapTuple	tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		Form_pg_index index;

		if (!HeapTupleIsValid(tuple))
			continue;
		index = (Form_pg_index) GETSTRUCT(tuple);
		found = index->indisunique && index->indimmediate && index->indisvalid &&
			index->indnkeyatts == 1 && index->indkey.values[0] == id_att &&
			heap_attisnull(tuple, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(tuple, Anum_pg_index_indpred, NULL);
		ReleaseSysCache(tuple);
		if (found)
			break;
	}
	list_free(indexes);
	return found;
}

/*
 * Sets up a probe of rel's primary key whose columns are among `columns` (with
 * their equality functions); false when it has another column.
 */
static bool
key_probe_init(KeyProbe *probe, Relation rel, const char *const *columns,
			   const RegProcedure *equal, int ncolumns, Snapshot snapshot)
{
	Oid			pkey;

	list_free(RelationGetIndexList(rel));	/* which sets rd_pkindex */
	pkey = rel->rd_pkindex;
	if (!OidIsValid(pkey))
		return false;
	probe->index = index_open(pkey, AccessShareLock);
	probe->nkeys = IndexRelationGetNumberOfKeyAttributes(probe->index);
	for (int i = 0; i < probe->nkeys; i++)
	{
		AttrNumber	heap_att = probe->index->rd_index->indkey.values[i];
		const char *name = (heap_att > 0) ? NameStr(TupleDescAttr(RelationGetDescr(rel), heap_att - 1)->attname) : "";
		int			j;

		for (j = 0; j < ncolumns && strcmp(name, columns[j]) != 0; j++)
			;
		if (j == ncolumns)
		{
			index_close(probe->index, AccessShareLock);
			probe->index = NULL;
			return false;
		}
		probe->value_of[i] = j;
		probe->equal[i] = equal[j];
	}
	probe->scan = index_beginscan(rel, probe->index, snapshot, probe->nkeys, 0);
	return true;
}

/* Positions the probe on the row whose key columns hold `values`. */
static void
key_probe_rescan(KeyProbe *probe, const Datum *values)
{
	for (int i = 0; i < probe->nkeys; i++)
		ScanKeyEntryInitialize(&probe->keys[i], 0, i + 1, BTEqualStrategyNumber, InvalidOid,
							   probe->index->rd_indcollation[i], probe->equal[i],
							   values[probe->value_of[i]]);
	index_rescan(probe->scan, probe->keys, probe->nkeys, NULL, 0);
}

static void
key_probe_end(KeyProbe *probe)
{
	if (probe->index == NULL)
		return;
	index_endscan(probe->scan);
	index_close(probe->index, AccessShareLock);
}

/* Whether attributed_order has exactly the columns this writer fills. */
/*
 * The first row of a probe for `values`, into slot.  The scan runs in the
 * writer's context, not the per-order one the caller may be in: the index AM
 * keeps state allocated during the scan (btree's killed items) that
 * index_endscan frees.
 */
static bool
key_probe_next(OrderRevenueWriter *w, KeyProbe *probe, const Datum *values,
			   TupleTableSlot *slot)
{
	MemoryContext outer = MemoryContextSwitchTo(w->context);
	bool		found;

	key_probe_rescan(probe, values);
	found = index_getnext_slot(probe->scan, ForwardScanDirection, slot);
	MemoryContextSwitchTo(outer);
	return found;
}

static bool
attributed_columns(OrderRevenueWriter *w)
{
	TupleDesc	desc = RelationGetDescr(w->attributed);
	int			live = 0;

	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			live++;
	if (live != AO_NCOLUMNS)
		return false;
	for (int c = 0; c < AO_NCOLUMNS; c++)
		if ((w->ao_att[c] = column_of(w->attributed, AttributedColumns[c])) == InvalidAttrNumber)
			return false;
	return true;
}

/*
 * Whether rows can go into attributed_order without the executor's checks: no
 * triggers (foreign keys included), CHECK constraints or generated columns,
 * which this writer would bypass.  The columns' NOT NULL it keeps itself.
 */
static bool
attributed_plain(Relation rel)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;

	return rel->trigdesc == NULL &&
		(constr == NULL || (constr->num_check == 0 && !constr->has_generated_stored));
}

/* The paid statuses, a text[], as an array of text datums in the writer's context. */
static void
paid_statuses(OrderRevenueWriter *w, Datum statuses)
{
	bool	   *nulls;

	deconstruct_array(DatumGetArrayTypeP(statuses), TEXTOID, -1, false, TYPALIGN_INT,
					  &w->paid, &nulls, &w->npaid);
}

/* Whether both texts hold the same bytes (the database collation is deterministic). */
static bool
text_same(text *a, text *b)
{
	return VARSIZE_ANY_EXHDR(a) == VARSIZE_ANY_EXHDR(b) &&
		memcmp(VARDATA_ANY(a), VARDATA_ANY(b), VARSIZE_ANY_EXHDR(a)) == 0;
}

/* Whether a text column of slot holds value (a NULL holds nothing). */
static bool
slot_text_is(TupleTableSlot *slot, AttrNumber att, text *value)
{
	bool		isnull;
	Datum		datum = slot_getattr(slot, att, &isnull);

	return !isnull && text_same(DatumGetTextPP(datum), value);
}

OrderRevenueWriter *
order_revenue_begin(Oid schema, Relation orders, const OrderRevenueConfig *cfg,
					Relation referrals, Snapshot snapshot)
{
	static const char *const program_key[] = {"id", "tenant"};
	static const RegProcedure program_equal[] = {F_INT8EQ, F_TEXTEQ};
	static const char *const attributed_key[] = {"tenant", "order_source", "order_ref"};
	static const RegProcedure attributed_equal[] = {F_TEXTEQ, F_TEXTEQ, F_TEXTEQ};
	OrderRevenueWriter *w;
	MemoryContext outer;
	AttrNumber	id_att = get_attnum(RelationGetRelid(orders), cfg->id_column);
	AttrNumber	status_att = 0;
	AttrNumber	amount_att;
	Oid			amount_type;
	AttrNumber	at_att = 0;
	Oid			program_table = get_relname_relid(PROGRAM_TABLE_NAME, schema);
	Oid			attributed_table = get_relname_relid(ATTRIBUTED_ORDER_TABLE_NAME, schema);

	/* The orders table: a plain table whose columns read as the SQL reads them. */
	if (orders->rd_rel->relkind != RELKIND_RELATION || id_att == InvalidAttrNumber ||
		!order_key_supported_type(TupleDescAttr(RelationGetDescr(orders), id_att - 1)->atttypid) ||
		!orders_have_unique_id(orders, id_att) ||
		!OidIsValid(program_table) || !OidIsValid(attributed_table))
		return NULL;
	amount_att = get_attnum(RelationGetRelid(orders), cfg->amount_column);
	amount_type = (amount_att != InvalidAttrNumber) ? column_base_type(orders, amount_att) : InvalidOid;
	if (amount_type != INT2OID && amount_type != INT4OID && amount_type != INT8OID &&
		amount_type != NUMERICOID)
		return NULL;
	if (cfg->ordered_at_column != NULL)
	{
		at_att = get_attnum(RelationGetRelid(orders), cfg->ordered_at_column);
		if (at_att == InvalidAttrNumber || column_base_type(orders, at_att) != TIMESTAMPTZOID)
			return NULL;
	}
	if (cfg->status_column != NULL)
	{
		Oid			type;

		status_att = get_attnum(RelationGetRelid(orders), cfg->status_column);
		if (status_att == InvalidAttrNumber)
			return NULL;
		type = column_base_type(orders, status_att);
		if (type != TEXTOID && type != VARCHAROID)
			return NULL;
	}

	w = MemoryContextAllocZero(CurrentMemoryContext, sizeof(OrderRevenueWriter));
	w->context = AllocSetContextCreate(CurrentMemoryContext, "referral revenue writer",
									   ALLOCSET_DEFAULT_SIZES);
	w->per_order = AllocSetContextCreate(w->context, "referral revenue order",
										 ALLOCSET_SMALL_SIZES);
	outer = MemoryContextSwitchTo(w->context);

	w->source = cstring_to_text(cfg->source);
	w->now = GetCurrentTransactionStartTimestamp();
	order_key_column_init(&w->id, orders, id_att);
	w->amount_att = amount_att;
	w->amount_type = amount_type;
	if (status_att != 0)
	{
		order_key_column_init(&w->status, orders, status_att);
		paid_statuses(w, cfg->paid_statuses);
	}
	w->at_att = at_att;

	w->r_id = column_of(referrals, "id");
	w->r_program = column_of(referrals, "program_id");
	w->r_created = column_of(referrals, "created_at");
	w->r_converting_order = column_of(referrals, "converting_order");
	w->r_converting_source = column_of(referrals, "converting_source");

	w->programs = table_open(program_table, AccessShareLock);
	w->p_recurring = column_of(w->programs, "recurring_window");
	w->p_min_amount = column_of(w->programs, "min_order_amount");
	w->p_starts = column_of(w->programs, "starts_at");
	w->p_ends = column_of(w->programs, "ends_at");
	w->program_slot = table_slot_create(w->programs, NULL);

	w->attributed = table_open(attributed_table, RowExclusiveLock);
	InitDirtySnapshot(w->dirty);
	w->attributed_slot = table_slot_create(w->attributed, NULL);
	MemoryContextSwitchTo(outer);

	if (w->r_id == InvalidAttrNumber || w->r_program == InvalidAttrNumber ||
		w->r_created == InvalidAttrNumber || w->r_converting_order == InvalidAttrNumber ||
		w->r_converting_source == InvalidAttrNumber ||
		w->p_recurring == InvalidAttrNumber || w->p_min_amount == InvalidAttrNumber ||
		w->p_starts == InvalidAttrNumber || w->p_ends == InvalidAttrNumber ||
		!attributed_plain(w->attributed) ||
		!attributed_columns(w) ||
		!key_probe_init(&w->program_key, w->programs, program_key, program_equal, 2, snapshot) ||
		!key_probe_init(&w->attributed_key, w->attributed, attributed_key, attributed_equal, 3,
						&w->dirty))
	{
		(void) order_revenue_end(w);
		return NULL;
	}

	/* The executor's insertion into the table and its indexes. */
	outer = MemoryContextSwitchTo(w->context);
	w->estate = CreateExecutorState();
	w->result = makeNode(ResultRelInfo);
	InitResultRelInfo(w->result, w->attributed, 0, NULL, 0);
	ExecOpenIndices(w->result, false);
	w->insert_slot = MakeSingleTupleTableSlot(RelationGetDescr(w->attributed), &TTSOpsVirtual);
	MemoryContextSwitchTo(outer);
	return w;
}

/* The terms of a program, read once per statement; NULL when it is not there. */
static ProgramTerms *
program_terms(OrderRevenueWriter *w, text *tenant, int64 program_id)
{
	ProgramTerms *terms;
	Datum		values[2];
	MemoryContext outer;
	bool		isnull;

	for (int i = 0; i < w->nknown; i++)
		if (w->known[i].id == program_id && text_same(w->known[i].tenant, tenant))
			return &w->known[i];

	values[0] = Int64GetDatum(program_id);
	values[1] = PointerGetDatum(tenant);
	if (!key_probe_next(w, &w->program_key, values, w->program_slot))
		return NULL;

	if (w->nknown == REVENUE_PROGRAMS)
		w->nknown = 0;			/* many programs: start over */
	terms = &w->known[w->nknown++];
	outer = MemoryContextSwitchTo(w->context);
	terms->id = program_id;
	terms->tenant = (text *) pg_detoast_datum_copy((struct varlena *) tenant);
	(void) slot_getattr(w->program_slot, w->p_recurring, &isnull);
	terms->recurring = !isnull;
	terms->min_order_amount = datumCopy(slot_getattr(w->program_slot, w->p_min_amount, &isnull),
										false, -1);
	terms->starts_at = DatumGetTimestampTz(slot_getattr(w->program_slot, w->p_starts, &isnull));
	terms->ends_at = DatumGetTimestampTz(slot_getattr(w->program_slot, w->p_ends, &terms->open_ended));
	MemoryContextSwitchTo(outer);
	return terms;
}

/* The order's amount as numeric; false when it is NULL, NaN or infinite. */
static bool
order_amount(OrderRevenueWriter *w, TupleTableSlot *order, Datum *amount)
{
	bool		isnull;
	Datum		value = slot_getattr(order, w->amount_att, &isnull);
	Numeric		number;

	if (isnull)
		return false;
	switch (w->amount_type)
	{
		case INT2OID:
			*amount = DirectFunctionCall1(int2_numeric, value);
			return true;
		case INT4OID:
			*amount = DirectFunctionCall1(int4_numeric, value);
			return true;
		case INT8OID:
			*amount = DirectFunctionCall1(int8_numeric, value);
			return true;
		default:
			number = DatumGetNumeric(value);
#if PG_VERSION_NUM >= 140000
			if (numeric_is_nan(number) || numeric_is_inf(number))
#else
			if (numeric_is_nan(number))
#endif
				return false;
			*amount = NumericGetDatum(number);
			return true;
	}
}

/* Whether the order's status is one of the paid statuses (always, without a status column). */
static bool
order_paid(OrderRevenueWriter *w, TupleTableSlot *order)
{
	text	   *status;

	if (w->status.att == 0)
		return true;
	if ((status = order_key_column_text(&w->status, order)) == NULL)
		return false;
	for (int i = 0; i < w->npaid; i++)
		if (text_same(status, DatumGetTextPP(w->paid[i])))
			return true;
	return false;
}

/*
 * Whether the order is attributed: true for a row committed (or this
 * transaction's); *in_progress for one of a transaction still running, which
 * the SQL's ON CONFLICT waits for.
 */
static bool
order_attributed(OrderRevenueWriter *w, text *tenant, text *order_ref, bool *in_progress)
{
	Datum		values[3];

	values[0] = PointerGetDatum(tenant);
	values[1] = PointerGetDatum(w->source);
	values[2] = PointerGetDatum(order_ref);
	*in_progress = false;
	if (!key_probe_next(w, &w->attributed_key, values, w->attributed_slot))
		return false;
	*in_progress = TransactionIdIsValid(w->dirty.xmin);
	return true;
}

/* Writes the attributed_order row of an order, with its index entries. */
static void
record_revenue(OrderRevenueWriter *w, text *tenant, text *order_ref, Datum program_id,
			   Datum referral_id, Datum amount, TimestampTz at)
{
	TupleTableSlot *slot = w->insert_slot;
	Datum		values[AO_NCOLUMNS];
	bool		nulls[AO_NCOLUMNS] = {false};

	values[AO_TENANT] = PointerGetDatum(tenant);
	values[AO_SOURCE] = PointerGetDatum(w->source);
	values[AO_ORDER_REF] = PointerGetDatum(order_ref);
	values[AO_PROGRAM] = program_id;
	values[AO_REFERRAL] = referral_id;
	values[AO_AMOUNT] = amount;
	values[AO_ORDERED_AT] = TimestampTzGetDatum(at);
	values[AO_CONVERTING] = BoolGetDatum(false);
	values[AO_CREATED_AT] = TimestampTzGetDatum(w->now);
	values[AO_REVERSED_AT] = (Datum) 0;
	nulls[AO_REVERSED_AT] = true;

	ExecClearTuple(slot);
	for (int c = 0; c < AO_NCOLUMNS; c++)
	{
		slot->tts_values[w->ao_att[c] - 1] = values[c];
		slot->tts_isnull[w->ao_att[c] - 1] = nulls[c];
	}
	for (int i = 0; i < slot->tts_tupleDescriptor->natts; i++)
		if (TupleDescAttr(slot->tts_tupleDescriptor, i)->attisdropped)
		{
			slot->tts_values[i] = (Datum) 0;
			slot->tts_isnull[i] = true;
		}
	ExecStoreVirtualTuple(slot);

	simple_table_tuple_insert(w->attributed, slot);
#if PG_VERSION_NUM >= 160000
	(void) ExecInsertIndexTuples(w->result, slot, w->estate, false, false, NULL, NIL, false);
#elif PG_VERSION_NUM >= 140000
	(void) ExecInsertIndexTuples(w->result, slot, w->estate, false, false, NULL, NIL);
#else
	w->estate->es_result_relation_info = w->result;
	(void) ExecInsertIndexTuples(slot, w->estate, false, NULL, NIL);
#endif
	ResetPerTupleExprContext(w->estate);
	w->recorded++;
}

/*
 * How an order of a referral of program_id (redeemed at created_at) stands, as
 * the trigger's statements read it: paid, with an id and a finite amount at
 * least the program's min_order_amount, timed in the program's active period
 * and not before the redeem.  Its id, amount and time go to *order_ref,
 * *amount and *at, in the per-order context.
 */
static OrderQualification
order_qualifies(OrderRevenueWriter *w, TupleTableSlot *order, text *tenant,
				int64 program_id, TimestampTz created_at, text **order_ref,
				Datum *amount, TimestampTz *at)
{
	ProgramTerms *terms;
	bool		isnull;

	*at = w->now;
	if (!order_paid(w, order) || (*order_ref = order_key_column_text(&w->id, order)) == NULL ||
		!order_amount(w, order, amount))
		return ORDER_DOES_NOT_QUALIFY;	/* the SQL would not read it either */
	if (w->at_att != 0)
	{
		Datum		value = slot_getattr(order, w->at_att, &isnull);

		if (!isnull)
			*at = DatumGetTimestampTz(value);
	}
	terms = program_terms(w, tenant, program_id);
	if (terms == NULL || terms->recurring)
		return ORDER_UNDECIDED;		/* recurring rewards: the SQL's */
	if (!DatumGetBool(DirectFunctionCall2(numeric_ge, *amount, terms->min_order_amount)) ||
		*at < terms->starts_at || (!terms->open_ended && *at >= terms->ends_at) ||
		*at < created_at)
		return ORDER_DOES_NOT_QUALIFY;
	return ORDER_QUALIFIES;
}

OrderQualification
order_revenue_qualifies(OrderRevenueWriter *w, TupleTableSlot *order, text *tenant,
						int64 program_id, TimestampTz created_at, text **order_ref,
						TimestampTz *at)
{
	MemoryContext outer;
	OrderQualification result;
	Datum		amount;

	MemoryContextReset(w->per_order);
	outer = MemoryContextSwitchTo(w->per_order);
	result = order_qualifies(w, order, tenant, program_id, created_at, order_ref, &amount, at);
	MemoryContextSwitchTo(outer);
	return result;
}

bool
order_revenue_attributed(OrderRevenueWriter *w, text *tenant, text *order_ref)
{
	bool		in_progress;

	return order_attributed(w, tenant, order_ref, &in_progress);
}

bool
order_revenue_settle(OrderRevenueWriter *w, TupleTableSlot *order, TupleTableSlot *referral,
					 text *tenant)
{
	MemoryContext outer;
	bool		settled = true;
	bool		isnull;
	text	   *order_ref;
	Datum		amount;
	TimestampTz at;
	Datum		program_id = slot_getattr(referral, w->r_program, &isnull);
	TimestampTz created_at = DatumGetTimestampTz(slot_getattr(referral, w->r_created, &isnull));
	bool		in_progress;

	MemoryContextReset(w->per_order);
	outer = MemoryContextSwitchTo(w->per_order);
	switch (order_qualifies(w, order, tenant, DatumGetInt64(program_id), created_at,
							&order_ref, &amount, &at))
	{
		case ORDER_DOES_NOT_QUALIFY:
			break;
		case ORDER_UNDECIDED:
			settled = false;
			break;
		case ORDER_QUALIFIES:
			if (slot_text_is(referral, w->r_converting_order, order_ref) &&
				slot_text_is(referral, w->r_converting_source, w->source))
				break;			/* the converting order, attributed with its conversion */
			if (order_attributed(w, tenant, order_ref, &in_progress))
			{
				settled = !in_progress;
				break;
			}
			record_revenue(w, tenant, order_ref, program_id,
						   slot_getattr(referral, w->r_id, &isnull), amount, at);
			break;
	}
	MemoryContextSwitchTo(outer);
	return settled;
}

int64
order_revenue_end(OrderRevenueWriter *w)
{
	int64		recorded = w->recorded;

	if (w->estate != NULL)
	{
		ExecCloseIndices(w->result);
		ExecDropSingleTupleTableSlot(w->insert_slot);
		FreeExecutorState(w->estate);
	}
	key_probe_end(&w->attributed_key);
	key_probe_end(&w->program_key);
	ExecDropSingleTupleTableSlot(w->attributed_slot);
	ExecDropSingleTupleTableSlot(w->program_slot);
	table_close(w->attributed, NoLock);
	table_close(w->programs, AccessShareLock);
	if (recorded > 0)
		elog(DEBUG1, "referral order trigger: " INT64_FORMAT " orders recorded as revenue in C",
			 recorded);
	MemoryContextDelete(w->context);
	pfree(w);
	return recorded;
}
