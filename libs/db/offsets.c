/* Consumer offsets in PostgreSQL (see offsets.h). Called from consumer
 * threads on their blocking connection, whose search_path names the
 * service schema. */
#include "db/offsets.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "db/db_internal.h"
#include "log/log.h"

#define OFFSETS_RANGES_MAX   65536 /* partitions in one batch; far above any real assignment */
#define OFFSETS_NUM_TEXT_MAX 24

/* One row per requested partition, NULLs where nothing is stored; the
 * arrays keep the request order through WITH ORDINALITY. */
static const char LOAD_SQL[] =
    "SELECT r.i, o.next_offset, o.cluster_id"
    "  FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS r(topic, partition, i)"
    "  LEFT JOIN consumer_offsets o"
    "    ON o.group_id = $1 AND o.topic = r.topic AND o.partition = r.partition"
    " ORDER BY r.i";

/* The DO UPDATE only fires when the stored row is of another cluster or
 * not past this batch's first offset; a skipped row returns nothing, so
 * fewer rows than ranges means we were fenced. */
static const char STORE_SQL[] =
    "WITH r AS (SELECT * FROM unnest($3::text[], $4::int[], $5::bigint[], $6::bigint[])"
    "             AS t(topic, partition, first_offset, next_offset))"
    " INSERT INTO consumer_offsets AS o"
    "        (group_id, topic, partition, next_offset, cluster_id, updated_at)"
    " SELECT $1, r.topic, r.partition, r.next_offset, $2, now() FROM r"
    " ON CONFLICT (group_id, topic, partition) DO UPDATE"
    "   SET next_offset = EXCLUDED.next_offset, cluster_id = EXCLUDED.cluster_id,"
    "       updated_at = EXCLUDED.updated_at"
    " WHERE o.cluster_id <> EXCLUDED.cluster_id"
    "    OR o.next_offset <= (SELECT r.first_offset FROM r"
    "                          WHERE r.topic = EXCLUDED.topic AND r.partition = EXCLUDED.partition)"
    " RETURNING txid_current()";

static void offsets_log_foreign(const char *group_id, const rd_kafka_topic_partition_t *p,
                                const char *stored_cluster, const char *cluster_id)
{
    char partition[OFFSETS_NUM_TEXT_MAX];
    snprintf(partition, sizeof partition, "%" PRId32, p->partition);
    log_fields(LOG_WARN,
               "ignoring stored offset of another Kafka cluster; starting from the beginning",
               "group_id", group_id, "topic", p->topic, "partition", partition, "stored_cluster_id",
               stored_cluster, "cluster_id", cluster_id, NULL);
}

int db_offsets_load(PGconn *pg, const char *group_id, const char *cluster_id,
                    rd_kafka_topic_partition_list_t *parts, char *err, size_t err_len)
{
    assert(pg != NULL && group_id != NULL && cluster_id != NULL && parts != NULL);
    struct db_array topics, partitions;
    db_array_init(&topics);
    db_array_init(&partitions);
    for (int i = 0; i < parts->cnt; i++) {
        db_array_add(&topics, parts->elems[i].topic);
        db_array_add_int(&partitions, parts->elems[i].partition);
    }
    const char *params[] = {group_id, db_array_finish(&topics), db_array_finish(&partitions)};
    PGresult *res = db_query(pg, LOAD_SQL, 3, params, err, err_len, NULL);
    int rc = -1;
    if (res == NULL)
        goto done;
    assert(PQntuples(res) == parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *p = &parts->elems[i];
        p->offset = RD_KAFKA_OFFSET_BEGINNING;
        if (PQgetisnull(res, i, 1))
            continue;
        const char *stored_cluster = PQgetvalue(res, i, 2);
        if (strcmp(stored_cluster, cluster_id) != 0) {
            offsets_log_foreign(group_id, p, stored_cluster, cluster_id);
            continue;
        }
        p->offset = db_int_at(res, i, 1);
    }
    rc = 0;
done:
    PQclear(res);
    db_array_free(&topics);
    db_array_free(&partitions);
    return rc;
}

int db_offsets_store(PGconn *pg, const char *group_id, const char *cluster_id,
                     const struct db_offset_range *ranges, size_t count, long long *xid, char *err,
                     size_t err_len)
{
    assert(pg != NULL && group_id != NULL && cluster_id != NULL);
    assert(count <= OFFSETS_RANGES_MAX && (ranges != NULL || count == 0));
    if (xid != NULL)
        *xid = 0;
    if (count == 0)
        return 0;
    struct db_array topics, partitions, firsts, nexts;
    db_array_init(&topics);
    db_array_init(&partitions);
    db_array_init(&firsts);
    db_array_init(&nexts);
    for (size_t i = 0; i < count; i++) {
        assert(ranges[i].topic != NULL && ranges[i].first <= ranges[i].next);
        db_array_add(&topics, ranges[i].topic);
        db_array_add_int(&partitions, ranges[i].partition);
        db_array_add_int(&firsts, ranges[i].first);
        db_array_add_int(&nexts, ranges[i].next);
    }
    const char *params[] = {group_id,
                            cluster_id,
                            db_array_finish(&topics),
                            db_array_finish(&partitions),
                            db_array_finish(&firsts),
                            db_array_finish(&nexts)};
    PGresult *res = db_query(pg, STORE_SQL, 6, params, err, err_len, NULL);
    int rc = -1;
    if (res != NULL)
        rc = (size_t)PQntuples(res) == count ? 0 : 1;
    if (rc == 0 && xid != NULL)
        *xid = db_int_at(res, 0, 0);
    PQclear(res);
    db_array_free(&topics);
    db_array_free(&partitions);
    db_array_free(&firsts);
    db_array_free(&nexts);
    return rc;
}
