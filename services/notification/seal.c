/* Contacts at rest: crypto_secretbox (XSalsa20-Poly1305) under a key of
 * the service's own (TESSERA_NOTIFICATION_CONTACT_KEY), stored as
 * 0x01 || nonce || ciphertext. Without a key (a bare local run) the text
 * is stored as 0x00 || text and a warning is logged at start; rows of
 * either kind are read, so setting a key later seals new rows and the old
 * ones are replaced by the next contact change. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "notification.h"

#define SEAL_PLAIN 0x00
#define SEAL_BOX   0x01

static unsigned char key[crypto_secretbox_KEYBYTES];
static bool have_key;

int notify_seal_init(const char *key_hex)
{
    if (sodium_init() < 0)
        return -1;
    if (!key_hex || !key_hex[0]) {
        log_fields(LOG_WARN,
                   "TESSERA_NOTIFICATION_CONTACT_KEY is empty: contacts are stored "
                   "unsealed",
                   NULL);
        return 0;
    }
    size_t len = 0;
    if (strlen(key_hex) != 2 * sizeof(key) ||
        sodium_hex2bin(key, sizeof(key), key_hex, strlen(key_hex), NULL, &len, NULL) != 0 ||
        len != sizeof(key))
        return -1;
    have_key = true;
    return 0;
}

unsigned char *notify_seal(const char *text, size_t *out_len)
{
    size_t n = strlen(text);
    if (!have_key) {
        unsigned char *out = malloc(n + 1);
        if (!out)
            return NULL;
        out[0] = SEAL_PLAIN;
        memcpy(out + 1, text, n);
        *out_len = n + 1;
        return out;
    }
    size_t total = 1 + crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
    unsigned char *out = malloc(total);
    if (!out)
        return NULL;
    out[0] = SEAL_BOX;
    randombytes_buf(out + 1, crypto_secretbox_NONCEBYTES);
    crypto_secretbox_easy(out + 1 + crypto_secretbox_NONCEBYTES, (const unsigned char *)text, n,
                          out + 1, key);
    *out_len = total;
    return out;
}

char *notify_unseal(const unsigned char *data, size_t len)
{
    if (len < 1)
        return NULL;
    if (data[0] == SEAL_PLAIN) {
        char *out = malloc(len);
        if (!out)
            return NULL;
        memcpy(out, data + 1, len - 1);
        out[len - 1] = '\0';
        return out;
    }
    size_t head = 1 + crypto_secretbox_NONCEBYTES;
    if (data[0] != SEAL_BOX || !have_key || len < head + crypto_secretbox_MACBYTES)
        return NULL;
    size_t n = len - head - crypto_secretbox_MACBYTES;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    if (crypto_secretbox_open_easy((unsigned char *)out, data + head, len - head, data + 1, key) !=
        0) {
        free(out);
        return NULL;
    }
    out[n] = '\0';
    return out;
}
