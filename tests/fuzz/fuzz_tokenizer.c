// fuzz_tokenizer.c — libFuzzer target: tokenizer_encode on arbitrary bytes (invalid UTF-8
// included) with the committed bert-base-uncased vocabulary. The first byte picks
// max_len (2..257). Invariants: [CLS] first, [SEP] last, at most max_len ids, every id in
// the vocabulary, and the same ids with a larger limit start the same way (truncation
// keeps a prefix of the pieces).
#include <stdint.h>
#include <stdlib.h>

#include "fuzz_util.h"
#include "mnrl/tokenizer.h"

#define CLS_ID 101  // bert-base-uncased vocab.txt lines 102 and 103
#define SEP_ID 102

static Tokenizer *tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    MnrlError err;
    if (tokenizer_load(MNRL_SOURCE_DIR "/models/bert-base-uncased", &tok, &err) != 0) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    int max_len = 2 + data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t ids[258], ids_long[1026];
    int n = tokenizer_encode(tok, text, len, max_len, ids);
    FUZZ_ASSERT(n >= 2 && n <= max_len);
    FUZZ_ASSERT(ids[0] == CLS_ID && ids[n - 1] == SEP_ID);
    for (int i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < tokenizer_vocab_size(tok));
    int n_long = tokenizer_encode(tok, text, len, 1026, ids_long);
    FUZZ_ASSERT(n_long >= n);
    for (int i = 0; i < n - 1; i++) FUZZ_ASSERT(ids[i] == ids_long[i]);
    return 0;
}
