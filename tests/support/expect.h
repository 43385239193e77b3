/* Assertions on API answers that several end-to-end tests share: the
 * status, with the body printed when it differs (so a failure says why),
 * and a problem's stable code. cmocka asserts: a failure ends the test. */
#ifndef TESSERA_TEST_EXPECT_H
#define TESSERA_TEST_EXPECT_H

#include "api_client.h"

void api_expect_status(struct api_response *r, long status);

/* The answer is a problem with this status and code; frees r. */
void api_expect_problem(struct api_response r, long status, const char *code);

#endif
