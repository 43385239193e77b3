/* Dead letters of the pipeline: a message that cannot be applied (it does
 * not decode, or the database refuses it) goes to the dead-letter topic
 * with its reason before the batch's offsets move past it. */
#include <stdio.h>

#include "bus/bus.h"
#include "log/log.h"
#include "service/pipeline_internal.h"
#include "service/pipeline_metrics.h"
#include "trace/trace.h"

static void header_text(const rd_kafka_message_t *m, const char *name, char *out, size_t len)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(h, name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
        snprintf(out, len, "%.*s", (int)n, (const char *)v);
}

static void dl_log(const rd_kafka_message_t *m, const char *reason)
{
    /* The CloudEvents headers name the event, member and trace even
     * when the payload cannot be decoded. */
    char event_id[64], member[128], traceparent[TRACEPARENT_SIZE], trace_id[TRACE_ID_SIZE];
    header_text(m, "ce_id", event_id, sizeof(event_id));
    header_text(m, "ce_subject", member, sizeof(member));
    header_text(m, "ce_traceparent", traceparent, sizeof(traceparent));
    trace_id_of(traceparent, trace_id);
    log_fields(LOG_WARN, "dead-lettering a message", "reason", reason, "topic",
               rd_kafka_topic_name(m->rkt), "event_id", event_id, "member_id", member, "trace_id",
               trace_id, NULL);
}

/* Marked poison, and its dead letter is not (yet) delivered. from is the
 * index of b's first message in the polled batch. */
bool pipeline_dl_pending(const struct pipeline *p, const struct pipeline_batch *b, size_t from,
                         size_t i)
{
    return b->poison[i] &&
           !(p->dl_queued[from + i] && p->dl_result[from + i] == RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Sends the dead letters of b's poison messages that are not delivered
 * yet, all at once, then waits for them once. Called between attempts,
 * outside any transaction: no row stays locked while the broker answers.
 * A crash after this and before the commit sends them again (at least
 * once); a dead letter that fails fails the batch, so the offsets never
 * move past a message that is neither applied nor dead-lettered. */
int pipeline_dl_send(struct pipeline *p, struct pipeline_batch *b, size_t from,
                     const struct refusal *refused, char *err, size_t err_len)
{
    const char *extra[] = {"x-dead-letter-sqlstate", refused ? refused->sqlstate : "",
                           "x-dead-letter-detail", refused ? refused->text : "", NULL};
    for (size_t i = 0; i < b->count; i++) {
        size_t k = from + i;
        if (!pipeline_dl_pending(p, b, from, i) ||
            (p->dl_queued[k] && p->dl_result[k] == RD_KAFKA_RESP_ERR__IN_PROGRESS))
            continue; /* nothing to send, or still on its way from an earlier try */
        dl_log(b->msgs[i], b->poison[i]);
        p->dl_queued[k] = true;
        (void)bus_dead_letter_enqueue(p->producer, b->msgs[i], p->cfg.service, b->poison[i],
                                      refused ? extra : NULL, &p->dl_result[k]);
    }
    if (bus_dead_letters_wait(p->producer, p->dl_result + from, b->count,
                              BUS_DEAD_LETTER_TIMEOUT_MS) == 0)
        return 0;
    /* Only this attempt's poison counts: a message that was poison in an
     * earlier attempt only (it should not happen) keeps its old result. */
    for (size_t i = 0; i < b->count; i++)
        if (pipeline_dl_pending(p, b, from, i)) {
            snprintf(err, err_len, "dead letter not delivered: %s",
                     rd_kafka_err2name(p->dl_result[from + i]));
            return -1;
        }
    return 0;
}

/* After the commit: the batch's dead letters are final, count them. */
void pipeline_dl_count(struct pipeline *p, const struct pipeline_batch *b, bool refused)
{
    for (size_t i = 0; i < b->count; i++) {
        if (!b->poison[i])
            continue;
        atomic_fetch_add(&p->stats.dead_letters, 1);
        pipeline_metrics_dead_letter(b->msgs[i], refused ? "refused" : "invalid");
    }
}
