/* Configuration from environment variables through one declarative table
 * per service. Every entry has a name, a type, a default (NULL = required),
 * bounds for integers and a help line; `--help` prints the table and bad
 * values stop the service at start with a clear message. */
#ifndef TESSERA_CONFIG_H
#define TESSERA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum config_type { CONFIG_STRING, CONFIG_INT, CONFIG_BOOL };

struct config_entry {
    const char *name; /* environment variable, e.g. TESSERA_PG_DSN */
    enum config_type type;
    void *dest;                /* const char ** | long long * | bool * */
    const char *default_value; /* NULL: the variable is required */
    long long min, max;        /* inclusive bounds, CONFIG_INT only */
    bool secret;               /* redacted when the configuration is logged */
    const char *help;
};

/* Reads every entry from the environment (or its default) into dest.
 * Strings point into the environment or the table's default: they live as
 * long as the process. Returns 0, or -1 with a message naming the variable
 * in err (unknown bool word, non-number, out of bounds, missing). */
int config_load(const struct config_entry *entries, size_t count, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* Prints "usage" text: the summary, then one line per entry with type,
 * default and bounds. */
void config_print_help(FILE *out, const char *program, const char *summary,
                       const struct config_entry *entries, size_t count);

/* Logs the effective configuration once, secrets shown as "***". */
void config_log_effective(const struct config_entry *entries, size_t count);

/* True when argv holds --help or -h. */
bool config_wants_help(int argc, char **argv);

#endif
