/* What the operability tests share: the admin port of each service of the
 * test runtime (/livez, /readyz, /metrics) and plain HTTP GETs. */
#ifndef TESSERA_TEST_OPS_CLIENT_H
#define TESSERA_TEST_OPS_CLIENT_H

#include <stdbool.h>

/* The local runtime's services in admin-port order (base + index). */
extern const char *const ops_services[];
#define OPS_SERVICES_COUNT 5

/* Admin port of a service: TESSERA_LOCAL_ADMIN_PORT_BASE + its index. */
int ops_admin_port(const char *service);

/* GETs http://127.0.0.1:<admin port of service><path>. Returns the body
 * (caller frees; "" when unreachable) and the status in *status (0 when
 * the service does not answer). */
char *ops_admin_get(const char *service, const char *path, long *status);

/* GETs a URL; body as above (caller frees), status 0 when unreachable. */
char *ops_http_get(const char *url, long *status);

/* The value of a sample in a service's /metrics (sum over samples whose
 * labels contain match; -1 when absent or unreachable). */
double ops_metric(const char *service, const char *name, const char *match);

/* The same for any admin port (a second instance of a service). */
double ops_metric_at(int admin_port, const char *name, const char *match);

#endif
