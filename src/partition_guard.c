/*
 * partition_guard.c
 *		referral._partition_guard, the ddl_command_start event trigger (on DROP
 *		TABLE and ALTER TABLE) that refuses to detach or drop a partition of a
 *		tracked orders table while it holds rows: its orders would leave the
 *		table without a DELETE, and their rewards would stay.  A partition
 *		counts as tracked while it has the order triggers (track_orders puts
 *		them on every partition; untrack_orders on a partition removes them).
 *
 *		It reads the parse tree, which only C can, and costs a catalog look-up
 *		or two for a command that touches no partition.  The rows are looked
 *		for by a scan in C (no code of the table's owner runs), under the locks
 *		the command itself takes next, in its order (the parent, then the
 *		partition), so that no order can arrive between the check and the
 *		command.  It runs as the user who issued the command and locks nothing
 *		that user does not own.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "commands/event_trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "partition_guard.h"
#include "referral_names.h"

/* Whether the role owns the relation (the check moved in PG 16). */
static bool
guard_owns(Oid relid)
{
#if PG_VERSION_NUM >= 160000
	return object_ownercheck(RelationRelationId, relid, GetUserId());
#else
	return pg_class_ownercheck(relid, GetUserId());
#endif
}

/* The parent of a partition, also one being detached concurrently. */
static Oid
guard_parent(Oid relid)
{
#if PG_VERSION_NUM >= 140000
	return get_partition_parent(relid, true);
#else
	return get_partition_parent(relid);
#endif
}

/* Whether the relation has a trigger calling the given function. */
static bool
guard_has_trigger(Oid relid, Oid funcid)
{
	Relation	tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	bool		found = false;

	ScanKeyInit(&key, Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(tgrel, TriggerRelidNameIndexId, true, NULL, 1, &key);
	while (!found && HeapTupleIsValid(tuple = systable_getnext(scan)))
		found = ((Form_pg_trigger) GETSTRUCT(tuple))->tgfoid == funcid;
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return found;
}

/* Whether the table or any partition under it holds a row. */
static bool
guard_has_rows(Oid relid)
{
	List	   *rels = find_all_inheritors(relid, AccessShareLock, NULL);
	ListCell   *cell;
	bool		found = false;

	foreach(cell, rels)
	{
		Relation	rel;
		Snapshot	snapshot;
		TableScanDesc scan;
		TupleTableSlot *slot;

		if (get_rel_relkind(lfirst_oid(cell)) != RELKIND_RELATION)
			continue;
		rel = table_open(lfirst_oid(cell), NoLock);
		snapshot = RegisterSnapshot(GetLatestSnapshot());
		scan = table_beginscan(rel, snapshot, 0, NULL);
		slot = table_slot_create(rel, NULL);
		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
		UnregisterSnapshot(snapshot);
		table_close(rel, NoLock);
		if (found)
			break;
	}
	return found;
}

/* A relation's qualified name, quoted as SQL needs it. */
static char *
guard_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * Refuses to drop or detach (verb) relid when it is a partition of a tracked
 * table that holds rows.  lockmode: what the command takes on the parent and
 * the partition.  The caller has checked that the user owns the table the
 * command names.
 */
static void
guard_check(Oid relid, Oid order_trigger, const char *verb, LOCKMODE lockmode)
{
	Oid			parent;
	Oid			tracked = InvalidOid;
	List	   *ancestors;
	ListCell   *cell;
	char	   *partition;

	if (!OidIsValid(relid) || !get_rel_relispartition(relid))
		return;
	parent = guard_parent(relid);
	if (!OidIsValid(parent) ||
		!guard_has_trigger(relid, order_trigger) ||
		!guard_has_trigger(parent, order_trigger))
		return;

	LockRelationOid(parent, lockmode);
	LockRelationOid(relid, lockmode);
	if (!guard_has_rows(relid))
		return;

	/* The tracked table: the topmost ancestor with the order triggers. */
	ancestors = get_partition_ancestors(relid);
	foreach(cell, ancestors)
	{
		if (guard_has_trigger(lfirst_oid(cell), order_trigger))
			tracked = lfirst_oid(cell);
	}
	partition = guard_name(relid);
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_IN_USE),
			 errmsg("cannot %s partition %s of table %s tracked by referral: it holds orders",
					verb, partition, guard_name(tracked)),
			 errdetail("Its orders would leave the tracked table without reversing their rewards."),
			 errhint("DELETE its orders first to reverse their rewards, or call referral.untrack_orders(%s) to keep the rewards and stop checking them.",
					 quote_literal_cstr(partition))));
}

