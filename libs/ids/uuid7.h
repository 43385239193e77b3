/* UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits, so ids
 * sort by creation time. Monotonic within a process: ids made in the same
 * millisecond still sort in creation order. */
#ifndef TESSERA_UUID7_H
#define TESSERA_UUID7_H

#include <stdbool.h>
#include <stdint.h>

#define UUID_STR_SIZE 37 /* 36 characters and the NUL */

/* Writes a new lowercase canonical UUIDv7 string. Thread-safe. */
void uuid7_generate(char out[UUID_STR_SIZE]);

/* Writes the UUIDv8 derived from name (SHA-256, RFC 9562 appendix B.2):
 * an id a command can be given from its cause, the same every time. */
void uuid8_from_name(const char *name, char out[UUID_STR_SIZE]);

/* True when text is a canonical 8-4-4-4-12 hex UUID (any version). */
bool uuid_is_valid(const char *text);

/* Parses a canonical UUID into 16 bytes; false when malformed. */
bool uuid_parse(const char *text, uint8_t out[16]) __attribute__((warn_unused_result));

/* Milliseconds since the epoch stored in a UUIDv7; 0 when not a v7. */
uint64_t uuid7_unix_ms(const char *text);

#endif
