/* condwait.h - a condition-variable wait bounded in milliseconds. */
#ifndef PAGOFLEX_CONDWAIT_H
#define PAGOFLEX_CONDWAIT_H

#include <pthread.h>

/* Wait on `cond` for at most `ms` milliseconds; `mu` must be held and is
 * held again on return (pthread_cond_timedwait against CLOCK_REALTIME).
 * Returns what pthread_cond_timedwait returned (ETIMEDOUT when the time
 * ran out; a wake-up may also be spurious: callers re-check their
 * condition). */
int condwait_ms(pthread_cond_t *cond, pthread_mutex_t *mu, long ms);

#endif
