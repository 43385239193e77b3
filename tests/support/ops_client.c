#include "ops_client.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom_text.h"

const char *const ops_services[] = {"ingest", "ledger", "tiering", "campaign", "notification"};

int ops_admin_port(const char *service)
{
    const char *base = getenv("TESSERA_LOCAL_ADMIN_PORT_BASE");
    int port = base && *base ? atoi(base) : 9100;
    for (int i = 0; i < OPS_SERVICES_COUNT; i++)
        if (strcmp(ops_services[i], service) == 0)
            return port + i;
    assert(!"unknown service");
    return -1;
}

struct text {
    char *data;
    size_t len;
};

static size_t on_data(char *ptr, size_t size, size_t n, void *arg)
{
    struct text *t = arg;
    size_t add = size * n;
    t->data = realloc(t->data, t->len + add + 1);
    assert(t->data);
    memcpy(t->data + t->len, ptr, add);
    t->len += add;
    t->data[t->len] = '\0';
    return add;
}

char *ops_http_get(const char *url, long *status)
{
    struct text t = {.data = calloc(1, 1)};
    CURL *curl = curl_easy_init();
    assert(curl && t.data);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    *status = 0;
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(curl);
    return t.data;
}

char *ops_admin_get(const char *service, const char *path, long *status)
{
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", ops_admin_port(service), path);
    return ops_http_get(url, status);
}

double ops_metric(const char *service, const char *name, const char *match)
{
    long status;
    char *text = ops_admin_get(service, "/metrics", &status);
    double v = status == 200 ? prom_sum(text, name, match) : -1;
    free(text);
    return v;
}

double ops_metric_at(int admin_port, const char *name, const char *match)
{
    char url[128];
    long status;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics", admin_port);
    char *text = ops_http_get(url, &status);
    double v = status == 200 ? prom_sum(text, name, match) : -1;
    free(text);
    return v;
}
