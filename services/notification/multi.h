/* The delivery worker's libcurl multi handle on epoll (multi.c). */
#ifndef TESSERA_NOTIFICATION_MULTI_H
#define TESSERA_NOTIFICATION_MULTI_H

#include <curl/curl.h>

/* Creates the multi handle (add and remove easy handles on it, read
 * finished ones with curl_multi_info_read). NULL on failure. */
CURLM *multi_open(void) __attribute__((warn_unused_result));
/* Waits up to timeout_ms for sockets, curl's timer or a wake-up, and
 * lets curl act on what happened. */
void multi_wait(int timeout_ms);
/* Ends a multi_wait early (any thread). */
void multi_wakeup(void);
void multi_close(void);

#endif
