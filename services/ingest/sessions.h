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
