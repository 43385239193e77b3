/* Member sessions in Redis: an opaque token maps to tenant, member and
 * device under "tessera:session:<SHA-256 of the token>" with an expiry
 * (SET .. EX), so a session ends by itself, on logout (DEL) or when Redis
 * is flushed (members log in again). Only the token's hash is a key: a
 * Redis dump does not hold usable tokens.
 *
 * A connection of its own on the ingest loop (the balance cache's client
 * serves a fixed command). While Redis is down, commands answer at once
 * with no reply and a reconnect is tried on the next command. */
#ifndef TESSERA_INGEST_SESSIONS_H
#define TESSERA_INGEST_SESSIONS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>

struct session_store;

/* Each device's sessions are also kept in a set, so unbinding a device
 * (DELETE /v1/members/{id}/devices/{device_id}) ends them:
 * tessera:device-sessions:<tenant>:<member>:<device> holds the token
 * hashes, with the sessions' expiry (renewed at each login). */
#define DEVICE_SESSIONS_KEY "tessera:device-sessions:%s:%s:%s"
/* A session and its place in its device's set, in one step (KEYS: the
 * session, the device's set; ARGV: the value, the expiry in s, the hash). */
#define SESSION_OPEN_LUA                                                                           \
    "redis.call('SADD', KEYS[2], ARGV[3]) redis.call('EXPIRE', KEYS[2], ARGV[2]) "                 \
    "return redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])"
/* Ends every session of a device (KEYS: the device's set); their count. */
#define DEVICE_SESSIONS_END_LUA                                                                    \
    "local s = redis.call('SMEMBERS', KEYS[1]) for _, h in ipairs(s) do "                          \
    "redis.call('DEL', 'tessera:session:' .. h) end redis.call('DEL', KEYS[1]) return #s"

/* reply is NULL when Redis is unreachable; valid during the call only. */
typedef void (*session_reply_fn)(void *arg, redisReply *reply);

struct session_store *session_store_new(struct event_base *base, const char *host, int port);
void session_store_free(struct session_store *s);
bool session_store_connected(const struct session_store *s);

/* Sends a command (hiredis format); cb runs exactly once, possibly before
 * this returns (when not connected). */
void session_command(struct session_store *s, session_reply_fn cb, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
