/* jsonbody.c - reading a request's JSON body strictly (issue 14). */
#include "jsonbody.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

static int jsonbody_fail(jsonbody_error *err, int status, const char *code, const char *field,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int jsonbody_fail(jsonbody_error *err, int status, const char *code, const char *field,
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

void jsonbody_error_oom(jsonbody_error *err)
{
    jsonbody_fail(err, 500, "internal", NULL, "out of memory");
}

/* After a read with JSON_DECODE_INT_AS_REAL: every whole real that fits in
 * 64 bits becomes an integer again; the rest (the numbers that overflowed,
 * and fractions) stay reals, which no integer field accepts. */
static bool jsonbody_whole(double d)
{
    return d > -9.2e18 && d < 9.2e18 && (double)(json_int_t)d == d;
}

static void jsonbody_restore_integers(json_t *v)
{
    const char *name;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        void *tmp;
        json_object_foreach_safe(v, tmp, name, child)
        {
            if (json_is_real(child)) {
                double d = json_real_value(child);
                if (jsonbody_whole(d))
                    json_object_set_new(v, name, json_integer((json_int_t)d));
            } else {
                jsonbody_restore_integers(child);
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
        {
            if (json_is_real(child)) {
                double d = json_real_value(child);
                if (jsonbody_whole(d))
                    json_array_set_new(v, i, json_integer((json_int_t)d));
            } else {
                jsonbody_restore_integers(child);
            }
        }
    }
}

json_t *jsonbody_parse(const char *body, size_t len, jsonbody_error *err)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root && json_error_code(&jerr) == json_error_numeric_overflow) {
        /* Only whole numbers overflow (a real would be read as inf and
         * refused the same way): read it again and let the field say so. */
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
        if (root)
            jsonbody_restore_integers(root);
    }
    if (!root) {
        jsonbody_fail(err, 400, "invalid_json", NULL,
                      "request body is not valid JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                      jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        jsonbody_fail(err, 400, "invalid_json", NULL, "request body must be a JSON object");
        return NULL;
    }
    return root;
}

const char *jsonbody_unknown(json_t *obj, const char *const *allowed)
{
    const char *name;
    json_t *v;
    json_object_foreach(obj, name, v)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, name) != 0)
            a++;
        if (!*a)
            return name;
    }
    return NULL;
}

int jsonbody_check_known(json_t *obj, const char *const *allowed, const char *prefix, pagoflex_arena *arena,
                         jsonbody_error *err)
{
    const char *name = jsonbody_unknown(obj, allowed);
    if (!name)
        return 0;
    const char *field = arena_printf(arena, "%s%.64s", prefix ? prefix : "", name);
    if (!field)
        return jsonbody_fail(err, 500, "internal", NULL, "out of memory");
    return jsonbody_fail(err, 400, "unknown_parameter", field,
                         "unknown parameter '%s'; nothing was changed (the API reference, GET /openapi.yaml, "
                         "lists the parameters)",
                         field);
}

/* Characters (code points) of UTF-8 text `s` of `n` bytes. */
static size_t jsonbody_chars(const char *s, size_t n)
{
    size_t chars = 0;
    for (size_t i = 0; i < n; i++)
        chars += ((unsigned char)s[i] & 0xc0) != 0x80;
    return chars;
}

int jsonbody_metadata(json_t *value, pagoflex_arena *arena, const char **out, jsonbody_error *err)
{
    *out = NULL;
    if (!value || json_is_null(value))
        return 0;
    if (!json_is_object(value))
        return jsonbody_fail(err, 422, "invalid_field", "metadata",
                             "metadata must be an object of string keys and string values");
    if (json_object_size(value) > JSONBODY_METADATA_KEYS)
        return jsonbody_fail(err, 422, "invalid_field", "metadata", "metadata has %zu keys; the limit is %d",
                             json_object_size(value), JSONBODY_METADATA_KEYS);
    const char *key;
    json_t *v;
    json_object_foreach(value, key, v)
    {
        size_t klen = strlen(key);
        /* A key with NUL or over the limit is not quoted whole. */
        const char *field = arena_printf(arena, "metadata[%.40s]", key);
        if (!field)
            return jsonbody_fail(err, 500, "internal", NULL, "out of memory");
        if (klen == 0 || jsonbody_chars(key, klen) > JSONBODY_METADATA_KEY_MAX)
            return jsonbody_fail(err, 422, "invalid_field", field, "metadata keys must be 1 to %d characters",
                                 JSONBODY_METADATA_KEY_MAX);
        if (!json_is_string(v))
            return jsonbody_fail(err, 422, "invalid_field", field, "%s must be a string", field);
        size_t vlen = json_string_length(v);
        if (memchr(json_string_value(v), '\0', vlen))
            return jsonbody_fail(err, 422, "invalid_field", field, "%s must not contain NUL characters",
                                 field);
        if (jsonbody_chars(json_string_value(v), vlen) > JSONBODY_METADATA_VALUE_MAX)
            return jsonbody_fail(err, 422, "invalid_field", field, "%s is longer than %d characters", field,
                                 JSONBODY_METADATA_VALUE_MAX);
    }
    /* A key of json_object_foreach ends at its first NUL: a key holding one
     * is refused by its length check above only if it differs; dump and
     * look instead, as PostgreSQL refuses \u0000 in jsonb. */
    char *text = json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return jsonbody_fail(err, 500, "internal", NULL, "out of memory");
    bool nul = strstr(text, "\\u0000") != NULL;
    *out = nul ? NULL : arena_strdup(arena, text);
    free(text);
    if (nul)
        return jsonbody_fail(err, 422, "invalid_field", "metadata",
                             "metadata must not contain NUL characters");
    if (!*out)
        return jsonbody_fail(err, 500, "internal", NULL, "out of memory");
    return 0;
}

char *jsonbody_canonical(const json_t *doc)
{
    return doc ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
}
