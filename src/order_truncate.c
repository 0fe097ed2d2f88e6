/*
 * order_truncate.c
 *		referral._orders_truncated, the BEFORE TRUNCATE ... FOR EACH STATEMENT
 *		trigger that referral.track_orders puts next to the order triggers.
 *		TRUNCATE removes orders without a transition table, so this trigger
 *		reads the ids of the orders about to go and hands the attributed ones
 *		to referral._orders_reversed, as a DELETE of them would.
 *
 *		The ids are read by a scan of the table in C, not by SQL: no code of
 *		the table's owner (row security policies, casts of its own types) runs,
 *		and every row TRUNCATE removes is seen, whatever a policy would hide.
 *		Only the extension's own SQL runs, as the trigger function's owner with
 *		search_path pinned.
 *
 *		A partitioned table holds no rows itself: TRUNCATE of it fires the
 *		trigger of each of its partitions too, and each reverses its own
 *		orders.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "citus_compat.h"
#include "order_config.h"
#include "order_trigger.h"
#include "order_truncate.h"
#include "referral_names.h"

/* Reversal of the attributed ones among the orders (fixed tenant $2). */
#define TRUNCATE_SQL_FIXED \
	"SELECT " REFERRAL_QUALIFIED(ORDERS_REVERSED_FUNCTION_NAME) "($2, $1, pg_catalog.array_agg(DISTINCT u.r ORDER BY u.r))" \
	" FROM pg_catalog.unnest($3) AS u(r)" \
	" WHERE EXISTS (SELECT 1 FROM " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME) " a" \
	" WHERE a.tenant = $2 AND a.order_source = $1 AND a.order_ref = u.r)" \
	" HAVING pg_catalog.count(*) > 0"

/* The same, one call per tenant (tenants $2, one per order). */
#define TRUNCATE_SQL_TENANTS \
	"SELECT " REFERRAL_QUALIFIED(ORDERS_REVERSED_FUNCTION_NAME) "(g.t, $1, g.refs)" \
	" FROM (SELECT u.t, pg_catalog.array_agg(DISTINCT u.r ORDER BY u.r) AS refs" \
	" FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS u(t, r)" \
	" WHERE EXISTS (SELECT 1 FROM " REFERRAL_QUALIFIED(ATTRIBUTED_ORDER_TABLE_NAME) " a" \
	" WHERE a.tenant = u.t AND a.order_source = $1 AND a.order_ref = u.r)" \
	" GROUP BY 1 ORDER BY 1) g"

/*
 * The column's number and its type's output function, which gives the same
 * text as the order trigger's ::text for the types track_orders accepts; an
 * error naming a column that is gone or whose type is the user's own (its
 * output function would run the user's code).
 */
static AttrNumber
truncate_column(Relation rel, const char *source, const char *column, FmgrInfo *out)
{
	AttrNumber	attnum = order_column(rel, source, column);
	Oid			type;
	Oid			outfunc;
	bool		varlena;

	type = getBaseType(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid);
	if (type >= FirstNormalObjectId && !type_is_enum(type))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of table \"%s\" tracked by referral has type %s, which the order trigger does not read",
						column, RelationGetRelationName(rel), format_type_be(type)),
				 errhint("Change the column back to a type that referral.track_orders() accepts.")));
	getTypeOutputInfo(type, &outfunc, &varlena);
	fmgr_info(outfunc, out);
	return attnum;
}

/*
 * Reads the id (and tenant) of every order in rel into text arrays; a NULL in
 * either keeps an order out, as in the order trigger.
 */
