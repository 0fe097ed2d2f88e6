/*
 * order_trigger.c
 *		The order trigger: referral._order_trigger, the AFTER ... FOR EACH
 *		STATEMENT trigger (with transition tables) that referral.track_orders
 *		puts on a shop's own orders table.  At every INSERT, UPDATE or DELETE
 *		statement it runs a few set-based statements over the transition
 *		tables (none when no order concerns a referral):
 *
 *		- reversals: orders updated to a reversed status or deleted go to
 *		  referral._orders_reversed (one call per tenant), orders whose id,
 *		  customer or tenant changed to referral._orders_moved (the old order
 *		  reversed; the new one is a paid order below if it is paid), and paid
 *		  orders whose amount changed go to referral._order_amount_changed;
 *		- paid orders: orders inserted as, or updated to, a paid status are
 *		  looked up (one index probe each) in the accepted referrals of
 *		  their customers; later orders of referees converted before are
 *		  recorded as revenue, and the candidates that may convert or earn go
 *		  to referral._orders_paid in one call, in a fixed order (it converts
 *		  set-based where it can); when any did, one more statement records
 *		  the revenue of the referrals converted now.  When every candidate's
 *		  referral was converted before, that revenue statement runs first,
 *		  and often alone.
 *
 *		For an INSERT, a first pass in C (order_candidates.c) keeps only the
 *		orders of referred customers, and the SQL reads those instead of the
 *		whole transition table; with none, no SQL runs.  In a statement of
 *		fewer than 10,000 orders that pass also records a converted referee's
 *		later order as revenue itself (order_revenue.c).  In a load read
 *		through the hash of accepted referrals, the paid-orders statement reads
 *		of each pending referral only the order that may convert it
 *		(order_firsts.c), and the revenue statement all the candidates.
 *		For an UPDATE or DELETE, a first pass in C (order_changes.c) keeps only
 *		the orders referral holds something about, on both sides; with none,
 *		no SQL runs either.
 *
 *		Reversals run first so that an order that is paid in the same
 *		statement that refunds a referee's converting order can convert the
 *		referral again.
 *
 *		The function is not SECURITY DEFINER: a statement whose orders need no
 *		SQL (most single-row orders) would pay for switching the user and
 *		search_path for nothing.  The SQL runs as the function's owner with
 *		search_path pinned (order_owner_enter), as SECURITY DEFINER with
 *		SET search_path would.  Who may attach the trigger is decided by
 *		EXECUTE on it, which PUBLIC does not have.
 *
 *		The trigger's configuration is in its arguments (order_config.c), its
 *		SQL text is built from them (order_sql.c), and its prepared plans are
 *		kept per backend (order_plans.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "citus_compat.h"
#include "order_candidates.h"
#include "order_changes.h"
#include "order_config.h"
#include "order_keys.h"
#include "order_plans.h"
#include "order_sql.h"
#include "order_trigger.h"
#include "referral_names.h"


/*
 * Whether the extension's schema has referral._orders_paid.  One module serves
 * every version of the extension: after the module of 0.2 is installed and
 * before ALTER EXTENSION referral UPDATE, a database still has the functions of
 * 0.1, which take paid orders one call each (_order_paid), and orders must keep
 * being attributed there.
 */
static bool
order_batch_function_exists(Oid schema)
{
	Oid			argtypes[5];
	List	   *name;

	argtypes[0] = TEXTOID;
	argtypes[1] = get_array_type(INT8OID);
	argtypes[2] = get_array_type(TEXTOID);
	argtypes[3] = get_array_type(NUMERICOID);
	argtypes[4] = get_array_type(TIMESTAMPTZOID);
	name = list_make2(makeString(get_namespace_name(schema)), makeString(ORDERS_PAID_FUNCTION_NAME));
	return OidIsValid(LookupFuncName(name, 5, argtypes, true));
}

/*
 * Whether the extension's schema has referral._orders_moved (0.3 on).  Before,
 * an UPDATE pairs old and new rows by id alone, as that version's functions
 * expect: an order moved without _orders_moved would be attributed twice.
 */
