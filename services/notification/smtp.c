/* Email over SMTP with libcurl: STARTTLS as configured (none, try,
 * required), optional AUTH, and a MIME multipart/alternative message
 * with a plain-text and an HTML part (both base64, so any UTF-8 goes
 * through any server), the subject RFC 2047-encoded, and a Message-ID
 * made from the stable message id. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "transfer.h"

#define B64_LINE 76

/* Is address a plain addr-spec we can put in MAIL/RCPT and a header? */
static bool address_ok(const char *a)
{
    const char *at = strchr(a, '@');
    if (!at || at == a || !at[1] || strchr(at + 1, '@') || strlen(a) > NOTIFY_ADDRESS_MAX)
        return false;
    for (const char *c = a; *c; c++)
        if ((unsigned char)*c <= ' ' || strchr("<>()[],;:\\\"", *c))
            return false;
    return true;
}

/* base64 of text, wrapped at 76 columns with CRLF; malloc'ed. */
static char *b64_wrapped(const char *text)
{
    size_t n = strlen(text);
    size_t enc_len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
    char *enc = malloc(enc_len);
    char *out = malloc(enc_len + (enc_len / B64_LINE + 2) * 2);
    if (!enc || !out) {
        free(enc), free(out);
        return NULL;
    }
    sodium_bin2base64(enc, enc_len, (const unsigned char *)text, n, sodium_base64_VARIANT_ORIGINAL);
    size_t len = strlen(enc), o = 0;
    for (size_t i = 0; i < len; i += B64_LINE) {
        size_t k = len - i < B64_LINE ? len - i : B64_LINE;
        memcpy(out + o, enc + i, k);
        o += k;
        out[o++] = '\r', out[o++] = '\n';
    }
    out[o] = '\0';
    free(enc);
    return out;
}

static char *encoded_subject(const char *subject)
{
    size_t n = strlen(subject);
    size_t enc_len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
    char *enc = malloc(enc_len), *out = NULL;
    if (!enc)
        return NULL;
    sodium_bin2base64(enc, enc_len, (const unsigned char *)subject, n,
                      sodium_base64_VARIANT_ORIGINAL);
    if (asprintf(&out, "=?UTF-8?B?%s?=", enc) < 0)
        out = NULL;
    free(enc);
    return out;
}

static char *mime_message(const struct transfer *t)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    char *subject = encoded_subject(t->subject ? t->subject : "");
    char *text = b64_wrapped(t->body ? t->body : "");
    char *html = b64_wrapped(t->html ? t->html : "");
    char *out = NULL;
    if (subject && text && html &&
        asprintf(&out,
                 "From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nDate: %s\r\n"
                 "Message-ID: <%s@tessera>\r\nX-Tessera-Message-Id: %s\r\nMIME-Version: 1.0\r\n"
                 "Content-Type: multipart/alternative; boundary=\"tessera-%s\"\r\n\r\n"
                 "--tessera-%s\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                 "Content-Transfer-Encoding: base64\r\n\r\n%s"
                 "--tessera-%s\r\nContent-Type: text/html; charset=UTF-8\r\n"
                 "Content-Transfer-Encoding: base64\r\n\r\n%s"
                 "--tessera-%s--\r\n",
                 notify_cfg.smtp_from, t->address, subject, date, t->message_id, t->message_id,
                 t->message_id, t->message_id, text, t->message_id, html, t->message_id) < 0)
        out = NULL;
    free(subject), free(text), free(html);
    return out;
}

static size_t read_payload(char *buf, size_t size, size_t n, void *arg)
{
    struct transfer *t = arg;
    size_t room = size * n, left = t->payload_len - t->sent;
    size_t k = left < room ? left : room;
    memcpy(buf, t->payload + t->sent, k);
    t->sent += k;
    return k;
}

bool smtp_prepare(struct transfer *t, const char **why)
{
    if (!address_ok(t->address)) {
        *why = "bad_address";
        return false;
    }
    t->payload = mime_message(t);
    char rcpt[NOTIFY_ADDRESS_MAX + 3], from[NOTIFY_ADDRESS_MAX + 3];
    snprintf(rcpt, sizeof(rcpt), "<%s>", t->address);
    snprintf(from, sizeof(from), "<%s>", notify_cfg.smtp_from);
    struct curl_slist *r = t->payload ? curl_slist_append(NULL, rcpt) : NULL;
    if (!r) {
        *why = "out of memory";
        return false;
    }
    t->headers = r;
    t->payload_len = strlen(t->payload);
    curl_easy_setopt(t->easy, CURLOPT_URL, notify_cfg.smtp_url);
    curl_easy_setopt(t->easy, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(t->easy, CURLOPT_MAIL_RCPT, t->headers);
    curl_easy_setopt(t->easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(t->easy, CURLOPT_READFUNCTION, read_payload);
    curl_easy_setopt(t->easy, CURLOPT_READDATA, t);
    long tls = strcmp(notify_cfg.smtp_tls, "required") == 0 ? (long)CURLUSESSL_ALL
               : strcmp(notify_cfg.smtp_tls, "try") == 0    ? (long)CURLUSESSL_TRY
                                                            : (long)CURLUSESSL_NONE;
    curl_easy_setopt(t->easy, CURLOPT_USE_SSL, tls);
    if (notify_cfg.smtp_username[0]) {
        curl_easy_setopt(t->easy, CURLOPT_USERNAME, notify_cfg.smtp_username);
        curl_easy_setopt(t->easy, CURLOPT_PASSWORD, notify_cfg.smtp_password);
    }
    return true;
}
