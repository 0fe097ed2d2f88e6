/*
 * citus_compat.c
 *		Citus, seen from referral's C code through the catalog and SQL only:
 *		the module neither links against Citus nor needs it.
 *
 *		Citus fires the order triggers of a distributed orders table once per
 *		shard, on the node that holds the shard.  referral.distribute() puts
 *		referral's tables in the orders table's co-location group (the
 *		configuration tables are reference tables, with a copy on every node),
 *		so the co-located shards on that node hold every referral, reward and
 *		chain of the tenants whose orders the trigger sees.  While such a
 *		trigger runs, a parse-analysis hook makes the queries of this backend
 *		name those shards instead of the distributed tables: the trigger's SQL,
 *		and the SQL functions it calls, then run as they do on one node, as
 *		plain local statements (Citus would refuse most of them from a shard:
 *		joins with the transition tables, row locks by referral id).  Plans
 *		made inside the scope name one shard's tables, plans made outside it
 *		the distributed tables: the plan cache is reset when the scope begins
 *		and ends.
 *
 *		The coordinator's own copies of referral's tables stay empty once they
 *		are distributed: readers that scan the heap there (upline, downline)
 *		run a query instead (citus_materialize_query).
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/makefuncs.h"
#include "parser/analyze.h"
#include "parser/parsetree.h"
#include "rewrite/rewriteHandler.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/rel.h"

#include "citus_compat.h"
#include "referral_names.h"

/* A Citus table of referral and its shard co-located with the trigger's. */
typedef struct ShardRedirect
{
	Oid			table;
	Oid			shard;
} ShardRedirect;

static ShardRedirect *Redirects = NULL;	/* in TopMemoryContext */
static int	RedirectCount = 0;
static int	ScopeDepth = 0;
static bool HooksInstalled = false;
static post_parse_analyze_hook_type PreviousPostParseAnalyze = NULL;

bool
citus_present(void)
{
	/*
	 * Citus works only preloaded (shared_preload_libraries, fixed while the
	 * server runs): without it there, no catalog look-up is needed.
	 */
	static int	citus_preloaded = -1;

	if (citus_preloaded < 0)
	{
		const char *preload = GetConfigOption("shared_preload_libraries", true, false);

		citus_preloaded = (preload != NULL && strstr(preload, "citus") != NULL) ? 1 : 0;
	}
	return citus_preloaded == 1 && OidIsValid(get_extension_oid("citus", true));
}

/*
 * Connects to SPI and runs the read-only SELECT `sql` for at most `count` rows
 * (0: all); `what` names it in the error.  The caller reads SPI_tuptable and
 * calls SPI_finish().
 */
static void
spi_select(const char *sql, int nargs, Oid *argtypes, Datum *values,
		   const char *nulls, long count, const char *what)
{
	int			rc;

	if ((rc = SPI_connect()) != SPI_OK_CONNECT)
		elog(ERROR, "referral: SPI_connect failed: %s", SPI_result_code_string(rc));
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, true, count);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "referral: %s failed: %s", what, SPI_result_code_string(rc));
}

/* Runs a query of one boolean result through SPI. */
static bool
spi_bool(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	bool		result = false;
	bool		isnull;

	spi_select(sql, nargs, argtypes, values, NULL, 1, "Citus catalog query");
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		result = !isnull && DatumGetBool(d);
	}
	SPI_finish();
	return result;
}

bool
citus_is_citus_table(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1] = {ObjectIdGetDatum(relid)};

	if (!citus_present())
		return false;
	return spi_bool("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition p"
					" WHERE p.logicalrelid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass)",
					1, argtypes, values);
}

static Oid
redirect_relation(Oid relid)
{
	for (int i = 0; i < RedirectCount; i++)
		if (Redirects[i].table == relid)
			return Redirects[i].shard;
	return relid;
}

/*
 * Citus keeps no sequence defaults on shards (ids are drawn where the row is
 * routed from): an INSERT into a shard gets the distributed table's defaults
 * of the columns it leaves out, which the rewriter would take from the shard.
 */
static void
add_table_defaults(Query *query, Oid table, Oid shard)
{
	Relation	logical = table_open(table, NoLock);	/* locked by the parser */
	Relation	physical = table_open(shard, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(logical);

	for (int attno = 1; attno <= desc->natts; attno++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, attno - 1);
		bool		given = false;
		ListCell   *lc;
		Node	   *def;

		if (att->attisdropped || !att->atthasdef || att->attgenerated ||
			TupleDescAttr(RelationGetDescr(physical), attno - 1)->atthasdef)
			continue;
		foreach(lc, query->targetList)
			given |= (lfirst_node(TargetEntry, lc)->resno == attno);
		if (given || (def = build_column_default(logical, attno)) == NULL)
			continue;
		query->targetList = lappend(query->targetList,
									makeTargetEntry((Expr *) def, attno,
													pstrdup(NameStr(att->attname)), false));
	}
	table_close(physical, NoLock);
	table_close(logical, NoLock);
}

