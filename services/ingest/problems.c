/* The error catalogue (problems.h). Keep docs/errors.md in step: the unit
 * test test_problem_codes fails when a code is missing from either. */
#include "problems.h"

#include <string.h>

#define LEDGER_REJECTION_STATUS_DEFAULT 409

const struct problem_code problem_codes[] = {
    /* the request itself (libs/http) */
    {"bad_request", 400, PROBLEM_HTTP, "the request head or query string cannot be read"},
    {"malformed_json", 400, PROBLEM_HTTP, "the body is not one JSON object (or nests too deep)"},
    {"client_gone", 400, PROBLEM_HTTP, "the client closed the connection before its body arrived"},
    {"not_found", 404, PROBLEM_HTTP,
     "no such route, member, operation, key or object of the tenant"},
    {"method_not_allowed", 405, PROBLEM_HTTP, "the path exists, not with this method (see Allow)"},
    {"length_required", 411, PROBLEM_HTTP, "a body without Content-Length (chunked is refused)"},
    {"payload_too_large", 413, PROBLEM_HTTP, "the body, a batch line or a batch exceeds its limit"},
    {"unsupported_media_type", 415, PROBLEM_HTTP, "the Content-Type is not the route's"},
    {"too_many_connections", 503, PROBLEM_HTTP, "the server holds all the connections it takes"},
    /* authentication and limits */
    {"unauthorized", 401, PROBLEM_INGEST, "no valid API key or member session token"},
    {"invalid_code", 401, PROBLEM_INGEST,
     "the SMS code is wrong, expired, used or tried too often"},
    {"invalid_credentials", 401, PROBLEM_INGEST, "the phone or the password is wrong"},
    {"forbidden", 403, PROBLEM_INGEST, "the key's scope or branch does not allow this"},
    {"device_limit_reached", 403, PROBLEM_INGEST, "the member is logged in on too many devices"},
    {"rate_limited", 429, PROBLEM_INGEST, "the key's request rate is exceeded (see Retry-After)"},
    /* the request's content */
    {"validation_failed", 422, PROBLEM_INGEST,
     "fields are missing or wrong: one entry per field in errors"},
    {"idempotency_key_reused", 422, PROBLEM_INGEST, "this Idempotency-Key came with another body"},
    {"duplicate_phone", 409, PROBLEM_INGEST, "a member of the tenant already has this phone"},
    {"edit_conflict", 409, PROBLEM_INGEST,
     "the member changed since the change was read; read it and try again"},
    {"personal_data_erased", 409, PROBLEM_INGEST,
     "the member's personal data was erased: the profile cannot change"},
    {"tag_limit_reached", 409, PROBLEM_INGEST, "the member has the most tags allowed"},
    {"resource_not_found", 404, PROBLEM_INGEST,
     "no such entitlement resource in the tenant (PUT /v1/resources/{resource} first)"},
    {"unknown_referral_code", 422, PROBLEM_INGEST,
     "no member of the tenant has this referral code"},
    {"self_referral", 422, PROBLEM_INGEST, "the referral code is the registering member's own"},
    {"out_of_stock", 409, PROBLEM_INGEST, "the reward's stock is exhausted"},
    {"coupon_template_not_found", 404, PROBLEM_INGEST, "no such coupon template in this tenant"},
    {"coupon_issue_not_found", 404, PROBLEM_INGEST, "no such issue of this coupon template"},
    {"coupon_template_not_claimable", 409, PROBLEM_INGEST,
     "the coupon template is not public, or its window is over"},
    {"coupon_limit_reached", 409, PROBLEM_INGEST,
     "the member holds as many of this template's coupons as one member may"},
    {"coupon_budget_exhausted", 409, PROBLEM_INGEST, "every coupon of the template was given"},
    {"reward_not_active", 409, PROBLEM_INGEST, "the reward is outside its active window"},
    {"branch_exists", 409, PROBLEM_INGEST, "the tenant already has a branch with this id"},
    {"branch_closed", 409, PROBLEM_INGEST, "the branch is closed: it takes no new transactions"},
    {"tenant_exists", 409, PROBLEM_INGEST, "a tenant with this tenant_id exists"},
    {"rules_changed_concurrently", 409, PROBLEM_INGEST,
     "another change of the same setting was made at the same time; read it and retry"},
    {"request_in_progress", 409, PROBLEM_INGEST,
     "the first request with this Idempotency-Key is still running"},
    {"card_not_found", 404, PROBLEM_LEDGER, "the member has no such card"},
    {"coupon_not_found", 404, PROBLEM_LEDGER, "the member has no such coupon"},
    {"card_not_valid_here", 409, PROBLEM_LEDGER, "the card is not valid at this branch"},
    /* the service's own state */
    {"unavailable", 503, PROBLEM_INGEST,
     "a dependency (database, ledger, sessions) cannot be reached, or the service is stopping"},
    {"busy", 503, PROBLEM_INGEST, "too much work in hand; retry after Retry-After"},
    {"internal", 500, PROBLEM_INGEST,
     "a stored answer cannot be read or a password hashed (logged)"},
    {"pii_unavailable", 500, PROBLEM_INGEST,
     "the member's personal data cannot be opened with the keys at hand (logged)"},
    /* the ledger's verdicts */
    {"invalid_amount", 422, PROBLEM_LEDGER, "the amount is not positive or out of range"},
    {"invalid_points", 422, PROBLEM_LEDGER, "the points are zero or out of range"},
    {"invalid_command", 422, PROBLEM_LEDGER,
     "the command's terms cannot be applied (e.g. a coupon's value)"},
    {"product_not_found", 422, PROBLEM_LEDGER, "no such card product"},
    {"insufficient_balance", 409, PROBLEM_LEDGER, "not enough stored value"},
    {"insufficient_points", 409, PROBLEM_LEDGER, "not enough available points"},
    {"points_share_exceeded", 409, PROBLEM_LEDGER,
     "the points would pay more of the bill than the tenant allows"},
    {"points_do_not_cover", 409, PROBLEM_LEDGER,
     "paid with points alone, the points must cover the whole charge"},
    {"balance_overflow", 409, PROBLEM_LEDGER, "the balance would leave the representable range"},
    {"first_day_limit_exceeded", 409, PROBLEM_LEDGER,
     "spending of a same-day top-up exceeds the tenant's first-day cap"},
    {"prepaid_cap_exceeded", 409, PROBLEM_LEDGER,
     "the card would prepay more days or uses than the tenant allows"},
    {"prepaid_overflow", 409, PROBLEM_LEDGER,
     "the member's stored value would exceed the tenant's prepaid cap"},
    {"card_expired", 409, PROBLEM_LEDGER, "the card's validity is over"},
    {"card_frozen", 409, PROBLEM_LEDGER, "the card is frozen"},
    {"card_not_usable", 409, PROBLEM_LEDGER, "the card cannot be used this way"},
    {"no_uses_left", 409, PROBLEM_LEDGER, "the count card has no uses left"},
    {"daily_limit_reached", 409, PROBLEM_LEDGER, "the card's uses for today are used up"},
    {"freeze_not_allowed", 409, PROBLEM_LEDGER, "this card cannot be frozen"},
    {"freeze_exceeds_allowance", 409, PROBLEM_LEDGER, "more freeze days than the card has left"},
    {"not_a_discount_card", 409, PROBLEM_LEDGER,
     "the card named for pricing is not a discount card"},
    {"no_active_card", 409, PROBLEM_LEDGER,
     "card days as a reward: the member has no active time card of the product"},
    {"validity_overflow", 409, PROBLEM_LEDGER,
     "the card's validity would leave the representable range"},
    {"coupon_used", 409, PROBLEM_LEDGER, "the coupon was already redeemed"},
    {"coupon_expired", 409, PROBLEM_LEDGER, "the coupon's validity is over"},
    {"coupon_min_spend_not_met", 409, PROBLEM_LEDGER,
     "the bill is under the coupon's minimum spend"},
    {"coupon_not_applicable", 409, PROBLEM_LEDGER,
     "the purchase does not hold the coupon's free item"},
    {"nothing_to_refund", 409, PROBLEM_LEDGER, "there is no refundable stored value"},
    {"not_refundable", 409, PROBLEM_LEDGER, "this purchase cannot be refunded"},
    {"already_refunded", 409, PROBLEM_LEDGER, "the purchase was refunded already"},
    {"exceeds_refundable", 409, PROBLEM_LEDGER, "more than what is left to refund"},
    {"not_due", 409, PROBLEM_LEDGER, "internal points command only (expiry, vesting): not due yet"},
    {"purchase_refunded", 409, PROBLEM_LEDGER,
     "internal points command only (earning): the purchase was refunded"},
};

const size_t problem_code_count = sizeof(problem_codes) / sizeof(problem_codes[0]);

const struct problem_code *problems_find(const char *code)
{
    for (size_t i = 0; i < problem_code_count; i++)
        if (strcmp(problem_codes[i].code, code) == 0)
            return &problem_codes[i];
    return NULL;
}

int problems_ledger_status(const char *code)
{
    const struct problem_code *p = problems_find(code);
    return p ? p->status : LEDGER_REJECTION_STATUS_DEFAULT;
}
