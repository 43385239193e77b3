/* Services read only what other services publish (docs/read-contracts.md):
 * a service's SQL — the string literals of services/<svc>/ *.c and *.h and
 * its migrations — names another service's schema only through a view
 * that service publishes: a view named read_* created by the owner's own
 * migrations (libs/, which runs inside every service, is held to the same
 * rule). The schemas are the directories of services/ that hold
 * migrations (each service's schema is named after it). Reading the
 * source rather than the database catches a direct read before it runs;
 * the self-tests prove the scanner sees one (split across adjacent
 * literals, in capitals) and ignores comments and protobuf type names.
 * Quoted identifiers ("ledger"."cards") are not looked for: the tree
 * uses none. Run from the repository root (make test does). */
#include <ctype.h>
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#define SERVICES_DIR   "services"
#define LIBS_DIR       "libs"
#define CONTRACTS_DOC  "docs/read-contracts.md"
#define PUBLISHED      "read_" /* the prefix of a published view's name */
#define SCHEMAS_MAX    16
#define VIEWS_MAX      64
#define NAME_LEN_MAX   64  /* PostgreSQL's NAMEDATALEN */
#define WORD_LEN_MAX   130 /* schema.name */
#define FILE_BYTES_MAX (1 << 20)
#define PATH_LEN_MAX   512

struct schema {
    char name[NAME_LEN_MAX];
    char views[VIEWS_MAX][NAME_LEN_MAX]; /* its published views */
    size_t n_views;
};

struct contracts {
    struct schema schemas[SCHEMAS_MAX];
    size_t n;
};

/* What a scan found: references to published views, and to anything else. */
struct scan {
    size_t allowed;
    size_t violations;
};

/* The whole file, NUL-terminated; caller frees. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (run from the repository root)", path);
    char *text = malloc(FILE_BYTES_MAX + 1);
    assert_non_null(text);
    size_t len = fread(text, 1, FILE_BYTES_MAX, f);
    assert_true(feof(f)); /* not cut at FILE_BYTES_MAX */
    fclose(f);
    text[len] = '\0';
    return text;
}

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* Skips a C comment or character constant at src[i]; returns the index
 * after it, or i when there is none. */
static size_t c_skip(const char *src, size_t i, size_t len)
{
    if (src[i] == '/' && src[i + 1] == '*') {
        const char *end = strstr(src + i + 2, "*/");
        return end ? (size_t)(end - src) + 2 : len;
    }
    if (src[i] == '/' && src[i + 1] == '/') {
        const char *end = strchr(src + i, '\n');
        return end ? (size_t)(end - src) : len;
    }
    if (src[i] == '\'') {
        for (i++; i < len && src[i] != '\''; i++)
            if (src[i] == '\\')
                i++;
        return i < len ? i + 1 : len;
    }
    return i;
}

/* The text of src's string literals, adjacent ones joined as the compiler
 * joins them ("FROM ledger." "cards" reads "FROM ledger.cards"); anything
 * between two literals other than blanks (a macro's name, a comma) becomes
 * a newline. Comments, character constants and #include lines are left
 * out. Caller frees. */
static char *c_literals(const char *src)
{
    size_t len = strlen(src), n = 0;
    char *out = malloc(len + 1);
    assert_non_null(out);
    bool joined = true, line_start = true;
    for (size_t i = 0; i < len;) {
        size_t next = c_skip(src, i, len);
        if (next != i) {
            i = next;
            continue;
        }
        char c = src[i];
        if (c == '#' && line_start && strncmp(src + i + 1, "include", 7) == 0) {
            const char *end = strchr(src + i, '\n');
            i = end ? (size_t)(end - src) : len;
            continue;
        }
        if (c == '"') {
            if (!joined)
                out[n++] = '\n';
            for (i++; i < len && src[i] != '"'; i++) {
                if (src[i] == '\\' && i + 1 < len)
                    i++;
                out[n++] = src[i];
            }
            i++;
            joined = true;
            continue;
        }
        if (!isspace((unsigned char)c) && c != '\\')
            joined = false;
        line_start = c == '\n' || (line_start && (c == ' ' || c == '\t'));
        i++;
    }
    out[n] = '\0';
    return out;
}

