/* version.h - what `pagoflexd --version` and `pagoflex --version` print. */
#ifndef PAGOFLEX_VERSION_H
#define PAGOFLEX_VERSION_H

#include <stdio.h>

/* This build's version ("0.1.0", from CMakeLists.txt) and plugin ABI ("1.1"). */
const char *version_string(void);
const char *version_abi(void);

/* Print "<prog> <version> (ABI <major.minor>; libcurl ..., OpenSSL ...,
 * Jansson ..., libmicrohttpd ..., libpq ..., libconfig ...)" and a newline
 * to f: the versions of the libraries as loaded at run time (libconfig has
 * no run-time query: its build version). */
void version_print(FILE *f, const char *prog);

#endif
