/* The member view served from Redis (issue 15, the read path), end to end
 * against the runtime: a second read takes the profile from the cache,
 * where it is sealed (the member's name is nowhere in the stored bytes); a
 * PATCH, a tag put or removed, and an erasure are seen by the very next
 * read (each leaves a tombstone before it answers), an erasure leaves no
 * sealed copy behind, and a reader that read PostgreSQL before a change
 * cannot put the old profile back (the fill script refuses an older
 * version); a coupon issued or redeemed is seen by the next read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/api_client.h"
#include "../support/ops_client.h"
#include "cache/cache.h"
#include "cache/cache_view.h"

#define VIEW_READS "tessera_ingest_member_view_reads_total"

static redisContext *rc;

static int setup(void **state)
{
    char err[256];
    if (cache_set_password(getenv("TESSERA_REDIS_PASSWORD")) != 0)
        return -1;
    rc = cache_connect(getenv("TESSERA_REDIS_HOST"), atoi(getenv("TESSERA_REDIS_PORT")), 2000, err,
                       sizeof(err));
    if (!rc)
        fprintf(stderr, "redis: %s\n", err);
    return rc ? 0 : -1;
}

static int teardown(void **state)
{
    if (rc)
        redisFree(rc);
    return 0;
}

/* ------------------------------------------------------- helpers */
static void register_named(char id[64], char name[64])
{
    char phone[16], body[256];
    test_unique_phone(phone);
    snprintf(name, 64, "Cachecheck %s", phone + 3);
    snprintf(body, sizeof(body), "{\"name\":\"%s\",\"phone\":\"%s\",\"branch_id\":\"hq\"}", name,
             phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    assert_int_equal(r.status, 201);
    snprintf(id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

/* GET /v1/members/{id}: 200, its body (the caller decrefs). */
static json_t *view(const char *id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", id);
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    json_t *body = json_incref(r.body);
    api_response_free(&r);
    return body;
}

static const char *str_or_null(json_t *v, const char *field)
{
    json_t *f = json_object_get(v, field);
    return json_is_string(f) ? json_string_value(f) : NULL;
}

/* The profile field of the member's view hash (malloc'ed, *len its size),
 * or NULL when absent. */
static char *cached_profile(const char *id, size_t *len)
{
    redisReply *r = redisCommand(rc, "HGET tessera:demo:member:%s:view profile", id);
    assert_non_null(r);
    char *out = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        out = malloc(r->len + 1);
        memcpy(out, r->str, r->len);
        out[r->len] = '\0';
        *len = r->len;
    }
    freeReplyObject(r);
    return out;
}

static bool profile_is_cached(void *id)
{
    size_t len = 0;
    char *p = cached_profile(id, &len);
    free(p);
    return p != NULL;
}

/* The fill after a miss goes to Redis on ingest's cache connection beside
 * the answer, not before it: a reader on another connection polls for it. */
static char *filled_profile(const char *id, size_t *len)
{
    assert_true(poll_until(profile_is_cached, (void *)id, 10000));
    return cached_profile(id, len);
}

static void send_ok(const char *method, const char *path, const char *body)
{
    struct api_response r = api_call(method, path, body, NULL, NULL);
    if (r.status != 200)
        fprintf(stderr, "%s %s: %ld %s\n", method, path, r.status, r.raw ? r.raw : "");
    assert_int_equal(r.status, 200);
    api_response_free(&r);
}

/* ------------------------------------------------------- tests */
/* The second read is the cache's, and the cached profile is sealed. */
static void test_the_profile_is_cached_sealed(void **state)
{
    char id[64], name[64];
    register_named(id, name);
    json_decref(view(id)); /* the first read fills the cache */
    size_t len = 0;
    char *sealed = filled_profile(id, &len);
    assert_non_null(sealed);
    assert_true(len > 40); /* "<version>|<key version>|" then the box */
    assert_null(memmem(sealed, len, name, strlen(name)));
    assert_null(memmem(sealed, len, "Cachecheck", 10));
    free(sealed);
    double before = ops_metric("ingest", VIEW_READS, "part=\"profile\",source=\"cache\"");
    json_t *v = view(id);
    assert_string_equal(str_or_null(v, "name"), name);
    json_decref(v);
    assert_true(ops_metric("ingest", VIEW_READS, "part=\"profile\",source=\"cache\"") >=
                before + 1);
}

/* A PATCH, then a tag put and removed: each seen by the very next read. */
static void test_changes_are_seen_by_the_next_read(void **state)
{
    char id[64], name[64], path[160];
    register_named(id, name);
    json_decref(view(id));
    json_decref(view(id)); /* cached now */
    snprintf(path, sizeof(path), "/v1/members/%s", id);
    send_ok("PATCH", path, "{\"name\":\"Renamed Member\"}");
    json_t *v = view(id);
    assert_string_equal(str_or_null(v, "name"), "Renamed Member");
    json_decref(v);
    snprintf(path, sizeof(path), "/v1/members/%s/tags/vip-cache", id);
    send_ok("PUT", path, NULL);
    v = view(id);
    assert_int_equal(json_array_size(json_object_get(v, "tags")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(v, "tags"), 0)),
                        "vip-cache");
    json_decref(v);
    send_ok("DELETE", path, NULL);
    v = view(id);
    assert_int_equal(json_array_size(json_object_get(v, "tags")), 0);
    assert_string_equal(str_or_null(v, "name"), "Renamed Member");
    json_decref(v);
}

/* A reader that read PostgreSQL before a change fills with the older
 * version: refused; the version of the change is taken. */
static void test_an_older_fill_cannot_put_the_old_profile_back(void **state)
{
    char id[64], name[64], path[160];
    register_named(id, name);
    json_decref(view(id));
    size_t len = 0;
    char *old = filled_profile(id, &len);
    assert_non_null(old);
    int64_t old_version = strtoll(old, NULL, 10);
    const char *payload = strchr(old, '|') + 1;
    size_t payload_len = len - (size_t)(payload - old);
    snprintf(path, sizeof(path), "/v1/members/%s", id);
    send_ok("PATCH", path, "{\"name\":\"Changed Before The Fill\"}");
    /* the change left its tombstone, a version past the old one (or the
     * PATCH's own answer, a read, has filled that version already) */
    char *now = cached_profile(id, &len);
    assert_non_null(now);
    assert_int_equal(strtoll(now, NULL, 10), old_version + 1);
    free(now);
    assert_int_equal(cache_fill_view_profile(rc, "demo", id, old_version, payload, payload_len), 0);
    json_t *v = view(id);
    assert_string_equal(str_or_null(v, "name"), "Changed Before The Fill");
    json_decref(v);
    free(old);
}

/* Erasure leaves a tombstone, no sealed copy; the next read shows it. */
static void test_erasure_removes_the_cached_profile(void **state)
{
    char id[64], name[64], path[160];
    register_named(id, name);
    json_decref(view(id));
    json_decref(view(id));
    size_t len = 0;
    char *before = filled_profile(id, &len);
    assert_non_null(before);
    int64_t version = strtoll(before, NULL, 10);
    free(before);
    snprintf(path, sizeof(path), "/v1/members/%s/personal-data", id);
    send_ok("DELETE", path, NULL);
    char *after = cached_profile(id, &len);
    assert_non_null(after);
    char tomb[32];
    snprintf(tomb, sizeof(tomb), "%lld|", (long long)version + 1);
    assert_int_equal(len, strlen(tomb));
    assert_string_equal(after, tomb);
    free(after);
    json_t *v = view(id);
    assert_null(str_or_null(v, "name"));
    assert_null(str_or_null(v, "phone"));
    assert_non_null(str_or_null(v, "personal_data_erased_at"));
    json_decref(v);
}

/* Coupons: issued, then redeemed, each seen by the next read. */
static void test_coupon_changes_are_seen_by_the_next_read(void **state)
{
    char id[64], name[64], path[200];
    register_named(id, name);
    json_t *v = view(id);
    assert_int_equal(json_array_size(json_object_get(v, "coupons")), 0);
    json_decref(v);
    json_decref(view(id)); /* "no coupons" cached */
    snprintf(path, sizeof(path), "/v1/members/%s/coupons", id);
    struct api_response r =
        api_post(path, "{\"kind\":\"value\",\"value\":300,\"valid_days\":7}", NULL);
    assert_int_equal(r.status, 201);
    char coupon[64];
    snprintf(coupon, sizeof(coupon), "%s", json_str_at(r.body, "coupon_id"));
    api_response_free(&r);
    v = view(id);
    json_t *coupons = json_object_get(v, "coupons");
    assert_int_equal(json_array_size(coupons), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(coupons, 0), "coupon_id")),
                        coupon);
    assert_null(json_object_get(json_array_get(coupons, 0), "valid_to_us"));
    json_decref(v);
    json_decref(view(id)); /* the coupon cached */
    snprintf(path, sizeof(path), "/v1/members/%s/coupons/%s/redeem", id, coupon);
    r = api_post(path, "{\"branch_id\":\"hq\",\"amount\":1000}", NULL);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    v = view(id);
    assert_int_equal(json_array_size(json_object_get(v, "coupons")), 0);
    json_decref(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_profile_is_cached_sealed),
        cmocka_unit_test(test_changes_are_seen_by_the_next_read),
        cmocka_unit_test(test_an_older_fill_cannot_put_the_old_profile_back),
        cmocka_unit_test(test_erasure_removes_the_cached_profile),
        cmocka_unit_test(test_coupon_changes_are_seen_by_the_next_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
