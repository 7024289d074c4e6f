/* currency_table.h - the generated table of currencies of payment (see
 * scripts/gen-currencies for its sources). */
#ifndef PAGOFLEX_CURRENCY_TABLE_H
#define PAGOFLEX_CURRENCY_TABLE_H

#include <stddef.h>

typedef struct currency_entry {
    char code[4];
    int exponent; /* ISO 4217 minor units */
} currency_entry;

/* Sorted by code (strcmp), for bsearch. */
extern const currency_entry currency_table[];
extern const size_t currency_table_len;

#endif
