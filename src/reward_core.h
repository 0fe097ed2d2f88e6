/*
 * reward_core.h
 *		Server-independent parts of reward calculation.
 */
#ifndef REWARD_CORE_H
#define REWARD_CORE_H

/* Decimals of a currency's minor unit (ISO 4217): 0 for JPY, 3 for KWD, 2 for most. */
extern int	reward_currency_decimals(const char *currency);

#endif							/* REWARD_CORE_H */
