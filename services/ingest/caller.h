/* Who is calling: what authentication (auth.c) finds for a request. */
#ifndef TESSERA_INGEST_CALLER_H
#define TESSERA_INGEST_CALLER_H

#define INGEST_KEY_MAX 128 /* Idempotency-Key, ids in paths */

struct caller {
    char tenant_id[INGEST_KEY_MAX];
    char scope[32];
    char branch_id[INGEST_KEY_MAX]; /* "" unless a pos key */
    char key_id[24];                /* the key's public id (api_keys.key_id), for the actor */
};

#endif
