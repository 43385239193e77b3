/* A delivery worker's libcurl multi handle on epoll (multi.c). */
#ifndef TESSERA_NOTIFICATION_MULTI_H
#define TESSERA_NOTIFICATION_MULTI_H

#include <curl/curl.h>

struct multi;

/* A multi handle with its epoll set; NULL on failure. */
struct multi *multi_open(void) __attribute__((warn_unused_result));
/* Its curl handle: add and remove easy handles on it, read finished ones
 * with curl_multi_info_read. */
CURLM *multi_curl(struct multi *m);
/* Waits up to timeout_ms for sockets, curl's timer or a wake-up, and
 * lets curl act on what happened. */
void multi_wait(struct multi *m, int timeout_ms);
/* Ends a multi_wait early (any thread). */
void multi_wakeup(struct multi *m);
void multi_close(struct multi *m);

#endif
