/* currency.h - currencies of payment and decimal amounts (host services
 * currency_exponent, amount_to_decimal, amount_from_decimal), on the
 * generated currency_table.c. */
#ifndef PAGOFLEX_CURRENCY_H
#define PAGOFLEX_CURRENCY_H

#include <stdbool.h>
#include <stdint.h>

#include "svcmem.h"

/* True if `code` is an active ISO 4217 currency code (of the generated
 * table). */
bool currency_is_iso4217(const char *code);

/* ISO 4217 minor-unit exponent of a currency of payment (upper-case code),
 * or -1 for anything else: unknown, withdrawn (ANG), no minor unit (XAU,
 * XTS, XXX), NULL. */
int currency_exponent(const char *code);

/* minor as a decimal string with the currency's exponent ("10.50" for 1050
 * USD, "-0.05" for -5 USD, "1050" for 1050 JPY), allocated in arena; NULL
 * for an unknown currency or on allocation failure. */
char *currency_amount_to_decimal(svcmem_alloc_fn alloc, pagoflex_arena *arena, int64_t minor,
                                 const char *currency);

/* Parse "[-]DIGITS[.DIGITS]" with at most the currency's exponent of
 * decimals (fewer are fine: "10.5" USD is 1050) into minor units.
 * PAGOFLEX_OK with *minor set, PAGOFLEX_ERR_UNSUPPORTED for an unknown
 * currency, PAGOFLEX_ERR_INVALID for anything else (too many decimals, no
 * digit before or after the point, sign '+', spaces, overflow). */
int currency_amount_from_decimal(const char *decimal, const char *currency, int64_t *minor);

#endif
