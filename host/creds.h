/* creds.h - a plugin's decrypted credentials, held in memory only. */
#ifndef PAGOFLEX_CREDS_H
#define PAGOFLEX_CREDS_H

#include <stddef.h>

#include <pagoflex/connector.h>

struct pagoflex_credentials {
    size_t count;
    char **names;
    char **values; /* secret: wiped by creds_free */
};

/* Empty set; NULL on allocation failure. */
pagoflex_credentials *creds_new(void);

/* Add or replace name=value (both copied). 0 on success, -1 on failure
 * (the set is unchanged). */
int creds_set(pagoflex_credentials *creds, const char *name, const char *value);

/* Value of `name`, or NULL. Owned by the set. */
const char *creds_get(const pagoflex_credentials *creds, const char *name);

/* Wipe every value with OPENSSL_cleanse and free the set. NULL is a no-op. */
void creds_free(pagoflex_credentials *creds);

#endif
