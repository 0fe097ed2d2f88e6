/*
 * order_config.c
 *		The order trigger's arguments and the columns they name, and the
 *		checks of how the trigger manager called the functions that take them
 *		(the order trigger and the truncate trigger).  The trigger's whole
 *		configuration is in its arguments (Citus fires a distributed table's
 *		triggers per shard, with the shard's OID and name), so nothing is
 *		looked up by the table's OID or name.
 */
#include "postgres.h"

#include "catalog/pg_cast.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "order_config.h"
#include "order_trigger.h"

/* An optional column argument: NULL for "". */
static const char *
order_optional(const char *arg)
{
	return (arg[0] == '\0') ? NULL : arg;
}

/* Raises the trigger protocol error of a trigger that is not fired as it must be. */
static void
order_trigger_misfired(const OrderTriggerFiring *firing, Trigger *trigger,
					   const char *how)
{
	ereport(ERROR,
			(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
			 errmsg("%s \"%s\" must be fired %s", firing->name, trigger->tgname, how),
			 errhint(ORDER_TRIGGER_HINT)));
}

/* Reads and checks the trigger's arguments. */
static void
order_config(const OrderTriggerFiring *firing, Trigger *trigger,
			 OrderTriggerConfig *cfg)
{
	char	  **args = trigger->tgargs;

	if (trigger->tgnargs != ORDER_TRIGGER_NARGS)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s \"%s\" takes %d arguments, got %d", firing->name,
						trigger->tgname, ORDER_TRIGGER_NARGS, trigger->tgnargs),
				 errhint(ORDER_TRIGGER_HINT)));
	cfg->tenant = args[0];
	cfg->source = args[1];
	cfg->customer_column = args[2];
	cfg->amount_column = args[3];
	cfg->id_column = args[4];
	cfg->status_column = order_optional(args[5]);
	cfg->paid_statuses = args[6];
	cfg->reversed_statuses = args[7];
	cfg->ordered_at_column = order_optional(args[8]);
	cfg->tenant_column = order_optional(args[9]);
	cfg->moves = false;
	cfg->offers = false;

	if (cfg->customer_column[0] == '\0' || cfg->amount_column[0] == '\0' ||
		cfg->id_column[0] == '\0' ||
		(cfg->tenant[0] == '\0') == (cfg->tenant_column == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s \"%s\" has invalid arguments", firing->name,
						trigger->tgname),
				 errdetail("The customer, amount and id columns must be named, and exactly one of a tenant and a tenant column."),
				 errhint(ORDER_TRIGGER_HINT)));
}

/*
 * The TriggerData of a call by the trigger manager, fired as `firing` says,
 * with the trigger's arguments read and checked into cfg.
 */
TriggerData *
order_trigger_call(FunctionCallInfo fcinfo, const OrderTriggerFiring *firing,
				   OrderTriggerConfig *cfg)
{
	TriggerData *trigdata;
	TriggerEvent fired;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s was not called by the trigger manager", firing->name)));
	trigdata = (TriggerData *) fcinfo->context;
	fired = trigdata->tg_event;

	if ((fired & TRIGGER_EVENT_TIMINGMASK) != firing->timing ||
		!TRIGGER_FIRED_FOR_STATEMENT(fired))
		order_trigger_misfired(firing, trigdata->tg_trigger, firing->timing_text);
	if ((firing->events & (1 << (fired & TRIGGER_EVENT_OPMASK))) == 0)
		order_trigger_misfired(firing, trigdata->tg_trigger, firing->events_text);

	order_config(firing, trigdata->tg_trigger, cfg);
	return trigdata;
}


/* The attribute number of a column the trigger reads; an error naming it if it is gone. */
AttrNumber
order_column(Relation rel, const char *source, const char *column)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), column);

	if (attnum <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of table \"%s\" tracked by referral does not exist",
						column, RelationGetRelationName(rel)),
				 errdetail("The referral order trigger of %s reads this column.", source),
				 errhint("Call referral.untrack_orders() and referral.track_orders() again with the table's current column names.")));
	return (AttrNumber) attnum;
}


/*
 * Refuses a column whose type is the user's own, unless it is an enum without a
 * cast to text: the SQL, run as the owner, casts the columns (::text, ::numeric,
 * ::timestamptz), and a cast of a type the user owns would run the user's
 * function with the owner's rights.  track_orders allows only built-in types and
 * enums, but a column's type can be changed afterwards (ALTER TABLE).
 */
static void
order_check_column_type(Relation rel, const OrderTriggerConfig *cfg, const char *column)
{
	Oid			type;

	if (column == NULL)
		return;
	type = getBaseType(TupleDescAttr(RelationGetDescr(rel),
									 order_column(rel, cfg->source, column) - 1)->atttypid);
	if (type < FirstNormalObjectId ||
		(type_is_enum(type) &&
		 !SearchSysCacheExists2(CASTSOURCETARGET, ObjectIdGetDatum(type),
								ObjectIdGetDatum(TEXTOID))))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of table \"%s\" tracked by referral has type %s, which the order trigger does not read",
					column, RelationGetRelationName(rel), format_type_be(type)),
			 errdetail("The referral order trigger of %s reads built-in types and enums without casts of their own.",
					   cfg->source),
			 errhint("Change the column back to a type that referral.track_orders() accepts.")));
}

void
order_check_column_types(Relation rel, const OrderTriggerConfig *cfg)
{
	order_check_column_type(rel, cfg, cfg->customer_column);
	order_check_column_type(rel, cfg, cfg->amount_column);
	order_check_column_type(rel, cfg, cfg->id_column);
	order_check_column_type(rel, cfg, cfg->status_column);
	order_check_column_type(rel, cfg, cfg->ordered_at_column);
	order_check_column_type(rel, cfg, cfg->tenant_column);
}
