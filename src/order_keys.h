/*
 * order_keys.h
 *		A column of a shop's orders table read as the text the order trigger's
 *		SQL compares it by (column::text).  See order_keys.c.
 */
#ifndef REFERRAL_ORDER_KEYS_H
#define REFERRAL_ORDER_KEYS_H

#include "postgres.h"

#include "executor/tuptable.h"
#include "fmgr.h"
#include "utils/relcache.h"

/* A key column of the orders table and how to turn its value into text. */
typedef struct OrderKeyColumn
{
	AttrNumber	att;
	bool		is_text;		/* text or varchar: the value is the text */
	FmgrInfo	output;			/* otherwise its output function */
} OrderKeyColumn;

/*
 * Whether a column of this type reads as its ::text cast through its output
 * function: integers, uuid, text, varchar (and domains over them).
 */
extern bool order_key_supported_type(Oid typid);

extern void order_key_column_init(OrderKeyColumn *col, Relation rel, AttrNumber att);

/* The column's value as text in the current memory context, or NULL for a NULL. */
extern text *order_key_column_text(OrderKeyColumn *col, TupleTableSlot *slot);

#endif							/* REFERRAL_ORDER_KEYS_H */
