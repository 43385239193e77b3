/* One external send in flight: the delivery row it came from and the curl
 * easy handle that carries it (sender.c owns both; smtp.c and webhook.c
 * fill the handle). */
#ifndef TESSERA_NOTIFICATION_TRANSFER_H
#define TESSERA_NOTIFICATION_TRANSFER_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "notification.h"

enum provider { PROVIDER_SMTP, PROVIDER_SMS, PROVIDER_PUSH, PROVIDER_COUNT };

struct transfer {
    int64_t id; /* deliveries.id */
    char *tenant_id, *request_id, *member_id, *channel, *message_id, *template_name;
    char *address, *subject, *body, *html;
    int attempts;
    enum notify_lane lane;
    enum provider provider;
    CURL *easy;
    struct curl_slist *headers; /* HTTP headers or SMTP recipients */
    char *payload;              /* request body / the whole mail */
    size_t payload_len, sent;
    char error[CURL_ERROR_SIZE];
};

/* Fill t->easy (already created) for the send; false with a reason when
 * the message cannot be sent at all (bad address: a permanent failure). */
bool smtp_prepare(struct transfer *t, const char **why) __attribute__((warn_unused_result));
bool webhook_prepare(struct transfer *t, const char *url, const char **why)
    __attribute__((warn_unused_result));

#endif
