/* tlscreds.h - a plugin's mutual-TLS material, held in memory only.
 *
 * A 1.2 connector names the credentials holding its client certificate and
 * private key (tls_client_cert, tls_client_key: PEM) and optionally a CA
 * bundle for the bank's server certificate (tls_ca). The registry reads them
 * at load, checks them with OpenSSL (PEM, validity dates, key matches the
 * certificate) and keeps a copy that both executors hand to libcurl from
 * memory (CURLOPT_SSLCERT_BLOB, CURLOPT_SSLKEY_BLOB, CURLOPT_CAINFO_BLOB):
 * nothing is written to disk. A problem is reported by credential name and
 * reason, never with the content.
 */
#ifndef PAGOFLEX_TLSCREDS_H
#define PAGOFLEX_TLSCREDS_H

#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include <pagoflex/connector.h>

typedef struct tlscreds tlscreds;

/* True if descriptor `d` names a client certificate (1.2 tls_* fields). */
int tlscreds_wanted(const pagoflex_connector *d);

/* Check the tls_* credentials `d` names in `creds` at time `now` (Unix
 * seconds). 0 when they are usable (or `d` names none); -1 with one line in
 * err saying which credential is wrong and why ("credential BANK_TLS_CERT:
 * certificate expired on 2024-01-01 00:00:00 UTC"), never its content. */
int tlscreds_check(const pagoflex_connector *d, const pagoflex_credentials *creds, int64_t now,
                   char *err, size_t errlen);

/* Check as tlscreds_check, then copy the PEM values into a new object set
 * in *out (NULL when `d` names no client certificate). 0 on success; -1
 * with err set (nothing allocated, *out untouched). Free with
 * tlscreds_free. */
int tlscreds_load(const pagoflex_connector *d, const pagoflex_credentials *creds, int64_t now,
                  tlscreds **out, char *err, size_t errlen);

/* Give `t`'s certificate, key and CA bundle to easy handle `h` from memory
 * (CURL_BLOB_NOCOPY: `t` must outlive the transfer; it lives as long as
 * the plugin). NULL `t` is a no-op. 0, or -1 if libcurl
 * refused an option (the handle must not be used for the call). */
int tlscreds_apply(CURL *h, const tlscreds *t);

/* Wipe the PEM copies and free. NULL is a no-op. */
void tlscreds_free(tlscreds *t);

#endif
