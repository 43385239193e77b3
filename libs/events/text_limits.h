/* Limits of the text that requests carry into commands and that the
 * ledger stores: one definition for ingest, which validates requests
 * against them, and for the ledger, which sizes its buffers from them and
 * refuses (never cuts) anything longer. A cut can split a UTF-8 character,
 * and PostgreSQL refuses the whole batch that carries the broken text.
 *
 * The limits that count are in bytes, since buffers hold bytes. People
 * get limits in characters; a character is at most 4 bytes of UTF-8, so
 * every text within its character limit fits its byte limit. Ids have a
 * byte limit only: the envelope's ids are under EVENT_ID_FIELD_MAX. */
#ifndef TESSERA_TEXT_LIMITS_H
#define TESSERA_TEXT_LIMITS_H

#include "events/codec.h"

#define TEXT_UTF8_CHAR_BYTES_MAX 4

/* ids a command names: products, cards, coupons, purchases, branches */
#define TEXT_ID_BYTES_MAX (EVENT_ID_FIELD_MAX - 1)

/* why points were adjusted or a refund made (journal lines, refund trail) */
#define TEXT_REASON_CHARS_MAX 200
#define TEXT_REASON_BYTES_MAX (TEXT_REASON_CHARS_MAX * TEXT_UTF8_CHAR_BYTES_MAX)

/* names of card products and coupons */
#define TEXT_NAME_CHARS_MAX 200
#define TEXT_NAME_BYTES_MAX (TEXT_NAME_CHARS_MAX * TEXT_UTF8_CHAR_BYTES_MAX)

/* a product id a tenant chooses (else ingest makes one) */
#define TEXT_PRODUCT_ID_CHARS_MAX 64

#endif
