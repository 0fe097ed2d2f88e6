/*
 * citus_compat.h
 *		What referral's C code needs to know about Citus, found through the
 *		catalog (no link-time dependency on Citus).  See citus_compat.c.
 */
#ifndef REFERRAL_CITUS_COMPAT_H
#define REFERRAL_CITUS_COMPAT_H

#include "postgres.h"

#include "fmgr.h"
#include "utils/relcache.h"

/* Whether Citus is loaded in this server and installed in this database. */
extern bool citus_present(void);

/* Whether relid is a Citus table (distributed or reference); false without Citus. */
extern bool citus_is_citus_table(Oid relid);

/*
 * A trigger firing on a shard of a Citus table: from citus_shard_scope_begin
 * to citus_shard_scope_end, the queries this backend parses read and write
 * referral's Citus tables as their shards co-located with `rel` on this node.
 * Does nothing when `rel` is not a shard.  Raises an error when it is one and
 * referral's tables are not distributed with it (its orders would be
 * attributed to nothing).
 */
typedef struct CitusShardScope
{
	bool		entered;
} CitusShardScope;

extern void citus_shard_scope_begin(Relation rel, CitusShardScope *scope);
extern void citus_shard_scope_end(CitusShardScope *scope);

/*
 * The rows of `sql` (its parameters as SPI takes them) into the materialised
 * result that fcinfo's caller set up: for readers of referral's tables that
 * scan the local heap, which on a Citus coordinator holds none of the rows.
 */
extern void citus_materialize_query(FunctionCallInfo fcinfo, const char *sql, int nargs,
									Oid *argtypes, Datum *values, const char *nulls);

#endif							/* REFERRAL_CITUS_COMPAT_H */