/* The OID of a table named in the command, if it exists. */
static Oid
guard_lookup(RangeVar *name)
{
	return RangeVarGetRelid(name, NoLock, true);
}

/* The function of the order triggers, in the schema of this event trigger's function. */
static Oid
guard_order_trigger(FunctionCallInfo fcinfo)
{
	char	   *schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));

	return LookupFuncName(list_make2(makeString(schema), makeString(ORDER_TRIGGER_FUNCTION_NAME)),
						  0, NULL, true);
}

/* Checks every table of a DROP TABLE that the user owns. */
static void
guard_drop(FunctionCallInfo fcinfo, DropStmt *stmt)
{
	Oid			order_trigger = InvalidOid;
	ListCell   *cell;

	foreach(cell, stmt->objects)
	{
		Oid			relid = guard_lookup(makeRangeVarFromNameList((List *) lfirst(cell)));

		if (!OidIsValid(relid) || !get_rel_relispartition(relid) || !guard_owns(relid))
			continue;
		if (!OidIsValid(order_trigger) &&
			!OidIsValid(order_trigger = guard_order_trigger(fcinfo)))
			return;
		guard_check(relid, order_trigger, "drop", AccessExclusiveLock);
	}
}

/* Checks every DETACH PARTITION of an ALTER TABLE of a table the user owns. */
static void
guard_detach(FunctionCallInfo fcinfo, AlterTableStmt *stmt)
{
	Oid			order_trigger = InvalidOid;
	ListCell   *cell;

	foreach(cell, stmt->cmds)
	{
		AlterTableCmd *cmd = (AlterTableCmd *) lfirst(cell);
		PartitionCmd *part;
		LOCKMODE	lockmode = AccessExclusiveLock;

#if PG_VERSION_NUM >= 140000
		if (cmd->subtype == AT_DetachPartitionFinalize)
			lockmode = ShareUpdateExclusiveLock;
		else if (cmd->subtype != AT_DetachPartition)
			continue;
		part = (PartitionCmd *) cmd->def;
		if (part->concurrent)
			lockmode = ShareUpdateExclusiveLock;
#else
		if (cmd->subtype != AT_DetachPartition)
			continue;
		part = (PartitionCmd *) cmd->def;
#endif
		if (!OidIsValid(order_trigger))
		{
			Oid			target = guard_lookup(stmt->relation);

			/* Do not lock what the command will refuse. */
			if (!OidIsValid(target) || !guard_owns(target) ||
				!OidIsValid(order_trigger = guard_order_trigger(fcinfo)))
				return;
		}
		guard_check(guard_lookup(part->name), order_trigger, "detach", lockmode);
	}
}

/* Refuses DROP TABLE or ALTER TABLE ... DETACH PARTITION of a tracked partition with rows. */
PG_FUNCTION_INFO_V1(referral_partition_guard);
Datum
referral_partition_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *tree;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("referral partition guard was not called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	tree = trigdata->parsetree;
	if (IsA(tree, DropStmt) && ((DropStmt *) tree)->removeType == OBJECT_TABLE)
		guard_drop(fcinfo, (DropStmt *) tree);
	else if (IsA(tree, AlterTableStmt))
		guard_detach(fcinfo, (AlterTableStmt *) tree);
	PG_RETURN_VOID();
}
