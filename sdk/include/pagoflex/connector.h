/*
 * pagoflex/connector.h - the Pagoflex connector ABI, version 1.2.
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
#define PAGOFLEX_ABI_MINOR 2

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
    PAGOFLEX_ERR_NOT_FOUND = 8,   /* 1.1, sync: the bank does not know the payment,
                                     or there is nothing to ask it by */
    PAGOFLEX_ERR_TOKEN = 9,       /* 1.2, flow_response: the bank refused the access
                                     token; the host fetches a new one once and
                                     retries the flow once */
    PAGOFLEX_ERR_KEY_UNKNOWN = 10 /* 1.2, webhook_verify: signed with a key id the
                                     cached key set lacks; the host refetches the
                                     keys (at most once a minute) and verifies again */
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
    PAGOFLEX_STATE_REQUIRES_REVIEW = 7,
    /* 1.2: authorized (funds held), waiting for a capture or a void. */
    PAGOFLEX_STATE_REQUIRES_CAPTURE = 8
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

/* ---- ABI 1.2: flows ------------------------------------------------------
 *
 * Every bank call is one flow, described by flow_request and read by
 * flow_response (the Hyperswitch ConnectorIntegration<Flow, Req, Resp> cut,
 * in C: one pair of entry points, a flow enum and a flow-input struct).
 * A plugin declares the flows it has in `flows`; the API answers
 * 422 unsupported_operation, naming the connector, for one it lacks.
 */
typedef enum pagoflex_flow {
    PAGOFLEX_FLOW_AUTHORIZE = 0,    /* create the payment; in->capture says
                                       whether the bank captures at once */
    PAGOFLEX_FLOW_CAPTURE = 1,      /* capture in->amount of an authorization */
    PAGOFLEX_FLOW_VOID = 2,         /* release an uncaptured authorization, or
                                       abandon a payment still requires_action */
    PAGOFLEX_FLOW_REFUND = 3,       /* refund in->amount of a captured payment */
    PAGOFLEX_FLOW_PAYMENT_SYNC = 4, /* read the payment's state at the bank */
    PAGOFLEX_FLOW_REFUND_SYNC = 5   /* read a refund's state at the bank */
} pagoflex_flow;

#define PAGOFLEX_FLOW_COUNT 6
#define PAGOFLEX_FLOW_BIT(flow) (1u << (unsigned)(flow))

/*
 * What the host hands to flow_request and flow_response (host memory, valid
 * during the call). `size` is the host's sizeof: a plugin reads a field newer
 * than the minor it was built for only if PAGOFLEX_HAS_FIELD says the host
 * has it. Fields a flow does not use are 0/NULL.
 */
typedef struct pagoflex_flow_input {
    uint32_t size;
    pagoflex_flow flow;
    /* The payment the flow acts on (for refunds: the refunded payment).
     * payment->provider_reference_id is the bank's payment id once known. */
    const pagoflex_payment *payment;
    /* The host's id of this operation: the payment id (authorize), the
     * capture, void or refund id. Send it as the bank's idempotency key: a
     * retry of the same operation always carries the same id. */
    const char *operation_id;
    /* AUTHORIZE */
    int capture;                      /* 1: capture at once; 0: authorize only */
    const char *return_url;           /* where the customer returns after a
                                         redirect, or NULL */
    const char *payment_method_type;  /* "card_token", or NULL */
    const char *payment_method_token; /* the bank's token, or NULL */
    /* CAPTURE / REFUND: the amount of this operation (minor units, > 0).
     * AUTHORIZE/VOID/SYNC: 0 (the payment carries its own amount). */
    int64_t amount;
    int64_t amount_captured; /* what the host knows was captured so far */
    int64_t amount_refunded; /* refunds succeeded or pending, in total */
    /* REFUND / REFUND_SYNC */
    const char *refund_id;                    /* our refund id */
    const char *refund_provider_reference_id; /* the bank's refund id, or NULL */
    const char *reason;                       /* refund reason, or NULL */
    /* With token_request (below): the account's current access token, or
     * NULL. Put it in the request; answer PAGOFLEX_ERR_TOKEN from
     * flow_response when the bank says it is refused or expired. */
    const char *access_token;
    /* The request id of the API call that caused this flow (also sent to the
     * bank as X-Request-Id by the host's executor), or NULL. */
    const char *request_id;
} pagoflex_flow_input;

