// text_table.c — interning of byte strings into dense ids (open addressing, linear probe).
#include "mnrl/text_table.h"

#include <stdlib.h>
#include <string.h>

#include "mnrl/common.h"

void text_table_init(TextTable *t) {
    memset(t, 0, sizeof *t);
    t->cap = 1024;
    t->offset = mnrl_malloc((t->cap + 1) * sizeof *t->offset);
    t->hash = mnrl_malloc(t->cap * sizeof *t->hash);
    t->offset[0] = 0;
    t->n_slots = 2048;
    t->slot = mnrl_calloc(t->n_slots, sizeof *t->slot);
    t->bytes_cap = 1 << 16;
    t->bytes = mnrl_malloc(t->bytes_cap);
}

void text_table_free(TextTable *t) {
    free(t->bytes);
    free(t->offset);
    free(t->hash);
    free(t->slot);
    memset(t, 0, sizeof *t);
}

// Doubles the slot array and re-inserts every id from its stored hash.
static void grow_slots(TextTable *t) {
    free(t->slot);
    t->n_slots *= 2;
    t->slot = mnrl_calloc(t->n_slots, sizeof *t->slot);
    size_t mask = t->n_slots - 1;
    for (uint32_t id = 0; id < t->n; id++) {
        size_t i = (size_t)t->hash[id] & mask;
        while (t->slot[i]) i = (i + 1) & mask;
        t->slot[i] = id + 1;
    }
}

static uint32_t append_text(TextTable *t, const char *text, size_t len, uint64_t h) {
    if (t->n == t->cap) {
        t->cap *= 2;
        t->offset = mnrl_realloc(t->offset, ((size_t)t->cap + 1) * sizeof *t->offset);
        t->hash = mnrl_realloc(t->hash, (size_t)t->cap * sizeof *t->hash);
    }
    while (t->bytes_cap - t->bytes_len < len + 1) {
        t->bytes_cap *= 2;
        t->bytes = mnrl_realloc(t->bytes, t->bytes_cap);
    }
    memcpy(t->bytes + t->bytes_len, text, len);
    t->bytes[t->bytes_len + len] = '\0';
    t->bytes_len += len + 1;
    uint32_t id = t->n++;
    t->hash[id] = h;
    t->offset[id + 1] = t->bytes_len;
    return id;
}

uint32_t text_table_intern(TextTable *t, const char *text, size_t len) {
    uint64_t h = mnrl_hash64(text, len, 0);
    size_t mask = t->n_slots - 1;
    size_t i = (size_t)h & mask;
    for (; t->slot[i]; i = (i + 1) & mask) {
        uint32_t id = t->slot[i] - 1;
        size_t id_len;
        const char *s = text_table_get(t, id, &id_len);
        if (t->hash[id] == h && id_len == len && memcmp(s, text, len) == 0) return id;
    }
    uint32_t id = append_text(t, text, len, h);
    t->slot[i] = id + 1;
    if ((size_t)t->n * 2 > t->n_slots) grow_slots(t);
    return id;
}
