/* The senders shared by ingest's sweeps (coupon_issuer.c,
 * redemption_settle.c): a command or a notice produced without a waiter,
 * whose loss a later round of the sweep repairs by sending again, and the
 * delivery report that marks a notice no longer owed. */
#ifndef TESSERA_INGEST_SWEEP_SEND_H
#define TESSERA_INGEST_SWEEP_SEND_H

#include "events/card_types.h"
#include "ingest.h"
#include "tessera/notification/v1/notification.pb-c.h"

/* Produces env (encoded here; env stays the caller's) on topic, keyed by
 * its member; kind and id make the delivery report's opaque. A refused
 * produce is logged with what (the sweep's name): the next round resends. */
void sweep_send(struct ingest *app, const char *topic, Envelope *env, int kind, const char *id,
                const char *what);
/* Sends ic as a ledger command in an envelope made of meta. */
void sweep_send_command(struct ingest *app, struct event_meta *meta, IssueCoupon *ic,
                        const char *what);
/* Sends note on notify-requests in an envelope made of meta; its delivery
 * report comes back as kind with id. */
void sweep_send_notice(struct ingest *app, struct event_meta *meta,
                       Tessera__Notification__V1__NotifyRequest *note, int kind, const char *id,
                       const char *what);
/* A notice's delivery report: once the broker has it, noticed_sql ($1 = id)
 * marks it no longer owed; a failed report leaves it owed (resent later). */
void sweep_notice_delivered(struct ingest *app, const char *noticed_sql, const char *id,
                            rd_kafka_resp_err_t err, const char *what);

#endif
