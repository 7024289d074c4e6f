/*
 * pagoflex/connector.h - the Pagoflex connector ABI, version 1.
 *
 * This is the only header a connector plugin includes. A plugin is a shared
 * object that exports one function, pagoflex_connector_v1(), returning a
 * pointer to a constant descriptor (struct pagoflex_connector). The host
 * checks the descriptor's header (magic, ABI version, size, build signature)
 * before it touches anything else, so a plugin built for another ABI is
 * refused with a message instead of crashing the host.
 *
 * Rules every plugin follows (see sdk/README.md and sdk/ABI.md):
 *  - Only plain C types cross the boundary: no json_t, CURL, EVP_* pointers.
 *  - Ownership: everything a plugin returns from a call is allocated in that
 *    call's arena (host->arena_alloc and friends). The host frees the arena
 *    when the call's results have been used. A plugin frees nothing it
 *    returns, and keeps no pointer into an arena after the call returns.
 *  - Inputs (payments, responses, headers, bodies) are owned by the host and
 *    are valid only for the duration of the call.
 *  - Entry points may be called concurrently from several threads with the
 *    same state: the state set up by init must be read-only afterwards, or
 *    protected by the plugin.
 *  - No threads, atexit handlers, thread-local destructors or global
 *    callbacks that fini does not undo: the host may unload the plugin.
 *
 * Versioning: new fields and entry points are only ever appended to
 * struct pagoflex_connector and struct pagoflex_host_services. Each carries
 * its size, so either side can test whether the other has a field
 * (PAGOFLEX_HAS_FIELD). An incompatible change bumps PAGOFLEX_ABI_MAJOR.
 */
#ifndef PAGOFLEX_CONNECTOR_H
#define PAGOFLEX_CONNECTOR_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* "PGFX" read as a big-endian 32-bit number. */
#define PAGOFLEX_MAGIC 0x50474658u
#define PAGOFLEX_ABI_MAJOR 1
#define PAGOFLEX_ABI_MINOR 1

/* Name of the entry point a plugin exports for ABI major 1. */
#define PAGOFLEX_ENTRY_SYMBOL "pagoflex_connector_v1"

#define PAGOFLEX_STR_(x) #x
#define PAGOFLEX_STR(x) PAGOFLEX_STR_(x)

/*
 * Build signature: what must match between host and plugin beyond the ABI
 * version (compared as a string, like nginx's NGX_MODULE_SIGNATURE).
 */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define PAGOFLEX_ENDIAN_ "be"
#else
#define PAGOFLEX_ENDIAN_ "le"
#endif
#define PAGOFLEX_BUILD_SIGNATURE                                              \
    "pagoflex-abi=" PAGOFLEX_STR(PAGOFLEX_ABI_MAJOR) ",ptr="                  \
    PAGOFLEX_STR(__SIZEOF_POINTER__) ",long=" PAGOFLEX_STR(__SIZEOF_LONG__)   \
    ",size_t=" PAGOFLEX_STR(__SIZEOF_SIZE_T__) ",endian=" PAGOFLEX_ENDIAN_

#if defined(__GNUC__)
#define PAGOFLEX_EXPORT __attribute__((visibility("default")))
#else
#define PAGOFLEX_EXPORT
#endif

/* True when a struct that declares its own `size` has member `field`. */
#define PAGOFLEX_HAS_FIELD(ptr, type, field)                                  \
    ((ptr)->size >= offsetof(type, field) + sizeof(((type *)0)->field))

/* Status codes returned by every entry point and host service. */
typedef enum pagoflex_status {
    PAGOFLEX_OK = 0,
    PAGOFLEX_ERR_INVALID = 1,     /* input is malformed (bad JSON, bad header) */
    PAGOFLEX_ERR_UNSUPPORTED = 2, /* valid but not supported (e.g. currency) */
    PAGOFLEX_ERR_SIGNATURE = 3,   /* webhook signature missing, wrong or stale */
    PAGOFLEX_ERR_CREDENTIALS = 4, /* a credential is missing or unusable */
    PAGOFLEX_ERR_NOMEM = 5,       /* allocation failed */
    PAGOFLEX_ERR_TRANSPORT = 6,   /* execute_request could not get an answer */
    PAGOFLEX_ERR_INTERNAL = 7,    /* anything else; the plugin logged why */
    PAGOFLEX_ERR_NOT_FOUND = 8    /* 1.1, sync: the bank does not know the payment,
                                     or there is nothing to ask it by */
} pagoflex_status;

