/* A batch's answers recorded under their keys while the rest of its lines
 * are still applied: verdicts arrive over seconds, so they are written in
 * chunks as they come (one statement in flight a batch, the chunk growing
 * while it runs), and after the last verdict only the last chunk is left.
 * The recorder outlives the batch's answer: its statements finish after
 * the reply, fire and forget like single requests (a retry before its
 * answer is recorded resumes the same command, which the ledger applies
 * once). */
#ifndef TESSERA_INGEST_BATCH_RECORD_H
#define TESSERA_INGEST_BATCH_RECORD_H

#include <jansson.h>

struct ingest;
struct batch_recorder;

/* Verdicts written in one statement once this many wait and none is in
 * flight: 10 000 lines make about 20 statements of a few ms each instead
 * of one of 400 ms after the last verdict. */
#define BATCH_RECORD_CHUNK 500

/* NULL when out of memory (the batch then records nothing: its retries
 * resume their commands). */
struct batch_recorder *batch_recorder_new(struct ingest *app, const char *tenant_id)
    __attribute__((warn_unused_result));
/* The answer of key: status and result (serialised now). */
void batch_recorder_add(struct batch_recorder *rec, const char *key, int status,
                        const json_t *result);
/* No more answers: the rest is written and rec frees itself once its
 * statements are done. */
void batch_recorder_finish(struct batch_recorder *rec);

#endif
