/* Keeps the resources' rules cache (resource_cache.h) true across ingest
 * instances, as key_listen.c does for API keys: a LISTEN connection hears
 * resource_changes, which a trigger on entitlement_resources sends in the
 * changing transaction (migration 0015), and the named resource is
 * forgotten when the change commits. While not listening the cache is off
 * and empty: every check reads the table, never a stale rule. */
#include <stdio.h>

#include "ingest.h"
#include "log/log.h"

#define RESOURCE_CHANNEL      "resource_changes"
#define RESOURCE_APP_NAME_MAX 64 /* application_name: NAMEDATALEN - 1 */

static void on_resource_change(void *arg, const char *payload)
{
    struct ingest *app = arg;
    resource_cache_forget(app->resources, payload);
}

static void on_listening(void *arg, bool listening)
{
    struct ingest *app = arg;
    resource_cache_set_enabled(app->resources, listening);
    log_fields(listening ? LOG_INFO : LOG_WARN,
               listening ? "resource rules cache on: resource changes are heard"
                         : "resource rules cache dropped: changes are not heard until reconnected",
               NULL);
}

int resource_listen_open(struct ingest *app, char *err, size_t err_len)
{
    app->resources = resource_cache_new();
    if (!app->resources) {
        snprintf(err, err_len, "no memory for the resource rules cache");
        return -1;
    }
    char name[RESOURCE_APP_NAME_MAX];
    snprintf(name, sizeof(name), "tessera-resources %s", service_instance_id());
    app->resource_listener = pg_listen_new(app->base, app->common.pg_dsn, name, RESOURCE_CHANNEL,
                                           on_resource_change, on_listening, app, err, err_len);
    return app->resource_listener ? 0 : -1;
}

void resource_listen_close(struct ingest *app)
{
    pg_listen_free(app->resource_listener);
    resource_cache_free(app->resources);
    app->resource_listener = NULL;
    app->resources = NULL;
}
