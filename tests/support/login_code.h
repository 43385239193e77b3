/* The login code ingest asks notification to send (a NotifyRequest with
 * template login_code on notify-requests), as tests read it back from the
 * topic to log a member in. */
#ifndef TESSERA_TEST_LOGIN_CODE_H
#define TESSERA_TEST_LOGIN_CODE_H

#include <stdbool.h>
#include <stdint.h>

#include "events/codec.h"

struct login_code {
    char code[8], phone[24], priority[16], channel[16], purpose[16], request_id[64];
    int64_t expires_at_us;  /* the request's own limit */
    int64_t expires_var_us; /* the variable expires_at */
};

/* True when env is a login code request; its fields to out. */
bool login_code_of(const Envelope *env, struct login_code *out);

/* Polls notify-requests (up to timeout_ms) for a login code sent to the
 * member; writes it and answers true once found. */
bool login_code_wait(const char *member_id, char code[8], int timeout_ms);

#endif
