/* payreq.c - parsing and validating the body of POST /v1/payments. */
#include "payreq.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "arena.h"
#include "jsonbody.h"

static int payreq_fail(payreq_error *err, int status, const char *code, const char *field,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int payreq_fail(payreq_error *err, int status, const char *code, const char *field,
                       const char *fmt, ...)
{
    err->status = status;
    err->code = code;
    err->field = field;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* Optional string field: absent or null is fine; anything else must be a
 * string of at most `max` bytes without NUL bytes. */
static int payreq_opt_string(json_t *root, const char *name, size_t max, pagoflex_arena *arena,
                             const char **out, payreq_error *err)
{
    json_t *v = json_object_get(root, name);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return payreq_fail(err, 422, "invalid_field", name, "%s must be a string", name);
    size_t len = json_string_length(v);
    if (len > max)
        return payreq_fail(err, 422, "invalid_field", name, "%s is %zu bytes long; the limit is %zu",
                           name, len, max);
    if (memchr(json_string_value(v), '\0', len))
        return payreq_fail(err, 422, "invalid_field", name, "%s must not contain NUL characters", name);
    *out = arena_strndup(arena, json_string_value(v), len);
    if (!*out)
        return payreq_fail(err, 500, "internal", NULL, "out of memory");
    return 0;
}

/* True if `s` is printable ASCII (0x21..0x7e) only. */
static bool payreq_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* A card number, not a token: 12 to 19 digits, with or without '-' between
 * them. Banks and PSPs name their tokens differently (tok_..., pm_...,
 * "visa:<hex>", a Drop-in JSON object), so the host checks for a PAN, not a
 * prefix (issue 12). */
static bool payreq_looks_like_pan(const char *s)
{
    size_t digits = 0;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9')
            digits++;
        else if (*s != '-')
            return false;
    }
    return digits >= 12 && digits <= 19;
}

/* 0 if `obj` has only `allowed` members; else -1 and *err names the first other. */
static int payreq_known(json_t *obj, const char *const *allowed, const char *prefix, pagoflex_arena *arena,
                        payreq_error *err)
{
    jsonbody_error jerr;
    if (jsonbody_check_known(obj, allowed, prefix, arena, &jerr) == 0)
        return 0;
    return payreq_fail(err, jerr.status, jerr.code, jerr.field, "%s", jerr.message);
}

/* capture_method, return_url and payment_method (issue 11). */
static int payreq_flow_fields(json_t *root, pagoflex_arena *arena, payreq *p, payreq_error *err)
{
    json_t *cm = json_object_get(root, "capture_method");
    if (cm && !json_is_null(cm)) {
        const char *v = json_is_string(cm) ? json_string_value(cm) : "";
        if (strcmp(v, "manual") != 0 && strcmp(v, "automatic") != 0)
            return payreq_fail(err, 422, "invalid_field", "capture_method",
                               "capture_method must be \"automatic\" (the default) or \"manual\"");
        p->manual_capture = strcmp(v, "manual") == 0;
    }
    if (payreq_opt_string(root, "return_url", PAYREQ_URL_MAX, arena, &p->return_url, err))
        return -1;
    if (p->return_url && ((strncmp(p->return_url, "https://", 8) != 0 &&
                           strncmp(p->return_url, "http://", 7) != 0) ||
                          !payreq_printable(p->return_url)))
        return payreq_fail(err, 422, "invalid_field", "return_url",
                           "return_url must be an absolute http:// or https:// URL without spaces "
                           "or control characters");
    json_t *pm = json_object_get(root, "payment_method");
    if (!pm || json_is_null(pm))
        return 0;
    if (!json_is_object(pm))
        return payreq_fail(err, 422, "invalid_field", "payment_method",
                           "payment_method must be an object {\"type\": \"card_token\", "
                           "\"token\": \"tok_...\"}");
    static const char *const pm_fields[] = {"type", "token", NULL};
    if (payreq_known(pm, pm_fields, "payment_method.", arena, err))
        return -1;
    json_t *type = json_object_get(pm, "type");
    if (!json_is_string(type) || strcmp(json_string_value(type), "card_token") != 0)
        return payreq_fail(err, 422, "invalid_field", "payment_method.type",
                           "payment_method.type must be \"card_token\" (the host takes bank card "
                           "tokens only, never card numbers)");
    json_t *tok = json_object_get(pm, "token");
    if (!json_is_string(tok))
        return payreq_fail(err, 422, tok ? "invalid_field" : "missing_field", "payment_method.token",
                           "payment_method.token is required: the bank's card token, \"tok_...\"");
    const char *t = json_string_value(tok);
    size_t n = json_string_length(tok);
    if (n < 1 || n > PAYREQ_TOKEN_MAX || strlen(t) != n || !payreq_printable(t) || payreq_looks_like_pan(t))
        return payreq_fail(err, 422, "invalid_field", "payment_method.token",
                           "payment_method.token must be the bank's or PSP's token (\"tok_...\", "
                           "\"pm_...\", ...): 1 to %d printable characters without spaces, and "
                           "never a card number",
                           PAYREQ_TOKEN_MAX);
    p->payment_method_type = "card_token";
    p->payment_method_token = arena_strndup(arena, t, n);
    if (!p->payment_method_token)
        return payreq_fail(err, 500, "internal", NULL, "out of memory");
    return 0;
}

int payreq_parse(const char *body, size_t len, pagoflex_arena *arena, payreq *out, payreq_error *err)
{
    payreq p = {0};
    jsonbody_error jerr;
    int rc = -1;
    static const char *const fields[] = {"amount",         "currency",   "connector",      "reference",
                                         "description",    "capture_method", "return_url", "payment_method",
                                         "metadata",       NULL};
    json_t *root = jsonbody_parse(body, len, &jerr);
    if (!root) {
        payreq_fail(err, jerr.status, jerr.code, jerr.field, "%s", jerr.message);
        goto fail;
    }
    if (payreq_known(root, fields, "", arena, err))
        goto fail;

    json_t *amount = json_object_get(root, "amount");
    if (!amount) {
        payreq_fail(err, 422, "missing_field", "amount", "amount is required (integer, minor units)");
        goto fail;
    }
    if (!json_is_integer(amount) || json_integer_value(amount) <= 0 ||
        json_integer_value(amount) > PAYREQ_AMOUNT_MAX) {
        payreq_fail(err, 422, "invalid_field", "amount",
                    "amount must be a positive integer in minor units, at most %lld",
                    (long long)PAYREQ_AMOUNT_MAX);
        goto fail;
    }
    p.amount = (int64_t)json_integer_value(amount);

    json_t *currency = json_object_get(root, "currency");
    if (!currency) {
        payreq_fail(err, 422, "missing_field", "currency", "currency is required (ISO 4217 code, e.g. \"ARS\")");
        goto fail;
    }
    if (!json_is_string(currency) || !currency_is_iso4217(json_string_value(currency))) {
        payreq_fail(err, 422, "invalid_field", "currency",
                    "currency must be an upper-case ISO 4217 code such as \"ARS\" or \"USD\"");
        goto fail;
    }
    memcpy(p.currency, json_string_value(currency), 4);

    json_t *connector = json_object_get(root, "connector");
    if (!connector) {
        payreq_fail(err, 422, "missing_field", "connector", "connector is required (e.g. \"BANCO_X\")");
        goto fail;
    }
    if (!json_is_string(connector) || json_string_length(connector) == 0 ||
        json_string_length(connector) > 32) {
        payreq_fail(err, 422, "invalid_field", "connector", "connector must be a connector key such as \"BANCO_X\"");
        goto fail;
    }
    p.connector = arena_strdup(arena, json_string_value(connector));

    if (payreq_opt_string(root, "reference", PAYREQ_REFERENCE_MAX, arena, &p.reference, err) ||
        payreq_opt_string(root, "description", PAYREQ_DESCRIPTION_MAX, arena, &p.description, err) ||
        payreq_flow_fields(root, arena, &p, err))
        goto fail;
    if (jsonbody_metadata(json_object_get(root, "metadata"), arena, &p.metadata, &jerr)) {
        payreq_fail(err, jerr.status, jerr.code, jerr.field, "%s", jerr.message);
        goto fail;
    }
    if (!p.connector) {
        payreq_fail(err, 500, "internal", NULL, "out of memory");
        goto fail;
    }
    *out = p;
    rc = 0;
fail:
    json_decref(root);
    return rc;
}
