/* tessera-topics: creates Tessera's topics on a Kafka cluster with their
 * partition counts and retention/cleanup settings, grows partition counts,
 * and refuses to shrink them. Idempotent: run it on every deploy (the
 * docker-compose "topics" job does).
 *
 *   tessera-topics [--bootstrap HOST:PORT] [--partitions N]
 *                  [--replication-factor N] [--prefix P] [--timeout-ms N]
 *                  [--dry-run] [--list]
 *
 * Security (SASL, TLS) comes from the services' TESSERA_KAFKA_SECURITY_PROTOCOL,
 * _SASL_MECHANISM, _SASL_USERNAME, _SASL_PASSWORD and _SSL_CA_LOCATION.
 *
 * Exit status: 0 done (or nothing to do), 1 the cluster refused or did
 * not answer, 2 bad usage, 3 a shrink was asked for (nothing changed). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topics/topic_admin.h"

#define TOPICS_PARTITIONS_DEFAULT 12
#define TOPICS_NAME_MAX           249 /* Kafka's limit */
#define TOPICS_MAX                16  /* rows of the table this tool can hold */

struct options {
    const char *bootstrap;
    const char *prefix;
    int partitions;
    int replication_factor;
    int timeout_ms;
    bool dry_run;
    bool list;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tessera-topics [--bootstrap HOST:PORT] [--partitions N] "
            "[--replication-factor N] [--prefix P] [--dry-run] [--list]\n"
            "  --bootstrap           Kafka bootstrap.servers (default $TESSERA_KAFKA_BOOTSTRAP)\n"
            "  --partitions          partitions of every topic (default %d; only grows)\n"
            "  --replication-factor  for new topics (default 3; 1 on a single broker)\n"
            "  --prefix              prepended to every topic name (one cluster, many setups)\n"
            "  --timeout-ms          wait for the cluster per request (default %d)\n"
            "  --dry-run             print the plan, change nothing\n"
            "  --list                print the topic table and exit\n",
            TOPICS_PARTITIONS_DEFAULT, TOPIC_ADMIN_TIMEOUT_MS);
}

static int parse_int(const char *s, int min, int max, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* 0 to go on, 1 to exit 0 (--help), 2 for bad usage. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {{"bootstrap", required_argument, NULL, 'b'},
                                          {"partitions", required_argument, NULL, 'p'},
                                          {"replication-factor", required_argument, NULL, 'r'},
                                          {"prefix", required_argument, NULL, 'x'},
                                          {"timeout-ms", required_argument, NULL, 't'},
                                          {"dry-run", no_argument, NULL, 'n'},
                                          {"list", no_argument, NULL, 'l'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    *o = (struct options){.bootstrap = getenv("TESSERA_KAFKA_BOOTSTRAP"),
                          .prefix = "",
                          .partitions = TOPICS_PARTITIONS_DEFAULT,
                          .replication_factor = 3,
                          .timeout_ms = TOPIC_ADMIN_TIMEOUT_MS};
    for (int c; (c = getopt_long(argc, argv, "", longs, NULL)) != -1;) {
        if (c == 'b')
            o->bootstrap = optarg;
        else if (c == 'x')
            o->prefix = optarg;
        else if (c == 'n')
            o->dry_run = true;
        else if (c == 'l')
            o->list = true;
        else if (c == 'h')
            return usage(stdout), 1;
        else if (c == 'p' && parse_int(optarg, 1, TOPIC_ADMIN_PARTITIONS_MAX, &o->partitions) == 0)
            continue;
        else if (c == 'r' && parse_int(optarg, 1, 16, &o->replication_factor) == 0)
            continue;
        else if (c == 't' && parse_int(optarg, 100, 600000, &o->timeout_ms) == 0)
            continue;
        else
            return usage(stderr), 2;
    }
    if (!o->list && (!o->bootstrap || !*o->bootstrap)) {
        fprintf(stderr, "tessera-topics: no --bootstrap and TESSERA_KAFKA_BOOTSTRAP is unset\n");
        return 2;
    }
    return 0;
}

/* The services' Kafka security variables, for a managed cluster. */
static const char *const security_env[][2] = {
    {"TESSERA_KAFKA_SECURITY_PROTOCOL", "security.protocol"},
    {"TESSERA_KAFKA_SASL_MECHANISM", "sasl.mechanism"},
    {"TESSERA_KAFKA_SASL_USERNAME", "sasl.username"},
    {"TESSERA_KAFKA_SASL_PASSWORD", "sasl.password"},
    {"TESSERA_KAFKA_SSL_CA_LOCATION", "ssl.ca.location"},
};

static rd_kafka_t *admin_client(const char *bootstrap)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    bool ok = rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err)) == 0 &&
              rd_kafka_conf_set(conf, "client.id", "tessera-topics", err, sizeof(err)) == 0;
    for (size_t i = 0; ok && i < sizeof(security_env) / sizeof(security_env[0]); i++) {
        const char *v = getenv(security_env[i][0]);
        if (v && *v)
            ok = rd_kafka_conf_set(conf, security_env[i][1], v, err, sizeof(err)) == 0;
    }
    if (!ok) {
        fprintf(stderr, "tessera-topics: %s\n", err);
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!rk)
        fprintf(stderr, "tessera-topics: %s\n", err);
    return rk;
}