static bool
redirect_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Query))
	{
		Query	   *query = (Query *) node;

		if (query->commandType == CMD_INSERT && query->resultRelation > 0)
		{
			RangeTblEntry *target = rt_fetch(query->resultRelation, query->rtable);
			Oid			shard = redirect_relation(target->relid);

			if (shard != target->relid)
				add_table_defaults(query, target->relid, shard);
		}

#if PG_VERSION_NUM >= 160000
		ListCell   *lc;

		foreach(lc, query->rteperminfos)
		{
			RTEPermissionInfo *perm = lfirst_node(RTEPermissionInfo, lc);

			perm->relid = redirect_relation(perm->relid);
		}
#endif
		return query_tree_walker(query, redirect_walker, context, QTW_EXAMINE_RTES_BEFORE);
	}
	if (IsA(node, RangeTblEntry))
	{
		RangeTblEntry *rte = (RangeTblEntry *) node;

		if (rte->rtekind == RTE_RELATION)
			rte->relid = redirect_relation(rte->relid);
		return false;
	}
	return expression_tree_walker(node, redirect_walker, context);
}

/*
 * A worker's part of a distributed transaction is prepared (two-phase commit),
 * which a transaction that sent NOTIFY cannot be: on a shard, pg_notify() is
 * a void constant (the event is in referral.event), a value that count()
 * still counts.
 */
static Node *
notify_mutator(Node *node, void *context)
{
	if (node == NULL)
		return NULL;
	if (IsA(node, FuncExpr) && ((FuncExpr *) node)->funcid == F_PG_NOTIFY)
		return (Node *) makeConst(VOIDOID, -1, InvalidOid, sizeof(int32), (Datum) 0, false, true);
	if (IsA(node, Query))
		return (Node *) query_tree_mutator((Query *) node, notify_mutator, context, 0);
	return expression_tree_mutator(node, notify_mutator, context);
}

static void
redirect_query(ParseState *pstate, Query *query)
{
	if (ScopeDepth == 0 || RedirectCount == 0)
		return;
	redirect_walker((Node *) query, NULL);
	if (pstate->p_sourcetext != NULL && strstr(pstate->p_sourcetext, "pg_notify") != NULL)
	{
		Query	   *copy = (Query *) notify_mutator((Node *) query, NULL);

		memcpy(query, copy, sizeof(Query));
	}
}

#if PG_VERSION_NUM >= 140000
static void
redirect_post_parse_analyze(ParseState *pstate, Query *query, JumbleState *jstate)
{
	if (PreviousPostParseAnalyze)
		PreviousPostParseAnalyze(pstate, query, jstate);
	redirect_query(pstate, query);
}
#else
static void
redirect_post_parse_analyze(ParseState *pstate, Query *query)
{
	if (PreviousPostParseAnalyze)
		PreviousPostParseAnalyze(pstate, query);
	redirect_query(pstate, query);
}
#endif

/* An error that escaped the scope (or a rollback) ends it. */
static void
scope_reset(void)
{
	if (ScopeDepth == 0 && RedirectCount == 0)
		return;
	ScopeDepth = 0;
	RedirectCount = 0;
	ResetPlanCache();
}

static void
scope_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		scope_reset();
}

static void
install_hooks(void)
{
	if (HooksInstalled)
		return;
	PreviousPostParseAnalyze = post_parse_analyze_hook;
	post_parse_analyze_hook = redirect_post_parse_analyze;
	RegisterXactCallback(scope_xact_callback, NULL);
	HooksInstalled = true;
}

/*
 * Queries parsed against a table run on its shard: the shard must have the
 * table's columns at the same attribute numbers (it does, unless a column was
 * dropped from the table before it was distributed).
 */
static void
same_columns(Oid table, Oid shard)
{
	Relation	a = table_open(table, AccessShareLock);
	Relation	b = table_open(shard, AccessShareLock);
	TupleDesc	da = RelationGetDescr(a);
	TupleDesc	db = RelationGetDescr(b);
	bool		same = (da->natts == db->natts);

	for (int i = 0; same && i < da->natts; i++)
		same = (TupleDescAttr(da, i)->atttypid == TupleDescAttr(db, i)->atttypid &&
				TupleDescAttr(da, i)->attisdropped == TupleDescAttr(db, i)->attisdropped &&
				strcmp(NameStr(TupleDescAttr(da, i)->attname), NameStr(TupleDescAttr(db, i)->attname)) == 0);
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("referral: shard %s does not have the columns of %s at the same positions",
						RelationGetRelationName(b), RelationGetRelationName(a))));
	table_close(b, AccessShareLock);
	table_close(a, AccessShareLock);
}

