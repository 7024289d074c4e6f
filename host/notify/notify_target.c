/* notify_target.c - the address and URL checks of notification targets. */
#include "notify_target.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* v4 in host order. */
static bool v4_public(uint32_t a)
{
    static const struct {
        uint32_t net;
        int bits;
    } refused[] = {
        {0x00000000, 8},  /* "this network", 0.0.0.0 */
        {0x0a000000, 8},  /* private */
        {0x64400000, 10}, /* carrier-grade NAT */
        {0x7f000000, 8},  /* loopback */
        {0xa9fe0000, 16}, /* link-local (cloud metadata at 169.254.169.254) */
        {0xac100000, 12}, /* private */
        {0xc0000000, 24}, /* IETF protocol assignments */
        {0xc0000200, 24}, /* documentation */
        {0xc0a80000, 16}, /* private */
        {0xc6120000, 15}, /* benchmarking */
        {0xc6336400, 24}, /* documentation */
        {0xcb007100, 24}, /* documentation */
        {0xe0000000, 4},  /* multicast */
        {0xf0000000, 4},  /* reserved, and 255.255.255.255 */
    };
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        uint32_t mask = refused[i].bits ? ~0u << (32 - refused[i].bits) : 0;
        if ((a & mask) == refused[i].net)
            return false;
    }
    return true;
}

static uint32_t v4_at(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static bool v6_public(const unsigned char *b)
{
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    /* ::ffff:a.b.c.d, ::a.b.c.d (also :: and ::1), 64:ff9b::a.b.c.d: the v4 rules. */
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
        return v4_public(v4_at(b + 12));
    if (memcmp(b, zero, 12) == 0)
        return false; /* ::, ::1 and the deprecated IPv4-compatible form */
    if (b[0] == 0xff)
        return false; /* multicast */
    if ((b[0] & 0xfe) == 0xfc)
        return false; /* unique local fc00::/7 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return false; /* link-local fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return false; /* site-local fec0::/10 (deprecated) */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return false; /* documentation 2001:db8::/32 */
    if (b[0] == 0x01 && b[1] == 0 && memcmp(b + 2, zero, 6) == 0)
        return false; /* discard-only 100::/64 */
    return true;
}

bool notify_target_addr_allowed(const struct sockaddr *sa, bool allow_private)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return allow_private || v4_public(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return allow_private || v6_public(in6->sin6_addr.s6_addr);
    }
    return false;
}

static void target_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* The host of a URL (curl's normalised form) is refused as a target. */
static bool host_refused(const char *host)
{
    char lit[64];
    size_t len = strlen(host);
    if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
        /* An IPv6 literal, maybe with a zone id ("%25eth0"): a zone is link-local. */
        if (memchr(host, '%', len))
            return true;
        if (len - 2 >= sizeof lit)
            return true;
        memcpy(lit, host + 1, len - 2);
        lit[len - 2] = '\0';
        struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
        return inet_pton(AF_INET6, lit, &in6.sin6_addr) != 1 ||
               !notify_target_addr_allowed((struct sockaddr *)&in6, false);
    }
    struct sockaddr_in in = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, host, &in.sin_addr) == 1)
        return !notify_target_addr_allowed((struct sockaddr *)&in, false);
    /* Names: "localhost" and its subdomains always mean loopback (RFC 6761). */
    const char *suffix = ".localhost";
    size_t sl = strlen(suffix);
    char trimmed[256];
    if (len >= sizeof trimmed)
        return false;
    memcpy(trimmed, host, len + 1);
    if (len && trimmed[len - 1] == '.')
        trimmed[--len] = '\0';
    return strcasecmp(trimmed, "localhost") == 0 || (len > sl && strcasecmp(trimmed + len - sl, suffix) == 0);
}

int notify_target_check_url(const char *url, bool allow_private, char *err, size_t errlen)
{
    int rc = -1;
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
    CURLU *u = NULL;
    if (!url || !*url) {
        target_err(err, errlen, "url is empty; give the https URL of your endpoint");
        return -1;
    }
    if (strlen(url) > NOTIFY_URL_MAX) {
        target_err(err, errlen, "url is longer than 2048 characters");
        return -1;
    }
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
            target_err(err, errlen, "url must not contain spaces or control characters");
            return -1;
        }
    if (!(u = curl_url())) {
        target_err(err, errlen, "out of memory");
        return -1;
    }
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        target_err(err, errlen, "url is not an absolute URL such as https://example.com/webhooks");
        goto done;
    }
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        target_err(err, errlen, "url must start with https:// or http://");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        target_err(err, errlen, "url has no host name");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        target_err(err, errlen, "url must not carry a user name or password");
        goto done;
    }
    if (!allow_private && host_refused(host)) {
        target_err(err, errlen,
                   "url points at a loopback, private, link-local or otherwise non-public address; "
                   "notifications go to public endpoints only");
        goto done;
    }
    rc = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return rc;
}
