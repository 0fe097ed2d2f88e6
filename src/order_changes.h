/*
 * order_changes.h
 *		Picks, from the orders an UPDATE or DELETE changed, those referral may
 *		hold something about: the only ones the order trigger's SQL needs to
 *		see.  See order_changes.c.
 */
#ifndef REFERRAL_ORDER_CHANGES_H
#define REFERRAL_ORDER_CHANGES_H

#include "postgres.h"

#include "utils/relcache.h"
#include "utils/tuplestore.h"

/* The key columns of the orders table the pass reads (attribute numbers), and its source. */
typedef struct OrderChangeColumns
{
	AttrNumber	customer;
	AttrNumber	id;
	AttrNumber	tenant;			/* 0: every order is of fixed_tenant */
	const char *fixed_tenant;
	const char *source;			/* the ledger's label of the table's orders */
} OrderChangeColumns;

/*
 * Keeps, of the old rows (olds) and, for an UPDATE, the new rows (news, else
 * NULL) of rel, the rows of the orders that matter, in *kept_olds and
 * *kept_news (NULL for a DELETE), with their numbers.  keys_unchanged: each
 * old row has the id, customer and tenant of the new row at its place
 * (order_keys_unchanged), so the new rows alone are looked up.  Returns false,
 * having kept nothing, when it cannot tell which orders matter: then every row
 * goes on.
 */
extern bool order_changes(Oid schema, Relation rel, Tuplestorestate *olds,
						  Tuplestorestate *news, bool keys_unchanged,
						  const OrderChangeColumns *columns,
						  Tuplestorestate **kept_olds, int64 *nolds,
						  Tuplestorestate **kept_news, int64 *nnews);

#endif							/* REFERRAL_ORDER_CHANGES_H */
