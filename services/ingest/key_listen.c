/* Keeps the API key cache (key_cache.h) true across ingest instances: a
 * dedicated LISTEN connection (libs/db/pg_listen) hears api_key_changes,
 * which a trigger on api_keys sends in the same transaction as every
 * change (migration 0007), and each key it names is forgotten here the
 * moment the change commits. While the connection is not listening (not
 * yet up, lost, a server that stopped answering its pings) the cache is
 * disabled and empty, so every request reads PostgreSQL: a revocation is
 * never missed, only the cache's speed. */
#include <stdio.h>
#include <time.h>

#include "ingest.h"
#include "log/log.h"

#define KEY_CHANNEL      "api_key_changes"
#define KEY_APP_NAME_MAX 64 /* application_name: NAMEDATALEN - 1 */

static void on_key_change(void *arg, const char *payload)
{
    struct ingest *app = arg;
    if (payload[0] == '\0')
        key_cache_clear(app->keys); /* TRUNCATE api_keys */
    else
        key_cache_forget(app->keys, payload);
}

static void on_listening(void *arg, bool listening)
{
    struct ingest *app = arg;
    key_cache_set_enabled(app->keys, listening);
    log_fields(listening ? LOG_INFO : LOG_WARN,
               listening ? "API key cache on: key changes are heard"
                         : "API key cache dropped: key changes are not heard until reconnected",
               NULL);
}

int key_listen_open(struct ingest *app, char *err, size_t err_len)
{
    if (app->key_cache_max == 0)
        return 0; /* no cache: every request reads api_keys */
    app->keys = key_cache_new((size_t)app->key_cache_max);
    if (!app->keys) {
        snprintf(err, err_len, "no memory for the API key cache");
        return -1;
    }
    /* Named after the instance, so an operator (or a test) can find it. */
    char name[KEY_APP_NAME_MAX];
    snprintf(name, sizeof(name), "tessera-api-keys %s", service_instance_id());
    app->key_listener = pg_listen_new(app->base, app->common.pg_dsn, name, KEY_CHANNEL,
                                      on_key_change, on_listening, app, err, err_len);
    return app->key_listener ? 0 : -1;
}

void key_listen_close(struct ingest *app)
{
    pg_listen_free(app->key_listener);
    key_cache_free(app->keys);
    app->key_listener = NULL;
    app->keys = NULL;
}

int64_t key_listen_now_ms(struct ingest *app)
{
    struct timeval tv;
    event_base_gettimeofday_cached(app->base, &tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}
