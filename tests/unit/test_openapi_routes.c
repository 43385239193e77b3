/* docs/openapi.yaml documents exactly the routes services/ingest/main.c
 * registers: a route missing from the document, or a documented operation
 * that no route serves, fails. Both files are read as text (the route table
 * is one `{"METHOD", "/path", handler}` per line; the document keeps paths
 * at two spaces of indentation and methods at four), so the check needs no
 * YAML library. A self-check removes a path from the document and adds a
 * route to the table and expects both to be noticed. Run from the
 * repository root (make test does). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define ROUTES_MAX      128
#define ROUTE_TEXT_MAX  160 /* "METHOD /path" */
#define FILE_BYTES_MAX  (1024 * 1024)
#define ROUTES_MAIN     "services/ingest/main.c"
#define ROUTES_DOCUMENT "docs/openapi.yaml"

struct routes {
    size_t count;
    char items[ROUTES_MAX][ROUTE_TEXT_MAX];
};

/* The whole file as a NUL-terminated string; caller frees. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *text = malloc(FILE_BYTES_MAX + 1);
    assert_non_null(text);
    size_t n = fread(text, 1, FILE_BYTES_MAX, f);
    assert_true(feof(f)); /* the file fits */
    fclose(f);
    text[n] = '\0';
    return text;
}

static void routes_add(struct routes *r, const char *method, const char *path)
{
    assert_true(r->count < ROUTES_MAX);
    int n = snprintf(r->items[r->count], ROUTE_TEXT_MAX, "%s %s", method, path);
    assert_true(n > 0 && n < ROUTE_TEXT_MAX);
    r->count++;
}

static bool routes_has(const struct routes *r, const char *route)
{
    for (size_t i = 0; i < r->count; i++)
        if (strcmp(r->items[i], route) == 0)
            return true;
    return false;
}

/* The entries of main.c's api_routes[] table. Modifies text. */
static void routes_of_main(char *text, struct routes *out)
{
    char *table = strstr(text, "api_routes[] = {");
    assert_non_null(table);
    char *end = strstr(table, "};");
    assert_non_null(end);
    *end = '\0';
    for (char *line = strtok(table, "\n"); line; line = strtok(NULL, "\n")) {
        char method[16], path[ROUTE_TEXT_MAX];
        if (sscanf(line, " {\"%15[A-Z]\", \"%150[^\"]\",", method, path) == 2)
            routes_add(out, method, path);
    }
}

static void upper(char *s)
{
    for (; *s; s++)
        if (*s >= 'a' && *s <= 'z')
            *s = (char)(*s - 'a' + 'A');
}

/* The operations under the document's `paths:`. Modifies text. */
static void routes_of_document(char *text, struct routes *out)
{
    static const char *const methods[] = {"get", "put", "post", "delete", "patch", "head", NULL};
    char *paths = strstr(text, "\npaths:\n");
    assert_non_null(paths);
    char path[ROUTE_TEXT_MAX] = "";
    for (char *line = strtok(paths + 1, "\n"); line; line = strtok(NULL, "\n")) {
        if (line != paths + 1 && line[0] != ' ' && line[0] != '#')
            break; /* the next top-level key: components */
        char name[ROUTE_TEXT_MAX];
        size_t len = strlen(line);
        if (strncmp(line, "  /", 3) == 0 && len > 3 && len < sizeof(path) && line[len - 1] == ':')
            snprintf(path, sizeof(path), "%.*s", (int)(len - 3),
                     line + 2); /* keeps "events:batch" */
        else if (sscanf(line, "    %15[a-z]:", name) == 1 && line[4] != ' ' && path[0]) {
            for (size_t i = 0; methods[i]; i++)
                if (strcmp(name, methods[i]) == 0) {
                    upper(name);
                    routes_add(out, name, path);
                }
        }
    }
}

/* Names every route one side has and the other lacks; returns how many. */
static size_t routes_differences(const struct routes *registered, const struct routes *documented)
{
    size_t differences = 0;
    for (size_t i = 0; i < registered->count; i++)
        if (!routes_has(documented, registered->items[i])) {
            fprintf(stderr, "# registered, not in %s: %s\n", ROUTES_DOCUMENT, registered->items[i]);
            differences++;
        }
    for (size_t i = 0; i < documented->count; i++)
        if (!routes_has(registered, documented->items[i])) {
            fprintf(stderr, "# documented, not registered: %s\n", documented->items[i]);
            differences++;
        }
    return differences;
}

static void load(struct routes *registered, struct routes *documented, char **doc_text)
{
    char *main_text = read_text(ROUTES_MAIN);
    routes_of_main(main_text, registered);
    free(main_text);
    *doc_text = read_text(ROUTES_DOCUMENT);
    char *copy = strdup(*doc_text);
    assert_non_null(copy);
    routes_of_document(copy, documented);
    free(copy);
}

static void test_document_matches_the_route_table(void **state)
{
    (void)state;
    static struct routes registered, documented;
    char *doc = NULL;
    load(&registered, &documented, &doc);
    free(doc);
    assert_true(registered.count >= 30); /* the table was found and read */
    assert_int_equal(routes_differences(&registered, &documented), 0);
    assert_int_equal(registered.count, documented.count);
}

/* The check itself: a path cut out of the document and a route added to the
 * table are both reported. */
static void test_self_check_notices_a_missing_path(void **state)
{
    (void)state;
    static struct routes registered, documented, cut;
    char *doc = NULL;
    load(&registered, &documented, &doc);
    /* Rename the documented path of GET /v1/me: as good as removing it. */
    char *me = strstr(doc, "\n  /v1/me:\n");
    assert_non_null(me);
    memcpy(me + 3, "xx", 2);
    routes_of_document(doc, &cut);
    free(doc);
    assert_true(routes_differences(&registered, &cut) >= 1);
    assert_false(routes_has(&cut, "GET /v1/me"));

    routes_add(&registered, "POST", "/v1/not-documented");
    assert_int_equal(routes_differences(&registered, &documented), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document_matches_the_route_table),
        cmocka_unit_test(test_self_check_notices_a_missing_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