/* Payment states. Numbers are part of the ABI. */
typedef enum pagoflex_state {
    PAGOFLEX_STATE_CREATED = 0,
    PAGOFLEX_STATE_PROCESSING = 1, /* sent to the bank, outcome unknown */
    PAGOFLEX_STATE_PENDING = 2,    /* accepted by the bank, result to come */
    PAGOFLEX_STATE_SUCCEEDED = 3,
    PAGOFLEX_STATE_FAILED = 4,
    PAGOFLEX_STATE_REQUIRES_ACTION = 5,
    PAGOFLEX_STATE_CANCELED = 6,
    /* 1.1: the host gave up settling the payment by itself (deadline passed,
     * the bank may have it): a person must look. A webhook may still settle
     * it. Set by the host's reconciler; connectors need not return it. */
    PAGOFLEX_STATE_REQUIRES_REVIEW = 7
} pagoflex_state;

typedef enum pagoflex_log_level {
    PAGOFLEX_LOG_DEBUG = 0,
    PAGOFLEX_LOG_INFO = 1,
    PAGOFLEX_LOG_WARN = 2,
    PAGOFLEX_LOG_ERROR = 3
} pagoflex_log_level;

/* Opaque host objects. */
typedef struct pagoflex_arena pagoflex_arena;
typedef struct pagoflex_credentials pagoflex_credentials;

/* One HTTP header; both strings NUL-terminated. */
typedef struct pagoflex_header {
    const char *name;
    const char *value;
} pagoflex_header;

/* A payment as the host hands it to a connector. */
typedef struct pagoflex_payment {
    const char *id;          /* Pagoflex payment id; use it as the bank-side
                                idempotency key so a retry never charges twice */
    int64_t amount;          /* minor units, > 0 */
    const char *currency;    /* ISO 4217, upper case */
    const char *reference;   /* merchant reference, or NULL */
    const char *description; /* or NULL */
    const char *webhook_url; /* where the bank must send this payment's webhooks */
    const char *provider_reference_id; /* bank's id if known, else NULL */
} pagoflex_payment;

/* An HTTP request built by a connector (all memory in the call's arena). */
typedef struct pagoflex_http_request {
    const char *method; /* "GET", "POST", ... */
    const char *url;    /* absolute URL */
    const pagoflex_header *headers;
    size_t header_count;
    const unsigned char *body; /* may be NULL when body_len is 0 */
    size_t body_len;
    long timeout_ms; /* 0: the host's default */
} pagoflex_http_request;

/* What kind of failure stopped a request from getting an HTTP answer. */
typedef enum pagoflex_transport {
    PAGOFLEX_TRANSPORT_OK = 0,      /* an HTTP status was received */
    PAGOFLEX_TRANSPORT_TIMEOUT = 1, /* the request may have reached the bank */
    PAGOFLEX_TRANSPORT_CONNECT = 2, /* could not connect */
    PAGOFLEX_TRANSPORT_ERROR = 3    /* anything else (TLS, reset, ...) */
} pagoflex_transport;

/* The bank's answer to a pagoflex_http_request. */
typedef struct pagoflex_http_response {
    pagoflex_transport transport;
    int status; /* HTTP status, 0 when transport != OK */
    const pagoflex_header *headers;
    size_t header_count;
    const unsigned char *body;
    size_t body_len;
} pagoflex_http_response;

/* A connector's verdict on a bank answer (strings in the call's arena). */
typedef struct pagoflex_payment_result {
    pagoflex_state state;
    const char *provider_reference_id; /* or NULL */
    const char *error_code;            /* machine-readable, or NULL */
    const char *error_message;         /* human-readable, or NULL */
} pagoflex_payment_result;

/* A verified webhook, parsed (strings in the call's arena). */
typedef struct pagoflex_webhook_event {
    const char *event_id;   /* unique per connector; required */
    const char *tx_id;      /* bank transaction id; or NULL */
    const char *payment_id; /* our payment id if the bank echoes it; or NULL */
    pagoflex_state state;   /* state the event moves the payment to */
    const char *error_code; /* for a failed payment, or NULL */
    const char *error_message;
} pagoflex_webhook_event;

