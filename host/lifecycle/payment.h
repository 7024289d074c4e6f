/* payment.h - payment states and the transitions allowed between them. */
#ifndef PAGOFLEX_PAYMENT_H
#define PAGOFLEX_PAYMENT_H

#include <stdbool.h>
#include <stddef.h>

#include <pagoflex/connector.h>

#define PAYMENT_STATE_COUNT 9

/* "created", "processing", ...; "unknown" for a value out of range. */
const char *payment_state_name(pagoflex_state state);

/* The state named `name`, or -1. */
int payment_state_parse(const char *name);

/* True for succeeded, failed and canceled: no transition leaves them. */
bool payment_state_terminal(pagoflex_state state);

/* True if a payment in `from` may move to `to`. */
bool payment_transition_allowed(pagoflex_state from, pagoflex_state to);

/* Write into out[] every state from which `to` may be entered; returns how
 * many (0..PAYMENT_STATE_COUNT). Used to build conditional UPDATEs. */
size_t payment_states_into(pagoflex_state to, pagoflex_state out[PAYMENT_STATE_COUNT]);

#endif