/*
 * A connector's verdict on one flow's answer. The host zeroes it and sets
 * `size` to its own sizeof before the call; a plugin writes a field newer
 * than its minor only if PAGOFLEX_HAS_FIELD says the host has it. Strings
 * in the call's arena.
 *
 * `state` means, per flow:
 *  - AUTHORIZE, PAYMENT_SYNC: the payment's state at the bank: PENDING
 *    (accepted, result to come), SUCCEEDED (captured), REQUIRES_CAPTURE
 *    (authorized), REQUIRES_ACTION (redirect_url set), CANCELED, FAILED (a
 *    definite no), PROCESSING (the answer proves nothing: timeout, 429, 5xx,
 *    garbage).
 *  - CAPTURE, VOID: the outcome of this operation: SUCCEEDED (done),
 *    PENDING (accepted, result by webhook), FAILED (the bank refused the
 *    operation; the payment is unchanged; error_code says why, e.g.
 *    "not_capturable"), PROCESSING (unknown: the host retries with the same
 *    operation_id).
 *  - REFUND, REFUND_SYNC: the refund's state: PENDING, SUCCEEDED, FAILED,
 *    PROCESSING as above.
 * A plugin maps conservatively: only a definite "no" is FAILED.
 */
typedef struct pagoflex_flow_result {
    uint32_t size;
    pagoflex_state state;
    const char *provider_reference_id; /* bank's payment id (authorize) or
                                          refund id (refund), or NULL */
    const char *error_code;            /* machine-readable, or NULL */
    const char *error_message;         /* human-readable, or NULL */
    int64_t amount;             /* capture: captured; sync: captured so far;
                                   refund: refunded; 0 = the bank did not say */
    const char *redirect_url;   /* REQUIRES_ACTION: where to send the customer */
} pagoflex_flow_result;

/* ---- ABI 1.2: webhooks as whole requests -------------------------------- */

/* The whole webhook request (host memory, valid during the call). */
typedef struct pagoflex_webhook_request {
    uint32_t size;
    const char *method;       /* "POST" */
    const char *path;         /* e.g. "/webhooks/bancox" */
    const char *query;        /* raw query string without '?', "" when none */
    const pagoflex_header *headers;
    size_t header_count;
    const unsigned char *body;
    size_t body_len;
    /* With keys_request (below): the account's cached key set (the bank's
     * key-set answer body as received, e.g. a JWKS), or NULL/0. */
    const unsigned char *keys;
    size_t keys_len;
} pagoflex_webhook_request;

typedef enum pagoflex_event_kind {
    PAGOFLEX_EVENT_PAYMENT = 0, /* names a payment */
    PAGOFLEX_EVENT_REFUND = 1,  /* names a refund */
    PAGOFLEX_EVENT_IGNORED = 2  /* a type the plugin does not handle: stored
                                   and acknowledged, changes nothing */
} pagoflex_event_kind;

/* One event of a webhook delivery (strings in the call's arena). */
typedef struct pagoflex_event {
    const char *event_id;     /* unique per connector; required */
    pagoflex_event_kind kind;
    const char *type;         /* the bank's own event type, for the record, or NULL */
    /* Which object: our id and/or the bank's (at least one for PAYMENT and
     * REFUND events). A refund event should also name the payment. */
    const char *payment_id;
    const char *tx_id;        /* the bank's payment id */
    const char *refund_id;
    const char *refund_provider_reference_id;
    /* 1: the event says only that the object changed, not how (Mercado
     * Pago): the host runs the object's sync flow at once. 0: `state` is
     * its new state (payment or refund, meanings as in pagoflex_flow_result
     * for AUTHORIZE and REFUND). */
    int look_up;
    pagoflex_state state;
    int64_t amount;           /* captured or refunded by this event, 0 = not said */
    const char *error_code;
    const char *error_message;
} pagoflex_event;

/* What webhook_parse returns. The host zeroes it and sets `size`. */
typedef struct pagoflex_webhook_parsed {
    uint32_t size;
    const pagoflex_event *events; /* one delivery may carry several */
    size_t event_count;
    /* The answer the bank expects once the events are stored (Adyen wants
     * "[accepted]"): 0/NULL for the host's default JSON 200. */
    int answer_status;
    const char *answer_content_type;
    const unsigned char *answer_body;
    size_t answer_body_len;
} pagoflex_webhook_parsed;

