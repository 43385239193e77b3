/* What every Tessera service shares: the infrastructure part of its
 * configuration table, start-up (logging, --help, --migrate-only) and the
 * signal handling that stages shutdown. */
#ifndef TESSERA_SERVICE_COMMON_H
#define TESSERA_SERVICE_COMMON_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "bus/bus.h"
#include "config/config.h"
#include "db/migrate.h"

struct service_common_config {
    const char *kafka_bootstrap;
    long long kafka_session_timeout_ms;
    long long kafka_linger_ms;
    long long kafka_fetch_wait_max_ms;
    long long kafka_metadata_refresh_ms;
    const char *kafka_security_protocol;
    const char *kafka_sasl_mechanism;
    const char *kafka_sasl_username;
    const char *kafka_sasl_password;
    const char *kafka_ssl_ca_location;
    const char *pg_dsn;
    long long pg_statement_timeout_ms;
    const char *redis_host;
    long long redis_port;
    const char *redis_password; /* secret; "" when Redis asks for none */
    const char *admin_addr;
    long long admin_port;
    const char *log_level;
    const char *instance_id; /* "" in the table: <service>-<host>-<pid> */
};

/* The entries every service's table starts with; default_admin_port is the
 * service's own admin port. (clang-format would put every field on a line.) */
/* clang-format off */
#define SERVICE_COMMON_CONFIG(c, default_admin_port)                                             \
    {"TESSERA_KAFKA_BOOTSTRAP", CONFIG_STRING, &(c).kafka_bootstrap, "127.0.0.1:59092", 0, 0,    \
     false, "Kafka bootstrap.servers (default: make run's local broker)"},                        \
        {"TESSERA_KAFKA_SESSION_TIMEOUT_MS", CONFIG_INT, &(c).kafka_session_timeout_ms, "10000",  \
         6000, 300000, false, "consumer group session timeout"},                                  \
        {"TESSERA_KAFKA_LINGER_MS", CONFIG_INT, &(c).kafka_linger_ms, "2", 0, 1000, false,        \
         "producer linger.ms (batching delay)"},                                                  \
        {"TESSERA_KAFKA_FETCH_WAIT_MAX_MS", CONFIG_INT, &(c).kafka_fetch_wait_max_ms, "500", 1,  \
         10000, false, "consumer fetch.wait.max.ms (how long the broker holds an idle fetch)"},   \
        {"TESSERA_KAFKA_METADATA_REFRESH_MS", CONFIG_INT, &(c).kafka_metadata_refresh_ms, "10000", \
         1000, 300000, false, "topic metadata refresh: new partitions are used within it"},       \
        {"TESSERA_KAFKA_SECURITY_PROTOCOL", CONFIG_STRING, &(c).kafka_security_protocol, "", 0,   \
         0, false, "security.protocol: plaintext (\"\"), ssl, sasl_plaintext, sasl_ssl"},          \
        {"TESSERA_KAFKA_SASL_MECHANISM", CONFIG_STRING, &(c).kafka_sasl_mechanism, "", 0, 0,      \
         false, "sasl.mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"},                           \
        {"TESSERA_KAFKA_SASL_USERNAME", CONFIG_STRING, &(c).kafka_sasl_username, "", 0, 0, false, \
         "SASL user"},                                                                            \
        {"TESSERA_KAFKA_SASL_PASSWORD", CONFIG_STRING, &(c).kafka_sasl_password, "", 0, 0, true,  \
         "SASL password"},                                                                        \
        {"TESSERA_KAFKA_SSL_CA_LOCATION", CONFIG_STRING, &(c).kafka_ssl_ca_location, "", 0, 0,    \
         false, "CA certificate file (PEM) of the brokers' TLS (\"\": the system's)"},            \
        {"TESSERA_PG_DSN", CONFIG_STRING, &(c).pg_dsn,                                            \
         "host=127.0.0.1 port=55432 user=tessera dbname=tessera", 0, 0, true,                     \
         "PostgreSQL connection string (libpq)"},                                                 \
        {"TESSERA_PG_STATEMENT_TIMEOUT_MS", CONFIG_INT, &(c).pg_statement_timeout_ms, "30000",    \
         100, 600000, false, "statement_timeout for every query"},                                \
        {"TESSERA_REDIS_HOST", CONFIG_STRING, &(c).redis_host, "127.0.0.1", 0, 0, false,          \
         "Redis host of the member-state cache"},                                                 \
        {"TESSERA_REDIS_PORT", CONFIG_INT, &(c).redis_port, "56379", 1, 65535, false,             \
         "Redis port"},                                                                           \
        {"TESSERA_REDIS_PASSWORD", CONFIG_STRING, &(c).redis_password, "", 0, 0, true,            \
         "Redis AUTH password (requirepass); empty: none"},                                       \
        {"TESSERA_ADMIN_ADDR", CONFIG_STRING, &(c).admin_addr, "127.0.0.1", 0, 0, false,          \
         "address of the admin port (/livez, /readyz, /metrics)"},                                \
        {"TESSERA_ADMIN_PORT", CONFIG_INT, &(c).admin_port, default_admin_port, 0, 65535, false,  \
         "admin port (0 picks a free one)"},                                                      \
        {"TESSERA_LOG_LEVEL", CONFIG_STRING, &(c).log_level, "info", 0, 0, false,                 \
         "debug | info | warn | error"},                                                          \
        {"TESSERA_INSTANCE_ID", CONFIG_STRING, &(c).instance_id, "", 0, 0, false,                 \
         "this replica's id in logs, metrics and client.id (default <service>-<host>-<pid>)"}
/* clang-format on */

/* Handles --help, loads the table, starts logging and logs the effective
 * configuration. Returns 0 to go on, 1 when --help was printed (exit 0),
 * -1 after printing why the configuration is bad (exit 2). */
int service_init(const char *service, const char *summary, int argc, char **argv,
                 const struct config_entry *table, size_t count,
                 const struct service_common_config *common);

/* True when argv holds --migrate-only. */
bool service_migrate_only(int argc, char **argv);

/* Connects, applies the service's migrations and disconnects. 0 or -1. */
int service_migrate(const struct service_common_config *c, const char *schema,
                    const struct db_migration *migrations, size_t count);

/* This process's instance id: TESSERA_INSTANCE_ID, or
 * <service>-<host>-<pid> when that is empty. Set by service_init. */
const char *service_instance_id(void);

/* Fills a bus_config from the common configuration; client_id gets the
 * instance id (buffer owned by the caller). */
void service_bus_config(const struct service_common_config *c, const char *service, char *client_id,
                        size_t client_id_len, struct bus_config *out);

/* SIGINT/SIGTERM on base: the first calls on_stop(ctx), which begins the
 * staged shutdown and later breaks the loop; a second exits at once. */
struct service_signals;
struct service_signals *service_signals_new(struct event_base *base, void (*on_stop)(void *ctx),
                                            void *ctx);
void service_signals_free(struct service_signals *s);

#endif
