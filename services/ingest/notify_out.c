/* What ingest tells notification on notify-requests (issue 11), encoded
 * as envelopes for ingest's outbox: a member's contact (at registration,
 * erased on erasure), consent changes, inbox messages read. Each is
 * inserted by the statement that makes the change, so it reaches Kafka
 * exactly when the change commits (member_events.c relays it), keyed by
 * the member. Also the consent list every route that takes consents
 * validates the same way. */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "ingest.h"
#include "notify_out.h"

const char *const notify_channels[] = {"inbox", "email", "sms", "push", NULL};
const char *const notify_purposes[] = {"transactional", "marketing", NULL};
const char *const notify_locales[] = {"zh-CN", "en", NULL};

/* Fills meta from the caller: a member session acts as the member. */
static void meta_of(struct event_meta *meta, const struct caller *c, const char *member_id,
                    const char *traceparent)
{
    bool member = strcmp(c->scope, "member") == 0;
    *meta = (struct event_meta){.tenant_id = c->tenant_id,
                                .branch_id = c->branch_id,
                                .member_id = member_id,
                                .actor_kind = member ? "member" : "api_key",
                                .actor_id = member ? member_id : c->key_id,
                                .traceparent = traceparent};
}

uint8_t *notify_encode_contact(const struct caller *c, const char *member_id,
                               const char *traceparent, const struct notify_contact *contact,
                               size_t *len)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    Tessera__Notification__V1__MemberContactChanged m;
    meta_of(&meta, c, member_id, traceparent);
    envelope_init(&env, &actor, &meta);
    tessera__notification__v1__member_contact_changed__init(&m);
#define OR_EMPTY(s) ((s) ? (char *)(s) : (char *)"")
    m.name = OR_EMPTY(contact->name);
    m.phone = OR_EMPTY(contact->phone);
    m.email = OR_EMPTY(contact->email);
    m.locale = OR_EMPTY(contact->locale);
#undef OR_EMPTY
    m.erased = contact->erased;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED;
    env.member_contact_changed = &m;
    return envelope_encode(&env, len);
}

uint8_t *notify_encode_consent(const struct caller *c, const char *member_id,
                               const char *traceparent, const struct notify_consent *consent,
                               const char *source, size_t *len)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    Tessera__Notification__V1__ConsentChanged m;
    meta_of(&meta, c, member_id, traceparent);
    envelope_init(&env, &actor, &meta);
    tessera__notification__v1__consent_changed__init(&m);
    m.channel = (char *)consent->channel;
    m.purpose = (char *)consent->purpose;
    m.granted = consent->granted;
    m.source = (char *)source;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CONSENT_CHANGED;
    env.consent_changed = &m;
    return envelope_encode(&env, len);
}

uint8_t *notify_encode_inbox_read(const struct caller *c, const char *member_id,
                                  const char *traceparent, const char *const *message_ids,
                                  size_t id_count, int64_t up_to_us, size_t *len)
{
    struct event_meta meta;
    Envelope env;
    Actor actor;
    Tessera__Notification__V1__InboxMessagesRead m;
    meta_of(&meta, c, member_id, traceparent);
    envelope_init(&env, &actor, &meta);
    tessera__notification__v1__inbox_messages_read__init(&m);
    m.n_message_ids = id_count;
    m.message_ids = (char **)message_ids;
    m.up_to_us = up_to_us;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_INBOX_MESSAGES_READ;
    env.inbox_messages_read = &m;
    return envelope_encode(&env, len);
}

static bool word_in(const char *s, const char *const *words)
{
    for (size_t i = 0; words[i]; i++)
        if (strcmp(s, words[i]) == 0)
            return true;
    return false;
}

/* One element of a consents array; records problems as consents[i].x. */
static void parse_consent(struct validation *v, json_t *e, size_t i, struct notify_consent_set *out)
{
    static const char *const fields[] = {"channel", "purpose", "granted", NULL};
    char field[64];
    snprintf(field, sizeof(field), "consents[%zu]", i);
    if (!json_is_object(e)) {
        validation_add(v, field, "must be an object {channel, purpose, granted}");
        return;
    }
    const char *key;
    json_t *value;
    json_object_foreach(e, key, value)
    {
        if (!word_in(key, fields)) {
            snprintf(field, sizeof(field), "consents[%zu].%.32s", i, key);
            validation_add(v, field, "unknown field");
        }
    }
    const char *channel = json_string_value(json_object_get(e, "channel"));
    const char *purpose = json_string_value(json_object_get(e, "purpose"));
    json_t *granted = json_object_get(e, "granted");
    bool ok = true;
    if (!channel || !word_in(channel, notify_channels)) {
        snprintf(field, sizeof(field), "consents[%zu].channel", i);
        validation_add(v, field, "must be one of inbox, email, sms, push");
        ok = false;
    }
    if (!purpose || !word_in(purpose, notify_purposes)) {
        snprintf(field, sizeof(field), "consents[%zu].purpose", i);
        validation_add(v, field, "must be transactional or marketing");
        ok = false;
    }
    if (!json_is_boolean(granted)) {
        snprintf(field, sizeof(field), "consents[%zu].granted", i);
        validation_add(v, field, "must be true or false");
        ok = false;
    }
    if (!ok)
        return;
    for (size_t k = 0; k < out->count; k++)
        if (strcmp(out->items[k].channel, channel) == 0 &&
            strcmp(out->items[k].purpose, purpose) == 0) {
            snprintf(field, sizeof(field), "consents[%zu]", i);
            validation_add(v, field, "names a channel and purpose already given");
            return;
        }
    assert(out->count < NOTIFY_CONSENTS_MAX);
    out->items[out->count++] = (struct notify_consent){
        .channel = channel, .purpose = purpose, .granted = json_is_true(granted)};
}

void notify_parse_consents(struct validation *v, json_t *body, bool required,
                           struct notify_consent_set *out)
{
    out->count = 0;
    json_t *arr = json_object_get(body, "consents");
    if (!arr || json_is_null(arr)) {
        if (required)
            validation_add(v, "consents", "is required");
        return;
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > NOTIFY_CONSENTS_MAX) {
        validation_add(v, "consents", "must be an array of 1 to 8 {channel, purpose, granted}");
        return;
    }
    for (size_t i = 0; i < json_array_size(arr); i++)
        parse_consent(v, json_array_get(arr, i), i, out);
}

bool notify_consent_arrays(const struct caller *c, const char *member_id, const char *traceparent,
                           const struct notify_consent_set *set, const char *source,
                           struct notify_consent_arrays *a, struct db_array *topics,
                           struct db_array *payloads)
{
    db_array_init(&a->channels);
    db_array_init(&a->purposes);
    db_array_init(&a->granted);
    for (size_t i = 0; i < set->count; i++) {
        size_t len = 0;
        uint8_t *bin =
            notify_encode_consent(c, member_id, traceparent, &set->items[i], source, &len);
        if (!bin)
            return false;
        db_array_add(&a->channels, set->items[i].channel);
        db_array_add(&a->purposes, set->items[i].purpose);
        db_array_add(&a->granted, set->items[i].granted ? "t" : "f");
        db_array_add_bytea(payloads, bin, len);
        if (topics)
            db_array_add(topics, TOPIC_NOTIFY_REQUESTS);
        free(bin);
    }
    return true;
}

void notify_consent_arrays_free(struct notify_consent_arrays *a)
{
    db_array_free(&a->channels);
    db_array_free(&a->purposes);
    db_array_free(&a->granted);
}
