// tokenizer.h — WordPiece tokenizer with byte-for-byte parity with Hugging Face
// BertTokenizerFast (normalizer, pre-tokenizer, WordPiece model, [CLS]/[SEP]
// post-processor, truncation). Settings come from the model folder.
#ifndef MNRL_TOKENIZER_H
#define MNRL_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/common.h"

typedef struct Tokenizer Tokenizer;

// Loads vocab.txt plus tokenizer_config.json / tokenizer.json settings (when present)
// from model_dir.
int tokenizer_load(const char *model_dir, Tokenizer **out, MnrlError *err);
void tokenizer_free(Tokenizer *tok);

// Encodes len bytes of text as HF does with add_special_tokens=True, truncation=True,
// max_length=max_len: [CLS] pieces… [SEP], at most max_len ids (max_len >= 2) written to
// ids. Returns the number of ids. Invalid UTF-8 bytes are treated as U+FFFD (which the
// BERT normalizer removes), as Python's errors="replace" decoding would give.
// Safe to call from several threads on one Tokenizer.
int tokenizer_encode(const Tokenizer *tok, const char *text, size_t len, int max_len, int32_t *ids);

int tokenizer_vocab_size(const Tokenizer *tok);
// The model's own limit (tokenizer_config.json model_max_length, else 512).
int tokenizer_model_max_length(const Tokenizer *tok);
// Hash of the vocabulary and every setting that changes the output, for cache keys.
uint64_t tokenizer_fingerprint(const Tokenizer *tok);
// The Unicode version of utf8proc that the HF-difference tables in tokenizer.c were made
// for (tests/reference/make_tokenizer_unicode_tables.py); parity needs utf8proc's to match.
const char *tokenizer_unicode_tables_version(void);

#endif
