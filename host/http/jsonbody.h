/* jsonbody.h - reading a request's JSON body strictly (issue 14): one
 * parser for every route, numbers beyond 64 bits read as out-of-range
 * values instead of a syntax error, unknown fields named, metadata checked,
 * and the canonical form Idempotency-Key compares. */
#ifndef PAGOFLEX_JSONBODY_H
#define PAGOFLEX_JSONBODY_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include <pagoflex/connector.h>

#define JSONBODY_METADATA_KEYS 50
#define JSONBODY_METADATA_KEY_MAX 40
#define JSONBODY_METADATA_VALUE_MAX 500

/* Why a body or a field was refused. */
typedef struct jsonbody_error {
    int status;        /* 400 or 422 (500: out of memory) */
    const char *code;  /* "invalid_json", "unknown_parameter", "invalid_field", ... */
    const char *field; /* the parameter, in the arena or static; NULL for the whole body */
    char message[256];
} jsonbody_error;

/* Parse `body` (duplicate keys refused). An integer too big for 64 bits is
 * not a syntax error: the body is read again with such numbers as reals, so
 * the field that holds one is refused by its own check ("amount must be a
 * positive integer") like any other bad value. Returns the document (the
 * caller json_decref()s it), or NULL with *err filled (400 invalid_json). */
json_t *jsonbody_parse(const char *body, size_t len, jsonbody_error *err);

/* Fill *err as 500 internal, out of memory. */
void jsonbody_error_oom(jsonbody_error *err);

/* The first member of object `obj` whose name is not in `allowed` (a NULL
 * terminated list), or NULL. */
const char *jsonbody_unknown(json_t *obj, const char *const *allowed);

/* 0 if every member of `obj` is in `allowed`; else -1 and *err is 400
 * unknown_parameter naming it (`prefix` + name, e.g. "payment_method.x";
 * the name is copied into `arena`). */
int jsonbody_check_known(json_t *obj, const char *const *allowed, const char *prefix, pagoflex_arena *arena,
                         jsonbody_error *err);

/* Check a `metadata` value: absent or null is no metadata (*out NULL);
 * otherwise an object of at most 50 members, each name 1 to 40 characters
 * and each value a string of at most 500 characters, without NUL. On
 * success 0 and *out its compact JSON text in the arena; on failure -1 and
 * *err is 422 invalid_field naming "metadata" or "metadata[<key>]". */
int jsonbody_metadata(json_t *value, pagoflex_arena *arena, const char **out, jsonbody_error *err);

/* Canonical text of `doc`: compact, keys sorted (malloc'd; the caller
 * frees it), NULL on failure. Two bodies with the same parameters in any
 * key order or spacing have the same canonical text. */
char *jsonbody_canonical(const json_t *doc);

#endif
