/* Activity rules in ingest: the JSON the API speaks (activity_rules_json.c)
 * and the routes (activity_rules.c, activities.c). */
#ifndef TESSERA_INGEST_ACTIVITY_RULES_H
#define TESSERA_INGEST_ACTIVITY_RULES_H

#include <jansson.h>
#include <stdint.h>

#include "events/codec.h"
#include "events/engage_types.h"

struct validation;

/* The index of type in activity_defaults, or -1 when it is not one. */
int activity_type_index(const char *type);

/* The full rule set a body asks for (NULL body: the defaults), every
 * problem recorded in v; a new reference, meaningful only when v is ok. */
json_t *activity_rules_from_body(json_t *body, struct validation *v);

/* The ActivityRulesChanged event of a full rule set (caller frees), NULL
 * when too large. meta as for envelope_init. */
uint8_t *activity_rules_encode(json_t *rules, struct event_meta *meta, const char *change_id,
                               int64_t version, const char *time_zone, size_t *len);

#endif
