/* Receipts from the ledger (issue 11), read from notify-requests itself:
 * a top-up, a stored-value purchase, a stored-value refund, a card sold
 * and a card used each make the ledger send exactly one NotifyRequest
 * (template receipt.top_up, receipt.purchase, receipt.refund, card.sold,
 * card.used), transactional, priority normal, keyed by the member, named
 * "<template>:<fact event id>" after the fact on ledger-events, with the
 * amounts as money and the balances after the command; a rejected
 * purchase and a redelivered top-up command send nothing more. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/topic_reader.h"
#include "bus/topics.h"
#include "events/card_types.h"
#include "events/codec.h"

#define DEADLINE_MS  20000
#define RECEIPTS_MAX 16
#define VARS_MAX     24

/* ------------------------------------------------------------ requests */
struct seen_var {
    char name[48];
    int value_case;
    int64_t n; /* money_minor, number or time_us */
    char text[80];
};

struct seen_request {
    char request_id[128], template_[32], purpose[32], priority[16], key[64], causation[64];
    struct seen_var vars[VARS_MAX];
    size_t var_count;
};

struct seen {
    const char *member;
    struct seen_request r[RECEIPTS_MAX];
    size_t count;
};

static void keep_vars(struct seen_request *s, const Tessera__Notification__V1__NotifyRequest *q)
{
    for (size_t i = 0; i < q->n_variables && i < VARS_MAX; i++) {
        const Tessera__Notification__V1__Variable *v = q->variables[i];
        struct seen_var *sv = &s->vars[s->var_count++];
        snprintf(sv->name, sizeof(sv->name), "%s", v->name);
        sv->value_case = v->value_case;
        switch (v->value_case) {
        case TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT:
            snprintf(sv->text, sizeof(sv->text), "%s", v->text);
            break;
        case TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR:
            sv->n = v->money_minor;
            break;
        case TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER:
            sv->n = v->number;
            break;
        case TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US:
            sv->n = v->time_us;
            break;
        default:
            break;
        }
    }
}

static void on_request(void *ctx, const rd_kafka_message_t *m)
{
    struct seen *s = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (!env)
        return;
    /* the ledger's requests: receipts and card messages (the campaign's
     * welcome for the same member is not one) */
    bool ledgers = env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST &&
                   (strncmp(env->notify_request->template_, "receipt.", 8) == 0 ||
                    strncmp(env->notify_request->template_, "card.", 5) == 0);
    if (ledgers && strcmp(env->member_id, s->member) == 0 && s->count < RECEIPTS_MAX) {
        const Tessera__Notification__V1__NotifyRequest *q = env->notify_request;
        struct seen_request *r = &s->r[s->count++];
        memset(r, 0, sizeof(*r));
        snprintf(r->request_id, sizeof(r->request_id), "%s", q->request_id);
        snprintf(r->template_, sizeof(r->template_), "%s", q->template_);
        snprintf(r->purpose, sizeof(r->purpose), "%s", q->purpose);
        snprintf(r->priority, sizeof(r->priority), "%s", q->priority);
        snprintf(r->key, sizeof(r->key), "%.*s", (int)m->key_len, (const char *)m->key);
        snprintf(r->causation, sizeof(r->causation), "%s", env->causation_id);
        keep_vars(r, q);
    }
    envelope_free(env);
}

static void read_requests(const char *member, struct seen *s)
{
    memset(s, 0, sizeof(*s));
    s->member = member;
    assert_true(topic_read_all(TOPIC_NOTIFY_REQUESTS, on_request, s) >= 0);
}

/* The requests of template (count of them); the last to *out. */
static int requests_of(const struct seen *s, const char *template_, const struct seen_request **out)
{
    int n = 0;
    for (size_t i = 0; i < s->count; i++)
        if (strcmp(s->r[i].template_, template_) == 0) {
            n++;
            *out = &s->r[i];
        }
    return n;
}

static const struct seen_var *var_of(const struct seen_request *r, const char *name, int value_case)
{
    for (size_t i = 0; i < r->var_count; i++)
        if (strcmp(r->vars[i].name, name) == 0) {
            assert_int_equal(r->vars[i].value_case, value_case);
            return &r->vars[i];
        }
    fail_msg("%s has no variable %s", r->template_, name);
    return NULL;
}

static int64_t money_of(const struct seen_request *r, const char *name)
{
    return var_of(r, name, TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR)->n;
}

static int64_t number_of(const struct seen_request *r, const char *name)
{
    return var_of(r, name, TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER)->n;
}

static const char *text_of(const struct seen_request *r, const char *name)
{
    return var_of(r, name, TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT)->text;
}