static bool
order_moved_function_exists(Oid schema)
{
	Oid			argtypes[4];
	List	   *name;

	argtypes[0] = TEXTOID;
	argtypes[1] = TEXTOID;
	argtypes[2] = TEXTARRAYOID;
	argtypes[3] = TEXTARRAYOID;
	name = list_make2(makeString(get_namespace_name(schema)), makeString(ORDERS_MOVED_FUNCTION_NAME));
	return OidIsValid(LookupFuncName(name, 4, argtypes, true));
}


/* Runs one statement with the firing's parameters; returns the rows it processed. */
static uint64
order_run(OrderStatement stmt, const char *sql, int64 nrows, Relation rel,
		  const OrderTriggerConfig *cfg, Datum *values, const char *nulls)
{
	char	   *key = order_plan_key(stmt, nrows, rel, cfg, sql);
	SPIPlanPtr	plan = order_plan_get(key, sql);
	int			expected = (stmt == ORDER_STMT_REVENUE) ? SPI_OK_INSERT : SPI_OK_SELECT;
	int			rc;

	rc = SPI_execute_plan(plan, values, nulls, false, 0);
	if (rc != expected)
		elog(ERROR, "referral order trigger: SPI_execute_plan returned %s",
			 SPI_result_code_string(rc));
	pfree(key);
	return SPI_processed;
}

/*
 * Runs the revenue statement.  A bulk one (ORDER_BULK_STATEMENT orders or
 * more) runs first as a plain INSERT, in a subtransaction: ON CONFLICT's
 * speculative insertion costs every row an index probe and a second WAL
 * record, about a tenth of the time of a 1M-order load whose 100k orders are
 * revenue.  The statement's orders conflict only when an order id is used
 * again (an order deleted and its id reused, or two orders sharing one), when
 * a concurrent statement attributes the same order, or when _order_paid
 * recorded one as revenue in this firing (its referral converted by another
 * session since the paid-orders statement's snapshot); the orders that
 * converted a referral in this firing are left out by the statement itself.
 * Then the plain INSERT fails with a unique violation, its subtransaction
 * rolls back, and the statement runs again with ON CONFLICT DO NOTHING.
 * Smaller statements run with ON CONFLICT straight away: a subtransaction
 * costs a single-row INSERT more than it saves, and a transaction with more
 * than 64 of them would make every other session's snapshots slower (the
 * subtransaction cache of its PGPROC overflows).
 */
static uint64
order_run_revenue(OrderEvent event, int64 nrows, Relation rel,
				  const OrderTriggerConfig *cfg, Datum *values, const char *nulls)
{
	MemoryContext outer = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile uint64 processed = 0;
	volatile bool conflict = false;

	if (nrows < ORDER_BULK_STATEMENT)
		return order_run(ORDER_STMT_REVENUE, order_sql_revenue(cfg, event, nrows, true),
						 nrows, rel, cfg, values, nulls);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(outer);
	PG_TRY();
	{
		processed = order_run(ORDER_STMT_REVENUE, order_sql_revenue(cfg, event, nrows, false),
							  nrows, rel, cfg, values, nulls);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(outer);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(outer);
		CurrentResourceOwner = owner;
		if (edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
			ReThrowError(edata);
		FreeErrorData(edata);
		conflict = true;
	}
	PG_END_TRY();

	if (conflict)
		processed = order_run(ORDER_STMT_REVENUE, order_sql_revenue(cfg, event, nrows, true),
							  nrows, rel, cfg, values, nulls);
	return processed;
}


/* Checks that a transition table the event needs is there under the expected name. */
static void
order_check_transition(Trigger *trigger, Tuplestorestate *table,
					   const char *name, const char *expected)
{
	if (table == NULL || name == NULL || strcmp(name, expected) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("referral order trigger \"%s\" needs the transition table %s",
						trigger->tgname, expected),
				 errhint(ORDER_TRIGGER_HINT)));
}

