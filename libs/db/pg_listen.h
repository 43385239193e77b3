/* One PostgreSQL LISTEN connection on a libevent loop, non-blocking: it
 * connects, LISTENs on a channel, hands every notification's payload to a
 * callback, and says when it starts and stops listening. While it listens
 * it pings the server every PG_LISTEN_PING_MS; a ping unanswered for
 * PG_LISTEN_ANSWER_MS, an error or a closed socket (pg_terminate_backend)
 * counts as lost: the state callback says so at once, and it reconnects
 * with back-off. A caller that must not miss a notification treats
 * "not listening" as "may have missed anything". */
#ifndef TESSERA_PG_LISTEN_H
#define TESSERA_PG_LISTEN_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#define PG_LISTEN_PING_MS        250
#define PG_LISTEN_ANSWER_MS      750 /* a silent server is noticed within ping + answer */
#define PG_LISTEN_BACKOFF_MIN_MS 100
#define PG_LISTEN_BACKOFF_MAX_MS 5000
#define PG_LISTEN_CHANNEL_MAX    63 /* NAMEDATALEN - 1 */

struct pg_listen;

/* On the loop: payload lives during the call. */
typedef void (*pg_listen_notify_fn)(void *arg, const char *payload);
/* On the loop: true once LISTEN took effect, false when the connection is
 * lost (called once per change). */
typedef void (*pg_listen_state_fn)(void *arg, bool listening);

/* Starts connecting in the background (application_name app_name, which
 * tests and operators see in pg_stat_activity). NULL with err for bad
 * arguments or memory. Free with pg_listen_free. */
struct pg_listen *pg_listen_new(struct event_base *base, const char *dsn, const char *app_name,
                                const char *channel, pg_listen_notify_fn on_notify,
                                pg_listen_state_fn on_state, void *arg, char *err, size_t err_len);
bool pg_listen_listening(const struct pg_listen *l);
/* Closes the connection; no callback runs from here on. */
void pg_listen_free(struct pg_listen *l);

#endif
