/* tlscreds.c - a plugin's mutual-TLS material, held in memory only. */
#include "tlscreds.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "creds.h"

struct tlscreds {
    char *cert; /* PEM, secret-adjacent: wiped on free */
    size_t cert_len;
    char *key; /* PEM private key: secret */
    size_t key_len;
    char *ca; /* PEM bundle, or NULL */
    size_t ca_len;
};

int tlscreds_wanted(const pagoflex_connector *d)
{
    return PAGOFLEX_HAS_FIELD(d, pagoflex_connector, tls_ca) &&
           (d->tls_client_cert || d->tls_client_key || d->tls_ca);
}

/* A passphrase callback that gives none: an encrypted key is refused. */
static int tlscreds_no_pass(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* "2024-01-01 00:00:00 UTC"-like text of an ASN.1 time into out. */
static void tlscreds_time(const ASN1_TIME *t, char *out, size_t cap)
{
    struct tm tm;
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(out, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
    else
        snprintf(out, cap, "(unreadable date)");
}

/* Value of credential `name`, or an error naming it. */
static const char *tlscreds_value(const pagoflex_credentials *creds, const char *name, char *err,
                                  size_t errlen)
{
    const char *v = creds ? creds_get(creds, name) : NULL;
    if (!v || !*v)
        snprintf(err, errlen, "credential %s: %s; add it with `pagoflex secrets encrypt` (PEM text)",
                 name, v ? "is empty" : "is absent");
    return v && *v ? v : NULL;
}

/* The certificate of credential `name` (PEM), checked against `now`;
 * NULL with err set. */
static X509 *tlscreds_cert(const pagoflex_credentials *creds, const char *name, int64_t now,
                           char *err, size_t errlen)
{
    const char *v = tlscreds_value(creds, name, err, errlen);
    X509 *x = NULL;
    BIO *bio = NULL;
    char when[64];
    time_t t = (time_t)now;
    if (!v)
        goto fail;
    bio = BIO_new_mem_buf(v, -1);
    x = bio ? PEM_read_bio_X509(bio, NULL, tlscreds_no_pass, NULL) : NULL;
    if (!x) {
        snprintf(err, errlen, "credential %s: not a PEM certificate (expected \"-----BEGIN CERTIFICATE-----\")",
                 name);
        goto fail;
    }
    if (X509_cmp_time(X509_get0_notAfter(x), &t) <= 0) {
        tlscreds_time(X509_get0_notAfter(x), when, sizeof when);
        snprintf(err, errlen, "credential %s: certificate expired on %s; ask the bank for a new one",
                 name, when);
        goto fail;
    }
    if (X509_cmp_time(X509_get0_notBefore(x), &t) >= 0) {
        tlscreds_time(X509_get0_notBefore(x), when, sizeof when);
        snprintf(err, errlen, "credential %s: certificate not valid before %s; check the clock", name,
                 when);
        goto fail;
    }
    BIO_free(bio);
    return x;
fail:
    X509_free(x);
    BIO_free(bio);
    ERR_clear_error();
    return NULL;
}

/* 0 if credential `name` holds at least one PEM certificate and nothing
 * else unreadable; -1 with err set. */
static int tlscreds_check_ca(const pagoflex_credentials *creds, const char *name, char *err,
                             size_t errlen)
{
    const char *v = tlscreds_value(creds, name, err, errlen);
    int n = 0;
    if (!v)
        return -1;
    BIO *bio = BIO_new_mem_buf(v, -1);
    STACK_OF(X509_INFO) *infos = bio ? PEM_X509_INFO_read_bio(bio, NULL, tlscreds_no_pass, NULL) : NULL;
    for (int i = 0; infos && i < sk_X509_INFO_num(infos); i++)
        if (sk_X509_INFO_value(infos, i)->x509)
            n++;
    sk_X509_INFO_pop_free(infos, X509_INFO_free);
    BIO_free(bio);
    ERR_clear_error();
    if (n == 0) {
        snprintf(err, errlen, "credential %s: not a PEM certificate bundle (no \"-----BEGIN CERTIFICATE-----\")",
                 name);
        return -1;
    }
    return 0;
}

int tlscreds_check(const pagoflex_connector *d, const pagoflex_credentials *creds, int64_t now,
                   char *err, size_t errlen)
{
    X509 *x = NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    int rc = -1;
    if (!tlscreds_wanted(d))
        return 0;
    if (!d->tls_client_cert != !d->tls_client_key) {
        snprintf(err, errlen, "descriptor: tls_client_cert and tls_client_key go together (one is NULL)");
        return -1;
    }
    if (d->tls_client_cert) {
        if (!(x = tlscreds_cert(creds, d->tls_client_cert, now, err, errlen)))
            goto fail;
        const char *kv = tlscreds_value(creds, d->tls_client_key, err, errlen);
        if (!kv)
            goto fail;
        bio = BIO_new_mem_buf(kv, -1);
        pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, tlscreds_no_pass, NULL) : NULL;
        if (!pkey) {
            snprintf(err, errlen, "credential %s: not an unencrypted PEM private key", d->tls_client_key);
            goto fail;
        }
        if (X509_check_private_key(x, pkey) != 1) {
            snprintf(err, errlen, "credential %s: key does not match the certificate in %s",
                     d->tls_client_key, d->tls_client_cert);
            goto fail;
        }
    }
    if (d->tls_ca && tlscreds_check_ca(creds, d->tls_ca, err, errlen) != 0)
        goto fail;
    rc = 0;
fail:
    EVP_PKEY_free(pkey);
    X509_free(x);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

static char *tlscreds_dup(const char *s, size_t *len)
{
    *len = strlen(s);
    return strdup(s);
}

int tlscreds_load(const pagoflex_connector *d, const pagoflex_credentials *creds, int64_t now,
                  tlscreds **out, char *err, size_t errlen)
{
    if (tlscreds_check(d, creds, now, err, errlen) != 0)
        return -1;
    if (!tlscreds_wanted(d)) {
        *out = NULL;
        return 0;
    }
    tlscreds *t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    if (d->tls_client_cert &&
        (!(t->cert = tlscreds_dup(creds_get(creds, d->tls_client_cert), &t->cert_len)) ||
         !(t->key = tlscreds_dup(creds_get(creds, d->tls_client_key), &t->key_len))))
        goto oom;
    if (d->tls_ca && !(t->ca = tlscreds_dup(creds_get(creds, d->tls_ca), &t->ca_len)))
        goto oom;
    *out = t;
    return 0;
oom:
    tlscreds_free(t);
    snprintf(err, errlen, "out of memory copying the TLS credentials; free memory and retry");
    return -1;
}

int tlscreds_apply(CURL *h, const tlscreds *t)
{
    if (!t)
        return 0;
    if (t->cert) {
        struct curl_blob cert = {.data = t->cert, .len = t->cert_len, .flags = CURL_BLOB_NOCOPY};
        struct curl_blob key = {.data = t->key, .len = t->key_len, .flags = CURL_BLOB_NOCOPY};
        if (curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM") != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cert) != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM") != CURLE_OK ||
            curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key) != CURLE_OK)
            return -1;
    }
    if (t->ca) {
        struct curl_blob ca = {.data = t->ca, .len = t->ca_len, .flags = CURL_BLOB_NOCOPY};
        if (curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &ca) != CURLE_OK)
            return -1;
    }
    return 0;
}

void tlscreds_free(tlscreds *t)
{
    if (!t)
        return;
    if (t->cert)
        OPENSSL_cleanse(t->cert, t->cert_len);
    if (t->key)
        OPENSSL_cleanse(t->key, t->key_len);
    if (t->ca)
        OPENSSL_cleanse(t->ca, t->ca_len);
    free(t->cert);
    free(t->key);
    free(t->ca);
    free(t);
}