static int64
truncate_read_orders(Relation rel, const char *source, const char *id_column,
					 const char *tenant_column, ArrayBuildState *refs,
					 ArrayBuildState *tenants)
{
	FmgrInfo	id_out;
	FmgrInfo	tenant_out;
	AttrNumber	id_att = truncate_column(rel, source, id_column, &id_out);
	AttrNumber	tenant_att = 0;
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext,
												  "referral truncate row",
												  ALLOCSET_SMALL_SIZES);
	Snapshot	snapshot;
	TableScanDesc scan;
	TupleTableSlot *slot;
	int64		count = 0;

	if (tenant_column != NULL)
		tenant_att = truncate_column(rel, source, tenant_column, &tenant_out);

	/* TRUNCATE holds an ACCESS EXCLUSIVE lock: the latest snapshot sees every row it removes. */
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snapshot, 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		Datum		id;
		Datum		tenant = (Datum) 0;
		bool		isnull;
		MemoryContext outer;

		CHECK_FOR_INTERRUPTS();
		id = slot_getattr(slot, id_att, &isnull);
		if (isnull)
			continue;
		if (tenant_att != 0)
		{
			tenant = slot_getattr(slot, tenant_att, &isnull);
			if (isnull)
				continue;
		}
		outer = MemoryContextSwitchTo(row_cxt);
		id = CStringGetTextDatum(OutputFunctionCall(&id_out, id));
		if (tenant_att != 0)
			tenant = CStringGetTextDatum(OutputFunctionCall(&tenant_out, tenant));
		MemoryContextSwitchTo(outer);
		accumArrayResult(refs, id, false, TEXTOID, outer);
		if (tenant_att != 0)
			accumArrayResult(tenants, tenant, false, TEXTOID, outer);
		MemoryContextReset(row_cxt);
		count++;
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snapshot);
	MemoryContextDelete(row_cxt);
	return count;
}

/* Runs sql as the trigger function's owner, search_path pinned (as order_trigger.c does). */
static void
truncate_run_as_owner(FunctionCallInfo fcinfo, const char *sql, int nargs,
					  Oid *argtypes, Datum *values)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	HeapTuple	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	Oid			owner;
	Oid			save_userid;
	int			save_sec_context;
	int			guc_level;
	int			rc;

	if (!HeapTupleIsValid(proc))
		elog(ERROR, "referral truncate trigger: cache lookup failed for function %u", fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(proc))->proowner;
	ReleaseSysCache(proc);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "referral truncate trigger: SPI_connect failed: %s",
			 SPI_result_code_string(rc));
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "referral truncate trigger: SPI_execute_with_args returned %s",
			 SPI_result_code_string(rc));
	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "referral truncate trigger: SPI_finish failed: %s",
			 SPI_result_code_string(rc));
	AtEOXact_GUC(true, guc_level);
	SetUserIdAndSecContext(save_userid, save_sec_context);
}

/* How track_orders fires the truncate trigger. */
static const OrderTriggerFiring truncate_trigger_firing = {
	.name = "referral truncate trigger",
	.timing = TRIGGER_EVENT_BEFORE,
	.timing_text = "BEFORE TRUNCATE",
	.events = 1 << TRIGGER_EVENT_TRUNCATE,
	.events_text = "BEFORE TRUNCATE",
};

/* Reverses the rewards of the orders a TRUNCATE is about to remove. */
PG_FUNCTION_INFO_V1(referral_orders_truncated);
Datum
referral_orders_truncated(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;
	OrderTriggerConfig cfg;
	Relation	rel;
	ArrayBuildState *refs;
	ArrayBuildState *tenants;
	Oid			argtypes[3] = {TEXTOID, TEXTOID, TEXTARRAYOID};
	Datum		values[3];
	CitusShardScope shard;

	trigdata = order_trigger_call(fcinfo, &truncate_trigger_firing, &cfg);

	rel = trigdata->tg_relation;
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return PointerGetDatum(NULL);

	refs = initArrayResult(TEXTOID, CurrentMemoryContext, false);
	tenants = initArrayResult(TEXTOID, CurrentMemoryContext, false);
	if (truncate_read_orders(rel, cfg.source, cfg.id_column, cfg.tenant_column,
							 refs, tenants) == 0)
		return PointerGetDatum(NULL);

	values[0] = CStringGetTextDatum(cfg.source);
	values[2] = makeArrayResult(refs, CurrentMemoryContext);
	/* On a shard of a Citus table: the co-located shards (citus_compat.c). */
	citus_shard_scope_begin(rel, &shard);
	PG_TRY();
	{
		if (cfg.tenant_column == NULL)
		{
			values[1] = CStringGetTextDatum(cfg.tenant);
			truncate_run_as_owner(fcinfo, TRUNCATE_SQL_FIXED, 3, argtypes, values);
		}
		else
		{
			argtypes[1] = TEXTARRAYOID;
			values[1] = makeArrayResult(tenants, CurrentMemoryContext);
			truncate_run_as_owner(fcinfo, TRUNCATE_SQL_TENANTS, 3, argtypes, values);
		}
	}
	PG_FINALLY();
	{
		citus_shard_scope_end(&shard);
	}
	PG_END_TRY();
	return PointerGetDatum(NULL);
}
