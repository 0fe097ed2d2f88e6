/*
 * order_plans.h
 *		The order trigger's per-backend caches: prepared plans and parsed
 *		status lists.  See order_plans.c.
 */
#ifndef REFERRAL_ORDER_PLANS_H
#define REFERRAL_ORDER_PLANS_H

#include "postgres.h"

#include "executor/spi.h"
#include "utils/relcache.h"

#include "order_config.h"

/* The statements a firing may run. */
typedef enum OrderStatement
{
	ORDER_STMT_REVERSED = 'R',	/* reversals and amount changes */
	ORDER_STMT_PAID = 'P',		/* paid orders */
	ORDER_STMT_PAID_CONVERTED = 'C',	/* paid orders, all of converted referrals */
	ORDER_STMT_REVENUE = 'V'	/* revenue after conversions */
} OrderStatement;


/* The kept plan for key, prepared (a generic plan) from sql on first use. */
extern SPIPlanPtr order_plan_get(const char *key, const char *sql);

/* The key of a statement's plan: its kind, a size class, the columns and the SQL. */
extern char *order_plan_key(OrderStatement stmt, int64 nrows, Relation rel,
							const OrderTriggerConfig *cfg, const char *sql);

/* Drops every kept plan past the cap, when no firing runs. */
extern void order_plan_cache_trim(void);

/* Brackets a firing, which the cache must not drop plans under. */
extern void order_firing_enter(void);
extern void order_firing_leave(void);

/* The trigger's paid and reversed status lists (text[] literals) as text[]. */
extern Datum order_paid_statuses(const char *literal);
extern Datum order_reversed_statuses(const char *literal);

#endif							/* REFERRAL_ORDER_PLANS_H */
