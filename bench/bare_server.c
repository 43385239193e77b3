/* tessera-bench-bare: the baseline of the single-request scenario — a bare
 * libevent HTTP server on the same machine answering a fixed JSON body,
 * with none of Tessera's work behind it. Stops on SIGTERM/SIGINT. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char answer[] =
    "{\"purchase_id\":\"01a206d3-dd85-70c6-9685-933654232418\",\"status\":\"completed\","
    "\"charged\":11000,\"balances\":{\"points\":0,\"stored_value\":99000}}";

static void on_request(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, answer, sizeof(answer) - 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 18999;
    struct event_base *base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    if (evhttp_bind_socket(http, "127.0.0.1", (uint16_t)port) != 0) {
        fprintf(stderr, "bare: cannot bind port %d\n", port);
        return 1;
    }
    evhttp_set_gencb(http, on_request, NULL);
    struct event *term = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *intr = evsignal_new(base, SIGINT, on_signal, base);
    event_add(term, NULL);
    event_add(intr, NULL);
    event_base_dispatch(base);
    evhttp_free(http);
    event_free(term);
    event_free(intr);
    event_base_free(base);
    return 0;
}
