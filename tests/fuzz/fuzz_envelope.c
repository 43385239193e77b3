/* libFuzzer target: the protobuf envelope decoder every consumer runs on
 * every Kafka message (envelope_decode checks sizes, the payload's type
 * against its oneof, then CloudEvents headers are built from it). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "events/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    Envelope *env = envelope_decode(data, size, why, sizeof(why));
    if (env) {
        rd_kafka_headers_t *h = envelope_cloudevents_headers(env, "/fuzz");
        if (h)
            rd_kafka_headers_destroy(h);
        size_t len = 0;
        uint8_t *again = envelope_encode(env, &len);
        free(again);
    }
    envelope_free(env);
    return 0;
}
