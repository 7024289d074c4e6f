/* api_lists.h - GET /v1/payments and GET /v1/refunds: a merchant's objects
 * page by page, newest first (issue 14). */
#ifndef PAGOFLEX_API_LISTS_H
#define PAGOFLEX_API_LISTS_H

#include <stdbool.h>

#include <microhttpd.h>

#include "api_flows.h"

/* GET /v1/payments?limit=&starting_after=&ending_before=&status=&connector=
 * &reference=&created[gt|gte|lt|lte]=. Answers {"object": "list", "url",
 * "has_more", "data": [payments]}; a bad or unknown parameter is refused
 * (400 unknown_parameter, 422 invalid_field) naming it. */
enum MHD_Result api_lists_payments(api_request *r);

/* GET /v1/refunds with the same parameters, payment_id instead of
 * reference, and status pending | succeeded | failed. */
enum MHD_Result api_lists_refunds(api_request *r);

/* 0 if every query parameter of the request is in `allowed` (NULL
 * terminated; NULL: none is); otherwise the 400 unknown_parameter naming
 * the first other one is queued and *ret is its result. */
int api_lists_known_query(api_request *r, const char *const *allowed, enum MHD_Result *ret);

#endif
