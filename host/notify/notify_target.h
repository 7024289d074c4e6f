/* notify_target.h - where the host may send a merchant's notifications.
 *
 * A merchant's endpoint URL makes this host send requests from inside our
 * network (server-side request forgery). Unless allow_private is set
 * (notify_allow_private_targets, for development and tests) the host
 * refuses every address that is not a public unicast one: loopback,
 * RFC 1918 private, carrier-grade NAT, link-local, unspecified, multicast,
 * broadcast, reserved and documentation ranges, IPv6 unique-local and
 * site-local, and the IPv4 ranges again inside IPv4-mapped, -compatible and
 * NAT64 IPv6 addresses. URLs are checked at registration (an address
 * literal or a localhost name) and every connection is checked on the
 * address it actually connects to (notifier.c), so a name that resolves
 * to a private address later (DNS rebinding) is refused too.
 */
#ifndef PAGOFLEX_NOTIFY_TARGET_H
#define PAGOFLEX_NOTIFY_TARGET_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

/* Longest endpoint URL accepted. */
#define NOTIFY_URL_MAX 2048

/* True if the host may connect to `sa` (AF_INET or AF_INET6; any other
 * family is refused). */
bool notify_target_addr_allowed(const struct sockaddr *sa, bool allow_private);

/* Check an endpoint URL: absolute http or https, a host, no user name or
 * password (they would show in every listing), at most NOTIFY_URL_MAX
 * bytes, and (unless allow_private) a host that is not a refused address
 * literal or a localhost name. 0 if acceptable; -1 with a one-line reason
 * in err (safe to show the merchant). */
int notify_target_check_url(const char *url, bool allow_private, char *err, size_t errlen);

#endif
