/* Deciding a run of requests together (decide.c, decide_io.c): the
 * consecutive NotifyRequests and login codes of one consumer batch are
 * read and written set-based, one statement per kind for the whole run,
 * inside the batch's transaction (their effects commit with the offsets).
 * A setting (contact, consent, template, policy) between two requests
 * ends the run, so a request always sees every message before it. */
#ifndef TESSERA_NOTIFICATION_DECIDE_H
#define TESSERA_NOTIFICATION_DECIDE_H

#include "db/copy.h"
#include "db/db.h"
#include "notification.h"
#include "rules_policy.h"

#define LOGIN_CODE_REQUEST_PREFIX "login_code:"

/* What the run reads of a request's member and tenant. */
struct member_facts {
    char name[NOTIFY_NAME_MAX + 1], phone[NOTIFY_ADDRESS_MAX + 1], email[NOTIFY_ADDRESS_MAX + 1];
    char push[NOTIFY_ADDRESS_MAX + 1], locale[POLICY_LOCALE_MAX + 1];
    char consents[64]; /* ",email,sms," granted for the request's purpose */
    int cap_used;      /* marketing messages this week before the run */
    struct notify_policy policy;
    /* The first of the request's DECIDE_IDS_PER_REQUEST delivery ids, one
     * per channel (deliveries_id_seq counts by that many, migration 0006):
     * the rows are written with their ids, so their send_queue rows need
     * no look-up. */
    int64_t delivery_ids;
};

/* Delivery ids reserved per request: one per channel (inbox, email, sms,
 * push). Must be deliveries_id_seq's increment. */
#define DECIDE_IDS_PER_REQUEST 4

/* One request of the run, with the storage a login code's request needs
 * (it is built here, not decoded). Never moved once filled: r points into
 * it. */
struct notify_pending {
    struct notify_request_in r;
    size_t msg;   /* index of its message in the pipeline batch */
    bool valid;   /* well-formed (else dead-lettered) */
    bool fresh;   /* the first sight of its request_id (else a duplicate) */
    bool counted; /* a marketing message that went out: counts for the cap */
    struct member_facts facts;
    char request_id[sizeof(LOGIN_CODE_REQUEST_PREFIX) + EVENT_ID_FIELD_MAX];
    NotifyVariable vars[2];
    const NotifyVariable *var_ptrs[2];
};

/* decide_io.c: the run's reads, one statement each. 0 or -1 with err. */
int decide_record_requests(PGconn *pg, struct notify_pending *p, size_t n, int64_t now, char *err,
                           size_t err_len) __attribute__((warn_unused_result));
int decide_load_facts(PGconn *pg, struct notify_pending *p, size_t n, int64_t now, char *err,
                      size_t err_len) __attribute__((warn_unused_result));
/* The tenants' saved templates of the run's (tenant, template) pairs. */
PGresult *decide_load_templates(PGconn *pg, const struct notify_pending *p, size_t n, char *err,
                                size_t err_len) __attribute__((warn_unused_result));
/* A template from that result: the channel's own first, then the one for
 * every channel; false when the tenant saved none. */
bool decide_template_find(const PGresult *t, const char *tenant_id, const char *name,
                          const char *channel, const char *locale, const char **subject,
                          const char **body);

/* The run's writes: COPY rows of deliveries and the inbox (a fresh
 * request's rows cannot exist yet: no conflict to skip), the deliveries
 * to send (their send_queue rows) and the requests that count for the
 * cap. */
struct decide_rows {
    struct db_copy deliveries, inbox, queue;
    struct db_array counted[2]; /* tenant_id, request_id */
};
void decide_rows_init(struct decide_rows *w);
void decide_rows_free(struct decide_rows *w);
/* Writes them: one statement per table. 0 or -1 with err. */
int decide_rows_write(PGconn *pg, struct decide_rows *w, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* decide.c: the run. Invalid or unrenderable requests are marked poison
 * in b; 0, or -1 for a database error. */
int notify_decide_run(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b,
                      struct notify_pending *p, size_t n, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