/*
 * The inserted orders whose customer holds an accepted referral, with their
 * number in *count; NULL (all orders are passed on) when a key column's type
 * cannot be probed by its text form, or under Citus.  A statement of fewer than
 * ORDER_BULK_STATEMENT orders has the later orders of converted referees
 * recorded as revenue in C on the way (order_revenue.c), and left out: a
 * single-row INSERT of such an order runs no SQL.  A bulk load leaves them to
 * the revenue statement, which writes them without a look-up each.  *firsts
 * (*nfirsts rows) is NULL or what the paid-orders statement reads instead
 * (order_candidates).
 */
static Tuplestorestate *
order_insert_candidates(FunctionCallInfo fcinfo, TriggerData *trigdata,
						const OrderTriggerConfig *cfg, int64 *count,
						bool *all_converted, Tuplestorestate **firsts, int64 *nfirsts)
{
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	customer_att = order_column(rel, cfg->source, cfg->customer_column);
	AttrNumber	tenant_att = 0;
	OrderRevenueConfig revenue;
	Tuplestorestate *candidates;

	*firsts = NULL;
	*nfirsts = 0;
	if (!order_candidates_usable())
		return NULL;
	if (cfg->tenant_column != NULL)
		tenant_att = order_column(rel, cfg->source, cfg->tenant_column);
	if (!order_key_supported_type(TupleDescAttr(desc, customer_att - 1)->atttypid) ||
		(tenant_att != 0 &&
		 !order_key_supported_type(TupleDescAttr(desc, tenant_att - 1)->atttypid)))
		return NULL;

	revenue.source = cfg->source;
	revenue.id_column = cfg->id_column;
	revenue.amount_column = cfg->amount_column;
	revenue.status_column = cfg->status_column;
	revenue.paid_statuses = (cfg->status_column != NULL) ?
		order_paid_statuses(cfg->paid_statuses) : (Datum) 0;
	revenue.ordered_at_column = cfg->ordered_at_column;
	candidates = tuplestore_begin_heap(false, false, work_mem);
	order_candidates(get_func_namespace(fcinfo->flinfo->fn_oid), rel,
					 trigdata->tg_newtable, customer_att, cfg->tenant, tenant_att,
					 &revenue, tuplestore_tuple_count(trigdata->tg_newtable) < ORDER_BULK_STATEMENT,
					 candidates, count, all_converted, firsts, nfirsts);
	return candidates;
}

/*
 * What an UPDATE or DELETE changed, kept to the orders that matter
 * (order_changes.c): the old rows in *olds, the new ones of an UPDATE in
 * *news, with their numbers.  False (every row goes on) when a key column's
 * type cannot be read by its text form, under Citus, or when the pass cannot
 * tell.
 */
static bool
order_changed_candidates(FunctionCallInfo fcinfo, TriggerData *trigdata,
						 const OrderTriggerConfig *cfg, bool keys_unchanged,
						 Tuplestorestate **olds, int64 *nolds,
						 Tuplestorestate **news, int64 *nnews)
{
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	OrderChangeColumns columns;

	*olds = *news = NULL;
	if (!order_candidates_usable())
		return false;
	columns.customer = order_column(rel, cfg->source, cfg->customer_column);
	columns.id = order_column(rel, cfg->source, cfg->id_column);
	columns.tenant = (cfg->tenant_column != NULL) ?
		order_column(rel, cfg->source, cfg->tenant_column) : InvalidAttrNumber;
	columns.fixed_tenant = cfg->tenant;
	columns.source = cfg->source;
	if (!order_key_supported_type(TupleDescAttr(desc, columns.customer - 1)->atttypid) ||
		!order_key_supported_type(TupleDescAttr(desc, columns.id - 1)->atttypid) ||
		(columns.tenant != InvalidAttrNumber &&
		 !order_key_supported_type(TupleDescAttr(desc, columns.tenant - 1)->atttypid)))
		return false;
	return order_changes(get_func_namespace(fcinfo->flinfo->fn_oid), rel,
						 trigdata->tg_oldtable,
						 TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtable : NULL,
						 keys_unchanged, &columns, olds, nolds, news, nnews);
}

