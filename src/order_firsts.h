/*
 * order_firsts.h
 *		Per pending referral, the one order of a bulk INSERT that may convert
 *		it: what the paid-orders statement needs of that referral's orders.
 *		See order_firsts.c.
 */
#ifndef REFERRAL_ORDER_FIRSTS_H
#define REFERRAL_ORDER_FIRSTS_H

#include "postgres.h"

#include "datatype/timestamp.h"
#include "executor/tuptable.h"
#include "utils/tuplestore.h"

#include "order_revenue.h"

typedef struct OrderFirsts OrderFirsts;

extern OrderFirsts *order_firsts_begin(void);

/*
 * Offers a qualifying order of the pending referral referral_id (of tenant):
 * kept when it comes before the referral's order kept so far, by time, then
 * id in byte order (as the paid-orders statement numbers them).
 */
extern void order_firsts_offer(OrderFirsts *firsts, int64 referral_id, text *tenant,
							   TupleTableSlot *order, text *order_ref, TimestampTz at);

/*
 * Appends the orders kept to `out` and returns true; false, appending nothing,
 * when one of them is attributed already (the SQL then takes the referral's
 * next order, which only the whole set of orders has).
 */
extern bool order_firsts_end(OrderFirsts *firsts, OrderRevenueWriter *writer,
							 TupleTableSlot *slot, Tuplestorestate *out, int64 *count);

#endif							/* REFERRAL_ORDER_FIRSTS_H */
