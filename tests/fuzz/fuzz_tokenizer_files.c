// fuzz_tokenizer_files.c — libFuzzer target: the model-folder files the tokenizer reads.
// A scratch model folder holds a small valid vocab.txt; the first byte picks which file the
// rest of the input replaces: tokenizer_config.json, tokenizer.json or vocab.txt itself.
// Invariant: a tokenizer that loads encodes a fixed sentence within the limits.
#include <stdint.h>
#include <sys/stat.h>

#include "fuzz_util.h"
#include "mnrl/tokenizer.h"

static const char vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n,\n!\n";
static const char *const files[3] = {"tokenizer_config.json", "tokenizer.json", "vocab.txt"};
static char dir[256];

static void file_path(char *out, size_t cap, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof dir, "%s", fuzz_scratch_path(0, ".model"));
    if (mkdir(dir, 0755) != 0) {
        perror(dir);
        abort();
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    char path[320];
    for (int i = 0; i < 3; i++) {  // a fresh folder: only the valid vocabulary
        file_path(path, sizeof path, files[i]);
        remove(path);
    }
    file_path(path, sizeof path, "vocab.txt");
    fuzz_write(path, (const uint8_t *)vocab, sizeof vocab - 1);
    file_path(path, sizeof path, files[data[0] % 3]);
    fuzz_write(path, data + 1, size - 1);

    Tokenizer *tok;
    MnrlError err;
    err.msg[0] = '\0';
    if (tokenizer_load(dir, &tok, &err) == 0) {
        static const char text[] = "Hello, worlds! [MASK] unknown";
        int32_t ids[16];
        int n = tokenizer_encode(tok, text, sizeof text - 1, 16, ids);
        FUZZ_ASSERT(n >= 2 && n <= 16);
        for (int i = 0; i < n; i++) FUZZ_ASSERT(ids[i] >= 0 && ids[i] < tokenizer_vocab_size(tok));
        tokenizer_free(tok);
    } else {
        FUZZ_ASSERT_MESSAGE(err);
    }
    return 0;
}