/*
 * Whether every old row of this UPDATE has the id, customer and tenant of the
 * new row at its place in the transition tables, the same bytes: then no
 * order moved, and the statements are those of an UPDATE that pairs rows by id
 * (cfg->moves false).  A sufficient test, not a necessary one: rows paired
 * otherwise, or a key whose bytes changed and its text did not, are left to
 * the SQL, which compares the text.  Most UPDATEs change neither key, and are
 * spared the moved-order part (and, without a status column, the paid-orders
 * statement).
 */
static bool
order_keys_unchanged(TriggerData *trigdata, const OrderTriggerConfig *cfg)
{
	Relation	rel = trigdata->tg_relation;
	TupleDesc	desc = RelationGetDescr(rel);
	Tuplestorestate *olds = trigdata->tg_oldtable;
	Tuplestorestate *news = trigdata->tg_newtable;
	AttrNumber	atts[3];
	int			natts = 0;
	TupleTableSlot *o;
	TupleTableSlot *n;
	bool		same = true;

	if (tuplestore_tuple_count(olds) != tuplestore_tuple_count(news))
		return false;
	atts[natts++] = order_column(rel, cfg->source, cfg->id_column);
	atts[natts++] = order_column(rel, cfg->source, cfg->customer_column);
	if (cfg->tenant_column != NULL)
		atts[natts++] = order_column(rel, cfg->source, cfg->tenant_column);

	o = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	n = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	/* Read pointers of our own: other readers of the transition tables keep theirs. */
	tuplestore_select_read_pointer(olds, tuplestore_alloc_read_pointer(olds, EXEC_FLAG_REWIND));
	tuplestore_rescan(olds);
	tuplestore_select_read_pointer(news, tuplestore_alloc_read_pointer(news, EXEC_FLAG_REWIND));
	tuplestore_rescan(news);
	while (same && tuplestore_gettupleslot(olds, true, false, o))
	{
		if (!tuplestore_gettupleslot(news, true, false, n))
		{
			same = false;
			break;
		}
		for (int i = 0; i < natts && same; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, atts[i] - 1);
			bool		onull;
			bool		nnull;
			Datum		ovalue = slot_getattr(o, atts[i], &onull);
			Datum		nvalue = slot_getattr(n, atts[i], &nnull);

			same = (onull == nnull &&
					(onull || datumIsEqual(ovalue, nvalue, att->attbyval, att->attlen)));
		}
	}
	tuplestore_select_read_pointer(olds, 0);
	tuplestore_select_read_pointer(news, 0);
	ExecDropSingleTupleTableSlot(o);
	ExecDropSingleTupleTableSlot(n);
	return same;
}

/*
 * Makes `orders` (rows of rel) the transition table `name` the SQL reads, in
 * place of the one registered before, if any (`replace`).
 */
static void
order_register_table(Relation rel, const char *name, Tuplestorestate *orders, int64 count,
					 bool replace)
{
	EphemeralNamedRelation enr = palloc0(sizeof(EphemeralNamedRelationData));
	int			rc;

	if (replace && (rc = SPI_unregister_relation(name)) != SPI_OK_REL_UNREGISTER)
		elog(ERROR, "referral order trigger: SPI_unregister_relation failed: %s",
			 SPI_result_code_string(rc));
	enr->md.name = pstrdup(name);
	enr->md.reliddesc = RelationGetRelid(rel);
	enr->md.tupdesc = NULL;
	enr->md.enrtype = ENR_NAMED_TUPLESTORE;
	enr->md.enrtuples = (double) count;
	enr->reldata = orders;
	if ((rc = SPI_register_relation(enr)) != SPI_OK_REL_REGISTER)
		elog(ERROR, "referral order trigger: SPI_register_relation failed: %s",
			 SPI_result_code_string(rc));
}


