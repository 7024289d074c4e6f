/* currency.c - currencies of payment (the generated currency_table.c) and
 * decimal amounts in their minor units. */
#include "currency.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "currency_table.h"

static int currency_cmp(const void *key, const void *entry)
{
    return strcmp(key, ((const currency_entry *)entry)->code);
}

int currency_exponent(const char *code)
{
    if (!code || strlen(code) != 3)
        return -1;
    const currency_entry *e = bsearch(code, currency_table, currency_table_len,
                                      sizeof currency_table[0], currency_cmp);
    return e ? e->exponent : -1;
}

bool currency_is_iso4217(const char *code)
{
    return currency_exponent(code) >= 0;
}

char *currency_amount_to_decimal(svcmem_alloc_fn alloc, pagoflex_arena *arena, int64_t minor,
                                 const char *currency)
{
    int exp = currency_exponent(currency);
    if (exp < 0 || exp > 9) /* ISO 4217 has 0 to 4 */
        return NULL;
    uint64_t mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    uint64_t scale = 1;
    for (int i = 0; i < exp; i++)
        scale *= 10;
    char buf[48];
    if (exp == 0)
        snprintf(buf, sizeof buf, "%s%" PRIu64, minor < 0 ? "-" : "", mag);
    else
        snprintf(buf, sizeof buf, "%s%" PRIu64 ".%0*" PRIu64, minor < 0 ? "-" : "",
                 mag / scale, exp, mag % scale);
    char *out = alloc(arena, strlen(buf) + 1);
    if (out)
        memcpy(out, buf, strlen(buf));
    return out;
}

int currency_amount_from_decimal(const char *decimal, const char *currency, int64_t *minor)
{
    int exp = currency_exponent(currency);
    if (exp < 0)
        return PAGOFLEX_ERR_UNSUPPORTED;
    if (!decimal || !minor)
        return PAGOFLEX_ERR_INVALID;
    const char *p = decimal;
    bool negative = *p == '-';
    if (negative)
        p++;
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t value = 0;
    int int_digits = 0, frac_digits = 0;
    bool point = false;
    for (; *p; p++) {
        if (*p == '.' && !point) {
            point = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            return PAGOFLEX_ERR_INVALID;
        if (point && ++frac_digits > exp)
            return PAGOFLEX_ERR_INVALID;
        if (!point)
            int_digits++;
        unsigned d = (unsigned)(*p - '0');
        if (value > (limit - d) / 10)
            return PAGOFLEX_ERR_INVALID;
        value = value * 10 + d;
    }
    if (int_digits == 0 || (point && frac_digits == 0))
        return PAGOFLEX_ERR_INVALID;
    for (int i = frac_digits; i < exp; i++) {
        if (value > limit / 10)
            return PAGOFLEX_ERR_INVALID;
        value *= 10;
    }
    *minor = negative ? (int64_t)(0 - value) : (int64_t)value;
    return PAGOFLEX_OK;
}
