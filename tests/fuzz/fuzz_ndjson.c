/* libFuzzer target: the NDJSON batch parser of POST /v1/events:batch
 * (line splitting, per-line JSON, field checks, repeated keys). batch.c's
 * parser is static, so this target includes the file; the batch comes
 * from a pos key of branch "hq" so the branch rule runs too. A fixed
 * first line keeps the batch non-empty (an empty batch answers on the
 * exchange, which a fuzzer does not have). */
#include "../../services/ingest/batch.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8 * 1024)
        return 0; /* below the 10 000-line limit, which answers on the exchange */
    struct batch *b = calloc(1, sizeof(*b));
    b->r = calloc(1, sizeof(*b->r));
    strcpy(b->r->caller.tenant_id, "t");
    strcpy(b->r->caller.scope, "pos");
    strcpy(b->r->caller.branch_id, "hq");
    char *body = malloc(size + 2);
    memcpy(body, "x\n", 2);
    memcpy(body + 2, data, size);
    if (batch_parse(b, body, size + 2))
        for (size_t i = 0; i < b->count; i++) {
            const struct batch_line *l = &b->lines[i];
            json_decref(line_json(l, l->copy_of >= 0 ? &b->lines[l->copy_of] : l));
        }
    free(body);
    free(batch_release(b)); /* the hand-made request: never answered */
    return 0;
}