/* ------------------------------------------------------------ facts */
/* The event id of the fact of type whose command id (or card id) is id. */
struct fact_find {
    int payload_case;
    const char *id;
    char event_id[64];
    int count;
    /* a command kept whole for a redelivery */
    int32_t partition;
    uint8_t *payload;
    size_t len;
    rd_kafka_headers_t *headers;
};

static const char *fact_id_of(const Envelope *env)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_STORED_VALUE_TOPPED_UP:
        return env->stored_value_topped_up->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED:
        return env->purchase_recorded->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_RECORDED:
        return env->refund_recorded->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_CHANGED:
        return env->card_changed->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE:
        return env->top_up_stored_value->command_id;
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED:
        return env->ledger_posted->duplicate ? env->ledger_posted->command_id : NULL;
    default:
        return NULL;
    }
}

static void on_fact(void *ctx, const rd_kafka_message_t *m)
{
    struct fact_find *f = ctx;
    char why[128];
    Envelope *env = envelope_decode(m->payload, m->len, why, sizeof(why));
    if (!env)
        return;
    const char *id = fact_id_of(env);
    if ((int)env->payload_case == f->payload_case && id && strcmp(id, f->id) == 0) {
        if (f->count++ == 0) {
            snprintf(f->event_id, sizeof(f->event_id), "%s", env->event_id);
            f->partition = m->partition;
            f->payload = malloc(m->len);
            assert_non_null(f->payload);
            memcpy(f->payload, m->payload, m->len);
            f->len = m->len;
            rd_kafka_headers_t *h = NULL;
            if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
                f->headers = rd_kafka_headers_copy(h);
        }
    }
    envelope_free(env);
}

static void find_fact(const char *topic, int payload_case, const char *id, struct fact_find *f)
{
    *f = (struct fact_find){.payload_case = payload_case, .id = id};
    assert_true(topic_read_all(topic, on_fact, f) >= 0);
}

static void fact_free(struct fact_find *f)
{
    free(f->payload);
    if (f->headers)
        rd_kafka_headers_destroy(f->headers);
}

static bool duplicate_answered(void *arg)
{
    struct fact_find *f = arg;
    struct fact_find again;
    find_fact(TOPIC_LEDGER_EVENTS, TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED, f->id,
              &again);
    fact_free(&again);
    return again.count > 0;
}

static bool outbox_empty(void *arg)
{
    return test_pg_int(arg, "SELECT count(*) FROM ledger.outbox", 0, NULL) == 0;
}

/* ------------------------------------------------------------ requests */
static char run_id[32];

static void post_ok(const char *path, const char *body, long status, char op[64],
                    const char *id_field)
{
    struct api_response r = api_post(path, body, NULL);
    if (r.status != status)
        fprintf(stderr, "test: %s expected %ld, got %ld: %s\n", path, status, r.status, r.raw);
    assert_int_equal(r.status, status);
    if (op)
        snprintf(op, 64, "%s", json_str_at(r.body, id_field));
    api_response_free(&r);
}

/* Checks the one receipt of template was sent for the fact of payload
 * case and command id; returns it. */
static const struct seen_request *expect_receipt(const struct seen *s, const char *member,
                                                 const char *template_, int fact_case,
                                                 const char *command_id)
{
    const struct seen_request *r = NULL;
    assert_int_equal(requests_of(s, template_, &r), 1);
    struct fact_find f;
    find_fact(TOPIC_LEDGER_EVENTS, fact_case, command_id, &f);
    assert_int_equal(f.count, 1);
    char want[128];
    snprintf(want, sizeof(want), "%s:%s", template_, f.event_id);
    assert_string_equal(r->request_id, want);
    assert_string_equal(r->causation, f.event_id);
    fact_free(&f);
    assert_string_equal(r->purpose, "transactional");
    assert_string_equal(r->priority, "normal");
    assert_string_equal(r->key, member);
    assert_true(var_of(r, "time", TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US)->n > 0);
    return r;
}

/* A top-up, a purchase, a rejected purchase, a refund, a card sold and
 * used, and the top-up's command redelivered: one receipt per fact. */
