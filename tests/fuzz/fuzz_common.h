/* fuzz_common.h - a Banco X connector inside a fuzz target, without dlopen.
 *
 * plugins/banco_x/banco_x.c is compiled into the target, so its code is
 * instrumented like the host's; it is set up exactly as the registry does
 * (host-services table, credentials, init) with a fixed clock.
 */
#ifndef PAGOFLEX_FUZZ_COMMON_H
#define PAGOFLEX_FUZZ_COMMON_H

#include <pagoflex/connector.h>

#define FUZZ_BANCOX_SECRET "whsec_fuzz_not_a_real_secret"
#define FUZZ_NOW 1795000000

/* The initialised connector and its state (aborts if init fails). */
const pagoflex_connector *fuzz_bancox(void **state);

#endif
