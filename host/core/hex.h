/* hex.h - lower-case hexadecimal, one implementation for the whole host. */
#ifndef PAGOFLEX_HEX_H
#define PAGOFLEX_HEX_H

#include <stddef.h>

/* Write 2*len lower-case hex digits of `in` and a NUL to out. */
void hex_encode(const unsigned char *in, size_t len, char *out);

/* Value of hex digit c (either case), or -1. */
int hex_digit(int c);

/* Decode `len` hex digits into out (at most out_cap bytes). 0 and *out_len
 * on success; -1 on odd length, a bad digit, or too little room (out is
 * then partly written). */
int hex_decode(const char *in, size_t len, unsigned char *out, size_t out_cap, size_t *out_len);

#endif
