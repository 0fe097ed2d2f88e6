/*
 * owner_query.h
 *		Running code over a shop's table with the rights of its owner.
 */
#ifndef REFERRAL_OWNER_QUERY_H
#define REFERRAL_OWNER_QUERY_H

/* The user and settings to restore after owner_scope_enter. */
typedef struct OwnerScope
{
	Oid			save_userid;
	int			save_sec_context;
	int			guc_level;
} OwnerScope;

/* The owner of a relation; 42P01 when it does not exist. */
extern Oid	relation_owner(Oid relid);

/*
 * Becomes the relation's owner in a security-restricted operation, with
 * search_path pinned, until owner_scope_leave (or the (sub)transaction's abort).
 */
extern void owner_scope_enter(Oid relid, OwnerScope *scope);
extern void owner_scope_leave(OwnerScope *scope);

#endif
