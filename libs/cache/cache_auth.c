/* Redis AUTH for every connection this process opens (see cache.h): the
 * blocking ones of consumer threads and tools, and the asynchronous ones
 * on ingest's loop (the cache and the session store). The password is
 * process-wide configuration, set once at start before any thread runs. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cache/cache.h"
#include "log/log.h"

static char password[CACHE_PASSWORD_MAX + 1];

int cache_set_password(const char *text)
{
    if (text && strlen(text) > CACHE_PASSWORD_MAX)
        return -1;
    sodium_memzero(password, sizeof(password));
    if (text)
        memcpy(password, text, strlen(text));
    return 0;
}

int cache_auth(redisContext *rc, char *err, size_t err_len)
{
    if (password[0] == '\0')
        return 0;
    redisReply *r = redisCommand(rc, "AUTH %s", password);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (!ok && err)
        snprintf(err, err_len, "cache auth: %s",
                 r && r->type == REDIS_REPLY_ERROR ? r->str : rc->errstr);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

/* AUTH's answer on an asynchronous link: a refusal is logged (the commands
 * after it fail with NOAUTH, which their callers see as Redis being away). */
static void on_auth(redisAsyncContext *ac, void *reply, void *privdata)
{
    const redisReply *r = reply;
    if (r && r->type == REDIS_REPLY_ERROR)
        log_warn("cache: Redis refused the password: %s", r->str);
}

int cache_async_auth(struct redisAsyncContext *ac)
{
    if (password[0] == '\0')
        return 0;
    /* Queued before any other command of this link, so it is sent first
     * once the connection is up. */
    return redisAsyncCommand(ac, on_auth, NULL, "AUTH %s", password) == REDIS_OK ? 0 : -1;
}
