#ifndef TESSERA_TIERING_H
#define TESSERA_TIERING_H

#include <libpq-fe.h>

#include "service/pipeline.h"

int tiering_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err,
                        size_t err_len);

#endif
