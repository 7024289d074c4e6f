/* acctcache.c - a worker's memory of the connector account each merchant uses. */
#include "acctcache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ACCTCACHE_SLOTS 1024 /* a power of two */
#define ACCTCACHE_NAME 48    /* merchant ids are at most 44 characters, keys and accounts 32 */

typedef struct acctcache_slot {
    char merchant[ACCTCACHE_NAME];
    char connector[ACCTCACHE_NAME];
    char account[ACCTCACHE_NAME];
} acctcache_slot;

static pthread_mutex_t acctcache_mu = PTHREAD_MUTEX_INITIALIZER;
static acctcache_slot acctcache_slots[ACCTCACHE_SLOTS];

/* FNV-1a of merchant, a separator and connector. */
static size_t acctcache_slot_of(const char *merchant_id, const char *connector)
{
    uint32_t h = 2166136261u;
    for (const char *s = merchant_id; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (const char *s = connector; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h & (ACCTCACHE_SLOTS - 1);
}

static bool acctcache_fits(const char *s)
{
    return s && strlen(s) < ACCTCACHE_NAME;
}

bool acctcache_get(const char *merchant_id, const char *connector, char *out, size_t cap)
{
    bool found = false;
    if (!acctcache_fits(merchant_id) || !acctcache_fits(connector))
        return false;
    acctcache_slot *s = &acctcache_slots[acctcache_slot_of(merchant_id, connector)];
    pthread_mutex_lock(&acctcache_mu);
    if (s->account[0] && strcmp(s->merchant, merchant_id) == 0 && strcmp(s->connector, connector) == 0 &&
        strlen(s->account) < cap) {
        memcpy(out, s->account, strlen(s->account) + 1);
        found = true;
    }
    pthread_mutex_unlock(&acctcache_mu);
    return found;
}

void acctcache_put(const char *merchant_id, const char *connector, const char *account)
{
    if (!acctcache_fits(merchant_id) || !acctcache_fits(connector) || (account && !acctcache_fits(account)))
        return;
    acctcache_slot *s = &acctcache_slots[acctcache_slot_of(merchant_id, connector)];
    pthread_mutex_lock(&acctcache_mu);
    if (account) {
        snprintf(s->merchant, sizeof s->merchant, "%s", merchant_id);
        snprintf(s->connector, sizeof s->connector, "%s", connector);
        snprintf(s->account, sizeof s->account, "%s", account);
    } else if (strcmp(s->merchant, merchant_id) == 0 && strcmp(s->connector, connector) == 0) {
        s->account[0] = '\0';
    }
    pthread_mutex_unlock(&acctcache_mu);
}