/* Blanks out SQL comments (-- to the end of the line, and block comments). */
static void sql_strip_comments(char *sql)
{
    for (char *p = sql; *p; p++) {
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                *p++ = ' ';
        } else if (p[0] == '/' && p[1] == '*') {
            while (*p && !(p[0] == '*' && p[1] == '/'))
                *p++ = ' ';
            if (*p)
                p[0] = p[1] = ' ';
        }
        if (!*p)
            break;
    }
}

static const struct schema *schema_find(const struct contracts *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->schemas[i].name, name) == 0)
            return &c->schemas[i];
    return NULL;
}

static bool view_published(const struct schema *s, const char *view)
{
    for (size_t i = 0; i < s->n_views; i++)
        if (strcmp(s->views[i], view) == 0)
            return true;
    return false;
}

/* Copies the identifier at text (lowercased, as PostgreSQL folds unquoted
 * names) into word; returns its length in text. */
static size_t ident_read(const char *text, char *word, size_t word_len)
{
    size_t n = 0;
    while (ident_char(text[n])) {
        if (n + 1 < word_len)
            word[n] = (char)tolower((unsigned char)text[n]);
        n++;
    }
    word[n < word_len ? n : word_len - 1] = '\0';
    return n;
}

/* Counts, in SQL text of the service owning schema `own`, the names
 * <schema>.<name> of another service's schema, reporting every one that
 * is not a view that schema publishes (where: the file, for the report;
 * NULL: no report). */
static struct scan refs_scan(const char *text, const struct contracts *c, const char *own,
                             const char *where)
{
    struct scan found = {0};
    for (size_t i = 0; text[i];) {
        if (!ident_char(text[i]) || (i > 0 && (ident_char(text[i - 1]) || text[i - 1] == '.'))) {
            i++;
            continue;
        }
        char schema[NAME_LEN_MAX], name[NAME_LEN_MAX];
        i += ident_read(text + i, schema, sizeof(schema));
        const struct schema *s = schema_find(c, schema);
        if (text[i] != '.' || !ident_char(text[i + 1]) || !s || strcmp(schema, own) == 0)
            continue;
        i += 1 + ident_read(text + i + 1, name, sizeof(name));
        if (view_published(s, name)) {
            found.allowed++;
        } else {
            found.violations++;
            if (where)
                print_message("%s: names %s.%s, which is not a view %s publishes (%s)\n", where,
                              schema, name, schema, CONTRACTS_DOC);
        }
    }
    return found;
}

/* The words of SQL text (identifiers, dotted names), lowercased. */
struct words {
    char (*w)[WORD_LEN_MAX];
    size_t n;
};

static struct words words_split(const char *sql)
{
    size_t cap = strlen(sql) / 2 + 1;
    struct words t = {calloc(cap, WORD_LEN_MAX), 0};
    assert_non_null(t.w);
    for (const char *p = sql; *p;) {
        if (!ident_char(*p) && *p != '.') {
            p++;
            continue;
        }
        size_t n = 0;
        for (; ident_char(*p) || *p == '.'; p++)
            if (n + 1 < WORD_LEN_MAX)
                t.w[t.n][n++] = (char)tolower((unsigned char)*p);
        t.n++;
    }
    return t;
}

static bool word_is(const struct words *t, size_t i, const char *w)
{
    return i < t->n && strcmp(t->w[i], w) == 0;
}

/* The view's name at word i without the owner's own schema prefix, or
 * NULL when it names another schema (or there is no word). */
static const char *view_name(const struct words *t, size_t i, const char *own)
{
    if (i >= t->n)
        return NULL;
    const char *dot = strchr(t->w[i], '.');
    if (!dot)
        return t->w[i];
    size_t own_len = strlen(own);
    return (size_t)(dot - t->w[i]) == own_len && strncmp(t->w[i], own, own_len) == 0 ? dot + 1
                                                                                     : NULL;
}

