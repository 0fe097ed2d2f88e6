/*
 * order_revenue.h
 *		Revenue recorded in C: the later orders of referees whose referral is
 *		converted, written into referral.attributed_order without SQL.  See
 *		order_revenue.c.
 */
#ifndef REFERRAL_ORDER_REVENUE_H
#define REFERRAL_ORDER_REVENUE_H

#include "postgres.h"

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

/* Closes the writer; returns how many orders it recorded. */
extern int64 order_revenue_end(OrderRevenueWriter *writer);

#endif							/* REFERRAL_ORDER_REVENUE_H */
