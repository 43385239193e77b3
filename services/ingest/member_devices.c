/* A member's devices (admin or pos key): GET /v1/members/{id}/devices
 * lists the devices the member logged in from (member_auth.c keeps them,
 * at most TESSERA_MEMBER_DEVICES_MAX), DELETE
 * /v1/members/{id}/devices/{device_id} unbinds one, so a member at the
 * limit (403 device_limit_reached) can log in from a new phone.
 *
 * Unbinding first ends every session of the device in Redis (its set of
 * token hashes, sessions.h), then deletes the row: when Redis cannot be
 * reached nothing changes (503), so an unbound device is never still
 * logged in. Unbinding a device the member does not have answers 404. */
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"
#include "sessions.h"

#define DEVICE_ID_BYTES_MAX 256 /* a device id as logins accept it, UTF-8 */

static void on_devices(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_exists(r, res, err))
        return;
    json_t *devices = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    req_finish(r, 200,
               json_pack("{s:s, s:o, s:I}", "member_id", r->member_id, "devices",
                         json_is_array(devices) ? devices : json_array(), "devices_max",
                         (json_int_t)r->app->member_devices_max));
}

static void list_authenticated(struct req *r)
{
    if (!auth_may_manage_members(r) || !req_member_from_path(r))
        return;
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(
            r->app->pg,
            "SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND member_id = $2), "
            "(SELECT coalesce(json_agg(json_build_object('device_id', device_id, 'first_seen', "
            "to_char(first_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
            "'last_seen', to_char(last_seen AT TIME ZONE 'UTC', "
            "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) ORDER BY last_seen DESC, device_id), '[]') "
            "FROM member_devices WHERE tenant_id = $1 AND member_id = $2)",
            2, p, on_devices, r) < 0)
        req_fail_db(r, "queue full");
}

void member_devices_list(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), list_authenticated);
}

/* ------------------------------------------------------------ unbinding */
/* The device id from the path, percent-decoded (malloc'ed), or NULL. */
static char *device_from_path(struct req *r)
{
    const char *raw = http_param(r->ex, "device_id");
    if (!raw || strlen(raw) > 3 * DEVICE_ID_BYTES_MAX)
        return NULL;
    char *id = evhttp_uridecode(raw, 0, NULL);
    if (id && (!*id || strlen(id) > DEVICE_ID_BYTES_MAX || !members_text_utf8(id))) {
        free(id);
        return NULL;
    }
    return id;
}

static void on_unbound(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 404, "not_found", "the member has no such device");
        return;
    }
    req_finish(r, 200,
               json_pack("{s:s, s:s, s:b}", "member_id", r->member_id, "device_id",
                         PQgetvalue(res, 0, 0), "unbound", 1));
}

static void delete_row(struct req *r, const char *device_id)
{
    const char *p[3] = {r->caller.tenant_id, r->member_id, device_id};
    if (pg_pool_query(r->app->pg,
                      "DELETE FROM member_devices WHERE tenant_id = $1 AND member_id = $2 "
                      "AND device_id = $3 RETURNING device_id",
                      3, p, on_unbound, r) < 0)
        req_fail_db(r, "queue full");
}

static void on_sessions_ended(void *arg, redisReply *reply)
{
    struct req *r = arg;
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        req_fail(r, 503, "unavailable", "sessions are unavailable; retry shortly");
        return;
    }
    char *id = device_from_path(r); /* checked before the sessions were ended */
    if (!id) {
        req_fail_db(r, "out of memory");
        return;
    }
    delete_row(r, id);
    free(id);
}

static void delete_authenticated(struct req *r)
{
    if (!auth_may_manage_members(r) || !req_member_from_path(r))
        return;
    char *id = device_from_path(r);
    if (!id) {
        req_reply_invalid(r, "device_id", "must be a device id as the member logged in with");
        return;
    }
    char device_key[3 * INGEST_KEY_MAX + DEVICE_ID_BYTES_MAX];
    snprintf(device_key, sizeof(device_key), DEVICE_SESSIONS_KEY, r->caller.tenant_id, r->member_id,
             id);
    free(id);
    /* Another tenant's member: its key names this tenant, so nothing of
     * the other tenant is touched, and the row's delete answers 404. */
    session_command(r->app->sessions, on_sessions_ended, r, "EVAL %s 1 %s", DEVICE_SESSIONS_END_LUA,
                    device_key);
}

void member_devices_delete(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), delete_authenticated);
}
