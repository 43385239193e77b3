#include "service/common.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "db/db.h"
#include "log/log.h"

static char instance_id[64];

/* The configured id, else one unique on this host (pods get the pod name
 * through TESSERA_INSTANCE_ID in the manifests). */
static void service_set_instance(const char *service, const char *configured)
{
    if (configured && configured[0]) {
        snprintf(instance_id, sizeof(instance_id), "%s", configured);
        return;
    }
    char host[32] = "host";
    gethostname(host, sizeof(host) - 1);
    snprintf(instance_id, sizeof(instance_id), "%s-%s-%d", service, host, (int)getpid());
}

const char *service_instance_id(void)
{
    return instance_id;
}

int service_init(const char *service, const char *summary, int argc, char **argv,
                 const struct config_entry *table, size_t count,
                 const struct service_common_config *common)
{
    if (config_wants_help(argc, argv)) {
        config_print_help(stdout, argv[0], summary, table, count);
        printf("\nFlags:\n  --migrate-only   apply this service's migrations and exit\n");
        return 1;
    }
    char err[256];
    if (config_load(table, count, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: configuration error: %s (see --help)\n", service, err);
        return -1;
    }
    enum log_level level;
    if (!log_level_parse(common->log_level, &level)) {
        fprintf(stderr, "%s: configuration error: TESSERA_LOG_LEVEL: unknown level '%s'\n", service,
                common->log_level);
        return -1;
    }
    log_init(service, level);
    if (cache_set_password(common->redis_password) < 0) {
        fprintf(stderr, "%s: configuration error: TESSERA_REDIS_PASSWORD is over %d bytes\n",
                service, CACHE_PASSWORD_MAX);
        return -1;
    }
    service_set_instance(service, common->instance_id);
    log_set_instance(instance_id);
    config_log_effective(table, count);
    return 0;
}

bool service_migrate_only(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--migrate-only") == 0)
            return true;
    return false;
}

int service_migrate(const struct service_common_config *c, const char *schema,
                    const struct db_migration *migrations, size_t count)
{
    char err[512];
    PGconn *pg = db_connect(c->pg_dsn, NULL, "tessera-migrate", 600000, err, sizeof(err));
    if (!pg) {
        log_fields(LOG_ERROR, "migrations: cannot connect", "error", err, NULL);
        return -1;
    }
    int rc = db_migrate(pg, schema, migrations, count, err, sizeof(err));
    if (rc < 0)
        log_fields(LOG_ERROR, "migrations failed", "schema", schema, "error", err, NULL);
    else
        log_fields(LOG_INFO, "migrations applied", "schema", schema, NULL);
    PQfinish(pg);
    return rc;
}

void service_bus_config(const struct service_common_config *c, const char *service, char *client_id,
                        size_t client_id_len, struct bus_config *out)
{
    if (!instance_id[0])
        service_set_instance(service, NULL); /* called without service_init (tests) */
    snprintf(client_id, client_id_len, "%s", instance_id);
    *out = (struct bus_config){.bootstrap = c->kafka_bootstrap,
                               .client_id = client_id,
                               .session_timeout_ms = (int)c->kafka_session_timeout_ms,
                               .linger_ms = (int)c->kafka_linger_ms,
                               .fetch_wait_max_ms = (int)c->kafka_fetch_wait_max_ms,
                               .metadata_refresh_ms = (int)c->kafka_metadata_refresh_ms,
                               .security_protocol = c->kafka_security_protocol,
                               .sasl_mechanism = c->kafka_sasl_mechanism,
                               .sasl_username = c->kafka_sasl_username,
                               .sasl_password = c->kafka_sasl_password,
                               .ssl_ca_location = c->kafka_ssl_ca_location};
}

struct service_signals {
    struct event *sigint, *sigterm;
    void (*on_stop)(void *ctx);
    void *ctx;
    int received;
};

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct service_signals *s = arg;
    if (++s->received > 1) {
        log_warn("second signal %d: exiting at once", (int)sig);
        _exit(1);
    }
    log_info("signal %d: shutting down (send again to exit at once)", (int)sig);
    s->on_stop(s->ctx);
}

struct service_signals *service_signals_new(struct event_base *base, void (*on_stop)(void *ctx),
                                            void *ctx)
{
    struct service_signals *s = calloc(1, sizeof(*s));
    assert(s);
    s->on_stop = on_stop;
    s->ctx = ctx;
    s->sigint = evsignal_new(base, SIGINT, on_signal, s);
    s->sigterm = evsignal_new(base, SIGTERM, on_signal, s);
    assert(s->sigint && s->sigterm);
    event_add(s->sigint, NULL);
    event_add(s->sigterm, NULL);
    signal(SIGPIPE, SIG_IGN);
    return s;
}

void service_signals_free(struct service_signals *s)
{
    if (!s)
        return;
    event_free(s->sigint);
    event_free(s->sigterm);
    free(s);
}
