/* version.c - what `pagoflexd --version` and `pagoflex --version` print. */
#include "version.h"

#include <curl/curl.h>
#include <jansson.h>
#include <libconfig.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include <pagoflex/connector.h>

#ifndef PAGOFLEX_VERSION
#define PAGOFLEX_VERSION "unknown"
#endif

#define VERSION_STR2(x) #x
#define VERSION_STR(x) VERSION_STR2(x)

const char *version_string(void)
{
    return PAGOFLEX_VERSION;
}

const char *version_abi(void)
{
    return VERSION_STR(PAGOFLEX_ABI_MAJOR) "." VERSION_STR(PAGOFLEX_ABI_MINOR);
}

void version_print(FILE *f, const char *prog)
{
    const curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);
    int pq = PQlibVersion(); /* 150010 for 15.10 */
    fprintf(f,
            "%s %s (ABI %s; libcurl %s, OpenSSL %s, Jansson %s, libmicrohttpd %s, libpq %d.%d, "
            "libconfig %d.%d.%d)\n",
            prog, version_string(), version_abi(), curl && curl->version ? curl->version : "?",
            OpenSSL_version(OPENSSL_VERSION_STRING), jansson_version_str(), MHD_get_version(), pq / 10000,
            pq % 10000, LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION);
}
