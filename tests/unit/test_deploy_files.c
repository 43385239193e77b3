/* The deployment files (docker-compose.yml, deploy/k8s) are validated
 * without an engine or a cluster by tests/deploy/validate_deploy.py:
 * `docker-compose config` plus the required fields; --self-test also
 * proves that broken copies of the files are caught. Run from the
 * repository root (make test does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <cmocka.h>

static void test_deploy_files_are_valid(void **state)
{
    int status = system("python3 tests/deploy/validate_deploy.py --self-test");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deploy_files_are_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