/*
 * Services the host offers to a plugin. Appended to only; test
 * PAGOFLEX_HAS_FIELD(host, pagoflex_host_services, field) before using a
 * field newer than the minor version the plugin was built for.
 */
typedef struct pagoflex_host_services pagoflex_host_services;
struct pagoflex_host_services {
    uint32_t size;      /* sizeof the table the host filled */
    uint16_t abi_major; /* host's ABI version */
    uint16_t abi_minor;

    /* Log one line, attributed to this plugin. Never log a secret. */
    void (*log)(const pagoflex_host_services *host, pagoflex_log_level level,
                const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* Value of credential `name` (NUL-terminated), or NULL if absent. Only
     * valid inside init: copy what you need; wipe it in fini. */
    const char *(*credential)(const pagoflex_credentials *creds, const char *name);

    /* Arena allocation. NULL on failure. Memory is zeroed. */
    void *(*arena_alloc)(pagoflex_arena *arena, size_t size);
    char *(*arena_strdup)(pagoflex_arena *arena, const char *s);
    char *(*arena_strndup)(pagoflex_arena *arena, const char *s, size_t n);
    char *(*arena_printf)(pagoflex_arena *arena, const char *fmt, ...)
#if defined(__GNUC__)
        __attribute__((format(printf, 2, 3)))
#endif
        ;

    /* HMAC-SHA256 of data under key into out[32]. PAGOFLEX_OK or an error. */
    int (*hmac_sha256)(const void *key, size_t key_len, const void *data,
                       size_t data_len, unsigned char out[32]);
    /* Lower-case hex of in; out must hold 2*len+1 bytes. */
    void (*hex_encode)(const unsigned char *in, size_t len, char *out);
    /* Decode hex (either case); PAGOFLEX_ERR_INVALID on odd length, a bad
     * digit, or out_cap too small. *out_len set on success. */
    int (*hex_decode)(const char *in, size_t len, unsigned char *out,
                      size_t out_cap, size_t *out_len);
    /* Standard base64 with padding, NUL-terminated, in the arena. */
    char *(*base64_encode)(pagoflex_arena *arena, const unsigned char *in, size_t len);
    /* Decode into the arena; PAGOFLEX_ERR_INVALID on bad input. */
    int (*base64_decode)(pagoflex_arena *arena, const char *in, size_t len,
                         unsigned char **out, size_t *out_len);
    /* 1 if the n bytes are equal, 0 otherwise, in time independent of data. */
    int (*ct_equal)(const void *a, const void *b, size_t n);
    /* Overwrite n bytes with zeros in a way the compiler cannot drop. */
    void (*wipe)(void *p, size_t n);
    /* Value of header `name` (case-insensitive), or NULL. */
    const char *(*header_get)(const pagoflex_header *headers, size_t count,
                              const char *name);
    /* The host's clock, in Unix seconds (tests may move it). */
    int64_t (*now)(void);
};

/*
 * The descriptor a plugin returns from pagoflex_connector_v1(). Fill the
 * first five fields with PAGOFLEX_CONNECTOR_HEADER.
 */
typedef struct pagoflex_connector pagoflex_connector;
struct pagoflex_connector {
    uint32_t magic;              /* PAGOFLEX_MAGIC */
    uint16_t abi_major;          /* PAGOFLEX_ABI_MAJOR at build time */
    uint16_t abi_minor;          /* PAGOFLEX_ABI_MINOR at build time */
    uint32_t size;               /* sizeof(struct pagoflex_connector) at build time */
    const char *build_signature; /* PAGOFLEX_BUILD_SIGNATURE */

    const char *key;          /* connector key used in the API, [A-Z0-9_]{1,32} */
    const char *webhook_path; /* POST /webhooks/<path>, [a-z0-9_-]{1,32} */
    const char *version;      /* plugin version, e.g. "1.2.0" */
    const char *const *required_credentials; /* NULL-terminated list */
    const char *const *currencies; /* NULL-terminated ISO 4217 codes, or NULL = any */

