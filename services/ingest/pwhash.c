/* argon2id off the loop (see pwhash.h). */
#include "pwhash.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct pwhash_job {
    struct pwhash_pool *pool;
    struct event *done_ev;
    pwhash_done_fn done;
    void *arg;
    bool verify;
    int result;
    char password[PWHASH_PASSWORD_MAX + 1];
    char hash[crypto_pwhash_STRBYTES];
};

/* On the loop: hands the result over and frees the job. */
static void on_job_done(evutil_socket_t fd, short what, void *ctx)
{
    struct pwhash_job *job = ctx;
    job->pool->inflight--;
    job->done(job->arg, job->result, job->result == 1 ? job->hash : NULL);
    event_free(job->done_ev);
    sodium_memzero(job, sizeof(*job));
    free(job);
}

/* On the job's thread: the slow part only. */
static void *run_job(void *ctx)
{
    struct pwhash_job *job = ctx;
    if (job->verify)
        job->result =
            crypto_pwhash_str_verify(job->hash, job->password, strlen(job->password)) == 0 ? 1 : 0;
    else
        job->result = crypto_pwhash_str(job->hash, job->password, strlen(job->password),
                                        crypto_pwhash_OPSLIMIT_INTERACTIVE,
                                        crypto_pwhash_MEMLIMIT_INTERACTIVE) == 0
                          ? 1
                          : -1;
    sodium_memzero(job->password, sizeof(job->password));
    event_active(job->done_ev, EV_TIMEOUT, 1);
    return NULL;
}

static int start(struct pwhash_pool *p, bool verify, const char *hash, const char *password,
                 pwhash_done_fn done, void *arg)
{
    if (p->inflight >= PWHASH_INFLIGHT_MAX || strlen(password) > PWHASH_PASSWORD_MAX ||
        (hash && strlen(hash) >= crypto_pwhash_STRBYTES))
        return -1;
    struct pwhash_job *job = calloc(1, sizeof(*job));
    if (!job)
        return -1;
    *job = (struct pwhash_job){.pool = p, .done = done, .arg = arg, .verify = verify};
    strcpy(job->password, password);
    if (hash)
        strcpy(job->hash, hash);
    job->done_ev = event_new(p->base, -1, 0, on_job_done, job);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = job->done_ev ? pthread_create(&thread, &attr, run_job, job) : -1;
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        if (job->done_ev)
            event_free(job->done_ev);
        sodium_memzero(job, sizeof(*job));
        free(job);
        return -1;
    }
    p->inflight++;
    return 0;
}

int pwhash_hash(struct pwhash_pool *p, const char *password, pwhash_done_fn done, void *arg)
{
    return start(p, false, NULL, password, done, arg);
}

int pwhash_verify(struct pwhash_pool *p, const char *hash, const char *password,
                  pwhash_done_fn done, void *arg)
{
    return start(p, true, hash, password, done, arg);
}
