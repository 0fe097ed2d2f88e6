/*
 * excerpt_core.h
 *		How much of a user's input an error message quotes (pure C, no
 *		postgres.h): a short prefix cut on a character boundary, so that a
 *		huge input cannot make a huge message.
 */
#ifndef EXCERPT_CORE_H
#define EXCERPT_CORE_H

#include <stdbool.h>
#include <stddef.h>

/* Most characters of an input that an error message quotes. */
#define EXCERPT_CORE_MAX_CHARS	32

/* What an excerpt that was cut ends with. */
#define EXCERPT_CORE_ELLIPSIS	"..."

/*
 * Length in bytes of the first maxchars characters of s[0..len); charlen
 * gives the byte length of the character that starts at its argument (as
 * pg_mblen does; a result below 1 counts as 1).  A character that would
 * reach past len ends the prefix before it.  *cut (when not NULL) tells
 * whether the prefix is shorter than s.
 */
extern size_t excerpt_core_prefix_len(const char *s, size_t len,
									  size_t maxchars,
									  int (*charlen) (const char *),
									  bool *cut);

#endif							/* EXCERPT_CORE_H */
