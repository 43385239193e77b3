/* The template language of notifications: text with {{variable}}
 * placeholders ("{{ member.name }}" too), a catalogue of the variables each
 * template name may use with their types, validation at save time and
 * rendering of a request's typed variables. Pure: no I/O but the zone
 * files read through libs/tz.
 *
 * Language: "{{" name "}}" where name is [a-z0-9_.]+ with optional spaces
 * around it; "{{{{" is a literal "{{". Nothing else is special. */
#ifndef TESSERA_TEMPLATE_H
#define TESSERA_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TEMPLATE_NAME_MAX     64    /* "receipt.top_up" */
#define TEMPLATE_VAR_NAME_MAX 64    /* "balance.stored_value" */
#define TEMPLATE_SUBJECT_MAX  200   /* bytes of a subject / title template */
#define TEMPLATE_BODY_MAX     8192  /* bytes of a body template */
#define TEMPLATE_OUTPUT_MAX   65536 /* bytes of a rendered text */
#define TEMPLATE_ERR_MAX      160

enum template_var_type {
    TEMPLATE_TEXT,   /* as given (HTML-escaped in an HTML part) */
    TEMPLATE_MONEY,  /* minor units: "¥128.00" (CNY), "128.00 EUR" */
    TEMPLATE_NUMBER, /* an integer: points, counts, days */
    TEMPLATE_TIME,   /* microseconds since the epoch, shown in the tenant's zone */
};

/* The variables of one template name. Every name also has the common
 * variables (member.name, tenant.name). */
struct template_var_def {
    const char *name;
    enum template_var_type type;
};

/* Channel bits, for a template's default channels. */
enum {
    TEMPLATE_CH_INBOX = 1,
    TEMPLATE_CH_EMAIL = 2,
    TEMPLATE_CH_SMS = 4,
    TEMPLATE_CH_PUSH = 8,
};

struct template_kind {
    const char *name;          /* "receipt.top_up" */
    unsigned default_channels; /* TEMPLATE_CH_* used when a request names none */
    const struct template_var_def *vars;
    size_t var_count;
};

/* The catalogue: every template name in use, with its variables. */
extern const struct template_kind template_kinds[];
extern const size_t template_kind_count;

/* The kind named name, or NULL. */
const struct template_kind *template_kind_find(const char *name);

/* The definition of variable var in template kind (common ones included),
 * or NULL when the template may not use it. */
const struct template_var_def *template_var_find(const struct template_kind *kind, const char *var);

/* Checks text against the catalogue of kind: every placeholder well formed
 * and a variable of kind. False with err naming the problem ("unknown
 * variable \"member.nmae\"", "unclosed placeholder at byte 12"); when
 * bad_var is non-NULL it receives the unknown variable's name (or ""). */
bool template_validate(const struct template_kind *kind, const char *text, char *bad_var,
                       size_t bad_var_len, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* One value given for rendering (borrowed strings). */
struct template_value {
    const char *name;
    enum template_var_type type;
    const char *text; /* TEMPLATE_TEXT */
    int64_t number;   /* money minor units, number, or time in µs */
};

/* How values are shown. */
struct template_render_opts {
    const char *currency;  /* ISO 4217, "CNY" when NULL/"" */
    const char *time_zone; /* IANA zone, "Asia/Shanghai" when NULL/"" */
    bool html;             /* an email HTML part: text and values escaped, line breaks <br> */
};

/* Formats one value as a template shows it into buf. -1 when buf is too
 * small or the time zone is unknown. */
int template_format_value(const struct template_value *v, const struct template_render_opts *opts,
                          char *buf, size_t buf_len) __attribute__((warn_unused_result));

/* Renders text with values. A placeholder without a value renders as ""
 * (the template was validated at save time; a producer may omit an
 * optional variable). Returns a new string the caller frees, or NULL with
 * err set (malformed text, output past TEMPLATE_OUTPUT_MAX). */
char *template_render(const char *text, const struct template_value *values, size_t value_count,
                      const struct template_render_opts *opts, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Appends text to out HTML-escaped; used for literal template text of an
 * HTML part as well. Returns false when out_len is exceeded. */
bool template_html_escape(const char *text, char *out, size_t out_len)
    __attribute__((warn_unused_result));

/* The built-in template of name for locale ("zh-CN" or "en"; any other
 * locale gets "en"): subject (title) and body, the same for every
 * channel. False when name is not in the catalogue. */
bool template_default(const char *name, const char *locale, const char **subject, const char **body)
    __attribute__((warn_unused_result));

#endif
