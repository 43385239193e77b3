/* tessera-devbroker: the development Kafka broker, librdkafka's mock
 * cluster behind real Kafka protocol on loopback ports. It creates every
 * project topic, publishes the bootstrap address in a file once they
 * exist, and runs until SIGTERM or SIGINT. Nothing is kept on disk: a
 * restart is a new cluster (new cluster id, empty topics).
 *
 * Consumer groups on the mock cluster (librdkafka 2.0.2,
 * src/rdkafka_mock_cgrp.c) have no settings of their own; every wait
 * follows the members' session.timeout.ms (S):
 *  - a member killed without LeaveGroup stays until S has passed since its
 *    last heartbeat, JoinGroup or SyncGroup (checked every second);
 *  - a rebalance waits S - 1 s for members to (re)join, 3 s when the group
 *    was empty, 100 ms when every member has rejoined after a failed sync;
 *  - the leader is the first member in the list, dead or alive, so a new
 *    member that joins before the dead one expired may wait for a second
 *    round.
 * A restarted member therefore gets its partitions after about S, or about
 * 2 S - 1 s when the dead member is elected first: keep S at 6000 ms in
 * local runs and tests when a takeover must finish within 15 s. */
#include "bus/topics.h"
#include "log/log.h"

#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEVBROKER_PARTITIONS_DEFAULT 6
#define DEVBROKER_PARTITIONS_MAX 256
#define DEVBROKER_BROKERS_DEFAULT 1
#define DEVBROKER_BROKERS_MAX 9
#define DEVBROKER_REPLICATION_MAX 3

struct devbroker_options {
    int partitions;
    int brokers;
    const char *bootstrap_file;
};

static void devbroker_usage(FILE *out) {
    fprintf(out,
            "usage: tessera-devbroker --bootstrap-file PATH [--partitions N] [--brokers N]\n"
            "  --bootstrap-file PATH  where to publish the bootstrap address (required)\n"
            "  --partitions N         partitions per topic, 1..%d (default %d)\n"
            "  --brokers N            mock brokers, 1..%d (default %d)\n"
            "  --help                 this text\n",
            DEVBROKER_PARTITIONS_MAX, DEVBROKER_PARTITIONS_DEFAULT, DEVBROKER_BROKERS_MAX,
            DEVBROKER_BROKERS_DEFAULT);
}

/* Parses a decimal in min..max; false on anything else. */
static bool devbroker_parse_int(const char *text, int min, int max, int *out) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || value < min || value > max)
        return false;
    *out = (int)value;
    return true;
}

/* Returns 0 to run, 1 to exit 0 (--help), 2 on bad usage. */
static int devbroker_parse_args(int argc, char **argv, struct devbroker_options *opts) {
    static const struct option longopts[] = {
        {"partitions", required_argument, NULL, 'p'},
        {"brokers", required_argument, NULL, 'b'},
        {"bootstrap-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        bool ok;
        switch (c) {
        case 'h':
            devbroker_usage(stdout);
            return 1;
        case 'f':
            opts->bootstrap_file = optarg;
            ok = true;
            break;
        case 'p':
            ok = devbroker_parse_int(optarg, 1, DEVBROKER_PARTITIONS_MAX, &opts->partitions);
            break;
        case 'b':
            ok = devbroker_parse_int(optarg, 1, DEVBROKER_BROKERS_MAX, &opts->brokers);
            break;
        default: /* getopt_long printed why */
            ok = false;
            break;
        }
        if (!ok) {
            if (c == 'p' || c == 'b')
                fprintf(stderr, "tessera-devbroker: bad value '%s'\n", optarg);
            devbroker_usage(stderr);
            return 2;
        }
    }
    if (optind != argc || opts->bootstrap_file == NULL || opts->bootstrap_file[0] == '\0') {
        fprintf(stderr, "tessera-devbroker: --bootstrap-file is required\n");
        devbroker_usage(stderr);
        return 2;
    }
    return 0;
}

static int devbroker_create_topics(rd_kafka_mock_cluster_t *mcluster,
                                   const struct devbroker_options *opts) {
    static const char *const topics[TOPICS_ALL_COUNT] = TOPICS_ALL;
    int replication =
        opts->brokers < DEVBROKER_REPLICATION_MAX ? opts->brokers : DEVBROKER_REPLICATION_MAX;

    for (int i = 0; i < TOPICS_ALL_COUNT; i++) {
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(mcluster, topics[i], opts->partitions, replication);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_error("cannot create topic %s: %s", topics[i], rd_kafka_err2str(err));
            return -1;
        }
    }
    return 0;
}

/* Writes address to path through a temporary file and rename, so a reader
 * polling for the file never sees it half written. */
static int devbroker_publish(const char *path, const char *address) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
        log_error("bootstrap file path too long");
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        log_error("cannot write %s: %s", tmp, strerror(errno));
        return -1;
    }
    bool ok = fprintf(f, "%s\n", address) > 0;
    ok = fflush(f) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        log_error("cannot publish %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* A handle for the cluster to live in; it never produces. */
static rd_kafka_t *devbroker_handle_new(void) {
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Warnings and worse only: the handle has no bootstrap.servers on
     * purpose, and librdkafka would say so at notice level. */
    if (rd_kafka_conf_set(conf, "log_level", "4", err, sizeof(err)) != RD_KAFKA_CONF_OK)
        log_warn("log_level: %s", err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        log_error("cannot create kafka handle: %s", err);
    }
    return rk;
}

static int devbroker_wait_for_signal(const sigset_t *stop) {
    int sig = 0;
    while (sigwait(stop, &sig) != 0) {
    }
    return sig;
}

int main(int argc, char **argv) {
    struct devbroker_options opts = {DEVBROKER_PARTITIONS_DEFAULT, DEVBROKER_BROKERS_DEFAULT,
                                     NULL};
    int rc = devbroker_parse_args(argc, argv, &opts);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    log_init("devbroker", LOG_INFO);

    /* Blocked before librdkafka starts its threads, which inherit the
     * mask, so only sigwait below ever takes these signals. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    rd_kafka_t *rk = devbroker_handle_new();
    if (rk == NULL)
        return 1;
    rd_kafka_mock_cluster_t *mcluster = rd_kafka_mock_cluster_new(rk, opts.brokers);
    if (mcluster == NULL) {
        log_error("cannot start the mock cluster");
        rd_kafka_destroy(rk);
        return 1;
    }
    const char *address = rd_kafka_mock_cluster_bootstraps(mcluster);
    rc = devbroker_create_topics(mcluster, &opts) == 0 &&
                 devbroker_publish(opts.bootstrap_file, address) == 0
             ? 0
             : 1;
    if (rc == 0) {
        log_fields(LOG_INFO, "development broker ready", "bootstrap", address, "file",
                   opts.bootstrap_file, NULL);
        int sig = devbroker_wait_for_signal(&stop);
        log_info("stopping on signal %d", sig);
        unlink(opts.bootstrap_file);
    }
    rd_kafka_mock_cluster_destroy(mcluster);
    rd_kafka_destroy(rk);
    return rc;
}
