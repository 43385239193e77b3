/* Member passwords: argon2id (crypto_pwhash_str, libsodium's interactive
 * limits: 64 MiB, ~0.1 s). That is far too slow for the event loop, so each
 * hash or check runs on a short-lived thread of its own and reports back
 * on the loop through an event made active from that thread (the base is
 * thread-aware: evthread_use_pthreads). At most PWHASH_INFLIGHT_MAX run at
 * once, which bounds memory and CPU; past that the caller answers 503. */
#ifndef TESSERA_INGEST_PWHASH_H
#define TESSERA_INGEST_PWHASH_H

#include <event2/event.h>
#include <stdbool.h>

#define PWHASH_INFLIGHT_MAX 2
#define PWHASH_PASSWORD_MIN 8
#define PWHASH_PASSWORD_MAX 128

struct pwhash_pool {
    struct event_base *base;
    int inflight; /* touched on the loop thread only */
};

/* result: 1 done (hash set) or matched, 0 did not match, -1 failed. hash
 * is valid during the call only. Runs on the loop thread. */
typedef void (*pwhash_done_fn)(void *arg, int result, const char *hash);

/* Hashes password. 0, or -1 when PWHASH_INFLIGHT_MAX are running (done is
 * not called then). The password is copied and wiped after use. */
int pwhash_hash(struct pwhash_pool *p, const char *password, pwhash_done_fn done, void *arg)
    __attribute__((warn_unused_result));
/* Checks password against an argon2id string. Same contract. */
int pwhash_verify(struct pwhash_pool *p, const char *hash, const char *password,
                  pwhash_done_fn done, void *arg) __attribute__((warn_unused_result));

#endif
