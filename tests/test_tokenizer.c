// test_tokenizer.c — parity with HF BertTokenizerFast on the committed goldens
// (tests/reference/make_tokenizer_goldens.py), and the loader's error messages.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>
#include <zlib.h>

#include "mnrl/common.h"
#include "mnrl/textio.h"
#include "mnrl/tokenizer.h"
#include "test.h"

#define VOCAB MNRL_SOURCE_DIR "/models/bert-base-uncased/vocab.txt"

typedef struct {
    char **text;
    size_t *len;
    int count, cap;
} Texts;

static void texts_add(Texts *t, const char *s, size_t len) {
    if (t->count == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 1024;
        t->text = mnrl_realloc(t->text, (size_t)t->cap * sizeof *t->text);
        t->len = mnrl_realloc(t->len, (size_t)t->cap * sizeof *t->len);
    }
    t->text[t->count] = mnrl_malloc(len + 1);
    memcpy(t->text[t->count], s, len);
    t->text[t->count][len] = '\0';
    t->len[t->count++] = len;
}

// Splits a TSV line in place into at most max fields.
static int split_tabs(char *line, char **fields, int max) {
    int n = 0;
    fields[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') { *p = '\0'; fields[n++] = p + 1; }
    return n;
}

static int column(char **names, int n, const char *want) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0) return i;
    return -1;
}

// Sentences of a TSV file (sentence1, sentence2 per row); unique = first appearance only.
static int read_sentences(const char *path, int unique, Texts *out) {
    LineReader r;
    MnrlError err;
    char *line, *f[16], header[4096];
    size_t len;
    if (line_reader_open(&r, path, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return -1; }
    if (line_reader_next(&r, &line, &len, &err) != 1 || len >= sizeof header) return -1;
    memcpy(header, line, len + 1);
    char *names[16];
    int n_names = split_tabs(header, names, 16);
    int c1 = column(names, n_names, "sentence1"), c2 = column(names, n_names, "sentence2");
    size_t seen_cap = 1 << 17;
    uint64_t *seen = mnrl_calloc(seen_cap, sizeof *seen);
    int rc;
    while ((rc = line_reader_next(&r, &line, &len, &err)) == 1) {
        int n = split_tabs(line, f, 16);
        if (n <= c1 || n <= c2) { rc = -1; break; }
        for (int k = 0; k < 2; k++) {
            const char *s = f[k ? c2 : c1];
            if (unique) {  // a 64-bit hash set is enough to spot repeats here
                uint64_t h = mnrl_hash64(s, strlen(s), 0) | 1;
                size_t i = h & (seen_cap - 1);
                while (seen[i] && seen[i] != h) i = (i + 1) & (seen_cap - 1);
                if (seen[i]) continue;
                seen[i] = h;
            }
            texts_add(out, s, strlen(s));
        }
    }
    free(seen);
    line_reader_close(&r);
    return rc == 0 ? 0 : -1;
}

static int read_hex_lines(const char *path, Texts *out) {
    LineReader r;
    MnrlError err;
    char *line;
    size_t len;
    int rc;
    if (line_reader_open(&r, path, &err) != 0) return -1;
    while ((rc = line_reader_next(&r, &line, &len, &err)) == 1) {
        char *bytes = mnrl_malloc(len / 2 + 1);
        for (size_t i = 0; i + 1 < len; i += 2) {
            unsigned v;
            sscanf(line + i, "%2x", &v);
            bytes[i / 2] = (char)v;
        }
        texts_add(out, bytes, len / 2);
        free(bytes);
    }
    line_reader_close(&r);
    return rc;
}

// The same texts as sweep_texts() in make_tokenizer_goldens.py: "a<cp>b " for each code
// point of a block of 64, for the blocks up to U+2FFFF and those of plane 14.
static void add_sweep_texts(Texts *out) {
    char buf[64 * 8];
    for (uint32_t start = 0; start < 0xE1000; start += 64) {
        if (start >= 0x30000 && start < 0xE0000) continue;
        size_t n = 0;
        for (uint32_t cp = start; cp < start + 64; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            buf[n++] = 'a';
            n += (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)buf + n);
            buf[n++] = 'b';
            buf[n++] = ' ';
        }
        if (n) texts_add(out, buf, n);
    }
}