static void view_add(struct schema *s, const char *view)
{
    if (!view || strncmp(view, PUBLISHED, strlen(PUBLISHED)) != 0 || view_published(s, view))
        return;
    assert_true(s->n_views < VIEWS_MAX);
    assert_true(strlen(view) < NAME_LEN_MAX);
    strcpy(s->views[s->n_views++], view);
}

static void view_remove(struct schema *s, const char *view)
{
    for (size_t i = 0; view && i < s->n_views; i++) {
        if (strcmp(s->views[i], view) == 0) {
            memmove(s->views[i], s->views[i + 1], (s->n_views - i - 1) * sizeof(s->views[0]));
            s->n_views--;
            return;
        }
    }
}

/* Skips the optional words of `opt` (in order) present from word i. */
static size_t words_skip(const struct words *t, size_t i, const char *const *opt)
{
    for (; *opt; opt++)
        if (word_is(t, i, *opt))
            i++;
    return i;
}

/* Applies one migration's view statements (comments stripped) to the
 * views s publishes: CREATE [OR REPLACE] [MATERIALIZED] VIEW [IF NOT
 * EXISTS], ALTER VIEW [IF EXISTS] ... RENAME TO, DROP VIEW [IF EXISTS]. */
static void published_apply(struct schema *s, const char *sql)
{
    static const char *const create_opt[] = {"or",        "replace",      "temp", "temporary",
                                             "recursive", "materialized", NULL};
    static const char *const if_not_exists[] = {"if", "not", "exists", NULL};
    static const char *const materialized[] = {"materialized", NULL};
    static const char *const if_exists[] = {"if", "exists", NULL};
    struct words t = words_split(sql);
    for (size_t i = 0; i < t.n; i++) {
        bool create = word_is(&t, i, "create"), alter = word_is(&t, i, "alter");
        if (!create && !alter && !word_is(&t, i, "drop"))
            continue;
        size_t j = words_skip(&t, i + 1, create ? create_opt : materialized);
        if (!word_is(&t, j, "view"))
            continue;
        j = words_skip(&t, j + 1, create ? if_not_exists : if_exists);
        const char *view = view_name(&t, j, s->name);
        if (create) {
            view_add(s, view);
        } else if (!alter) {
            view_remove(s, view);
        } else if (word_is(&t, j + 1, "rename") && word_is(&t, j + 2, "to")) {
            view_remove(s, view);
            view_add(s, view_name(&t, j + 3, s->name));
        }
    }
    free(t.w);
}

static int sql_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 4 && strcmp(e->d_name + n - 4, ".sql") == 0;
}

static int c_file(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > 2 && (strcmp(e->d_name + n - 2, ".c") == 0 || strcmp(e->d_name + n - 2, ".h") == 0);
}

static int any_entry(const struct dirent *e)
{
    return e->d_name[0] != '.';
}

/* The files of dir that filter accepts, in name order (the order
 * migrations run in); caller frees each and the list. */
static int dir_list(const char *dir, int (*filter)(const struct dirent *), struct dirent ***list)
{
    int n = scandir(dir, list, filter, alphasort);
    if (n < 0)
        fail_msg("cannot list %s", dir);
    return n;
}

