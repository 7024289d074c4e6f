/* jws.h - verification of compact JWS (RFC 7515) against a JWK Set
 * (RFC 7517), detached and unencoded payloads (RFC 7797) included: the host
 * service jws_verify, on OpenSSL 3 and Jansson. */
#ifndef PAGOFLEX_JWS_H
#define PAGOFLEX_JWS_H

#include <stddef.h>

/* Verify jws ("header.payload.signature", base64url without padding).
 * payload NULL: the payload is the JWS's own middle part. payload non-NULL:
 * detached, the middle part must be empty, and payload[0..payload_len) is
 * the payload (base64url-encoded into the signing input, or used as is when
 * the header has "b64":false, which must then be listed in "crit").
 * The key is the one of jwks ({"keys":[...]}) whose "kid" equals the
 * header's (for a header without kid: the set's only key, if it has just
 * one). "alg" must be ES256 (kty EC, crv P-256), RS256 or PS256 (kty RSA,
 * at least 2048 bits), and equal the key's own "alg" when it has one.
 * Returns PAGOFLEX_OK; PAGOFLEX_ERR_KEY_UNKNOWN when the header's kid is
 * not in jwks; PAGOFLEX_ERR_SIGNATURE for everything else (bad signature,
 * malformed JWS or key set, no kid and not exactly one key, "none" or any
 * other alg, a key of another type, unknown "crit" names). */
int jws_verify(const char *jws, const unsigned char *payload, size_t payload_len,
               const unsigned char *jwks, size_t jwks_len);

#endif
