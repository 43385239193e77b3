/* The error catalogue: every problem `code` the API can answer, with its
 * HTTP status and what it means. docs/errors.md is the same table for
 * people; tests/unit/test_problem_codes.c checks that every code written in
 * services/ingest, libs/http and the ledger's rejections is listed here and
 * on that page. Pure data, no I/O. */
#ifndef TESSERA_INGEST_PROBLEMS_H
#define TESSERA_INGEST_PROBLEMS_H

#include <stddef.h>

/* Where a code comes from. */
enum problem_origin {
    PROBLEM_HTTP,   /* libs/http: the request could not be read or routed */
    PROBLEM_INGEST, /* an ingest handler refused it; nothing was sent on */
    PROBLEM_LEDGER, /* the ledger's verdict (LedgerRejected) */
};

struct problem_code {
    const char *code;
    int status;
    enum problem_origin origin;
    const char *meaning;
};

extern const struct problem_code problem_codes[];
extern const size_t problem_code_count;

/* The catalogue's entry for code, or NULL. */
const struct problem_code *problems_find(const char *code);

/* The HTTP status of a ledger rejection: the catalogue's, or 409 (the state
 * refuses it) for a code the catalogue does not know yet. */
int problems_ledger_status(const char *code);

#endif
