/* fuzz_common.c - a Banco X connector inside a fuzz target; see fuzz_common.h. */
#include "fuzz_common.h"

#include <stdlib.h>

#include "creds.h"
#include "services.h"

const pagoflex_connector *pagoflex_connector_v1(void);

const pagoflex_connector *fuzz_bancox(void **state)
{
    static services_plugin sp;
    static void *st;
    static const pagoflex_connector *desc;
    if (desc) {
        *state = st;
        return desc;
    }
    desc = pagoflex_connector_v1();
    services_init(&sp, desc->key);
    services_set_now(FUZZ_NOW);
    pagoflex_credentials *creds = creds_new();
    if (!creds || creds_set(creds, "BANCOX_API_KEY", "sk_fuzz") != 0 ||
        creds_set(creds, "BANCOX_SECRET", FUZZ_BANCOX_SECRET) != 0 ||
        creds_set(creds, "BANCOX_BASE_URL", "http://127.0.0.1:9") != 0 ||
        desc->init(&sp.table, creds, &st) != PAGOFLEX_OK)
        abort();
    creds_free(creds);
    *state = st;
    return desc;
}
