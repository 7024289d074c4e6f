/* creds.h - a plugin's decrypted credentials, held in memory only. */
#ifndef PAGOFLEX_CREDS_H
#define PAGOFLEX_CREDS_H

#include <stddef.h>

#include <pagoflex/connector.h>

struct pagoflex_credentials {
    size_t count;
    char **names;
    char **values; /* secret: wiped by creds_free */
    /* 1.2: the plugin's non-secret settings (host->setting), NULL when
     * none, and the arena init asked for (host->init_arena), NULL until it
     * asks; the registry takes it over after init (creds_take_init_arena). */
    struct pagoflex_credentials *settings;
    pagoflex_arena *init_arena;
};

/* One non-secret setting of one plugin (config `connector_settings`). */
typedef struct creds_setting {
    const char *plugin; /* plugin name: the .so file name without ".so" */
    const char *name;
    const char *value;
} creds_setting;

/* Empty set; NULL on allocation failure. */
pagoflex_credentials *creds_new(void);

/* Add or replace name=value (both copied). 0 on success, -1 on failure
 * (the set is unchanged). */
int creds_set(pagoflex_credentials *creds, const char *name, const char *value);

/* Value of `name`, or NULL. Owned by the set. */
const char *creds_get(const pagoflex_credentials *creds, const char *name);

/* Add or replace the non-secret setting name=value (both copied). 0 on
 * success, -1 on failure (the set is unchanged). */
int creds_set_setting(pagoflex_credentials *creds, const char *name, const char *value);

/* Value of setting `name`, or NULL. Owned by the set. */
const char *creds_get_setting(const pagoflex_credentials *creds, const char *name);

/* The arena that lives from init until after fini: made on the first call,
 * the same one after that; NULL on allocation failure. */
pagoflex_arena *creds_init_arena(pagoflex_credentials *creds);

/* Hand the init arena (or NULL if init asked for none) over to the caller,
 * who frees it with arena_free after the plugin's fini. */
pagoflex_arena *creds_take_init_arena(pagoflex_credentials *creds);

/* Wipe every value with OPENSSL_cleanse and free the set, its settings
 * and an init arena not taken. NULL is a no-op. */
void creds_free(pagoflex_credentials *creds);

#endif
