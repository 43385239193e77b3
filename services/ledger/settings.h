/* The tenants' ledger settings (settings.proto): the top-up bonus ladder,
 * the points policy, the refund fee rule and the prepaid alert threshold.
 * Each arrives as a SetLedgerSetting command keyed by tenant (ingest's PUT
 * /v1/config/..., or a new tenant's template), is checked again here,
 * applied to the rest of its batch in memory, and written in the batch's
 * transaction: a version row in settings_changes (read by others through
 * read_settings) and the setting's current row, which every later batch
 * loads. */
#ifndef TESSERA_LEDGER_SETTINGS_H
#define TESSERA_LEDGER_SETTINGS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "events/codec.h"

struct ledger_ctx;
struct outcome;

/* A change decided in the batch, written by settings_write. */
struct ledger_setting_change {
    char *tenant_id;
    char *change_id;
    const char *kind; /* SETTING_* */
    char *setting;    /* the setting as the API shows it (JSON text) */
    int64_t effective_from_us;
};

bool settings_is_command(const Envelope *env);
const char *settings_command_id(const Envelope *env);
/* "setting:<kind>", e.g. "setting:topup-bonus". */
const char *settings_command_type(const Envelope *env);
void settings_begin_batch(struct ledger_ctx *l);
/* Checks the change (a bad one is rejected: invalid_command), applies it
 * to the batch's state and queues its rows. */
void settings_decide(struct ledger_ctx *l, struct outcome *o);
struct card_limits;
/* Queues a version of the tenant's card limits (cards.c applies them). */
void settings_note_card_limits(struct ledger_ctx *l, const Envelope *cmd,
                               const struct card_limits *lim);
int settings_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
