/* W3C Trace Context (https://www.w3.org/TR/trace-context/): the
 * traceparent header "00-<trace-id 32 hex>-<parent-id 16 hex>-<flags 2 hex>".
 * Ingest takes it from the HTTP request (or starts a trace), puts it in
 * the Envelope (field 11) of every event the request causes, and each
 * service copies it from an event into the events that event causes, so
 * one trace id follows a request through Kafka, the ledger and the logs. */
#ifndef TESSERA_TRACE_H
#define TESSERA_TRACE_H

#include <stdbool.h>

#define TRACEPARENT_LEN  55 /* characters, version 00 */
#define TRACEPARENT_SIZE (TRACEPARENT_LEN + 1)
#define TRACE_ID_SIZE    33 /* 32 hex + NUL */

/* True when header is a valid version-00 traceparent (lowercase hex, trace
 * and parent ids not all zero). Later versions are accepted when their
 * first 55 characters have the 00 layout, as the spec asks. */
bool trace_parse(const char *header, char trace_id[TRACE_ID_SIZE])
    __attribute__((warn_unused_result));

/* This service's span under an incoming traceparent: the same trace id and
 * flags, a new random parent id. When incoming is NULL or invalid, starts
 * a new trace (random trace id, sampled flag 01). */
void trace_continue(const char *incoming, char out[TRACEPARENT_SIZE]);

/* The trace id of a valid traceparent into out ("" when invalid). */
void trace_id_of(const char *traceparent, char out[TRACE_ID_SIZE]);

#endif
