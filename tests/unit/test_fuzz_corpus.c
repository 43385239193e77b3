/* Replays the committed fuzz inputs (tests/fuzz/corpus/ seeds and every
 * past crash in tests/fuzz/regressions/) through the same entry points
 * `make fuzz` uses, with the normal gcc build, so `make test` keeps a
 * fixed crash fixed even where clang is absent. The seeds are also
 * checked to still mean something: the envelope seeds decode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>

#define LLVMFuzzerTestOneInput fuzz_envelope_one
#include "../fuzz/fuzz_envelope.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_json_request_one
#include "../fuzz/fuzz_json_request.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fuzz_ndjson_one
#include "../fuzz/fuzz_ndjson.c"
#undef LLVMFuzzerTestOneInput

#define INPUT_MAX (64 * 1024)

typedef int (*fuzz_fn)(const uint8_t *data, size_t size);

/* Runs every file of dir through fn; returns how many there were. */
static int replay_dir(const char *dir, fuzz_fn fn, bool (*check)(const uint8_t *, size_t))
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    static uint8_t buf[INPUT_MAX];
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        assert_int_equal(fn(buf, n), 0);
        if (check)
            assert_true(check(buf, n));
        count++;
    }
    closedir(d);
    return count;
}

static bool decodes(const uint8_t *data, size_t size)
{
    char why[128];
    Envelope *env = envelope_decode(data, size, why, sizeof(why));
    bool ok = env != NULL;
    envelope_free(env);
    return ok;
}

static void test_envelope_inputs(void **state)
{
    assert_true(replay_dir("tests/fuzz/corpus/fuzz_envelope", fuzz_envelope_one, decodes) >= 1);
    replay_dir("tests/fuzz/regressions/fuzz_envelope", fuzz_envelope_one, NULL);
}

static void test_json_request_inputs(void **state)
{
    assert_true(replay_dir("tests/fuzz/corpus/fuzz_json_request", fuzz_json_request_one, NULL) >=
                1);
    replay_dir("tests/fuzz/regressions/fuzz_json_request", fuzz_json_request_one, NULL);
}

static void test_ndjson_inputs(void **state)
{
    assert_true(replay_dir("tests/fuzz/corpus/fuzz_ndjson", fuzz_ndjson_one, NULL) >= 1);
    replay_dir("tests/fuzz/regressions/fuzz_ndjson", fuzz_ndjson_one, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_inputs),
        cmocka_unit_test(test_json_request_inputs),
        cmocka_unit_test(test_ndjson_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
