/* executor.c - the host's libcurl executor for connector HTTP requests. */
#include "executor.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "arena.h"
#include "reqid.h"
#include "log.h"

/* One easy handle per thread: reusing it keeps connections to banks alive. */
static pthread_key_t executor_key;
static pthread_once_t executor_once = PTHREAD_ONCE_INIT;

static void executor_handle_free(void *h)
{
    curl_easy_cleanup(h);
}

static void executor_make_key(void)
{
    pthread_key_create(&executor_key, executor_handle_free);
}

int executor_global_init(void)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return -1;
    pthread_once(&executor_once, executor_make_key);
    return 0;
}

static CURL *executor_handle(void)
{
    pthread_once(&executor_once, executor_make_key);
    CURL *h = pthread_getspecific(executor_key);
    if (!h) {
        h = curl_easy_init();
        if (h)
            pthread_setspecific(executor_key, h);
    } else {
        curl_easy_reset(h);
    }
    return h;
}


static size_t executor_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    executor_body *b = userdata;
    size_t n = size * nmemb;
    if (b->len + n > EXECUTOR_MAX_RESPONSE) {
        b->overflow = 1;
        return 0; /* aborts the transfer */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static pagoflex_transport executor_transport(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        return PAGOFLEX_TRANSPORT_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return PAGOFLEX_TRANSPORT_CONNECT;
    default:
        return PAGOFLEX_TRANSPORT_ERROR;
    }
}

void executor_headers_free(struct curl_slist *list)
{
    /* curl_slist_free_all frees each line unwiped, and one of them is
     * "Authorization: Bearer <bank API key>". */
    for (struct curl_slist *e = list; e; e = e->next)
        if (e->data)
            OPENSSL_cleanse(e->data, strlen(e->data));
    curl_slist_free_all(list);
}

static bool executor_has_header(const pagoflex_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->header_count; i++)
        if (req->headers[i].name && strcasecmp(req->headers[i].name, name) == 0)
            return true;
    return false;
}

/* Append X-Request-Id and traceparent of the calling thread's current
 * request, if any. 0, or -1 on allocation failure (the caller frees *list). */
static int executor_add_trace(const pagoflex_http_request *req, pagoflex_arena *arena,
                              struct curl_slist **list)
{
    const char *id = reqid_current(), *tp = reqid_current_traceparent();
    char child[REQID_TRACEPARENT + 1];
    const char *lines[2] = {NULL, NULL};
    if (id && !executor_has_header(req, "X-Request-Id") &&
        !(lines[0] = arena_printf(arena, "X-Request-Id: %s", id)))
        return -1;
    if (tp && reqid_traceparent_valid(tp) && !executor_has_header(req, "traceparent")) {
        reqid_traceparent_child(tp, child);
        if (!(lines[1] = arena_printf(arena, "traceparent: %s", child)))
            return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (!lines[i])
            continue;
        struct curl_slist *next = curl_slist_append(*list, lines[i]);
        if (!next)
            return -1;
        *list = next;
    }
    return 0;
}

int executor_prepare(CURL *h, const pagoflex_http_request *req, long default_timeout_ms,
                     const tlscreds *tls, pagoflex_arena *arena, executor_body *sink, struct curl_slist **headers)
{
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < req->header_count; i++) {
        char *line = arena_printf(arena, "%s: %s", req->headers[i].name, req->headers[i].value);
        struct curl_slist *next = line ? curl_slist_append(list, line) : NULL;
        if (!next)
            goto fail;
        list = next;
    }
    /* The request this call is made for (reqid.h): the bank sees its id and
     * a child of its traceparent, unless the connector set its own. */
    if (executor_add_trace(req, arena, &list) != 0)
        goto fail;
    /* curl adds "Expect: 100-continue" for large bodies: a round trip we don't need. */
    struct curl_slist *next = curl_slist_append(list, "Expect:");
    if (!next)
        goto fail;
    list = next;

    long timeout = req->timeout_ms > 0 ? req->timeout_ms : default_timeout_ms;
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    if (req->body_len > 0 || strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? (const char *)req->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout < 5000 ? timeout : 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, executor_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    if (tlscreds_apply(h, tls) != 0) {
        log_warn("bank call %s %s not started: libcurl refused the client certificate options",
                 req->method, req->url);
        goto fail;
    }
    *headers = list;
    return 0;
fail:
    executor_headers_free(list);
    return -1;
}

void executor_finish(CURL *h, CURLcode rc, const pagoflex_http_request *req, executor_body *sink,
                     pagoflex_arena *arena, pagoflex_http_response *out)
{
    memset(out, 0, sizeof *out);
    if (rc != CURLE_OK) {
        out->transport = sink->overflow ? PAGOFLEX_TRANSPORT_ERROR : executor_transport(rc);
        log_debug("bank call %s %s: %s", req->method, req->url, curl_easy_strerror(rc));
        goto done;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    out->transport = PAGOFLEX_TRANSPORT_OK;
    out->status = (int)status;
    if (sink->len) {
        unsigned char *copy = arena_alloc(arena, sink->len + 1);
        if (!copy) {
            out->transport = PAGOFLEX_TRANSPORT_ERROR;
            out->status = 0;
            goto done;
        }
        memcpy(copy, sink->data, sink->len);
        out->body = copy;
        out->body_len = sink->len;
    }
done:
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    free(sink->data);
    memset(sink, 0, sizeof *sink);
}

void executor_perform(const pagoflex_http_request *req, long default_timeout_ms,
                      const tlscreds *tls, pagoflex_arena *arena, pagoflex_http_response *out)
{
    executor_body body = {0};
    struct curl_slist *headers = NULL;
    CURL *h = executor_handle();
    memset(out, 0, sizeof *out);
    out->transport = PAGOFLEX_TRANSPORT_ERROR;
    if (!h || executor_prepare(h, req, default_timeout_ms, tls, arena, &body, &headers) != 0)
        return;
    executor_finish(h, curl_easy_perform(h), req, &body, arena, out);
    executor_headers_free(headers);
}
