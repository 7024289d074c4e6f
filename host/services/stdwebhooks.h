/* stdwebhooks.h - Standard Webhooks signing and verification (host services
 * stdwebhooks_sign, stdwebhooks_verify). Spec:
 * https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md */
#ifndef PAGOFLEX_STDWEBHOOKS_H
#define PAGOFLEX_STDWEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "svcmem.h"

/* The webhook-signature value "v1,<base64 HMAC-SHA256>" of
 * "<msg_id>.<timestamp>.<body>" under secret ("whsec_<base64 key>"; the
 * prefix is optional, as in the official libraries). *signature is
 * allocated in arena. PAGOFLEX_ERR_INVALID for a secret that is not base64,
 * a NULL msg_id or a negative timestamp; PAGOFLEX_ERR_NOMEM;
 * PAGOFLEX_ERR_INTERNAL. The decoded key is wiped before returning. */
int stdwh_sign(svcmem_alloc_fn alloc, pagoflex_arena *arena, const char *secret,
               const char *msg_id, int64_t timestamp, const unsigned char *body,
               size_t body_len, char **signature);

/* Verify a request by its webhook-id, webhook-timestamp and
 * webhook-signature headers (names case-insensitive): the timestamp is a
 * decimal Unix time within tolerance_s of now (either way), and one of the
 * space-separated "v1,<base64>" signatures equals the expected HMAC,
 * compared in constant time. PAGOFLEX_OK, or PAGOFLEX_ERR_SIGNATURE for
 * anything else (missing header, bad secret, stale time, no match). */
int stdwh_verify(const char *secret, const pagoflex_header *headers, size_t header_count,
                 const unsigned char *body, size_t body_len, int64_t now,
                 int64_t tolerance_s);

#endif
