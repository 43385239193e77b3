/* The statement that reads a run's facts (decide_io.c), apart so that
 * tests/integration/test_notify_facts_plan.c can EXPLAIN it: the contact
 * is a lookup per request by its primary key (a correlated subquery, kept
 * from being flattened by OFFSET 0), never a join, which PostgreSQL ran
 * by hashing the whole contacts table every run while the table was
 * small enough (up to some 100 000 rows; it assumes 1 000 rows for any
 * unnest). $1-$3: the run's
 * tenants, members and purposes; $4: the start of the cap's week. */
#ifndef TESSERA_NOTIFICATION_DECIDE_SQL_H
#define TESSERA_NOTIFICATION_DECIDE_SQL_H

#define DECIDE_FACTS_SQL                                                                           \
    "SELECT u.i, (u.contact).sealed, (u.contact).locale, p.time_zone, "                            \
    "p.quiet_start_minute, "                                                                       \
    "p.quiet_end_minute, p.marketing_cap_per_week, p.default_locale, p.currency, "                 \
    "CASE WHEN u.purpose = 'marketing' THEN (SELECT count(*) FROM requests q "                     \
    " WHERE q.tenant_id = u.t AND q.member_id = u.m AND q.counts_for_cap "                         \
    " AND q.received_us > $4::bigint) END, "                                                       \
    "(SELECT ',' || string_agg(channel, ',') || ',' FROM consents k "                              \
    " WHERE k.tenant_id = u.t AND k.member_id = u.m AND k.purpose = u.purpose "                    \
    " AND k.granted), nextval('deliveries_id_seq') "                                               \
    "FROM (SELECT u.*, (SELECT c FROM contacts c WHERE c.tenant_id = u.t "                         \
    " AND c.member_id = u.m) AS contact "                                                          \
    " FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY "                            \
    " AS u(t, m, purpose, i) OFFSET 0) u "                                                         \
    "LEFT JOIN policies p ON p.tenant_id = u.t"

#endif
