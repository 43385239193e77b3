/* A projection every young consumer can start from: how many events of
 * each type each tenant produced, and when the last one happened (table
 * event_tally in the service's schema, see event_tally.sql in a
 * service's migrations). Kept exactly once like any effect. */
#ifndef TESSERA_EVENT_TALLY_H
#define TESSERA_EVENT_TALLY_H

#include <libpq-fe.h>

#include "service/pipeline.h"

/* pipeline_ops.apply: undecodable messages go to dead-letter. */
int event_tally_apply(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len);

#endif