    /* Called once after load with this plugin's credentials. Sets *state.
     * Return PAGOFLEX_OK, or an error: the plugin is then not loaded. */
    int (*init)(const pagoflex_host_services *host,
                const pagoflex_credentials *creds, void **state);
    /* Release everything init made; wipe copied secrets. May be NULL. */
    void (*fini)(void *state);

    /* Describe the bank call that creates `payment`. */
    int (*build_request)(void *state, const pagoflex_payment *payment,
                         pagoflex_arena *arena, pagoflex_http_request *out);
    /* Optional (NULL = host's libcurl executor). Perform `req`, fill `out`.
     * Must honour req->timeout_ms. Runs on a host worker thread. */
    int (*execute_request)(void *state, const pagoflex_http_request *req,
                           pagoflex_arena *arena, pagoflex_http_response *out);
    /* Map the bank's answer to a payment state. Must cope with any status,
     * empty or non-JSON bodies. A timeout, connection error, 429 or 5xx must
     * map to PAGOFLEX_STATE_PROCESSING (outcome unknown), never FAILED. */
    int (*handle_response)(void *state, const pagoflex_payment *payment,
                           const pagoflex_http_response *resp,
                           pagoflex_arena *arena, pagoflex_payment_result *out);

    /* PAGOFLEX_OK if the webhook's signature is valid, else
     * PAGOFLEX_ERR_SIGNATURE. Must be constant-time in the secret. */
    int (*verify_webhook)(void *state, const pagoflex_header *headers,
                          size_t header_count, const unsigned char *body,
                          size_t body_len, pagoflex_arena *arena);
    /* Parse a verified webhook body; PAGOFLEX_ERR_INVALID on garbage. */
    int (*parse_webhook)(void *state, const unsigned char *body, size_t body_len,
                         pagoflex_arena *arena, pagoflex_webhook_event *out);

    /* ---- ABI 1.1: status sync (test PAGOFLEX_HAS_FIELD(desc,
     * pagoflex_connector, sync_response); either may be NULL = no sync). */

    /* Describe the bank call that reads the current status of `payment`
     * (payment->provider_reference_id is the bank's id when known).
     * PAGOFLEX_ERR_NOT_FOUND when there is nothing to ask the bank by (no
     * bank id yet): the host then re-sends build_request's call, which is
     * safe because the payment id is the bank-side idempotency key. */
    int (*sync_request)(void *state, const pagoflex_payment *payment,
                        pagoflex_arena *arena, pagoflex_http_request *out);
    /* Map the answer to sync_request's call: PAGOFLEX_OK with out->state
     * PENDING (bank still deciding), SUCCEEDED or FAILED (final), or
     * PROCESSING (the answer says nothing: timeout, 429, 5xx, garbage);
     * PAGOFLEX_ERR_NOT_FOUND when the bank says it has no such payment, in
     * its own unambiguous words (Banco X: 404 {"error":"not_found"}); the
     * host may then end the payment `failed`, so a 404 that may come from
     * anything else (a misrouted URL, a proxy) must be PROCESSING. */
    int (*sync_response)(void *state, const pagoflex_payment *payment,
                         const pagoflex_http_response *resp, pagoflex_arena *arena,
                         pagoflex_payment_result *out);
};

/* Fills the header fields of a pagoflex_connector initializer. */
#define PAGOFLEX_CONNECTOR_HEADER                                             \
    .magic = PAGOFLEX_MAGIC, .abi_major = PAGOFLEX_ABI_MAJOR,                 \
    .abi_minor = PAGOFLEX_ABI_MINOR,                                          \
    .size = (uint32_t)sizeof(struct pagoflex_connector),                      \
    .build_signature = PAGOFLEX_BUILD_SIGNATURE

/* Defines the exported entry point returning `descriptor`. */
#define PAGOFLEX_DEFINE_CONNECTOR(descriptor)                                 \
    PAGOFLEX_EXPORT const struct pagoflex_connector *pagoflex_connector_v1(void); \
    PAGOFLEX_EXPORT const struct pagoflex_connector *pagoflex_connector_v1(void) \
    {                                                                         \
        return &(descriptor);                                                 \
    }

typedef const struct pagoflex_connector *(*pagoflex_connector_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* PAGOFLEX_CONNECTOR_H */
