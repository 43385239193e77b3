/* The entitlement resources' rules in ingest's memory (resource_cache.c),
 * so a check reads no PostgreSQL: one entry per (tenant, resource), the
 * rules or "no such resource", kept true by resource_listen.c (a NOTIFY
 * per change, sent by a trigger in the changing transaction). While the
 * listener is down the cache is off and empty: every check reads the
 * table, never a stale rule. When full it is emptied (the next checks
 * refill it). */
#ifndef TESSERA_INGEST_RESOURCE_CACHE_H
#define TESSERA_INGEST_RESOURCE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rules_entitlement.h"

#define RESOURCE_CACHE_MAX 20000 /* entries, per instance */

struct resource_cache;

struct resource_cache *resource_cache_new(void);
void resource_cache_free(struct resource_cache *c);
void resource_cache_set_enabled(struct resource_cache *c, bool enabled);
/* Bumped by every forget: a read that began before must not be stored. */
uint64_t resource_cache_generation(const struct resource_cache *c);
/* 1 found (*rules points into the cache, valid until the next forget or
 * put; *known false: no such resource), 0 not cached. */
int resource_cache_get(struct resource_cache *c, const char *tenant_id, const char *resource,
                       const struct ent_rules **rules, bool *known);
/* Stores what was read at generation (nothing when it moved since, or the
 * cache is off); takes ownership of rules' content (NULL: no such
 * resource) and clears it. */
void resource_cache_put(struct resource_cache *c, uint64_t generation, const char *tenant_id,
                        const char *resource, struct ent_rules *rules);
/* A change announced: "<tenant> <resource>", or "" for everything. */
void resource_cache_forget(struct resource_cache *c, const char *payload);

#endif
