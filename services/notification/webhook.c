/* SMS and push through a provider's HTTP webhook: a JSON body, signed so
 * the provider can check it came from us:
 *   X-Tessera-Timestamp: unix seconds (real time) of the send
 *   X-Tessera-Signature: hex HMAC-SHA256(secret, timestamp "." body)
 *   X-Tessera-Message-Id: stable per request and channel; a retry or a
 *                         send repeated after a crash carries the same id,
 *                         so the provider de-duplicates.
 * Delivery is at least once (docs/notifications.md). */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transfer.h"

#define HEADER_MAX 256

static bool add_header(struct transfer *t, const char *name, const char *value)
{
    char line[HEADER_MAX];
    snprintf(line, sizeof(line), "%s: %s", name, value);
    struct curl_slist *h = curl_slist_append(t->headers, line);
    if (!h)
        return false;
    t->headers = h;
    return true;
}

/* hex HMAC-SHA256 of "ts.body" under the shared secret. */
static void sign(const char *ts, const char *body, size_t body_len, char *hex)
{
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, (const unsigned char *)notify_cfg.webhook_secret,
                                strlen(notify_cfg.webhook_secret));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, strlen(ts));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, 2 * sizeof(mac) + 1, mac, sizeof(mac));
}

bool webhook_prepare(struct transfer *t, const char *url, const char **why)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "message_id",
                          t->message_id, "request_id", t->request_id, "tenant_id", t->tenant_id,
                          "member_id", t->member_id, "channel", t->channel, "to", t->address,
                          "template", t->template_name, "title", t->subject ? t->subject : "",
                          "text", t->body ? t->body : "", "attempt", t->attempts);
    t->payload = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!t->payload) {
        *why = "unencodable message";
        return false;
    }
    t->payload_len = strlen(t->payload);
    char ts[24], sig[2 * crypto_auth_hmacsha256_BYTES + 1];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    sign(ts, t->payload, t->payload_len, sig);
    if (!add_header(t, "Content-Type", "application/json") ||
        !add_header(t, "X-Tessera-Timestamp", ts) || !add_header(t, "X-Tessera-Signature", sig) ||
        !add_header(t, "X-Tessera-Message-Id", t->message_id) || !add_header(t, "Expect", "")) {
        *why = "out of memory";
        return false;
    }
    curl_easy_setopt(t->easy, CURLOPT_URL, url);
    curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDS, t->payload);
    curl_easy_setopt(t->easy, CURLOPT_POSTFIELDSIZE, (long)t->payload_len);
    return true;
}
