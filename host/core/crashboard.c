/* crashboard.c - which plugins a worker was running when it died. */
#include "crashboard.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

struct crashboard_slot {
    atomic_int count;
    char names[CRASHBOARD_PLUGINS][CRASHBOARD_NAME];
    atomic_int busy[CRASHBOARD_PLUGINS];
};

struct crashboard {
    struct crashboard_slot slots[CRASHBOARD_SLOTS];
};

crashboard *crashboard_create(void)
{
    void *p = mmap(NULL, sizeof(crashboard), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p; /* mmap'd anonymous memory is zeroed */
}

void crashboard_reset(crashboard *b, int slot)
{
    if (!b || slot < 0 || slot >= CRASHBOARD_SLOTS)
        return;
    struct crashboard_slot *s = &b->slots[slot];
    atomic_store(&s->count, 0);
    for (int i = 0; i < CRASHBOARD_PLUGINS; i++)
        atomic_store(&s->busy[i], 0);
    memset(s->names, 0, sizeof s->names);
}

_Atomic int *crashboard_register(crashboard *b, int slot, const char *name)
{
    if (!b || slot < 0 || slot >= CRASHBOARD_SLOTS)
        return NULL;
    struct crashboard_slot *s = &b->slots[slot];
    int i = atomic_load(&s->count);
    if (i >= CRASHBOARD_PLUGINS)
        return NULL;
    snprintf(s->names[i], CRASHBOARD_NAME, "%s", name);
    atomic_store(&s->count, i + 1);
    return &s->busy[i];
}

size_t crashboard_blame(crashboard *b, int slot, char names[][CRASHBOARD_NAME], size_t max)
{
    size_t n = 0;
    if (!b || slot < 0 || slot >= CRASHBOARD_SLOTS)
        return 0;
    struct crashboard_slot *s = &b->slots[slot];
    int count = atomic_load(&s->count);
    for (int i = 0; i < count && n < max; i++)
        if (atomic_load(&s->busy[i]) > 0)
            memcpy(names[n++], s->names[i], CRASHBOARD_NAME);
    return n;
}
