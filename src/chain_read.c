/*
 * chain_read.c
 *		upline() and downline(): reads of the attribution chains stored in
 *		referral.member, by direct index scans.
 *
 *		Each member row holds `path` (member ids from its root down to itself)
 *		and `ancestors` (the customers above it, nearest first).  The upline is
 *		one primary-key probe and that row's `ancestors`; the downline is one
 *		range scan of the index on `path`, whose order is tree order, and which
 *		includes `customer`, so that a member on an all-visible heap page is
 *		read from the index alone.  Neither needs a plan, a join or a sort,
 *		whose executor start-up and sorting of a large downline would cost more
 *		than the reads themselves.
 *
 *		Like SECURITY DEFINER functions, these read the table whatever the
 *		caller's privileges on it: who may run them is decided by EXECUTE,
 *		which PUBLIC does not have.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/visibilitymap.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "storage/predicate.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"

#include "citus_compat.h"
#include "referral_names.h"

/* The member table's columns and indexes this file reads, found by name. */
typedef struct MemberTable
{
	Relation	table;
	Relation	by_customer;	/* primary key (tenant, customer) */
	AttrNumber	customer;
	AttrNumber	path;
	AttrNumber	ancestors;
	TupleTableSlot *row;		/* the member row member_fetch() reads */
} MemberTable;

static Oid
member_relation(Oid schema, const char *name)
{
	Oid			relid = get_relname_relid(name, schema);

	if (!OidIsValid(relid))
		elog(ERROR, "referral: relation referral.%s is missing", name);
	return relid;
}

static AttrNumber
member_column(Relation table, const char *name)
{
	AttrNumber	att = get_attnum(RelationGetRelid(table), name);

	if (att == InvalidAttrNumber)
		elog(ERROR, "referral: column referral.member.%s is missing", name);
	return att;
}

/*
 * Whether referral.member is a Citus table: the coordinator's own heap is then
 * empty, and the rows are read by a query.
 */
static bool
member_distributed(FunctionCallInfo fcinfo)
{
	if (!citus_present())
		return false;
	return citus_is_citus_table(member_relation(get_func_namespace(fcinfo->flinfo->fn_oid),
												MEMBER_TABLE_NAME));
}

/*
 * On a Citus table, fills the result with the rows of `sql`, a query of nargs
 * parameters of $1 tenant, $2 customer and $3 max_depth, and returns true;
 * false, doing nothing, when the member table is a plain one.
 */
static bool
chain_read_distributed(FunctionCallInfo fcinfo, const char *sql, int nargs,
					   text *tenant, text *customer, int max_depth)
{
	Oid			argtypes[3] = {TEXTOID, TEXTOID, INT4OID};
	Datum		values[3] = {PointerGetDatum(tenant), PointerGetDatum(customer),
	Int32GetDatum(max_depth)};

	if (!member_distributed(fcinfo))
		return false;
	citus_materialize_query(fcinfo, sql, nargs, argtypes, values, NULL);
	return true;
}

/* Opens referral.member, in the schema of the calling function, with a slot for its rows. */
static void
member_open(FunctionCallInfo fcinfo, MemberTable *m)
{
	Oid			schema = get_func_namespace(fcinfo->flinfo->fn_oid);
	Oid			table = member_relation(schema, MEMBER_TABLE_NAME);
	Oid			by_customer = member_relation(schema, MEMBER_PKEY_INDEX_NAME);

	m->table = table_open(table, AccessShareLock);
	m->by_customer = index_open(by_customer, AccessShareLock);
	m->customer = member_column(m->table, MEMBER_CUSTOMER_COLUMN_NAME);
	m->path = member_column(m->table, MEMBER_PATH_COLUMN_NAME);
	m->ancestors = member_column(m->table, MEMBER_ANCESTORS_COLUMN_NAME);
	m->row = table_slot_create(m->table, NULL);
}

static void
member_close(MemberTable *m)
{
	ExecDropSingleTupleTableSlot(m->row);
	index_close(m->by_customer, AccessShareLock);
	table_close(m->table, AccessShareLock);
}

/*
 * The member row of (tenant, customer) into m->row; false when the customer is
 * in no accepted referral of the tenant.
 */
static bool
member_fetch(MemberTable *m, text *tenant, text *customer)
{
	ScanKeyData keys[2];
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   m->by_customer->rd_indcollation[0], F_TEXTEQ,
						   PointerGetDatum(tenant));
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   m->by_customer->rd_indcollation[1], F_TEXTEQ,
						   PointerGetDatum(customer));
	scan = index_beginscan(m->table, m->by_customer, GetActiveSnapshot(), 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, m->row);
	if (found)
		slot_getallattrs(m->row);	/* the slot outlives the scan */
	index_endscan(scan);
	return found;
}