/* ---- ABI 1.2: what banks demand before a call ---------------------------- */

/* An access token (OAuth2 client credentials and the like). */
typedef struct pagoflex_token {
    uint32_t size;
    const char *value;  /* in the call's arena; the host keeps a copy per
                           account, wiped when replaced */
    int64_t expires_at; /* Unix seconds; 0 = until the bank refuses it */
} pagoflex_token;

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

    /* ---- 1.2 (test PAGOFLEX_HAS_FIELD(host, pagoflex_host_services, ...)) */

    /* Value of the non-secret setting `name` of this account (base URL,
     * timeouts, merchant account id: the host config, not the encrypted
     * credentials), or NULL. Only valid inside init, like credential. */
    const char *(*setting)(const pagoflex_credentials *creds, const char *name);
    /* An arena that lives from init until after fini, for what init decodes
     * once (keys, URLs). Only callable inside init; NULL on failure. */
    pagoflex_arena *(*init_arena)(const pagoflex_credentials *creds);
    /* RFC 3986 percent-encoding of s[0..len) (unreserved characters kept),
     * NUL-terminated, in the arena; NULL on failure. */
    char *(*url_encode)(pagoflex_arena *arena, const char *s, size_t len);
    /* application/x-www-form-urlencoded body of n name/value pairs
     * ("a=1&b=x+y"), in the arena; NULL on failure. */
    char *(*form_encode)(pagoflex_arena *arena, const pagoflex_header *pairs, size_t n);
    /* Decode a query string or form body into pairs (in the arena).
     * PAGOFLEX_ERR_INVALID on a bad escape. */
    int (*form_decode)(pagoflex_arena *arena, const char *s, size_t len,
                       pagoflex_header **pairs, size_t *n);
    /* ISO 4217 minor-unit exponent of an active currency (JPY 0, USD 2,
     * KWD 3, CLF 4), or -1 for a code that is not an active currency. */
    int (*currency_exponent)(const char *currency);
    /* "10.50" for (1050, "USD"), "1050" for (1050, "JPY"), in the arena;
     * NULL for an unknown currency. */
    char *(*amount_to_decimal)(pagoflex_arena *arena, int64_t minor, const char *currency);
    /* The inverse: PAGOFLEX_ERR_INVALID for more decimals than the
     * currency has, a bad number or an overflow. */
    int (*amount_from_decimal)(const char *decimal, const char *currency, int64_t *minor);
    /* SHA-256 of data into out[32]. */
    int (*sha256)(const void *data, size_t len, unsigned char out[32]);
    /* Standard Webhooks: the webhook-signature value "v1,<base64>" for
     * (msg_id, timestamp, body) under secret ("whsec_<base64>"), in the
     * arena. PAGOFLEX_ERR_INVALID for a bad secret. */
    int (*stdwebhooks_sign)(pagoflex_arena *arena, const char *secret, const char *msg_id,
                            int64_t timestamp, const unsigned char *body, size_t body_len,
                            char **signature);
    /* Standard Webhooks verification of a request's webhook-id,
     * webhook-timestamp and webhook-signature headers (any one of several
     * space-separated v1 signatures may match; timestamp within
     * tolerance_s of now). PAGOFLEX_OK or PAGOFLEX_ERR_SIGNATURE. */
    int (*stdwebhooks_verify)(const char *secret, const pagoflex_header *headers,
                              size_t header_count, const unsigned char *body, size_t body_len,
                              int64_t now, int64_t tolerance_s);
    /* Verify a JWS in compact form, detached payload allowed (RFC 7515,
     * RFC 7797 "b64":false), against the key set `jwks` (a JWK Set JSON):
     * ES256 (P-256), PS256, RS256. PAGOFLEX_OK, PAGOFLEX_ERR_SIGNATURE, or
     * PAGOFLEX_ERR_KEY_UNKNOWN when its "kid" is not in the set. */
    int (*jws_verify)(const char *jws, const unsigned char *payload, size_t payload_len,
                      const unsigned char *jwks, size_t jwks_len);
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

    /* ---- ABI 1.2: flows (test PAGOFLEX_HAS_FIELD(desc, pagoflex_connector,
     * flow_response)). A 1.2 plugin that sets `flows` is called through
     * flow_request/flow_response for every flow, create and sync included;
     * build_request, handle_response, sync_request and sync_response may
     * then be NULL. A plugin without `flows` (1.0, 1.1) is served through
     * its old entry points: AUTHORIZE with automatic capture, and
     * PAYMENT_SYNC when it has sync. */

    /* PAGOFLEX_FLOW_BIT() of every flow the plugin has. */
    uint32_t flows;
    /* Describe the bank call of in->flow. PAGOFLEX_ERR_UNSUPPORTED or
     * PAGOFLEX_ERR_INVALID: the API answers 422 and nothing is sent;
     * PAGOFLEX_ERR_NOT_FOUND (syncs only): nothing to ask the bank by yet. */
    int (*flow_request)(void *state, const pagoflex_flow_input *in, pagoflex_arena *arena,
                        pagoflex_http_request *out);
    /* Map the bank's answer to in->flow's request (see pagoflex_flow_result
     * for what `state` means per flow). PAGOFLEX_ERR_NOT_FOUND (syncs only)
     * when the bank itself says it has no such object; PAGOFLEX_ERR_TOKEN
     * when it refused the access token. Must cope with any answer. */
    int (*flow_response)(void *state, const pagoflex_flow_input *in,
                         const pagoflex_http_response *resp, pagoflex_arena *arena,
                         pagoflex_flow_result *out);

    /* Webhooks, seeing the whole request. When both are set the host uses
     * them instead of verify_webhook/parse_webhook. webhook_verify:
     * PAGOFLEX_OK, PAGOFLEX_ERR_SIGNATURE (the API answers 401) or
     * PAGOFLEX_ERR_KEY_UNKNOWN; constant-time in the secret. */
    int (*webhook_verify)(void *state, const pagoflex_webhook_request *req,
                          pagoflex_arena *arena);
    /* Parse a verified request into its events. PAGOFLEX_ERR_INVALID on
     * garbage (the API answers 400). An event of a type the plugin does not
     * handle is PAGOFLEX_EVENT_IGNORED, never an error: the bank would retry
     * it for a day. */
    int (*webhook_parse)(void *state, const pagoflex_webhook_request *req,
                         pagoflex_arena *arena, pagoflex_webhook_parsed *out);

    /* Test support, used by `pagoflex plugin check`, `pagoflex webhook
     * verify` and the test kit, never by a serving host: build a webhook
     * request carrying `event`, signed the plugin's own way with its
     * credentials at time `now`. The checker verifies it, then tampers with
     * it and expects webhook_verify to refuse. May be NULL. */
    int (*webhook_sample)(void *state, const pagoflex_event *event, int64_t now,
                          pagoflex_arena *arena, pagoflex_webhook_request *out);

    /* NULL-terminated names of the non-secret settings the plugin reads
     * with host->setting (e.g. "BANCOX_BASE_URL"), or NULL. */
    const char *const *settings;

    /* Access tokens (OAuth2 client credentials): when set, the host runs
     * token_request's call before a flow whose account has no valid token,
     * keeps the token per account (shared by the worker's threads, one fetch
     * at a time), hands it to flows as in->access_token, and fetches a new
     * one once, then retries the flow once, when flow_response answers
     * PAGOFLEX_ERR_TOKEN. token_response: PAGOFLEX_OK with out filled, or an
     * error (the flow then fails to start: the payment stays unknown). */
    int (*token_request)(void *state, pagoflex_arena *arena, pagoflex_http_request *out);
    int (*token_response)(void *state, const pagoflex_http_response *resp,
                          pagoflex_arena *arena, pagoflex_token *out);
    /* Webhook key sets (JWKS): when set, the host fetches the key set with
     * this call, caches the 200 answer's body per account and hands it to
     * webhook_verify (req->keys); on PAGOFLEX_ERR_KEY_UNKNOWN it refetches,
     * at most once a minute, and verifies once more. */
    int (*keys_request)(void *state, pagoflex_arena *arena, pagoflex_http_request *out);

    /* Mutual TLS: names of the credentials holding the client certificate
     * and its private key (PEM), and an optional CA bundle (PEM) for the
     * bank's server certificate, or NULL. The host's executor hands them to
     * libcurl from memory for every call of the account; they are never
     * written to disk. */
    const char *tls_client_cert;
    const char *tls_client_key;
    const char *tls_ca;
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