/* Whether a relation's name ends in _<digits>, as a Citus shard's does. */
static bool
name_may_be_shard(Relation rel)
{
	const char *name = RelationGetRelationName(rel);
	const char *underscore = strrchr(name, '_');

	if (underscore == NULL || underscore[1] == '\0')
		return false;
	for (const char *p = underscore + 1; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

void
citus_shard_scope_begin(Relation rel, CitusShardScope *scope)
{
	Oid			argtypes[2] = {OIDOID, OIDOID};
	Datum		values[2];
	Oid			schema;
	Oid			referral_table;
	bool		found_referral = false;

	scope->entered = false;
	if (ScopeDepth > 0)
	{
		/* A trigger fired by the trigger's own statements: the same node. */
		ScopeDepth++;
		scope->entered = true;
		return;
	}
	if (!name_may_be_shard(rel) || !citus_present())
		return;

	schema = get_namespace_oid(REFERRAL_SCHEMA_NAME, true);
	referral_table = OidIsValid(schema) ? get_relname_relid(REFERRAL_TABLE_NAME, schema) : InvalidOid;
	values[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	values[1] = ObjectIdGetDatum(schema);

	/*
	 * The shard's own row (none: rel is not a shard), then, for every Citus
	 * table of referral, its shard with the same hash range in the same
	 * co-location group, or a reference table's only shard.
	 */
	spi_select("SELECT t.logicalrelid::pg_catalog.oid,"
			   " pg_catalog.to_regclass(pg_catalog.shard_name(t.logicalrelid, ts.shardid))::pg_catalog.oid"
			   " FROM pg_catalog.pg_dist_shard s"
			   " JOIN pg_catalog.pg_dist_partition o ON o.logicalrelid = s.logicalrelid"
			   " LEFT JOIN (pg_catalog.pg_dist_partition t"
			   "   JOIN pg_catalog.pg_class c ON c.oid = t.logicalrelid AND c.relnamespace = $2"
			   "   JOIN pg_catalog.pg_dist_shard ts ON ts.logicalrelid = t.logicalrelid)"
			   " ON (t.partmethod = 'n' AND t.repmodel = 't')"
			   " OR (t.colocationid = o.colocationid AND t.partmethod = 'h'"
			   "     AND ts.shardminvalue = s.shardminvalue)"
			   " WHERE pg_catalog.to_regclass(pg_catalog.shard_name(s.logicalrelid, s.shardid))"
			   "       OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
			   2, argtypes, values, NULL, 0, "Citus shard query");
	if (SPI_processed == 0)
	{
		SPI_finish();
		return;					/* not a shard */
	}

	install_hooks();
	if (Redirects == NULL)
		Redirects = MemoryContextAlloc(TopMemoryContext, 64 * sizeof(ShardRedirect));
	RedirectCount = 0;
	for (uint64 i = 0; i < SPI_processed && RedirectCount < 64; i++)
	{
		bool		null_table;
		bool		null_shard;
		Datum		table = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &null_table);
		Datum		shard = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &null_shard);

		if (null_table)
			continue;
		if (null_shard)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("referral: the shard of %s co-located with %s is not on this node",
							get_rel_name(DatumGetObjectId(table)), RelationGetRelationName(rel))));
		same_columns(DatumGetObjectId(table), DatumGetObjectId(shard));
		Redirects[RedirectCount].table = DatumGetObjectId(table);
		Redirects[RedirectCount].shard = DatumGetObjectId(shard);
		found_referral |= (Redirects[RedirectCount].table == referral_table);
		RedirectCount++;
	}
	SPI_finish();

	if (!found_referral)
	{
		RedirectCount = 0;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("referral: orders of %s cannot be attributed on its shards: referral's tables are not distributed with it",
						RelationGetRelationName(rel)),
				 errhint("Run SELECT referral.distribute('orders table') on the coordinator.")));
	}
	ScopeDepth = 1;
	scope->entered = true;
	ResetPlanCache();
}

void
citus_shard_scope_end(CitusShardScope *scope)
{
	if (!scope->entered)
		return;
	scope->entered = false;
	if (--ScopeDepth > 0)
		return;
	RedirectCount = 0;
	ResetPlanCache();
}

void
citus_materialize_query(FunctionCallInfo fcinfo, const char *sql, int nargs,
						Oid *argtypes, Datum *values, const char *nulls)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext outer = CurrentMemoryContext;

	spi_select(sql, nargs, argtypes, values, nulls, 0, "query");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext spi = MemoryContextSwitchTo(outer);
		Datum	   *row = palloc(rsinfo->setDesc->natts * sizeof(Datum));
		bool	   *isnull = palloc(rsinfo->setDesc->natts * sizeof(bool));

		for (int a = 0; a < rsinfo->setDesc->natts; a++)
			row[a] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, a + 1, &isnull[a]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, isnull);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
}
