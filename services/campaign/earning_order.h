/* Earning in order with rule changes (docs/domain.md "Earning points"; the
 * architecture's rule 1: a consumer applying a tenant-wide setting to a
 * member's event has it already or waits for it). A rule change travels on
 * member-events keyed by tenant and a purchase's fact on ledger-events
 * keyed by member, so the fact may come first. Ingest lists every change
 * it published (ingest.read_earning_rule_changes, written with the change's
 * event in one statement); a purchase recorded at or after a listed change
 * this service has neither stored nor refused waits in deferred_purchases
 * and earns when the change is stored. Changes older than the newest one
 * stored are not waited for (one lost before this service existed, or
 * overtaken). All calls run inside the batch's transaction. */
#ifndef TESSERA_CAMPAIGN_EARNING_ORDER_H
#define TESSERA_CAMPAIGN_EARNING_ORDER_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events/codec.h"

/* For n purchases (tenant_ids[i], occurred_at_us[i]) sets wait[i] when a
 * change published for that tenant, in force at or before the purchase,
 * is not stored yet. 0, or -1 with err. */
int earning_order_check(PGconn *pg, const char *const *tenant_ids, const int64_t *occurred_at_us,
                        size_t n, bool *wait, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Keeps one waiting purchase's fact (payload, len bytes) until its rules
 * are known. 0, or -1 with err. */
int earning_order_defer(PGconn *pg, const Envelope *fact, const void *payload, size_t len,
                        char *err, size_t err_len) __attribute__((warn_unused_result));

/* Takes out every waiting purchase whose rules are all known now: *facts
 * gets *count decoded envelopes (caller frees each with envelope_free and
 * the array with free). A kept fact that no longer decodes is dropped with
 * an error log. 0, or -1 with err. */
int earning_order_release(PGconn *pg, Envelope ***facts, size_t *count, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Records a change dead-lettered by this service: nothing waits for it. */
int earning_order_refused(PGconn *pg, const char *tenant_id, const char *change_id, char *err,
                          size_t err_len) __attribute__((warn_unused_result));

#endif
