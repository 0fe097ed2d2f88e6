/*
 * key_set.c
 *		A set of (tenant, key) text pairs in a dynahash table, each pair one
 *		byte string (KeyBytes).  Bytes compare as text equality does under the
 *		deterministic collation the ledger's columns have.
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "lib/stringinfo.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "key_set.h"

struct KeySet
{
	MemoryContext context;
	HTAB	   *table;
	StringInfoData probe;		/* the pair of a look-up, reused */
};

static uint32
key_bytes_hash(const void *key, Size keysize)
{
	const KeyBytes *k = (const KeyBytes *) key;

	return hash_bytes((const unsigned char *) k->bytes, (int) k->len);
}

static int
key_bytes_match(const void *key1, const void *key2, Size keysize)
{
	const KeyBytes *a = (const KeyBytes *) key1;
	const KeyBytes *b = (const KeyBytes *) key2;

	return (a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0) ? 0 : 1;
}

HTAB *
key_bytes_table(const char *name, Size entrysize, long nelem, MemoryContext context)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(KeyBytes);
	ctl.entrysize = entrysize;
	ctl.hash = key_bytes_hash;
	ctl.match = key_bytes_match;
	ctl.hcxt = context;
	return hash_create(name, nelem, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

void
key_bytes_build(StringInfo buf, text *tenant, text *key)
{
	uint32		tenant_len = (tenant != NULL) ? VARSIZE_ANY_EXHDR(tenant) : ~(uint32) 0;

	resetStringInfo(buf);
	appendBinaryStringInfo(buf, (const char *) &tenant_len, sizeof(tenant_len));
	if (tenant != NULL)
		appendBinaryStringInfo(buf, VARDATA_ANY(tenant), VARSIZE_ANY_EXHDR(tenant));
	appendBinaryStringInfo(buf, VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key));
}

KeySet *
key_set_create(void)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext, "referral key set",
												  ALLOCSET_DEFAULT_SIZES);
	KeySet	   *set = MemoryContextAllocZero(context, sizeof(KeySet));
	MemoryContext outer = MemoryContextSwitchTo(context);

	set->context = context;
	initStringInfo(&set->probe);
	set->table = key_bytes_table("referral key set", sizeof(KeyBytes), 256, context);
	MemoryContextSwitchTo(outer);
	return set;
}

/* The bytes of (tenant, key), in set->probe. */
static KeyBytes
key_set_pair(KeySet *set, text *tenant, text *key)
{
	MemoryContext outer = MemoryContextSwitchTo(set->context);
	KeyBytes	pair;

	key_bytes_build(&set->probe, tenant, key);
	MemoryContextSwitchTo(outer);
	pair.bytes = set->probe.data;
	pair.len = set->probe.len;
	return pair;
}

void
key_set_add(KeySet *set, text *tenant, text *key)
{
	KeyBytes	pair = key_set_pair(set, tenant, key);
	KeyBytes   *entry;
	bool		found;

	entry = (KeyBytes *) hash_search(set->table, &pair, HASH_ENTER, &found);
	if (!found)
	{
		entry->len = pair.len;
		entry->bytes = memcpy(MemoryContextAlloc(set->context, pair.len), pair.bytes, pair.len);
	}
}

bool
key_set_contains(KeySet *set, text *tenant, text *key)
{
	KeyBytes	pair = key_set_pair(set, tenant, key);

	return hash_search(set->table, &pair, HASH_FIND, NULL) != NULL;
}

int64
key_set_count(KeySet *set)
{
	return (int64) hash_get_num_entries(set->table);
}

Size
key_set_memory(KeySet *set)
{
	return MemoryContextMemAllocated(set->context, true);
}

void
key_set_free(KeySet *set)
{
	MemoryContextDelete(set->context);
}
