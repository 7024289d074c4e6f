/* store_orphan.h - webhook events that arrived before their payment's bank id.
 *
 * A verified event that names no payment of ours (no echoed id) and whose
 * bank transaction id is not stored yet is kept as an orphan
 * (webhook_events.payment_id NULL). When a bank id becomes known, the
 * orphans of (connector, tx_id) are attached to that payment and applied in
 * arrival order, in one transaction, exactly once.
 */
#ifndef PAGOFLEX_STORE_ORPHAN_H
#define PAGOFLEX_STORE_ORPHAN_H

#include "store.h"

/* Keep event `ev` of `connector`, received for connector account
 * `account`, as an orphan of that account (ev->tx_id must be set).
 * STORE_OK (kept), STORE_DUPLICATE (an event with that id is stored
 * already), STORE_UNAVAILABLE, STORE_ERROR. */
store_result store_orphan_keep(store *s, const char *connector, const char *account,
                               const pagoflex_webhook_event *ev, const unsigned char *body, size_t body_len,
                               pagoflex_arena *arena);

/* Apply the orphans of (connector, account, tx_id) to that account's
 * payment whose bank id is tx_id, if there is one and orphans wait. *applied gets how many moved
 * the payment (0 when nothing waited). STORE_OK, STORE_UNAVAILABLE,
 * STORE_ERROR (nothing changed). */
store_result store_orphan_apply(store *s, const char *connector, const char *account, const char *tx_id,
                                int *applied);

#endif