/* P || max(bigint): above every path that starts with P. */
static Datum
path_below(ArrayType *path)
{
	Datum	   *ids;
	bool	   *nulls;
	int			n;
	Datum	   *bound;

	deconstruct_array(path, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &ids, &nulls, &n);
	bound = palloc((n + 1) * sizeof(Datum));
	memcpy(bound, ids, n * sizeof(Datum));
	bound[n] = Int64GetDatum(PG_INT64_MAX);
	return PointerGetDatum(construct_array(bound, n + 1, INT8OID, sizeof(int64),
										   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* The number of ids in a path: the member's depth below its root, plus one. */
static int
member_depth(ArrayType *path)
{
	return ArrayGetNItems(ARR_NDIM(path), ARR_DIMS(path));
}

/*
 * Whether `path` starts with the `top_length` ids of `top`: a member below top.
 * Paths hold no NULLs, so their ids are contiguous int8 values; one with a NULL
 * is compared as an array, as the index does.
 */
static bool
path_starts_with(ArrayType *path, ArrayType *top, int top_length)
{
	if (ARR_HASNULL(path) || ARR_HASNULL(top))
		return DatumGetBool(OidFunctionCall2Coll(F_ARRAY_LT, InvalidOid,
												 PointerGetDatum(path),
												 path_below(top))) &&
			DatumGetBool(OidFunctionCall2Coll(F_ARRAY_GT, InvalidOid,
											  PointerGetDatum(path),
											  PointerGetDatum(top)));
	return member_depth(path) > top_length &&
		memcmp(ARR_DATA_PTR(path), ARR_DATA_PTR(top), top_length * sizeof(int64)) == 0;
}

/*
 * Sets up the result as a tuplestore filled in this one call (what PG 15's
 * InitMaterializedSRF does; written out so that it builds on 13 and 14 too).
 */
static void
chain_result_begin(FunctionCallInfo fcinfo)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext outer;
	TupleDesc	desc;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "referral: return type must be a row type");

	outer = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setDesc = CreateTupleDescCopy(desc);
	rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(outer);
}

/* One (level, customer) row of the result. */
static void
chain_put(ReturnSetInfo *rsinfo, int level, Datum customer)
{
	Datum		values[2] = {Int32GetDatum(level), customer};
	bool		nulls[2] = {false, false};

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

PG_FUNCTION_INFO_V1(referral_upline);

/* upline(customer text, tenant text) RETURNS TABLE(level int, customer text); STRICT. */
Datum
referral_upline(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *customer = PG_GETARG_TEXT_PP(0);
	text	   *tenant = PG_GETARG_TEXT_PP(1);
	MemberTable m;

	chain_result_begin(fcinfo);
	if (chain_read_distributed(fcinfo,
							   "SELECT u.level::pg_catalog.int4, u.customer"
							   " FROM " REFERRAL_QUALIFIED(MEMBER_TABLE_NAME) " m,"
							   " pg_catalog.unnest(m.ancestors) WITH ORDINALITY u(customer, level)"
							   " WHERE m.tenant = $1 AND m.customer = $2 ORDER BY u.level",
							   2, tenant, customer, 0))
		return (Datum) 0;
	member_open(fcinfo, &m);
	if (member_fetch(&m, tenant, customer))
	{
		bool		isnull;
		Datum		ancestors = slot_getattr(m.row, m.ancestors, &isnull);
		ArrayIterator it;
		Datum		ancestor;
		int			level = 0;

		it = array_create_iterator(DatumGetArrayTypeP(ancestors), 0, NULL);
		while (array_iterate(it, &ancestor, &isnull))
			chain_put(rsinfo, ++level, ancestor);
		array_free_iterator(it);
	}
	member_close(&m);
	return (Datum) 0;
}

/* The position of the table's column `att` in an index's tuples; 0 when not there. */
static int
index_column_position(Relation index, AttrNumber att)
{
	for (int i = 0; i < index->rd_index->indnatts; i++)
		if (index->rd_index->indkey.values[i] == att)
			return i + 1;
	return 0;
}

PG_FUNCTION_INFO_V1(referral_downline);

/*
 * downline(customer text, tenant text, max_depth int) RETURNS TABLE(level int,
 * customer text), in tree order: the paths below P sort between P and
 * P || max(bigint).  A NULL max_depth is no limit.
 *
 * The scan is index-only where it can be, as the executor's index-only scan:
 * a member whose heap page the visibility map marks all-visible is read from
 * the index tuple (path and the included customer), any other from the heap,
 * which also decides whether this snapshot sees it.
 */
Datum
referral_downline(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *customer;
	text	   *tenant;
	int			max_depth = PG_ARGISNULL(2) ? -1 : PG_GETARG_INT32(2);
	MemberTable m;

	if (!PG_ARGISNULL(2) && max_depth < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_depth must not be negative (got %d)", max_depth)));
	chain_result_begin(fcinfo);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		return (Datum) 0;
	customer = PG_GETARG_TEXT_PP(0);
	tenant = PG_GETARG_TEXT_PP(1);
	if (chain_read_distributed(fcinfo,
							   "SELECT (pg_catalog.cardinality(d.path) - pg_catalog.cardinality(m.path))::pg_catalog.int4,"
							   " d.customer"
							   " FROM " REFERRAL_QUALIFIED(MEMBER_TABLE_NAME) " m"
							   " JOIN " REFERRAL_QUALIFIED(MEMBER_TABLE_NAME) " d ON d.tenant = m.tenant"
							   " AND d.path > m.path AND d.path < m.path || 9223372036854775807::pg_catalog.int8"
							   " WHERE m.tenant = $1 AND m.customer = $2"
							   " AND ($3 < 0 OR pg_catalog.cardinality(d.path) - pg_catalog.cardinality(m.path) <= $3)"
							   " ORDER BY d.path",
							   3, tenant, customer, max_depth))
		return (Datum) 0;

	member_open(fcinfo, &m);
	if (member_fetch(&m, tenant, customer))
	{
		bool		isnull;
		/* A copy: the slot is reused for the scan below. */
		ArrayType  *top = DatumGetArrayTypePCopy(slot_getattr(m.row, m.path, &isnull));
		int			top_length = member_depth(top);
		Relation	by_path = index_open(member_relation(RelationGetNamespace(m.table),
														 MEMBER_PATH_INDEX_NAME),
										 AccessShareLock);
		int			path_in_index = index_column_position(by_path, m.path);
		int			customer_in_index = index_column_position(by_path, m.customer);
		Snapshot	snapshot = GetActiveSnapshot();
		Buffer		vm_buffer = InvalidBuffer;
		MemoryContext per_row = AllocSetContextCreate(CurrentMemoryContext,
													  "referral downline row",
													  ALLOCSET_SMALL_SIZES);
		bool		index_only = (path_in_index != 0 && customer_in_index != 0);
		ScanKeyData keys[2];
		IndexScanDesc scan;
		ItemPointer tid;

		/*
		 * From above P; up to P || max(bigint) as a scan key, unless the index
		 * tuples are read, whose paths stop the scan at the first that does not
		 * start with P (a memcmp instead of an array comparison per member).
		 */
		ScanKeyEntryInitialize(&keys[0], 0, 1, BTGreaterStrategyNumber, InvalidOid,
							   by_path->rd_indcollation[0], F_ARRAY_GT,
							   PointerGetDatum(top));
		ScanKeyEntryInitialize(&keys[1], 0, 1, BTLessStrategyNumber, InvalidOid,
							   by_path->rd_indcollation[0], F_ARRAY_LT, path_below(top));
		scan = index_beginscan(m.table, by_path, snapshot, index_only ? 1 : 2, 0);
		scan->xs_want_itup = index_only;
		index_rescan(scan, keys, index_only ? 1 : 2, NULL, 0);
		while ((tid = index_getnext_tid(scan, ForwardScanDirection)) != NULL)
		{
			/* Reading a short path's length may copy it: one context per row. */
			MemoryContext outer = MemoryContextSwitchTo(per_row);
			ArrayType  *path = NULL;
			Datum		who = (Datum) 0;
			bool		visible = true;

			CHECK_FOR_INTERRUPTS();
			if (index_only)
			{
				path = DatumGetArrayTypeP(index_getattr(scan->xs_itup, path_in_index,
														scan->xs_itupdesc, &isnull));
				if (!path_starts_with(path, top, top_length))
				{
					MemoryContextSwitchTo(outer);
					break;
				}
			}
			if (index_only &&
				VM_ALL_VISIBLE(m.table, ItemPointerGetBlockNumber(tid), &vm_buffer))
			{
				/* What the heap page would have told: the serializable read. */
				PredicateLockPage(m.table, ItemPointerGetBlockNumber(tid), snapshot);
				who = index_getattr(scan->xs_itup, customer_in_index, scan->xs_itupdesc, &isnull);
			}
			else if (index_fetch_heap(scan, m.row))
			{
				path = DatumGetArrayTypeP(slot_getattr(m.row, m.path, &isnull));
				who = slot_getattr(m.row, m.customer, &isnull);
			}
			else
				visible = false;	/* a version this snapshot does not see */

			if (visible)
			{
				int			level = member_depth(path) - top_length;

				if (max_depth < 0 || level <= max_depth)
					chain_put(rsinfo, level, who);
			}
			MemoryContextSwitchTo(outer);
			MemoryContextReset(per_row);
		}
		if (BufferIsValid(vm_buffer))
			ReleaseBuffer(vm_buffer);
		index_endscan(scan);
		index_close(by_path, AccessShareLock);
		MemoryContextDelete(per_row);
	}
	member_close(&m);
	return (Datum) 0;
}
