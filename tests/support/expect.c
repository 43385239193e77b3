#include "expect.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

void api_expect_status(struct api_response *r, long status)
{
    if (r->status != status)
        fprintf(stderr, "test: expected %ld, got %ld: %s\n", status, r->status, r->raw);
    assert_int_equal(r->status, status);
}

void api_expect_problem(struct api_response r, long status, const char *code)
{
    api_expect_status(&r, status);
    assert_string_equal(json_str_at(r.body, "code"), code);
    api_response_free(&r);
}
