// data_cache.h — the pre-tokenized training data (DESIGN §2 dataset.c): the row table of
// text ids plus every unique text's token ids, in one file under cache_dir that is built
// once (dataset_load + tokenizer_encode, with a progress bar) and afterwards mapped
// read-only, without parsing the source again.
//
// File (native endianness, every section 8-byte aligned):
//   header   DataCacheHeader below
//   text_id  n_rows * n_cols uint32 (the Dataset's rows)
//   offset   n_texts + 1 uint64: text t's tokens are [offset[t], offset[t+1])
//   tokens   n_tokens ids, uint16 when the vocabulary has at most 65,536 entries, else int32
//   summary  skip_summary_len bytes + NUL: the Dataset's skip summary
// The file name is a hash of the source path, the row options, the tokenizer fingerprint
// and max_seq_length. The header repeats all of them plus the source file's size and
// CRC-32, and a CRC-32 of the payload; the file is rebuilt when any differs, when it is
// truncated or corrupt, or when the format version changes. It is written to a temp file
// and renamed into place, so readers never see half a file.
#ifndef MNRL_DATA_CACHE_H
#define MNRL_DATA_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mnrl/common.h"
#include "mnrl/dataset.h"
#include "mnrl/tokenizer.h"

#define DATA_CACHE_MAGIC "MNRLTOK\n"
#define DATA_CACHE_VERSION 1u
#define DATA_CACHE_ENDIAN 0x01020304u

typedef struct {
    char magic[8];
    uint32_t version, endian;          // DATA_CACHE_VERSION, DATA_CACHE_ENDIAN as written
    uint64_t source_size, source_crc;  // the source file's bytes as stored (gz or not)
    uint64_t options_hash;             // every DataOptions field that changes the rows
    uint64_t tokenizer_fingerprint;
    uint32_t max_seq_length, token_bytes;  // token_bytes: 2 or 4
    uint64_t n_rows, n_cols, n_texts, n_tokens;
    uint64_t skip_summary_len;
    uint64_t payload_bytes, payload_crc;   // everything after the header
    uint64_t header_hash;                  // mnrl_hash64 of the header bytes before it
} DataCacheHeader;

typedef struct {
    // Views into the mapping (read-only).
    const DataCacheHeader *header;
    size_t n_rows, n_cols;
    uint32_t n_texts;
    const uint32_t *text_id;   // n_rows * n_cols, as Dataset.text_id (for the sampler)
    const uint64_t *offset;    // n_texts + 1
    const void *tokens;        // uint16_t or int32_t per header->token_bytes
    const char *skip_summary;  // "" when no row was skipped
    int built;                 // 1 when this open built (or rebuilt) the file
    char rebuild_reason[256];  // why it was built: "no cache file", "source file changed", ...
    char path[1024];
    void *map;
    size_t map_len;
} DataCache;

// Opens the cache for opt (building it when missing or stale); progress and the rebuild
// reason go to log (NULL: quiet).
int data_cache_open(const DataOptions *opt, const char *cache_dir, const Tokenizer *tok,
                    int max_seq_length, FILE *log, DataCache *cache, MnrlError *err);
void data_cache_close(DataCache *cache);

// Tokens of text id, [CLS] and [SEP] included (at most max_seq_length): the packer's length.
static inline uint32_t data_cache_length(const DataCache *c, uint32_t id) {
    return (uint32_t)(c->offset[id + 1] - c->offset[id]);
}
// Copies text id's token ids to out (room for data_cache_length) and returns the count.
uint32_t data_cache_tokens(const DataCache *c, uint32_t id, int32_t *out);

#endif
