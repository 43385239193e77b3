/* The delivery worker's side of PostgreSQL (send_queue.c): claiming due
 * deliveries by leasing their send_queue rows, putting back rows whose
 * lease ran out, and recording a round's outcomes. sender.c drives the
 * sends; this file holds its SQL. */
#ifndef TESSERA_NOTIFICATION_SEND_QUEUE_H
#define TESSERA_NOTIFICATION_SEND_QUEUE_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "db/db.h"
#include "transfer.h"

/* How long a claimed row is its worker's: after this, another's. */
#define SEND_QUEUE_LEASE_S 60

/* A claimed delivery, ready to start, and when it stops being worth
 * sending (0: never). */
struct claimed {
    struct transfer *t;
    int64_t expires_at_us;
};

/* Leases up to max due rows of channel in one lane (due at now_us, not
 * leased; oldest due first; rows another worker is claiming are skipped)
 * and reads their deliveries: out[0..n) (transfers for provider p, owned
 * by the caller). The count n, or -1. */
int send_queue_claim(PGconn *pg, enum provider p, const char *channel, int lane, int max,
                     int64_t now_us, struct claimed *out, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Rows whose lease ran out (their worker died before recording the
 * outcome) are unleased, to be claimed and sent again with the same
 * message id. */
void send_queue_sweep(PGconn *pg);

/* A round's outcomes as column arrays: one statement records them. */
struct send_outcomes {
    struct db_array rows[6];   /* id, status, last_error, next_attempt_us, updated_us, attempts */
    struct db_array outbox[3]; /* topic, key, payload */
};
void send_outcomes_init(struct send_outcomes *w);
void send_outcomes_free(struct send_outcomes *w);
/* The row's next state: delivered and failed leave the queue, pending
 * goes back to it due at next_us. */
void send_outcomes_row(struct send_outcomes *w, const struct transfer *t, const char *status,
                       const char *reason, int64_t next_us, int64_t now_us);
/* An outcome event for notify-events; takes ownership of bin (NULL: not
 * encodable, an error). */
int send_outcomes_event(struct send_outcomes *w, const char *key, uint8_t *bin, size_t len,
                        char *err, size_t err_len) __attribute__((warn_unused_result));
/* Records them in one statement (its own transaction) and frees them. */
int send_outcomes_write(PGconn *pg, struct send_outcomes *w, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
