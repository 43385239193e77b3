/* Linked only into the ThreadSanitizer build (`make tsan`). librdkafka
 * starts its threads with C11 thrd_create, which GCC 12's libtsan does not
 * intercept: such a thread is unknown to ThreadSanitizer, which then
 * crashes in it (it has no thread state). These definitions, exported
 * from the executable, take the place of glibc's for librdkafka and go
 * through pthread_create/join/detach, which libtsan does intercept. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <threads.h>

struct c11_start {
    thrd_start_t func;
    void *arg;
};

static void *c11_trampoline(void *p)
{
    struct c11_start s = *(struct c11_start *)p;
    free(p);
    return (void *)(intptr_t)s.func(s.arg);
}

int thrd_create(thrd_t *thr, thrd_start_t func, void *arg)
{
    struct c11_start *s = malloc(sizeof(*s));
    if (!s)
        return thrd_nomem;
    *s = (struct c11_start){.func = func, .arg = arg};
    int rc = pthread_create(thr, NULL, c11_trampoline, s);
    if (rc != 0) {
        free(s);
        return rc == EAGAIN ? thrd_nomem : thrd_error;
    }
    return thrd_success;
}

int thrd_join(thrd_t thr, int *res)
{
    void *out = NULL;
    if (pthread_join(thr, &out) != 0)
        return thrd_error;
    if (res)
        *res = (int)(intptr_t)out;
    return thrd_success;
}

int thrd_detach(thrd_t thr)
{
    return pthread_detach(thr) == 0 ? thrd_success : thrd_error;
}
