/* The member view's answer written around the cached profile's text
 * (member_view_text.h). */
#include "member_view_text.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "util/json_text.h"

#define MARKER         ",\"tier\":null,\"cards\":[],\"personal_data_erased_at\":"
#define PLACEHOLDERS   ",\"tier\":null,\"cards\":[]"
#define TAGS           ",\"tags\":["
#define PART_KEY_MAX   32      /* the view's own key names: balances, coupons, ... */
#define PARTS_TEXT_MAX 1048576 /* the view's parts (cards, coupons) are bounded far below */

/* The last occurrence of needle in text[from, len), or len. */
static size_t last_of(const char *text, size_t from, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = len >= n ? len - n + 1 : 0; i-- > from;)
        if (memcmp(text + i, needle, n) == 0)
            return i;
    return len;
}

bool profile_text_marks_find(const char *text, size_t len, struct profile_text_marks *m)
{
    if (len < 2 || text[0] != '{' || memcmp(text + len - 2, "]}", 2) != 0)
        return false;
    size_t at = last_of(text, 1, len, MARKER);
    if (at == len)
        return false;
    size_t tags = last_of(text, at, len, TAGS);
    if (tags == len)
        return false;
    *m = (struct profile_text_marks){
        .placeholders_at = at, .erased_at = at + strlen(PLACEHOLDERS), .tags_at = tags, .len = len};
    return true;
}

/* ---- the parts' text (no personal data: balances, tier, cards, coupons)
 * In a buffer on the stack while it fits (a member with a few cards and
 * coupons): a malloc of a kilobyte or more on every read makes glibc
 * consolidate its free lists. */
#define TEXT_INLINE_BYTES 2048

struct text {
    char *buf; /* inline, or malloc'ed once it outgrew it */
    size_t len, cap;
    char inline_buf[TEXT_INLINE_BYTES];
};

static void text_init(struct text *t)
{
    t->buf = t->inline_buf;
    t->len = 0;
    t->cap = sizeof(t->inline_buf);
    t->buf[0] = '\0';
}

static void text_release(struct text *t)
{
    if (t->buf != t->inline_buf)
        free(t->buf);
}

static int text_add(const char *s, size_t n, void *arg)
{
    struct text *t = arg;
    if (t->len + n + 1 > t->cap) {
        size_t cap = 2 * t->cap;
        while (cap < t->len + n + 1)
            cap *= 2;
        if (cap > PARTS_TEXT_MAX)
            return -1;
        char *grown = malloc(cap);
        if (grown == NULL)
            return -1;
        memcpy(grown, t->buf, t->len);
        text_release(t);
        t->buf = grown;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
    return 0;
}

static bool key_is_plain(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > PART_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((key[i] >= 'a' && key[i] <= 'z') || key[i] == '_'))
            return false;
    return true;
}

/* Appends ,"key":<value>. */
static bool text_add_member(struct text *t, const char *key, const json_t *value)
{
    assert(key_is_plain(key)); /* the view's own names: nothing to escape */
    return text_add(",\"", 2, t) == 0 && text_add(key, strlen(key), t) == 0 &&
           text_add("\":", 2, t) == 0 && json_text_write(value, text_add, t) == 0;
}

/* The tier and cards members (`,"tier":…,"cards":…`) into head, every
 * other member of parts into tail. */
static bool parts_text(const json_t *parts, struct text *head, struct text *tail)
{
    const json_t *tier = json_object_get(parts, "tier"), *cards = json_object_get(parts, "cards");
    if (tier == NULL || cards == NULL || !text_add_member(head, "tier", tier) ||
        !text_add_member(head, "cards", cards))
        return false;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)parts, key, value)
    {
        if (strcmp(key, "tier") != 0 && strcmp(key, "cards") != 0 &&
            !text_add_member(tail, key, value))
            return false;
    }
    return true;
}

char *member_view_text_render(const char *profile, const struct profile_text_marks *m,
                              bool with_tags, const json_t *parts, size_t *out_len)
{
    assert(m->placeholders_at < m->erased_at && m->erased_at <= m->tags_at && m->tags_at < m->len);
    struct text head, tail;
    text_init(&head);
    text_init(&tail);
    char *out = NULL;
    if (!parts_text(parts, &head, &tail))
        goto done;
    /* profile up to the placeholders, tier and cards, the rest of the
     * profile (without the tags unless with_tags, and its '}'), the other
     * parts, '}' */
    size_t rest_end = with_tags ? m->len - 1 : m->tags_at;
    size_t rest = rest_end - m->erased_at;
    size_t len = m->placeholders_at + head.len + rest + tail.len + 1;
    out = malloc(len + 1);
    if (out == NULL)
        goto done;
    char *p = out;
    memcpy(p, profile, m->placeholders_at);
    p += m->placeholders_at;
    memcpy(p, head.buf, head.len);
    p += head.len;
    memcpy(p, profile + m->erased_at, rest);
    p += rest;
    if (tail.len > 0)
        memcpy(p, tail.buf, tail.len);
    p += tail.len;
    *p++ = '}';
    *p = '\0';
    *out_len = len;
done:
    text_release(&head);
    text_release(&tail);
    return out;
}