// A model folder holding the committed vocab.txt and the given tokenizer_config.json.
static void make_model_dir(char *dir, const char *config_json) {
    MnrlError err;
    char path[512], *vocab;
    size_t len;
    strcpy(dir, "/tmp/mnrl_test_tok_XXXXXX");
    if (!mkdtemp(dir)) { perror("mkdtemp"); exit(1); }
    if (mnrl_read_file(VOCAB, &vocab, &len, &err) != 0) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    mnrl_path_join(path, sizeof path, dir, "vocab.txt");
    CHECK(mnrl_write_file_atomic(path, vocab, len, &err) == 0);
    free(vocab);
    if (config_json) {
        mnrl_path_join(path, sizeof path, dir, "tokenizer_config.json");
        CHECK(mnrl_write_file_atomic(path, config_json, strlen(config_json), &err) == 0);
    }
}

static void remove_model_dir(const char *dir) {
    char path[512];
    const char *files[] = {"vocab.txt", "tokenizer_config.json", "tokenizer.json"};
    for (int i = 0; i < 3; i++) {
        mnrl_path_join(path, sizeof path, dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static void print_mismatch(const char *mode, int index, const char *text, size_t len, const char *ours,
                           const char *want) {
    fprintf(stderr, "%s text %d (hex ", mode, index);
    for (size_t i = 0; i < len && i < 80; i++) fprintf(stderr, "%02x", (unsigned char)text[i]);
    size_t n_ours = strlen(ours), n_want = strlen(want);
    fprintf(stderr, "%s):\n  ours: %s%s\n  HF:   %s%s\n", len > 80 ? "…" : "", n_ours > 300 ? "…" : "",
            ours + (n_ours > 300 ? n_ours - 300 : 0), n_want > 300 ? "…" : "", want + (n_want > 300 ? n_want - 300 : 0));
}

// Checks one golden file; returns the number of identical texts. first_mode holds the
// expected lines of the first mode, which "=" refers to (filled on the first call).
static int check_mode(const char *name, const Texts *texts, const int group_counts[4], char **first_mode,
                      int *checked) {
    char path[512], dir[64], *line;
    size_t len;
    MnrlError err;
    LineReader r;
    snprintf(path, sizeof path, "%s/tokenizer/%s.ids.gz", MNRL_TEST_DATA_DIR, name);
    CHECK(line_reader_open(&r, path, &err) == 0);
    CHECK(line_reader_next(&r, &line, &len, &err) == 1);
    // Header: "# {config json} max_len=N stsb=N snli=N stress=N sweep=N"
    char *json_end = strstr(line, "} max_len=");
    CHECK(line[0] == '#' && json_end);
    json_end[1] = '\0';
    int max_len = 0, counts[4] = {0};
    sscanf(json_end + 2, "max_len=%d stsb=%d snli=%d stress=%d sweep=%d", &max_len, &counts[0], &counts[1],
           &counts[2], &counts[3]);
    for (int g = 0; g < 4; g++) CHECK_EQ_INT(counts[g], group_counts[g]);
    make_model_dir(dir, line + 2);
    Tokenizer *tok = NULL;
    CHECK_MSG(tokenizer_load(dir, &tok, &err) == 0, "%s", err.msg);
    remove_model_dir(dir);
    int32_t *ids = mnrl_malloc((size_t)max_len * sizeof *ids);
    char *ours = mnrl_malloc((size_t)max_len * 12 + 16);
    int identical = 0, shown = 0, crc_texts = group_counts[0] + group_counts[1];
    for (int i = 0; i < texts->count && tok; i++) {
        if (line_reader_next(&r, &line, &len, &err) != 1) { CHECK(!"golden file too short"); break; }
        if (!first_mode[i]) first_mode[i] = mnrl_strdup(line);  // the first mode has no "="
        const char *want = strcmp(line, "=") == 0 ? first_mode[i] : line;
        int n = tokenizer_encode(tok, texts->text[i], texts->len[i], max_len, ids);
        size_t at = 0;
        for (int k = 0; k < n; k++) at += (size_t)sprintf(ours + at, k ? " %d" : "%d", (int)ids[k]);
        ours[at] = '\0';
        char crc[16];
        if (i < crc_texts) {  // STSb / SNLI goldens hold the CRC-32 of the id line
            snprintf(crc, sizeof crc, "%08lx", crc32(0L, (const Bytef *)ours, (uInt)at));
        }
        int same = strcmp(i < crc_texts ? crc : ours, want) == 0;
        identical += same;
        if (!same && shown++ < 8) print_mismatch(name, i, texts->text[i], texts->len[i], ours, want);
    }
    *checked += texts->count;
    printf("%-24s max_len %3d: %d/%d identical\n", name, max_len, identical, texts->count);
    free(ids);
    free(ours);
    tokenizer_free(tok);
    line_reader_close(&r);
    return identical;
}

static void check_parity(void) {
    Texts texts = {0};
    int counts[4];
    CHECK(read_sentences(MNRL_SOURCE_DIR "/data/stsbenchmark.tsv.gz", 0, &texts) == 0);
    counts[0] = texts.count;
    CHECK(read_sentences(MNRL_SOURCE_DIR "/data/snli_dev_test.tsv.gz", 1, &texts) == 0);
    counts[1] = texts.count - counts[0];
    CHECK(read_hex_lines(MNRL_TEST_DATA_DIR "/tokenizer/stress.hex.gz", &texts) == 0);
    counts[2] = texts.count - counts[0] - counts[1];
    add_sweep_texts(&texts);
    counts[3] = texts.count - counts[0] - counts[1] - counts[2];
    const char *modes[] = {"uncased_512", "uncased_75", "cased_512", "lower_keep_accents_512"};
    char **first_mode = mnrl_calloc((size_t)texts.count, sizeof *first_mode);
    int identical = 0, checked = 0;
    for (int m = 0; m < 4; m++) identical += check_mode(modes[m], &texts, counts, first_mode, &checked);
    printf("tokenizer parity: %d/%d identical\n", identical, checked);
    CHECK_EQ_INT(identical, checked);
    CHECK(checked >= 4 * 20000);
    for (int i = 0; i < texts.count; i++) {
        free(first_mode[i]);
        free(texts.text[i]);
    }
    free(first_mode);
    free(texts.text);
    free(texts.len);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[512];
    MnrlError err;
    mnrl_path_join(path, sizeof path, dir, name);
    CHECK(mnrl_write_file_atomic(path, text, strlen(text), &err) == 0);
}

// Loads dir and returns the error message ("" when it loaded).
static const char *load_error(const char *dir) {
    static MnrlError err;
    Tokenizer *tok = NULL;
    err.msg[0] = '\0';
    if (tokenizer_load(dir, &tok, &err) == 0) {
        tokenizer_free(tok);
        return "";
    }
    CHECK(tok == NULL);
    return err.msg;
}

static void check_load_errors(void) {
    char dir[64];
    make_model_dir(dir, NULL);
    char path[512];
    mnrl_path_join(path, sizeof path, dir, "vocab.txt");
    unlink(path);
    CHECK_CONTAINS(load_error(dir), "vocab.txt: not found");
    write_text(dir, "vocab.txt", "");
    CHECK_CONTAINS(load_error(dir), "empty vocabulary");
    write_text(dir, "vocab.txt", "[PAD]\n[CLS]\n[SEP]\nhello\n");
    CHECK_CONTAINS(load_error(dir), "\"[UNK]\" is not in the vocabulary");
    write_text(dir, "vocab.txt", "[PAD]\n[UNK]\n[SEP]\nhello\n");
    CHECK_CONTAINS(load_error(dir), "\"[CLS]\" is not in the vocabulary");
    write_text(dir, "vocab.txt", "[UNK]\n[CLS]\n[SEP]\nbad\xff\n");
    CHECK_CONTAINS(load_error(dir), "invalid UTF-8 at byte");
    write_text(dir, "vocab.txt", "[UNK]\r\n[CLS]\r\n[SEP]\r\nhello\r\n##s\r\n");
    CHECK_STR(load_error(dir), "");
    write_text(dir, "tokenizer_config.json", "{\"do_lower_case\": true,}");
    CHECK_CONTAINS(load_error(dir), "tokenizer_config.json:1: invalid JSON");
    write_text(dir, "tokenizer_config.json", "{\"do_lower_case\": \"yes\"}");
    CHECK_CONTAINS(load_error(dir), "\"do_lower_case\" must be true or false");
    write_text(dir, "tokenizer_config.json", "{\"unk_token\": \"<unk>\"}");
    CHECK_CONTAINS(load_error(dir), "the unk_token token \"<unk>\" is not in the vocabulary");
    write_text(dir, "tokenizer_config.json", "{\"model_max_length\": 1e30}");
    CHECK_STR(load_error(dir), "");
    // What transformers writes for "no limit": int(1e30), as an integer literal.
    write_text(dir, "tokenizer_config.json", "{\"model_max_length\": 1000000000000000019884624838656}");
    CHECK_STR(load_error(dir), "");
    write_text(dir, "tokenizer.json", "{\"added_tokens\": [{\"id\": 9, \"content\": \"<x>\", \"normalized\": false}]}");
    CHECK_CONTAINS(load_error(dir), "added token \"<x>\" of tokenizer.json is not in the vocabulary");
    write_text(dir, "tokenizer.json", "{\"added_tokens\": [{\"id\": 4, \"content\": \"##s\", \"normalized\": true}]}");
    CHECK_CONTAINS(load_error(dir), "normalized or single_word matching, which is not supported");
    remove_model_dir(dir);
}

// Small cases with well-known bert-base-uncased ids, and the settings accessors.
static void check_basics(void) {
    char dir[64], dir_cased[64];
    MnrlError err;
    Tokenizer *tok = NULL, *cased = NULL;
    make_model_dir(dir, "{\"model_max_length\": 128}");
    make_model_dir(dir_cased, "{\"do_lower_case\": false}");
    CHECK_MSG(tokenizer_load(dir, &tok, &err) == 0, "%s", err.msg);
    CHECK_MSG(tokenizer_load(dir_cased, &cased, &err) == 0, "%s", err.msg);
    remove_model_dir(dir);
    remove_model_dir(dir_cased);
    if (!tok || !cased) return;
    CHECK_EQ_INT(tokenizer_vocab_size(tok), 30522);
    CHECK_EQ_INT(tokenizer_model_max_length(tok), 128);
    CHECK_EQ_INT(tokenizer_model_max_length(cased), 512);
    CHECK(tokenizer_fingerprint(tok) != tokenizer_fingerprint(cased));
    int32_t ids[8];
    const char *hello = "Hello World";
    CHECK_EQ_INT(tokenizer_encode(tok, hello, strlen(hello), 8, ids), 4);
    CHECK(ids[0] == 101 && ids[1] == 7592 && ids[2] == 2088 && ids[3] == 102);
    CHECK_EQ_INT(tokenizer_encode(tok, hello, strlen(hello), 2, ids), 2);
    CHECK(ids[0] == 101 && ids[1] == 102);
    CHECK_EQ_INT(tokenizer_encode(tok, "", 0, 8, ids), 2);
    CHECK_EQ_INT(tokenizer_encode(tok, "[MASK]", 6, 8, ids), 3);
    CHECK_EQ_INT(ids[1], 103);
    CHECK_STR(tokenizer_unicode_tables_version(), utf8proc_unicode_version());
    tokenizer_free(tok);
    tokenizer_free(cased);
}

int main(void) {
    check_load_errors();
    check_basics();
    check_parity();
    TEST_END();
}
