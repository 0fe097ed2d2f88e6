/*
 * excerpt.h
 *		The excerpt of a user's input that error messages quote
 *		(src/excerpt.c), for other C modules.
 */
#ifndef REFERRAL_EXCERPT_H
#define REFERRAL_EXCERPT_H

/* Include "postgres.h" first, as in every backend file. */

/*
 * s[0..len) as an error message quotes it: its first 32 characters in the
 * database encoding, with "..." appended when cut; palloc'd.
 */
extern char *referral_excerpt(const char *s, size_t len);

#endif							/* REFERRAL_EXCERPT_H */
