/* Picking the producer of a member's ledger commands (command_producers.h). */
#include "command_producers.h"

#include <assert.h>
#include <stdint.h>

size_t command_producer_index(const char *member_id, size_t count)
{
    assert(count >= 1 && member_id);
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *c = member_id; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    return h % count;
}
