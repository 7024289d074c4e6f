/* crashboard.h - which plugins a worker was running when it died.
 *
 * The master maps one board, shared with every worker it forks. Each worker
 * owns a slot: it lists its plugins there, and counts calls in progress into
 * each (registry_plugin.busy). When a worker dies from a signal, the master
 * reads its slot and blames the plugins that had calls in progress.
 */
#ifndef PAGOFLEX_CRASHBOARD_H
#define PAGOFLEX_CRASHBOARD_H

#include <stddef.h>

#define CRASHBOARD_SLOTS 96
#define CRASHBOARD_PLUGINS 64
#define CRASHBOARD_NAME 64

typedef struct crashboard crashboard;

/* A board shared across fork(). NULL if mmap fails. */
crashboard *crashboard_create(void);

/* Empty slot `slot` for a new worker. */
void crashboard_reset(crashboard *b, int slot);

/* Register plugin `name` in `slot`; returns its busy counter, or NULL when
 * the slot is full (the plugin then simply cannot be blamed). */
_Atomic int *crashboard_register(crashboard *b, int slot, const char *name);

/* Copy into names[] the plugins of `slot` with calls in progress; returns
 * how many (at most max). */
size_t crashboard_blame(crashboard *b, int slot, char names[][CRASHBOARD_NAME], size_t max);

#endif
