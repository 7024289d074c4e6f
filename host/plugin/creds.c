/* creds.c - a plugin's decrypted credentials, held in memory only. */
#include "creds.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "arena.h"

pagoflex_credentials *creds_new(void)
{
    return calloc(1, sizeof(pagoflex_credentials));
}

static void creds_wipe_str(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

int creds_set(pagoflex_credentials *creds, const char *name, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -1;
    for (size_t i = 0; i < creds->count; i++) {
        if (strcmp(creds->names[i], name) == 0) {
            creds_wipe_str(creds->values[i]);
            creds->values[i] = v;
            return 0;
        }
    }
    char *n = strdup(name);
    char **names = realloc(creds->names, (creds->count + 1) * sizeof *names);
    if (names)
        creds->names = names;
    char **values = names ? realloc(creds->values, (creds->count + 1) * sizeof *values) : NULL;
    if (values)
        creds->values = values;
    if (!n || !names || !values) {
        free(n);
        creds_wipe_str(v);
        return -1;
    }
    creds->names[creds->count] = n;
    creds->values[creds->count] = v;
    creds->count++;
    return 0;
}

const char *creds_get(const pagoflex_credentials *creds, const char *name)
{
    if (!creds || !name)
        return NULL;
    for (size_t i = 0; i < creds->count; i++)
        if (strcmp(creds->names[i], name) == 0)
            return creds->values[i];
    return NULL;
}

int creds_set_setting(pagoflex_credentials *creds, const char *name, const char *value)
{
    if (!creds->settings && !(creds->settings = creds_new()))
        return -1;
    return creds_set(creds->settings, name, value);
}

const char *creds_get_setting(const pagoflex_credentials *creds, const char *name)
{
    return creds ? creds_get(creds->settings, name) : NULL;
}

pagoflex_arena *creds_init_arena(pagoflex_credentials *creds)
{
    if (creds && !creds->init_arena)
        creds->init_arena = arena_new();
    return creds ? creds->init_arena : NULL;
}

pagoflex_arena *creds_take_init_arena(pagoflex_credentials *creds)
{
    pagoflex_arena *a = creds ? creds->init_arena : NULL;
    if (creds)
        creds->init_arena = NULL;
    return a;
}

void creds_free(pagoflex_credentials *creds)
{
    if (!creds)
        return;
    creds_free(creds->settings);
    arena_free(creds->init_arena);
    for (size_t i = 0; i < creds->count; i++) {
        free(creds->names[i]);
        creds_wipe_str(creds->values[i]);
    }
    free(creds->names);
    free(creds->values);
    free(creds);
}