/* Carries out one topic's plan; 0 or 1 (the cluster refused). */
static int apply_one(rd_kafka_t *rk, const struct options *o, const char *name,
                     const struct topic_spec *spec, enum topic_action a)
{
    char err[512] = "";
    int rc = 0;
    if (a == TOPIC_CREATE)
        rc = topic_admin_create(rk, name, spec, o->partitions, o->replication_factor, o->timeout_ms,
                                err, sizeof(err));
    else if (a == TOPIC_GROW)
        rc = topic_admin_grow(rk, name, o->partitions, o->timeout_ms, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "tessera-topics: %s: %s failed: %s\n", name, topic_action_name(a), err);
        return 1;
    }
    if (a != TOPIC_OK)
        printf("%s: done\n", name);
    return 0;
}

static void list_table(void)
{
    for (size_t i = 0; i < topic_specs_count; i++)
        printf("%-16s retention.ms=%-11s cleanup.policy=%-7s %s\n", topic_specs[i].name,
               topic_specs[i].retention_ms, topic_specs[i].cleanup_policy, topic_specs[i].why);
}

int main(int argc, char **argv)
{
    struct options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    if (o.list)
        return list_table(), 0;
    rd_kafka_t *rk = admin_client(o.bootstrap);
    if (!rk)
        return 1;
    char names[TOPICS_MAX][TOPICS_NAME_MAX + 1];
    const char *name_ptrs[TOPICS_MAX];
    int current[TOPICS_MAX];
    enum topic_action plan[TOPICS_MAX];
    if (topic_specs_count > TOPICS_MAX) {
        fprintf(stderr, "tessera-topics: the topic table outgrew TOPICS_MAX\n");
        return 1;
    }
    for (size_t i = 0; i < topic_specs_count; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%s", o.prefix, topic_specs[i].name);
        name_ptrs[i] = names[i];
    }
    char err[512];
    if (topic_admin_describe(rk, name_ptrs, topic_specs_count, current, o.timeout_ms, err,
                             sizeof(err)) < 0) {
        fprintf(stderr, "tessera-topics: %s\n", err);
        rd_kafka_destroy(rk);
        return 1;
    }
    bool refused = false;
    for (size_t i = 0; i < topic_specs_count; i++) {
        plan[i] = topic_plan(current[i], o.partitions);
        if (current[i] < 0)
            printf("%s: missing, want %d: %s\n", names[i], o.partitions,
                   topic_action_name(plan[i]));
        else
            printf("%s: %d partitions, want %d: %s\n", names[i], current[i], o.partitions,
                   topic_action_name(plan[i]));
        if (plan[i] == TOPIC_REFUSE_SHRINK) {
            refused = true;
            fprintf(stderr,
                    "tessera-topics: %s has %d partitions and %d were asked for: Kafka cannot "
                    "remove partitions. Keep --partitions %d or more (or recreate the topic and "
                    "replay it).\n",
                    names[i], current[i], o.partitions, current[i]);
        }
    }
    rc = 0;
    if (refused)
        rc = 3; /* nothing changed, not even the topics that could be */
    else if (!o.dry_run)
        /* The first refusal stops the run: the rest would most likely fail
         * the same way, each after a full timeout. Re-running resumes. */
        for (size_t i = 0; i < topic_specs_count && rc == 0; i++)
            rc = apply_one(rk, &o, names[i], &topic_specs[i], plan[i]);
    rd_kafka_destroy(rk);
    return rc;
}
