/*
 * order_config.h
 *		The order trigger's configuration: its arguments, as
 *		referral.track_orders passes them, and the columns of the orders table
 *		they name.  See order_config.c.
 */
#ifndef REFERRAL_ORDER_CONFIG_H
#define REFERRAL_ORDER_CONFIG_H

#include "postgres.h"

#include "commands/trigger.h"
#include "utils/relcache.h"

/* Number of SPI parameters of every statement: tenant, source, paid, reversed. */
#define ORDER_NPARAMS	4

/* Fewer orders than this make a small statement (a plan of its own, no sort). */
#define ORDER_SMALL_STATEMENT	100

/* This many orders or more make a bulk statement (a plan of its own). */
#define ORDER_BULK_STATEMENT	10000

/* The event a firing is for. */
typedef enum OrderEvent
{
	ORDER_EVENT_INSERT = 'I',
	ORDER_EVENT_UPDATE = 'U',
	ORDER_EVENT_DELETE = 'D'
} OrderEvent;

/* The trigger's arguments, as referral.track_orders passes them. */
typedef struct OrderTriggerConfig
{
	const char *tenant;			/* fixed tenant; "" with a tenant column */
	const char *source;			/* label of the orders table in rewards */
	const char *customer_column;
	const char *amount_column;
	const char *id_column;
	const char *status_column;	/* NULL: every inserted order is paid */
	const char *paid_statuses;	/* text[] literal */
	const char *reversed_statuses;	/* text[] literal */
	const char *ordered_at_column;	/* NULL: the transaction time */
	const char *tenant_column;	/* NULL: the fixed tenant */
	bool		moves;			/* UPDATE: an order may have changed id, customer
								 * or tenant (referral._orders_moved, 0.3 on) */
	bool		offers;			/* UPDATE, DELETE: reversed orders that used a
								 * referee offer count too (0.3 on) */
} OrderTriggerConfig;


/*
 * How a trigger function that takes the order triggers' arguments must be
 * fired: always FOR EACH STATEMENT, at one timing, for some events.
 */
typedef struct OrderTriggerFiring
{
	const char *name;			/* in messages: "referral order trigger" */
	TriggerEvent timing;		/* TRIGGER_EVENT_BEFORE or TRIGGER_EVENT_AFTER */
	const char *timing_text;	/* in messages: "AFTER ... FOR EACH STATEMENT" */
	uint32		events;			/* bits 1 << TRIGGER_EVENT_INSERT, ... */
	const char *events_text;	/* in messages: "for INSERT, UPDATE or DELETE" */
} OrderTriggerFiring;

/*
 * The TriggerData of a call by the trigger manager, fired as `firing` says,
 * with the trigger's arguments read and checked into cfg (which keeps
 * pointers into them); a trigger protocol error otherwise.
 */
extern TriggerData *order_trigger_call(FunctionCallInfo fcinfo,
									   const OrderTriggerFiring *firing,
									   OrderTriggerConfig *cfg);

/* The attribute number of a column the trigger reads; an error naming it if it is gone. */
extern AttrNumber order_column(Relation rel, const char *source, const char *column);

/* Refuses a column whose type is the user's own (the SQL's casts would run it). */
extern void order_check_column_types(Relation rel, const OrderTriggerConfig *cfg);

#endif							/* REFERRAL_ORDER_CONFIG_H */
