/* The points scheduler's memory of what it sent (rules_resend.h). */
#include "rules_resend.h"

#include <string.h>

static struct resend_entry *resend_find(struct resend_memory *m, const char *key)
{
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->entries[i].key, key) == 0)
            return &m->entries[i];
    return NULL;
}

void resend_round_begin(struct resend_memory *m)
{
    for (size_t i = 0; i < m->count; i++)
        m->entries[i].seen = false;
}

bool resend_due(struct resend_memory *m, const char *key, int64_t now_ms)
{
    struct resend_entry *e = resend_find(m, key);
    if (!e)
        return true;
    e->seen = true;
    return now_ms >= e->next_ms;
}

bool resend_delivered(struct resend_memory *m, const char *key, int64_t now_ms)
{
    size_t len = strlen(key);
    if (len >= RESEND_KEY_MAX)
        return false;
    struct resend_entry *e = resend_find(m, key);
    if (e) {
        e->backoff_ms = e->backoff_ms * 2 > RESEND_MAX_MS ? RESEND_MAX_MS : e->backoff_ms * 2;
    } else {
        if (m->count == RESEND_ENTRIES_MAX)
            return false;
        e = &m->entries[m->count++];
        memcpy(e->key, key, len + 1);
        e->backoff_ms = RESEND_FIRST_MS;
    }
    e->next_ms = now_ms + e->backoff_ms;
    e->seen = true;
    return true;
}

void resend_round_end(struct resend_memory *m)
{
    size_t kept = 0;
    for (size_t i = 0; i < m->count; i++)
        if (m->entries[i].seen)
            m->entries[kept++] = m->entries[i];
    m->count = kept;
}
