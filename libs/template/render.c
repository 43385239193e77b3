/* Parsing, validation and rendering of {{variable}} templates. One
 * scanner (walk) serves both validation and rendering, so what is saved
 * is exactly what renders. */
#include "template/template.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "money/money.h"
#include "tz/tz.h"

#define DEFAULT_CURRENCY  "CNY"
#define DEFAULT_TIME_ZONE "Asia/Shanghai"
#define VALUE_TEXT_MAX    4096 /* one formatted value, before escaping */

struct walk_ops {
    bool (*literal)(void *ctx, const char *text, size_t len);
    bool (*variable)(void *ctx, const char *name);
};

static void set_err(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    if (!err || err_len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.';
}

/* Reads the placeholder whose "{{" is at text[at]; on success name holds
 * its trimmed name and *end the index past "}}". */
static bool placeholder(const char *text, size_t at, char *name, size_t *end, char *err,
                        size_t err_len)
{
    const char *close = strstr(text + at + 2, "}}");
    if (!close) {
        set_err(err, err_len, "unclosed placeholder at byte %zu", at);
        return false;
    }
    const char *b = text + at + 2, *e = close;
    while (b < e && *b == ' ')
        b++;
    while (e > b && e[-1] == ' ')
        e--;
    size_t len = (size_t)(e - b);
    if (len == 0 || len > TEMPLATE_VAR_NAME_MAX) {
        set_err(err, err_len, "bad placeholder at byte %zu", at);
        return false;
    }
    for (size_t i = 0; i < len; i++)
        if (!name_char(b[i])) {
            set_err(err, err_len, "bad placeholder at byte %zu", at);
            return false;
        }
    memcpy(name, b, len);
    name[len] = '\0';
    *end = (size_t)(close - text) + 2;
    return true;
}

static bool walk(const char *text, const struct walk_ops *ops, void *ctx, char *err, size_t err_len)
{
    size_t i = 0, start = 0;
    while (text[i]) {
        if (text[i] != '{' || text[i + 1] != '{') {
            i++;
            continue;
        }
        if (i > start && !ops->literal(ctx, text + start, i - start))
            goto too_long;
        if (strncmp(text + i, "{{{{", 4) == 0) { /* an escaped "{{" */
            if (!ops->literal(ctx, "{{", 2))
                goto too_long;
            i += 4;
            start = i;
            continue;
        }
        char name[TEMPLATE_VAR_NAME_MAX + 1];
        size_t end;
        if (!placeholder(text, i, name, &end, err, err_len))
            return false;
        if (!ops->variable(ctx, name))
            return false; /* the callback set err */
        i = start = end;
    }
    if (i > start && !ops->literal(ctx, text + start, i - start))
        goto too_long;
    return true;
too_long:
    set_err(err, err_len, "rendered text longer than %d bytes", TEMPLATE_OUTPUT_MAX);
    return false;
}

/* --- validation ----------------------------------------------------------- */

struct validate_ctx {
    const struct template_kind *kind;
    char *bad_var, *err;
    size_t bad_var_len, err_len;
};

static bool validate_literal(void *ctx, const char *text, size_t len)
{
    return true;
}

static bool validate_variable(void *ctx, const char *name)
{
    struct validate_ctx *v = ctx;
    if (template_var_find(v->kind, name))
        return true;
    set_err(v->err, v->err_len, "unknown variable \"%s\"", name);
    if (v->bad_var)
        snprintf(v->bad_var, v->bad_var_len, "%s", name);
    return false;
}

bool template_validate(const struct template_kind *kind, const char *text, char *bad_var,
                       size_t bad_var_len, char *err, size_t err_len)
{
    assert(kind && text);
    if (bad_var && bad_var_len)
        bad_var[0] = '\0';
    static const struct walk_ops ops = {validate_literal, validate_variable};
    struct validate_ctx v = {kind, bad_var, err, bad_var_len, err_len};
    return walk(text, &ops, &v, err, err_len);
}

/* --- formatting values ---------------------------------------------------- */

/* Symbols of the currencies our tenants use; others print their code. */
static const char *currency_symbol(const char *code)
{
    static const struct {
        const char *code, *symbol;
    } symbols[] = {{"CNY", "¥"}, {"JPY", "¥"}, {"USD", "$"},  {"HKD", "HK$"},
                   {"EUR", "€"}, {"GBP", "£"}, {"TWD", "NT$"}};
    for (size_t i = 0; i < sizeof(symbols) / sizeof(symbols[0]); i++)
        if (strcmp(symbols[i].code, code) == 0)
            return symbols[i].symbol;
    return NULL;
}

static int format_money(int64_t minor, const char *currency, char *buf, size_t buf_len)
{
    char amount[32];
    if (money_format(minor, amount, sizeof(amount)) < 0)
        return -1;
    const char *symbol = currency_symbol(currency);
    bool negative = amount[0] == '-';
    int n = symbol
                ? snprintf(buf, buf_len, "%s%s%s", negative ? "-" : "", symbol, amount + negative)
                : snprintf(buf, buf_len, "%s %s", amount, currency);
    return n < 0 || (size_t)n >= buf_len ? -1 : n;
}

static int format_time(int64_t us, const char *zone, char *buf, size_t buf_len)
{
    struct tz_local t;
    if (!tz_local_time(zone, us, &t))
        return -1;
    int n = snprintf(buf, buf_len, "%04d-%02d-%02d %02d:%02d", t.year, t.month, t.day, t.hour,
                     t.minute);
    return n < 0 || (size_t)n >= buf_len ? -1 : n;
}

int template_format_value(const struct template_value *v, const struct template_render_opts *opts,
                          char *buf, size_t buf_len)
{
    const char *currency =
        opts && opts->currency && *opts->currency ? opts->currency : DEFAULT_CURRENCY;
    const char *zone =
        opts && opts->time_zone && *opts->time_zone ? opts->time_zone : DEFAULT_TIME_ZONE;
    int n = -1;
    switch (v->type) {
    case TEMPLATE_TEXT:
        n = snprintf(buf, buf_len, "%s", v->text ? v->text : "");
        break;
    case TEMPLATE_MONEY:
        return format_money(v->number, currency, buf, buf_len);
    case TEMPLATE_NUMBER:
        n = snprintf(buf, buf_len, "%" PRId64, v->number);
        break;
    case TEMPLATE_TIME:
        return format_time(v->number, zone, buf, buf_len);
    }
    return n < 0 || (size_t)n >= buf_len ? -1 : n;
}

/* --- rendering ------------------------------------------------------------ */

struct render_ctx {
    char *out;
    size_t len;
    const struct template_value *values;
    size_t value_count;
    const struct template_render_opts *opts;
    char *err;
    size_t err_len;
};

static bool append(struct render_ctx *r, const char *text, size_t len)
{
    if (r->len + len >= TEMPLATE_OUTPUT_MAX)
        return false;
    memcpy(r->out + r->len, text, len);
    r->len += len;
    r->out[r->len] = '\0';
    return true;
}

/* In an HTML part the template's own text is escaped too and its line
 * breaks become <br>: a tenant's template is text, never markup, so
 * nothing a tenant or a member writes can inject markup into mail. */
static bool append_html(struct render_ctx *r, const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        const char *rep = NULL;
        switch (text[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        case '\n':
            rep = "<br>\n";
            break;
        }
        if (!(rep ? append(r, rep, strlen(rep)) : append(r, text + i, 1)))
            return false;
    }
    return true;
}

static bool render_literal(void *ctx, const char *text, size_t len)
{
    struct render_ctx *r = ctx;
    return r->opts && r->opts->html ? append_html(r, text, len) : append(r, text, len);
}

static bool render_variable(void *ctx, const char *name)
{
    struct render_ctx *r = ctx;
    const struct template_value *v = NULL;
    for (size_t i = 0; i < r->value_count && !v; i++)
        if (r->values[i].name && strcmp(r->values[i].name, name) == 0)
            v = &r->values[i];
    if (!v)
        return true; /* optional variable not sent: renders empty */
    char text[VALUE_TEXT_MAX];
    if (template_format_value(v, r->opts, text, sizeof(text)) < 0) {
        set_err(r->err, r->err_len, "variable \"%s\" cannot be formatted", name);
        return false;
    }
    if (!render_literal(r, text, strlen(text))) {
        set_err(r->err, r->err_len, "rendered text longer than %d bytes", TEMPLATE_OUTPUT_MAX);
        return false;
    }
    return true;
}

char *template_render(const char *text, const struct template_value *values, size_t value_count,
                      const struct template_render_opts *opts, char *err, size_t err_len)
{
    assert(text);
    struct render_ctx r = {
        .values = values, .value_count = value_count, .opts = opts, .err = err, .err_len = err_len};
    r.out = malloc(TEMPLATE_OUTPUT_MAX);
    if (!r.out) {
        set_err(err, err_len, "out of memory");
        return NULL;
    }
    r.out[0] = '\0';
    static const struct walk_ops ops = {render_literal, render_variable};
    if (!walk(text, &ops, &r, err, err_len)) {
        free(r.out);
        return NULL;
    }
    char *shrunk = realloc(r.out, r.len + 1);
    return shrunk ? shrunk : r.out;
}

bool template_html_escape(const char *text, char *out, size_t out_len)
{
    size_t n = 0;
    for (const char *c = text; *c; c++) {
        const char *rep = NULL;
        switch (*c) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        }
        size_t len = rep ? strlen(rep) : 1;
        if (n + len >= out_len)
            return false;
        if (rep)
            memcpy(out + n, rep, len);
        else
            out[n] = *c;
        n += len;
    }
    if (out_len == 0)
        return false;
    out[n] = '\0';
    return true;
}
