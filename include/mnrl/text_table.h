// text_table.h — interned texts: each distinct byte string gets a dense uint32 id, in
// first-seen order. Datasets store rows as ids so that "same text" is an id comparison.
#ifndef MNRL_TEXT_TABLE_H
#define MNRL_TEXT_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *bytes;          // every text, each followed by a NUL (so a text is a C string too)
    size_t bytes_len, bytes_cap;
    uint64_t *offset;     // n + 1 start offsets into bytes
    uint64_t *hash;       // n hashes (mnrl_hash64), kept for rehashing
    uint32_t n, cap;      // texts held, capacity of offset/hash
    uint32_t *slot;       // open-addressing table of id + 1 (0 = empty)
    size_t n_slots;       // a power of two, at least twice n
} TextTable;

void text_table_init(TextTable *t);
void text_table_free(TextTable *t);
// The id of text[0..len): an existing id when the same bytes were added before, else a
// new one (ids count up from 0). A table holds fewer than UINT32_MAX texts.
uint32_t text_table_intern(TextTable *t, const char *text, size_t len);
// Text id (NUL-terminated) and its length in bytes; id < t->n.
static inline const char *text_table_get(const TextTable *t, uint32_t id, size_t *len) {
    if (len) *len = (size_t)(t->offset[id + 1] - t->offset[id] - 1);
    return t->bytes + t->offset[id];
}

#endif
