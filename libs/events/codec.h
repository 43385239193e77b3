/* The one codec for Tessera's protobuf envelope: builds envelopes, encodes
 * and decodes them with size checks both ways, and writes the CloudEvents
 * binary-mode Kafka headers that let consumers route without decoding. */
#ifndef TESSERA_CODEC_H
#define TESSERA_CODEC_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids/uuid7.h"
#include "tessera/envelope/v1/envelope.pb-c.h"
#include "tessera/ledger/v1/ledger.pb-c.h"
#include "tessera/member/v1/member.pb-c.h"

/* Short names for the generated types. */
typedef Tessera__Envelope__V1__Envelope Envelope;
typedef Tessera__Envelope__V1__Actor Actor;
typedef Tessera__Member__V1__MemberRegistered MemberRegistered;
typedef Tessera__Ledger__V1__Balances Balances;
typedef Tessera__Ledger__V1__PurchaseItem PurchaseItem;
typedef Tessera__Ledger__V1__TopUpStoredValue TopUpStoredValue;
typedef Tessera__Ledger__V1__RecordPurchase RecordPurchase;
typedef Tessera__Ledger__V1__StoredValueToppedUp StoredValueToppedUp;
typedef Tessera__Ledger__V1__PurchaseRecorded PurchaseRecorded;
typedef Tessera__Ledger__V1__JournalLine JournalLine;
typedef Tessera__Ledger__V1__LedgerPosted LedgerPosted;
typedef Tessera__Ledger__V1__LedgerRejected LedgerRejected;
typedef Tessera__Ledger__V1__AdjustPoints AdjustPoints;
typedef Tessera__Ledger__V1__ExpirePoints ExpirePoints;
typedef Tessera__Ledger__V1__PointsAdjusted PointsAdjusted;
typedef Tessera__Ledger__V1__PointsExpired PointsExpired;
typedef Tessera__Ledger__V1__PointsLotDetail PointsLotDetail;
typedef Tessera__Ledger__V1__EarnPoints EarnPoints;
typedef Tessera__Ledger__V1__VestPoints VestPoints;
typedef Tessera__Ledger__V1__PointsEarned PointsEarned;
typedef Tessera__Ledger__V1__PointsVested PointsVested;
typedef Tessera__Ledger__V1__RefundStoredValue RefundStoredValue;
typedef Tessera__Ledger__V1__RefundPurchase RefundPurchase;
typedef Tessera__Ledger__V1__RefundDetail RefundDetail;
typedef Tessera__Ledger__V1__RefundRecorded RefundRecorded;
typedef Tessera__Ledger__V1__PrepaidThresholdCrossed PrepaidThresholdCrossed;

#define EVENT_ENCODED_MAX  (256 * 1024) /* bytes; larger events are refused both ways */
#define EVENT_ID_FIELD_MAX 128          /* tenant, branch, member, actor ids */

/* Ids and metadata an envelope points at; the envelope borrows these
 * strings, so the struct must outlive it. */
struct event_meta {
    char event_id[UUID_STR_SIZE];
    const char *tenant_id;
    const char *branch_id;
    const char *member_id;
    const char *causation_id;
    const char *correlation_id;
    const char *actor_kind;
    const char *actor_id;
    const char *traceparent; /* W3C trace context to carry on (NULL: none) */
    int64_t occurred_at_us;  /* 0: now */
};

/* Fills env and actor (which env then points to) from meta, generating
 * meta->event_id and setting recorded_at to now. The payload is left for
 * the caller to set (env->payload_case and the union member); the type
 * name is set by envelope_encode from the payload. */
void envelope_init(Envelope *env, Actor *actor, struct event_meta *meta);

/* The payload's full protobuf name ("tessera.ledger.v1.TopUpStoredValue"),
 * or "" when no payload is set. */
const char *envelope_payload_type(const Envelope *env);

/* Encodes env (setting env->type from its payload first, unless it
 * already names it: a decoded envelope can be changed and re-encoded, then
 * freed with envelope_free). Returns a
 * malloc'ed buffer the caller frees, or NULL when the payload is missing or
 * the encoding is larger than EVENT_ENCODED_MAX. */
uint8_t *envelope_encode(Envelope *env, size_t *len) __attribute__((warn_unused_result));

/* Decodes and checks an envelope: size, a valid event id, a tenant, ids
 * under EVENT_ID_FIELD_MAX, a payload whose type matches env->type.
 * Returns the envelope (free with envelope_free) or NULL with err. */
Envelope *envelope_decode(const void *data, size_t len, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void envelope_free(Envelope *env);

/* CloudEvents binary-mode headers for env (ce_specversion, ce_id,
 * ce_source, ce_type, ce_time, ce_subject, content-type). Caller owns the
 * result (bus_produce takes it). source is e.g. "/tessera/ledger". */
rd_kafka_headers_t *envelope_cloudevents_headers(const Envelope *env, const char *source);

/* Microseconds since the Unix epoch by the service's clock (clock/clock.h:
 * wall time, moved by tests). */
int64_t event_now_us(void);
/* Formats microseconds as RFC 3339 UTC with milliseconds
 * ("2026-11-23T05:00:00.123Z"); out needs 32 bytes. */
void event_format_time(int64_t unix_us, char out[32]);

#endif