/* The user and GUC state to return to after the SQL. */
typedef struct OrderOwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			guc_level;
} OrderOwnerScope;

/*
 * Becomes the trigger function's owner, with search_path = pg_catalog,
 * pg_temp, until order_owner_leave: what fmgr does for a SECURITY DEFINER
 * function with that SET clause.  An error on the way undoes both with the
 * (sub)transaction.
 *
 * JIT is off for the same span.  The statements read transition tables,
 * whose size the planner takes as given and whose rows most filters drop, so
 * a bulk statement's cost estimate passes jit_above_cost while the work is
 * small; JIT code is compiled at every execution, not kept with the plan
 * (a refund of 100k orders compiled for 0.9 s to run for 0.1 s).
 */
static void
order_owner_enter(FunctionCallInfo fcinfo, OrderOwnerScope *scope)
{
	Oid			fn_oid = fcinfo->flinfo->fn_oid;
	HeapTuple	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	Oid			owner;

	if (!HeapTupleIsValid(proc))
		elog(ERROR, "referral order trigger: cache lookup failed for function %u", fn_oid);
	owner = ((Form_pg_proc) GETSTRUCT(proc))->proowner;
	ReleaseSysCache(proc);

	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(owner, scope->save_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	scope->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

static void
order_owner_leave(OrderOwnerScope *scope)
{
	AtEOXact_GUC(true, scope->guc_level);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/*
 * Runs a firing's statements in SPI: the reversals, then the paid orders and
 * their revenue (see referral_order_trigger).  The SQL reads the transition
 * tables, or what the C passes kept of them: candidates (new rows; firsts for
 * the paid-orders statement of a load) and old_candidates (old rows).
 */
static void
order_run_statements(TriggerData *trigdata, const OrderTriggerConfig *cfg, OrderEvent event,
					 int64 nrows, const char *sql_reversed, bool pays, bool batch,
					 Tuplestorestate *candidates, Tuplestorestate *firsts, int64 nfirsts,
					 Tuplestorestate *old_candidates, int64 nold_candidates,
					 OrderStatement paid_stmt, Datum *values, const char *nulls)
{
	int			rc;

	/* The paid-orders statement of a load that converts reads its first orders alone. */
	if (firsts != NULL && paid_stmt != ORDER_STMT_PAID)
		firsts = NULL;
	if (firsts != NULL && nfirsts == 0)
		pays = false;			/* no order can convert, and no referral is converted */

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "referral order trigger: SPI_connect failed: %s",
			 SPI_result_code_string(rc));
	if (candidates != NULL)
		order_register_table(trigdata->tg_relation, ORDER_TRIGGER_NEW_TABLE,
							 firsts != NULL ? firsts : candidates,
							 firsts != NULL ? nfirsts : nrows, false);
	if (old_candidates != NULL)
		order_register_table(trigdata->tg_relation, ORDER_TRIGGER_OLD_TABLE, old_candidates,
							 nold_candidates, false);
	if (candidates == NULL && old_candidates == NULL &&
		(rc = SPI_register_trigger_data(trigdata)) != SPI_OK_TD_REGISTER)
		elog(ERROR, "referral order trigger: SPI_register_trigger_data failed: %s",
			 SPI_result_code_string(rc));

	if (sql_reversed != NULL)
		order_run(ORDER_STMT_REVERSED, sql_reversed, nrows, trigdata->tg_relation,
				  cfg, values, nulls);

	/*
	 * Orders of referees converted before (the common later order): the
	 * revenue statement alone, a plain INSERT ... SELECT whose plan starts up
	 * in a fraction of the paid-orders statement's time, records them.  When it
	 * recorded them all, that is everything the paid-orders statement would
	 * have done; otherwise (recurring_window, a referral reverted since the
	 * probe, an order that does not qualify) that statement runs after it, and
	 * skips the orders recorded now.
	 */
	if (pays && paid_stmt == ORDER_STMT_PAID_CONVERTED &&
		order_run_revenue(event, nrows, trigdata->tg_relation, cfg,
						  values, nulls) == (uint64) nrows)
		pays = false;

	/*
	 * Conversions first; then the revenue, of the referrals they converted and
	 * of those converted before.  The paid-orders SQL is built only here: most
	 * single-row orders of converted referees are done without it.
	 */
	if (pays &&
		order_run(paid_stmt,
				  order_sql_paid(cfg, event, paid_stmt == ORDER_STMT_PAID_CONVERTED, batch),
				  firsts != NULL ? nfirsts : nrows, trigdata->tg_relation, cfg, values, nulls) > 0 &&
		paid_stmt == ORDER_STMT_PAID)
	{
		if (firsts != NULL)
			order_register_table(trigdata->tg_relation, ORDER_TRIGGER_NEW_TABLE, candidates, nrows, true);
		order_run_revenue(event, nrows, trigdata->tg_relation, cfg, values, nulls);
	}

	if ((rc = SPI_finish()) != SPI_OK_FINISH)
		elog(ERROR, "referral order trigger: SPI_finish failed: %s",
			 SPI_result_code_string(rc));
}

/* How track_orders fires the order trigger. */
static const OrderTriggerFiring order_trigger_firing = {
	.name = "referral order trigger",
	.timing = TRIGGER_EVENT_AFTER,
	.timing_text = "AFTER ... FOR EACH STATEMENT",
	.events = (1 << TRIGGER_EVENT_INSERT) | (1 << TRIGGER_EVENT_UPDATE) |
	(1 << TRIGGER_EVENT_DELETE),
	.events_text = "for INSERT, UPDATE or DELETE",
};

/* Attributes the orders of one INSERT, UPDATE or DELETE statement to referrals. */
PG_FUNCTION_INFO_V1(referral_order_trigger);
Datum
referral_order_trigger(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;
	Trigger    *trigger;
	OrderTriggerConfig cfg;
	OrderEvent	event;
	int64		nrows;
	char	   *sql_reversed;
	bool		pays;
	bool		batch;
	Tuplestorestate *volatile candidates = NULL;	/* volatile: read after PG_TRY */
	Tuplestorestate *volatile firsts = NULL;
	int64		nfirsts = 0;
	Tuplestorestate *volatile old_candidates = NULL;
	int64		nold_candidates = 0;
	bool		keys_unchanged = false;
	bool		all_converted = false;
	OrderStatement paid_stmt;
	Datum		values[ORDER_NPARAMS];
	char		nulls[ORDER_NPARAMS];
	OrderOwnerScope owner;
	CitusShardScope shard;

	trigdata = order_trigger_call(fcinfo, &order_trigger_firing, &cfg);
	trigger = trigdata->tg_trigger;
	if (TRIGGER_FIRED_BY_INSERT(trigdata->tg_event))
		event = ORDER_EVENT_INSERT;
	else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		event = ORDER_EVENT_UPDATE;
	else
		event = ORDER_EVENT_DELETE;

	if (event != ORDER_EVENT_DELETE)
		order_check_transition(trigger, trigdata->tg_newtable,
							   trigger->tgnewtable, ORDER_TRIGGER_NEW_TABLE);
	if (event != ORDER_EVENT_INSERT)
		order_check_transition(trigger, trigdata->tg_oldtable,
							   trigger->tgoldtable, ORDER_TRIGGER_OLD_TABLE);

	/* A statement that touched no row has nothing to attribute. */
	nrows = tuplestore_tuple_count(event == ORDER_EVENT_DELETE ?
								   trigdata->tg_oldtable : trigdata->tg_newtable);
	if (nrows == 0)
		return PointerGetDatum(NULL);

	/*
	 * An INSERT passes on only the orders of referred customers (see
	 * order_candidates.c); when there are none, there is nothing to do.
	 */
	if (event == ORDER_EVENT_INSERT)
	{
		Tuplestorestate *first_orders;

		candidates = order_insert_candidates(fcinfo, trigdata, &cfg, &nrows,
											 &all_converted, &first_orders, &nfirsts);
		firsts = first_orders;
		if (candidates != NULL && nrows == 0)
		{
			tuplestore_end(candidates);
			if (firsts != NULL)
				tuplestore_end(firsts);
			return PointerGetDatum(NULL);
		}
	}

	/*
	 * An UPDATE newly pays orders when they have a status, or when they can
	 * move (an order whose id, customer or tenant changed is a new one).
	 */
	keys_unchanged = (event == ORDER_EVENT_UPDATE && order_keys_unchanged(trigdata, &cfg));
	cfg.moves = (event == ORDER_EVENT_UPDATE && !keys_unchanged &&
				 order_moved_function_exists(get_func_namespace(fcinfo->flinfo->fn_oid)));

	/*
	 * An UPDATE or DELETE passes on only the orders that matter (see
	 * order_changes.c); when there are none, there is nothing to do.
	 */
	if (event != ORDER_EVENT_INSERT)
	{
		Tuplestorestate *olds;
		Tuplestorestate *news;
		int64		nnews;

		if (order_changed_candidates(fcinfo, trigdata, &cfg, keys_unchanged,
									 &olds, &nold_candidates, &news, &nnews))
		{
			if (nold_candidates == 0 && nnews == 0)
			{
				if (olds != NULL)
					tuplestore_end(olds);
				if (news != NULL)
					tuplestore_end(news);
				return PointerGetDatum(NULL);
			}
			old_candidates = olds;
			candidates = news;
			nrows = (event == ORDER_EVENT_UPDATE) ? nnews : nold_candidates;
		}
	}
	cfg.offers = (event != ORDER_EVENT_INSERT &&
				  OidIsValid(get_relname_relid(OFFER_USE_TABLE_NAME,
											   get_func_namespace(fcinfo->flinfo->fn_oid))));
	sql_reversed = order_sql_reversed(&cfg, event);
	paid_stmt = (candidates != NULL && all_converted) ?
		ORDER_STMT_PAID_CONVERTED : ORDER_STMT_PAID;
	pays = (event == ORDER_EVENT_INSERT ||
			(event == ORDER_EVENT_UPDATE && (cfg.status_column != NULL || cfg.moves)));
	batch = pays && paid_stmt == ORDER_STMT_PAID &&
		order_batch_function_exists(get_func_namespace(fcinfo->flinfo->fn_oid));

	values[0] = CStringGetTextDatum(cfg.tenant);
	nulls[0] = ' ';
	values[1] = CStringGetTextDatum(cfg.source);
	nulls[1] = ' ';
	if (cfg.status_column != NULL)
	{
		values[2] = order_paid_statuses(cfg.paid_statuses);
		values[3] = order_reversed_statuses(cfg.reversed_statuses);
		nulls[2] = nulls[3] = ' ';
	}
	else
	{
		values[2] = values[3] = (Datum) 0;
		nulls[2] = nulls[3] = 'n';
	}

	order_check_column_types(trigdata->tg_relation, &cfg);
	order_plan_cache_trim();
	/* On a shard of a Citus table: the co-located shards (citus_compat.c). */
	citus_shard_scope_begin(trigdata->tg_relation, &shard);
	order_owner_enter(fcinfo, &owner);
	order_firing_enter();
	PG_TRY();
	{
		order_run_statements(trigdata, &cfg, event, nrows, sql_reversed, pays, batch,
							 candidates, firsts, nfirsts, old_candidates, nold_candidates,
							 paid_stmt, values, nulls);
	}
	PG_FINALLY();
	{
		order_firing_leave();
		citus_shard_scope_end(&shard);
	}
	PG_END_TRY();
	order_owner_leave(&owner);
	if (candidates != NULL)
		tuplestore_end(candidates);
	if (firsts != NULL)
		tuplestore_end(firsts);
	if (old_candidates != NULL)
		tuplestore_end(old_candidates);

	return PointerGetDatum(NULL);
}


