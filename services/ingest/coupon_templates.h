/* Coupons as campaigns (issue 12, docs/coupons.md): templates
 * (coupon_templates.c), issues and claims (coupon_issues.c) and the sweep
 * that hands the coupons to the ledger and tells the members
 * (coupon_issuer.c). */
#ifndef TESSERA_INGEST_COUPON_TEMPLATES_H
#define TESSERA_INGEST_COUPON_TEMPLATES_H

#include <event2/util.h>

#include "http/http.h"

#define COUPON_TEMPLATE_NAME_MAX  100
#define COUPON_TEMPLATE_SKU_MAX   64 /* the ledger's COUPON_SKU_MAX */
#define COUPON_TEMPLATE_DAYS_MAX  3660
#define COUPON_TEMPLATE_LIMIT_MAX 100
#define COUPON_TEMPLATE_TOTAL_MAX INT64_C(100000000)
#define COUPON_TEMPLATE_LIST_MAX  500
#define COUPON_ISSUE_IDS_MAX      1000 /* member_ids in one issue request */
#define COUPON_ISSUER_MS          200  /* a round of the sweep */
#define COUPON_ISSUE_CHUNK        1000 /* members one round of an issue looks at */
#define COUPON_SEND_MAX           500  /* grants one round sends or settles */

void coupon_templates_create(struct http_exchange *ex, void *app);
void coupon_templates_list(struct http_exchange *ex, void *app);
void coupon_templates_get(struct http_exchange *ex, void *app);
void coupon_issues_create(struct http_exchange *ex, void *app);
void coupon_issues_get(struct http_exchange *ex, void *app);
void coupon_claims_create(struct http_exchange *ex, void *app);
void coupon_issuer_tick(evutil_socket_t fd, short what, void *arg);

#endif
