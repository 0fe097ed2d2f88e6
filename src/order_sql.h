/*
 * order_sql.h
 *		The SQL text of the order trigger's statements, built from its
 *		configuration.  See order_sql.c.
 */
#ifndef REFERRAL_ORDER_SQL_H
#define REFERRAL_ORDER_SQL_H

#include "postgres.h"

#include "order_config.h"

/*
 * The paid-orders statement (see order_sql.c): converted_only when every
 * candidate's referral was converted; batch to pass them to _orders_paid.
 */
extern char *order_sql_paid(const OrderTriggerConfig *cfg, OrderEvent event,
							bool converted_only, bool batch);

/* The revenue statement, with or without ON CONFLICT DO NOTHING. */
extern char *order_sql_revenue(const OrderTriggerConfig *cfg, OrderEvent event,
							   int64 nrows, bool on_conflict);

/* The reversals and amount changes of an UPDATE or DELETE; NULL for an INSERT. */
extern char *order_sql_reversed(const OrderTriggerConfig *cfg, OrderEvent event);

#endif							/* REFERRAL_ORDER_SQL_H */