static void dir_list_free(struct dirent **list, int n)
{
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

/* Every service with migrations, with the views its migrations publish. */
static void contracts_load(struct contracts *c)
{
    memset(c, 0, sizeof(*c));
    struct dirent **svcs;
    int n_svcs = dir_list(SERVICES_DIR, any_entry, &svcs);
    for (int i = 0; i < n_svcs; i++) {
        char dir[PATH_LEN_MAX];
        struct stat st;
        if (snprintf(dir, sizeof(dir), "%s/%s/migrations", SERVICES_DIR, svcs[i]->d_name) >=
                (int)sizeof(dir) ||
            stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        assert_true(c->n < SCHEMAS_MAX);
        struct schema *s = &c->schemas[c->n++];
        assert_true(snprintf(s->name, sizeof(s->name), "%s", svcs[i]->d_name) <
                    (int)sizeof(s->name));
        struct dirent **sql;
        int n_sql = dir_list(dir, sql_file, &sql);
        for (int k = 0; k < n_sql; k++) {
            char path[PATH_LEN_MAX];
            assert_true(snprintf(path, sizeof(path), "%s/%s", dir, sql[k]->d_name) <
                        (int)sizeof(path));
            char *text = slurp(path);
            sql_strip_comments(text);
            published_apply(s, text);
            free(text);
        }
        dir_list_free(sql, n_sql);
    }
    dir_list_free(svcs, n_svcs);
}

/* Scans one service's files in dir (C sources when c, migrations when
 * not), adding what it finds to *total. */
static void service_scan(const struct contracts *c, const char *svc, const char *dir, bool c_src,
                         struct scan *total)
{
    struct dirent **files;
    int n = dir_list(dir, c_src ? c_file : sql_file, &files);
    for (int i = 0; i < n; i++) {
        char path[PATH_LEN_MAX];
        assert_true(snprintf(path, sizeof(path), "%s/%s", dir, files[i]->d_name) <
                    (int)sizeof(path));
        char *text = slurp(path);
        char *sql = c_src ? c_literals(text) : text;
        if (!c_src)
            sql_strip_comments(sql);
        struct scan found = refs_scan(sql, c, svc, path);
        total->allowed += found.allowed;
        total->violations += found.violations;
        if (sql != text)
            free(sql);
        free(text);
    }
    dir_list_free(files, n);
}

/* The scan of a C source given as text, for the self-tests. */
static struct scan scan_c(const struct contracts *c, const char *own, const char *src)
{
    char *sql = c_literals(src);
    struct scan found = refs_scan(sql, c, own, NULL);
    free(sql);
    return found;
}

/* Two schemas, ledger publishing read_balances, as the self-tests see them. */
static void contracts_fixture(struct contracts *c)
{
    memset(c, 0, sizeof(*c));
    c->n = 2;
    strcpy(c->schemas[0].name, "ingest");
    strcpy(c->schemas[1].name, "ledger");
    view_add(&c->schemas[1], "read_balances");
}

static void test_scanner_sees_a_direct_read(void **state)
{
    struct contracts c;
    contracts_fixture(&c);
    static const char *const direct[] = {
        "q(\"SELECT points FROM ledger.balances WHERE tenant_id = $1\");",
        "q(\"SELECT points FROM ledger.\"\n    \"balances\");",
        "#define Q \"FROM ledger.\" \\\n  \"balances\"",
        "q(\"SELECT points FROM LEDGER.Balances\");",
        "q(\"SELECT 1 FROM ledger.read_balances b JOIN ledger.journal j USING (member_id)\");",
    };
    for (size_t i = 0; i < sizeof(direct) / sizeof(direct[0]); i++)
        assert_int_equal(scan_c(&c, "ingest", direct[i]).violations, 1);
    static const char *const fine[] = {
        "q(\"SELECT points FROM ledger.read_balances WHERE tenant_id = $1\");",
        "/* ingest reads ledger.balances through its view */ q(\"SELECT 1\");",
        "// ledger.balances\nq(\"SELECT 1\");",
        "#include \"ledger.h\"\nq(\"tessera.ledger.v1.Ledger\");",
        "q(\"FROM ledger.\" X \"balances\"); char c = '\"';",
    };
    for (size_t i = 0; i < sizeof(fine) / sizeof(fine[0]); i++)
        assert_int_equal(scan_c(&c, "ingest", fine[i]).violations, 0);
    /* a service reads its own tables freely */
    assert_int_equal(scan_c(&c, "ledger", direct[0]).violations, 0);
    assert_int_equal(scan_c(&c, "ingest", fine[0]).allowed, 1);
}

static void test_published_views_follow_the_migrations(void **state)
{
    struct schema s = {.name = "ledger"};
    char sql[] = "CREATE VIEW read_a AS SELECT 1;\n"
                 "CREATE OR REPLACE VIEW ledger.read_b AS SELECT 1;\n"
                 "CREATE VIEW internal_totals AS SELECT 1;\n"
                 "CREATE TABLE read_table (x int);\n"
                 "CREATE VIEW campaign.read_elsewhere AS SELECT 1;\n"
                 "-- CREATE VIEW read_commented AS SELECT 1;\n"
                 "/* CREATE VIEW read_blocked AS SELECT 1; */\n"
                 "ALTER VIEW read_a RENAME TO read_c;\n"
                 "ALTER VIEW read_c RENAME COLUMN x TO y;\n"
                 "DROP VIEW IF EXISTS ledger.read_b;\n"
                 "CREATE MATERIALIZED VIEW IF NOT EXISTS read_m AS SELECT 1;\n";
    sql_strip_comments(sql);
    published_apply(&s, sql);
    assert_int_equal(s.n_views, 2);
    assert_string_equal(s.views[0], "read_c");
    assert_string_equal(s.views[1], "read_m");
}

static void test_services_read_only_published_views(void **state)
{
    struct contracts c;
    contracts_load(&c);
    assert_true(c.n >= 2); /* found the services, or the test proves nothing */
    struct scan total = {0};
    for (size_t i = 0; i < c.n; i++) {
        char dir[PATH_LEN_MAX];
        snprintf(dir, sizeof(dir), "%s/%s", SERVICES_DIR, c.schemas[i].name);
        service_scan(&c, c.schemas[i].name, dir, true, &total);
        snprintf(dir, sizeof(dir), "%s/%s/migrations", SERVICES_DIR, c.schemas[i].name);
        service_scan(&c, c.schemas[i].name, dir, false, &total);
    }
    assert_int_equal(total.violations, 0);
    assert_true(total.allowed > 0); /* the scan saw the reads through views */
}

/* The libraries run inside every service and own no schema: they too name
 * a service's schema only through its published views. */
static void test_libraries_read_only_published_views(void **state)
{
    struct contracts c;
    contracts_load(&c);
    struct dirent **libs;
    int n = dir_list(LIBS_DIR, any_entry, &libs);
    assert_true(n > 0);
    struct scan total = {0};
    for (int i = 0; i < n; i++) {
        char dir[PATH_LEN_MAX];
        assert_true(snprintf(dir, sizeof(dir), "%s/%s", LIBS_DIR, libs[i]->d_name) <
                    (int)sizeof(dir));
        service_scan(&c, "", dir, true, &total);
    }
    dir_list_free(libs, n);
    assert_int_equal(total.violations, 0);
}

/* Every published view is in docs/read-contracts.md as <schema>.<view>. */
static void test_published_views_are_documented(void **state)
{
    struct contracts c;
    contracts_load(&c);
    char *doc = slurp(CONTRACTS_DOC);
    size_t missing = 0, views = 0;
    for (size_t i = 0; i < c.n; i++) {
        for (size_t k = 0; k < c.schemas[i].n_views; k++, views++) {
            char name[WORD_LEN_MAX];
            snprintf(name, sizeof(name), "%s.%s", c.schemas[i].name, c.schemas[i].views[k]);
            const char *at = doc;
            while ((at = strstr(at, name)) && ident_char(at[strlen(name)]))
                at++;
            if (!at) {
                missing++;
                print_message("%s is published but not in %s\n", name, CONTRACTS_DOC);
            }
        }
    }
    free(doc);
    assert_int_equal(missing, 0);
    assert_true(views > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scanner_sees_a_direct_read),
        cmocka_unit_test(test_published_views_follow_the_migrations),
        cmocka_unit_test(test_services_read_only_published_views),
        cmocka_unit_test(test_libraries_read_only_published_views),
        cmocka_unit_test(test_published_views_are_documented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
