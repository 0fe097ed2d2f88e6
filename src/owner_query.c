/*
 * owner_query.c
 *		referral._query_as_owner(relid, query): runs a read-only query over a
 *		shop's table with the rights of that table's owner, and returns its
 *		rows.
 *
 *		Reading a user's table evaluates code its owner may have written:
 *		casts and output functions of the column types, domain checks,
 *		operators, and even index expressions and predicates, which the
 *		planner folds.  A SECURITY DEFINER function of the extension must not
 *		run that code with the extension owner's rights, so it reads such a
 *		table through this function, which switches to the table's owner in
 *		a security-restricted operation, as VACUUM, ANALYZE and REFRESH
 *		MATERIALIZED VIEW do.  The caller builds the query (identifiers
 *		quoted) and gets back rows of built-in types only, which it then
 *		compares as itself.
 *
 *		Not for PUBLIC: the query is the caller's, so EXECUTE decides who may
 *		run it, and only the extension's own functions do.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_class.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"

#include "owner_query.h"

Oid
relation_owner(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tuple))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	owner = ((Form_pg_class) GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	return owner;
}

void
owner_scope_enter(Oid relid, OwnerScope *scope)
{
	GetUserIdAndSecContext(&scope->save_userid, &scope->save_sec_context);
	SetUserIdAndSecContext(relation_owner(relid),
						   scope->save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	/* The owner's code sees a pinned search_path, not the caller's. */
	scope->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

void
owner_scope_leave(OwnerScope *scope)
{
	AtEOXact_GUC(false, scope->guc_level);
	SetUserIdAndSecContext(scope->save_userid, scope->save_sec_context);
}

/* Errors unless the query's columns have the types the caller declared. */
static void
check_columns(TupleDesc actual, TupleDesc expected)
{
	int			i;

	if (actual->natts != expected->natts)
		elog(ERROR, "referral._query_as_owner: the query returns %d columns, the caller expects %d",
			 actual->natts, expected->natts);
	for (i = 0; i < expected->natts; i++)
		if (TupleDescAttr(actual, i)->atttypid != TupleDescAttr(expected, i)->atttypid)
			elog(ERROR, "referral._query_as_owner: column %d of the query has type %s, the caller expects %s",
				 i + 1, format_type_be(TupleDescAttr(actual, i)->atttypid),
				 format_type_be(TupleDescAttr(expected, i)->atttypid));
}

PG_FUNCTION_INFO_V1(referral_query_as_owner);

/*
 * referral._query_as_owner(relid regclass, query text) RETURNS SETOF record.
 * The caller's column definition list must match the query's columns by type.
 * An error inside leaves the user switched only until the (sub)transaction
 * aborts, which restores it.
 */
Datum
referral_query_as_owner(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			relid = PG_GETARG_OID(0);
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	TupleDesc	expected;
	Tuplestorestate *rows;
	MemoryContext per_query;
	MemoryContext outer;
	OwnerScope	scope;
	SPIPlanPtr	plan;
	Portal		portal;
	uint64		i;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		(rsinfo->allowedModes & SFRM_Materialize) == 0 || rsinfo->expectedDesc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("referral._query_as_owner must be called in FROM with a column definition list")));

	per_query = rsinfo->econtext->ecxt_per_query_memory;
	outer = MemoryContextSwitchTo(per_query);
	expected = CreateTupleDescCopy(rsinfo->expectedDesc);
	rows = tuplestore_begin_heap(true, false, work_mem);
	MemoryContextSwitchTo(outer);

	owner_scope_enter(relid, &scope);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "referral._query_as_owner: SPI_connect failed");
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "referral._query_as_owner: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (!SPI_is_cursor_plan(plan))
		elog(ERROR, "referral._query_as_owner: the query is not a SELECT");
	/* Batches, so that a large table spills to disk in the tuplestore, not in SPI. */
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	check_columns(portal->tupDesc, expected);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		outer = MemoryContextSwitchTo(per_query);
		for (i = 0; i < SPI_processed; i++)
			tuplestore_puttuple(rows, SPI_tuptable->vals[i]);
		MemoryContextSwitchTo(outer);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	owner_scope_leave(&scope);

	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = rows;
	rsinfo->setDesc = expected;
	return (Datum) 0;
}
