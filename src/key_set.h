/*
 * key_set.h
 *		A set of (tenant, key) text pairs, held by a 32-bit hash of their
 *		bytes: it may hold a pair it was not given, never miss one it was.  See
 *		key_set.c.
 */
#ifndef REFERRAL_KEY_SET_H
#define REFERRAL_KEY_SET_H

#include "postgres.h"

#include "lib/stringinfo.h"
#include "utils/hsearch.h"

typedef struct KeySet KeySet;

/*
 * A (tenant, key) pair as one byte string: the tenant's length (4 bytes, or ~0
 * for no tenant), the tenant's bytes and the key's bytes, so that no pair reads
 * as another.  key_bytes_table makes a dynahash table keyed by them, whose
 * entries (entrysize bytes) start with the key, in context.
 */
typedef struct KeyBytes
{
	const char *bytes;
	uint32		len;
} KeyBytes;

extern HTAB *key_bytes_table(const char *name, Size entrysize, long nelem,
							 MemoryContext context);

/* Builds the bytes of (tenant, key) in buf (tenant may be NULL). */
extern void key_bytes_build(StringInfo buf, text *tenant, text *key);

/* An empty set, in a memory context under the current one. */
extern KeySet *key_set_create(void);

/* Adds (tenant, key); tenant may be NULL, a tenant of its own. */
extern void key_set_add(KeySet *set, text *tenant, text *key);

extern bool key_set_contains(KeySet *set, text *tenant, text *key);

extern int64 key_set_count(KeySet *set);

/* The memory the set takes, for a budget. */
extern Size key_set_memory(KeySet *set);

extern void key_set_free(KeySet *set);

#endif							/* REFERRAL_KEY_SET_H */
