/* notify_out.c: what ingest sends notification on notify-requests
 * (MemberContactChanged, ConsentChanged, InboxMessagesRead), encoded for
 * ingest's outbox, and the consents list routes take. */
#ifndef TESSERA_INGEST_NOTIFY_OUT_H
#define TESSERA_INGEST_NOTIFY_OUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caller.h"
#include "db/db.h"
#include "http/validate.h"

#define NOTIFY_CONSENTS_MAX 8 /* 4 channels x 2 purposes */

extern const char *const notify_channels[]; /* inbox email sms push */
extern const char *const notify_purposes[]; /* transactional marketing */
extern const char *const notify_locales[];  /* zh-CN en */

struct notify_contact {
    const char *name, *phone, *email, *locale; /* NULL: "" */
    bool erased;
};

struct notify_consent {
    const char *channel, *purpose; /* borrowed from the request body */
    bool granted;
};

struct notify_consent_set {
    struct notify_consent items[NOTIFY_CONSENTS_MAX];
    size_t count;
};

/* Encoded envelopes (malloc'ed; NULL when too large), keyed and addressed
 * to member_id, acting as the caller (a member session as the member). */
uint8_t *notify_encode_contact(const struct caller *c, const char *member_id,
                               const char *traceparent, const struct notify_contact *contact,
                               size_t *len) __attribute__((warn_unused_result));
uint8_t *notify_encode_consent(const struct caller *c, const char *member_id,
                               const char *traceparent, const struct notify_consent *consent,
                               const char *source, size_t *len) __attribute__((warn_unused_result));
uint8_t *notify_encode_inbox_read(const struct caller *c, const char *member_id,
                                  const char *traceparent, const char *const *message_ids,
                                  size_t id_count, int64_t up_to_us, size_t *len)
    __attribute__((warn_unused_result));

/* The body's "consents" array: 1 to 8 {channel, purpose, granted}, no pair
 * twice; problems recorded in v as "consents[i].field". Absent: count 0
 * (and "is required" when required). Items borrow from body. */
void notify_parse_consents(struct validation *v, json_t *body, bool required,
                           struct notify_consent_set *out);

/* A consent set as the SQL arrays statements unnest: channels, purposes,
 * granted; the ConsentChanged envelope of each (source as given) appended
 * to payloads, and its topic to topics (when not NULL). False when an
 * envelope could not be encoded; free a either way. */
struct notify_consent_arrays {
    struct db_array channels, purposes, granted;
};
bool notify_consent_arrays(const struct caller *c, const char *member_id, const char *traceparent,
                           const struct notify_consent_set *set, const char *source,
                           struct notify_consent_arrays *a, struct db_array *topics,
                           struct db_array *payloads) __attribute__((warn_unused_result));
void notify_consent_arrays_free(struct notify_consent_arrays *a);

#endif
