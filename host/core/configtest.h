/* configtest.h - `pagoflexd -t`: test a configuration as nginx -t does. */
#ifndef PAGOFLEX_CONFIGTEST_H
#define PAGOFLEX_CONFIGTEST_H

/* Check what pagoflexd would need to start from `config_path`: the file
 * (syntax, settings, timings), the listen addresses, the master keys, the
 * plugin signers, every credentials file (decrypted in memory, names
 * only), and every plugin it would load (loaded from a private temporary
 * copy and initialised, as a worker does). One line per check on stderr,
 * never a secret. Returns 0 when everything passed, 1 otherwise; nothing
 * is left behind. */
int configtest_run(const char *config_path);

#endif
