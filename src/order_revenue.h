/*
 * order_revenue.h
 *		Revenue recorded in C: the later orders of referees whose referral is
 *		converted, written into referral.attributed_order without SQL.  See
 *		order_revenue.c.
 */
#ifndef REFERRAL_ORDER_REVENUE_H
#define REFERRAL_ORDER_REVENUE_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/tuptable.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"

/* The order trigger's arguments that the writer reads orders by. */
typedef struct OrderRevenueConfig
{
	const char *source;			/* label of the orders table in the ledger */
	const char *id_column;
	const char *amount_column;
	const char *status_column;	/* NULL: every inserted order is paid */
	Datum		paid_statuses;	/* text[] (with a status column) */
	const char *ordered_at_column;	/* NULL: the transaction time */
} OrderRevenueConfig;

typedef struct OrderRevenueWriter OrderRevenueWriter;

/*
 * A writer for orders inserted into `orders`, reading referral's tables in
 * `schema` with `snapshot`; NULL where it cannot decide as the SQL would (see
 * order_revenue.c): the SQL then sees every candidate.
 */
extern OrderRevenueWriter *order_revenue_begin(Oid schema, Relation orders,
											   const OrderRevenueConfig *cfg,
											   Relation referrals, Snapshot snapshot);

/*
 * Settles an order of `tenant` whose customer's referral (the row in
 * `referral`) is converted: records it as revenue when it qualifies, or finds
 * that it earns nothing; true when the SQL need not see it.
 */
extern bool order_revenue_settle(OrderRevenueWriter *writer, TupleTableSlot *order,
								 TupleTableSlot *referral, text *tenant);

/* How an order stands for the trigger's statements (order_revenue_qualifies). */
typedef enum OrderQualification
{
	ORDER_DOES_NOT_QUALIFY,		/* no statement of the trigger would count it */
	ORDER_QUALIFIES,
	ORDER_UNDECIDED				/* recurring_window, or the program not found: the SQL decides */
} OrderQualification;

/*
 * Whether an order of `tenant` qualifies for a referral of program_id redeemed
 * at created_at (ignoring whether it is attributed already); its id and time
 * in *order_ref and *at, valid until the writer's next call.
 */
extern OrderQualification order_revenue_qualifies(OrderRevenueWriter *writer,
												  TupleTableSlot *order, text *tenant,
												  int64 program_id, TimestampTz created_at,
												  text **order_ref, TimestampTz *at);

/* Whether the order is attributed, by a transaction committed or in progress. */
extern bool order_revenue_attributed(OrderRevenueWriter *writer, text *tenant, text *order_ref);

/* Closes the writer; returns how many orders it recorded. */
extern int64 order_revenue_end(OrderRevenueWriter *writer);

/*
 * Whether rel has a unique, immediate, plain index on the id column alone: two
 * orders with one id cannot then both be written, and no other session can
 * record this order's revenue at the same time as this one.  Never for a
 * partition or a table with inheritance children.
 */
extern bool orders_have_unique_id(Relation rel, AttrNumber id_att);

#endif							/* REFERRAL_ORDER_REVENUE_H */
