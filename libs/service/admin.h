/* The admin port every service serves beside its work: /livez (the
 * process answers), /readyz (its dependencies are reachable and its
 * partitions assigned; 503 with the failing checks otherwise) and /metrics
 * (Prometheus text format). */
#ifndef TESSERA_ADMIN_H
#define TESSERA_ADMIN_H

#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Adds one boolean per dependency to checks ("postgres": true, ...) and
 * returns whether all are good. Called on the loop. */
typedef bool (*admin_ready_fn)(void *ctx, json_t *checks);
/* Appends metric lines ("# TYPE x gauge\nx 1\n") to out, after the
 * families of the process-wide registry (libs/metrics), which /metrics
 * always renders first. May be NULL. */
typedef void (*admin_metrics_fn)(void *ctx, struct evbuffer *out);

struct admin_server;

struct admin_server *admin_server_new(struct event_base *base, const char *addr, uint16_t port,
                                      const char *service, admin_ready_fn ready,
                                      admin_metrics_fn metrics, void *ctx, char *err,
                                      size_t err_len);
uint16_t admin_server_port(const struct admin_server *a);
/* From now on /livez answers 503 {"status": "failed", "reason": reason}:
 * the process is on its way out after an error it cannot recover from
 * (ingest's verdict tail hit a fatal Kafka error) and only drains what is
 * in flight. reason must outlive the server (a literal). */
void admin_server_set_failed(struct admin_server *a, const char *reason);
void admin_server_free(struct admin_server *a);

/* Appends "# HELP ...\n# TYPE name type\nname value\n" for one unlabelled
 * value; prefer a registry family (metrics.h), which carries real help. */
void admin_metric(struct evbuffer *out, const char *name, const char *type, long long value);

#endif