static void test_one_receipt_per_fact(void **state)
{
    char member[64], path[200], body[512], topup_op[64], purchase_op[64], refund_op[64];
    char product[64], card_op[64], card_id[64], use_op[64];
    PGconn *pg = test_pg();
    test_register_member(member);

    snprintf(path, sizeof(path), "/v1/members/%s/topups", member);
    post_ok(path, "{\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", 201,
            topup_op, "operation_id"); /* 100 000 + 10 000 bonus */
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", member);
    post_ok(
        path,
        "{\"amount\":11000,\"branch_id\":\"branch-1\",\"payment\":{\"method\":\"stored_value\"}}",
        201, purchase_op, "operation_id");
    post_ok(path,
            "{\"amount\":99000000,\"branch_id\":\"hq\",\"payment\":{\"method\":\"stored_value\"}}",
            409, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/members/%s/refunds", member);
    post_ok(path,
            "{\"kind\":\"stored_value\",\"reason\":\"moving\",\"branch_id\":\"hq\","
            "\"principal\":30000}",
            201, refund_op, "operation_id");

    snprintf(product, sizeof(product), "receipt-classes-%s", run_id);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"kind\":\"count\",\"name\":\"5 classes\",\"price\":5000,"
             "\"uses\":5,\"validity_days\":30}",
             product);
    post_ok("/v1/products", body, 201, NULL, NULL);
    snprintf(path, sizeof(path), "/v1/members/%s/cards", member);
    snprintf(body, sizeof(body),
             "{\"product_id\":\"%s\",\"branch_id\":\"hq\",\"payment\":{\"method\":\"cash\"}}",
             product);
    struct api_response r = api_post(path, body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(card_op, sizeof(card_op), "%s", json_str_at(r.body, "operation_id"));
    snprintf(card_id, sizeof(card_id), "%s", json_str_at(r.body, "card_id"));
    api_response_free(&r);
    snprintf(path, sizeof(path), "/v1/members/%s/cards/%s/uses", member, card_id);
    post_ok(path, "{\"branch_id\":\"hq\"}", 201, use_op, "operation_id");

    /* the top-up's command again, as a redelivery would bring it */
    struct fact_find cmd;
    find_fact(TOPIC_LEDGER_COMMANDS, TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE,
              topup_op, &cmd);
    assert_int_equal(cmd.count, 1);
    assert_int_equal(topic_produce(TOPIC_LEDGER_COMMANDS, cmd.partition, member, strlen(member),
                                   cmd.payload, cmd.len, cmd.headers),
                     0);
    cmd.headers = NULL;
    fact_free(&cmd);
    struct fact_find dup = {.id = topup_op};
    assert_true(poll_until(duplicate_answered, &dup, DEADLINE_MS));
    assert_true(poll_until(outbox_empty, pg, DEADLINE_MS));

    struct seen s;
    read_requests(member, &s);
    assert_int_equal(s.count, 5); /* nothing for the rejection or the duplicate */

    const struct seen_request *q =
        expect_receipt(&s, member, "receipt.top_up",
                       TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_STORED_VALUE_TOPPED_UP, topup_op);
    assert_int_equal(money_of(q, "amount"), 100000);
    assert_int_equal(money_of(q, "bonus"), 10000);
    assert_int_equal(money_of(q, "balance.stored_value"), 110000);
    assert_string_equal(text_of(q, "branch.id"), "hq");

    q = expect_receipt(&s, member, "receipt.purchase",
                       TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED, purchase_op);
    assert_int_equal(money_of(q, "amount"), 11000);
    assert_int_equal(money_of(q, "charged"), 11000);
    assert_string_equal(text_of(q, "payment_method"), "stored_value");
    assert_int_equal(money_of(q, "balance.principal"), 90000);
    assert_int_equal(money_of(q, "balance.bonus"), 9000);
    assert_int_equal(money_of(q, "balance.stored_value"), 99000);
    assert_string_equal(text_of(q, "branch.id"), "branch-1");
    assert_int_equal(money_of(q, "paid.stored_value"), 11000);

    q = expect_receipt(&s, member, "receipt.refund",
                       TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_REFUND_RECORDED, refund_op);
    assert_string_equal(text_of(q, "refund.kind"), "stored_value");
    assert_int_equal(money_of(q, "amount"), 30000);
    assert_int_equal(money_of(q, "fee"), 0);
    assert_int_equal(money_of(q, "balance.stored_value"), 60000 + 6000);

    q = expect_receipt(&s, member, "card.sold",
                       TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_CHANGED, card_op);
    assert_int_equal(money_of(q, "amount"), 5000);
    assert_string_equal(text_of(q, "card.id"), card_id);
    assert_string_equal(text_of(q, "card.kind"), "count");
    assert_int_equal(number_of(q, "card.uses_left"), 5);
    assert_int_equal(number_of(q, "card.uses"), 5);
    assert_string_equal(text_of(q, "card.name"), "5 classes");

    q = expect_receipt(&s, member, "card.used",
                       TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CARD_CHANGED, use_op);
    assert_int_equal(number_of(q, "card.uses_left"), 4);
    assert_int_equal(number_of(q, "balance.points"), 0);
    PQfinish(pg);
}

int main(void)
{
    snprintf(run_id, sizeof(run_id), "%lld", (long long)event_now_us());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_receipt_per_fact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
