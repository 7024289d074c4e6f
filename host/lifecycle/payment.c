/* payment.c - payment states and the transitions allowed between them.
 *
 *   created -> processing -> pending -> succeeded | failed
 *   requires_action where the customer must act; canceled.
 *   requires_capture: authorized (manual capture), until a capture
 *   (succeeded) or a void (canceled).
 *   requires_review when the reconciler gave up (deadline) while the bank
 *   may have the payment: not terminal, a late webhook or sync may settle it.
 *
 * A webhook may overtake the bank's synchronous reply, so the final states
 * are reachable from every non-terminal state except that `canceled` is never
 * entered from `processing`: the bank may have taken that payment. Terminal
 * states never regress.
 */
#include "payment.h"

#include <string.h>

static const char *const payment_names[PAYMENT_STATE_COUNT] = {
    "created", "processing", "pending",  "succeeded",
    "failed",  "requires_action", "canceled", "requires_review",
    "requires_capture",
};

#define S(x) (1u << PAGOFLEX_STATE_##x)

/* allowed_from[to] = bit set of states `to` may be entered from. */
static const unsigned allowed_from[PAYMENT_STATE_COUNT] = {
    [PAGOFLEX_STATE_CREATED] = 0,
    [PAGOFLEX_STATE_PROCESSING] = S(CREATED),
    [PAGOFLEX_STATE_PENDING] = S(CREATED) | S(PROCESSING) | S(REQUIRES_ACTION),
    [PAGOFLEX_STATE_SUCCEEDED] = S(CREATED) | S(PROCESSING) | S(PENDING) | S(REQUIRES_ACTION) |
                                 S(REQUIRES_REVIEW) | S(REQUIRES_CAPTURE),
    [PAGOFLEX_STATE_FAILED] =
        S(CREATED) | S(PROCESSING) | S(PENDING) | S(REQUIRES_ACTION) | S(REQUIRES_REVIEW),
    [PAGOFLEX_STATE_REQUIRES_ACTION] = S(CREATED) | S(PROCESSING) | S(PENDING),
    [PAGOFLEX_STATE_CANCELED] = S(CREATED) | S(PENDING) | S(REQUIRES_ACTION) | S(REQUIRES_CAPTURE),
    [PAGOFLEX_STATE_REQUIRES_REVIEW] = S(CREATED) | S(PROCESSING) | S(PENDING),
    [PAGOFLEX_STATE_REQUIRES_CAPTURE] =
        S(CREATED) | S(PROCESSING) | S(PENDING) | S(REQUIRES_ACTION) | S(REQUIRES_REVIEW),
};

#undef S

static bool payment_state_valid(int state)
{
    return state >= 0 && state < PAYMENT_STATE_COUNT;
}

const char *payment_state_name(pagoflex_state state)
{
    return payment_state_valid((int)state) ? payment_names[state] : "unknown";
}

int payment_state_parse(const char *name)
{
    for (int i = 0; name && i < PAYMENT_STATE_COUNT; i++)
        if (strcmp(name, payment_names[i]) == 0)
            return i;
    return -1;
}

bool payment_state_terminal(pagoflex_state state)
{
    return state == PAGOFLEX_STATE_SUCCEEDED || state == PAGOFLEX_STATE_FAILED ||
           state == PAGOFLEX_STATE_CANCELED;
}

bool payment_transition_allowed(pagoflex_state from, pagoflex_state to)
{
    if (!payment_state_valid((int)from) || !payment_state_valid((int)to))
        return false;
    return (allowed_from[to] >> from) & 1u;
}

size_t payment_states_into(pagoflex_state to, pagoflex_state out[PAYMENT_STATE_COUNT])
{
    size_t n = 0;
    if (!payment_state_valid((int)to))
        return 0;
    for (int from = 0; from < PAYMENT_STATE_COUNT; from++)
        if ((allowed_from[to] >> from) & 1u)
            out[n++] = (pagoflex_state)from;
    return n;
}
