// test_data_scale.c — the data pipeline at training scale: a synthetic 1M-row triplet TSV
// (random words, fixed seed) is generated here, loaded, and pre-tokenized into the cache,
// which is then reopened without a rebuild; counts are exact by construction and a sample
// of rows is compared with the generated text and with tokenizer_encode. Prints the times.
// Under AddressSanitizer (about 10x slower) it uses 100K rows instead and says so.
#include <stdint.h>
#include <unistd.h>

#include "mnrl/data_cache.h"
#include "test.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define TSV "scale_triplets.tsv"
#define CACHE_DIR "scale_cache"

static const char *const words[] = {
    "a", "man", "woman", "child", "dog", "cat", "is", "are", "the", "playing", "running",
    "sitting", "on", "in", "with", "ball", "street", "park", "red", "blue", "green", "small",
    "big", "two", "three", "people", "outside", "inside", "near", "water", "eating", "food",
    "walking", "reading", "book", "car", "bike", "riding", "young", "old", "happy", "sad",
    "jumps", "over", "fence", "guitar", "music", "beach", "snow", "mountain", "city",
    "building", "wearing", "hat", "shirt", "jacket", "looking", "at", "camera", "smiling"};
enum { N_WORDS = sizeof words / sizeof words[0] };

// Row r's texts: anchor and positive are unique (they end in r), the negative is the
// previous row's anchor (row 0: a fixed text). So there are exactly 2N + 1 unique texts.
static void make_text(uint64_t *rng, char *out, size_t cap, uint64_t r, int positive) {
    size_t used = 0;
    int n_words = 4 + (int)mnrl_rand_below(rng, 11);
    for (int w = 0; w < n_words; w++) {
        const char *word = words[mnrl_rand_below(rng, N_WORDS)];
        used += (size_t)snprintf(out + used, cap - used, "%s ", word);
    }
    snprintf(out + used, cap - used, positive ? "(%llu)." : "%llu.", (unsigned long long)r);
}

static double generate(size_t n_rows, char (*samples)[3][160], size_t sample_every) {
    double t0 = mnrl_now();
    FILE *f = fopen(TSV, "w");
    if (!f) {
        perror(TSV);
        exit(1);
    }
    fputs("anchor\tpositive\tnegative\n", f);
    uint64_t rng = 2024;
    char anchor[160], positive[160], previous[160] = "Nothing happens here.";
    for (size_t r = 0; r < n_rows; r++) {
        make_text(&rng, anchor, sizeof anchor, r, 0);
        make_text(&rng, positive, sizeof positive, r, 1);
        fprintf(f, "%s\t%s\t%s\n", anchor, positive, previous);
        if (r % sample_every == 0) {
            memcpy(samples[r / sample_every][0], anchor, sizeof anchor);
            memcpy(samples[r / sample_every][1], positive, sizeof positive);
            memcpy(samples[r / sample_every][2], previous, sizeof previous);
        }
        memcpy(previous, anchor, sizeof anchor);
    }
    fclose(f);
    return mnrl_now() - t0;
}

static void check_dataset(size_t n_rows, char (*samples)[3][160], size_t sample_every) {
    double t0 = mnrl_now();
    DataOptions opt = data_options_default(TSV);
    Dataset ds;
    MnrlError err;
    CHECK_MSG(dataset_load(&opt, &ds, &err) == 0, "%s", err.msg);
    printf("dataset_load: %.2f s\n", mnrl_now() - t0);
    CHECK_EQ_INT(ds.n_rows, n_rows);
    CHECK_EQ_INT(ds.n_cols, 3);
    CHECK_EQ_INT(ds.texts.n, 2 * n_rows + 1);
    size_t same = 0;
    for (size_t s = 0; s * sample_every < n_rows; s++) {
        for (size_t c = 0; c < 3; c++) {
            uint32_t id = ds.text_id[s * sample_every * 3 + c];
            same += strcmp(dataset_text(&ds, id, NULL), samples[s][c]) == 0;
        }
    }
    CHECK_EQ_INT(same, 3 * ((n_rows + sample_every - 1) / sample_every));
    dataset_free(&ds);
}

// Sample rows of the cache hold the tokens of the generated texts.
static void check_cache_rows(const DataCache *c, const Tokenizer *tok, char (*samples)[3][160],
                             size_t sample_every) {
    int32_t want[64], got[64];
    size_t same = 0, checked = 0;
    for (size_t s = 0; s * sample_every < c->n_rows; s++) {
        for (size_t col = 0; col < 3; col++) {
            uint32_t id = c->text_id[s * sample_every * 3 + col];
            int n = tokenizer_encode(tok, samples[s][col], strlen(samples[s][col]), 64, want);
            uint32_t m = data_cache_tokens(c, id, got);
            same += (int)m == n && memcmp(want, got, m * sizeof *got) == 0;
            checked++;
        }
    }
    CHECK_EQ_INT(same, checked);
    // Row r's negative is row r-1's anchor: the same id.
    size_t linked = 0;
    for (size_t r = 1; r < c->n_rows; r++) {
        linked += c->text_id[r * 3 + 2] == c->text_id[(r - 1) * 3];
    }
    CHECK_EQ_INT(linked, c->n_rows - 1);
}

static void check_cache(size_t n_rows, char (*samples)[3][160], size_t sample_every) {
    Tokenizer *tok;
    MnrlError err;
    if (tokenizer_load(MNRL_SOURCE_DIR "/models/bert-base-uncased", &tok, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    DataOptions opt = data_options_default(TSV);
    DataCache c;
    double t0 = mnrl_now();
    CHECK_MSG(data_cache_open(&opt, CACHE_DIR, tok, 64, stdout, &c, &err) == 0, "%s", err.msg);
    double build = mnrl_now() - t0;
    CHECK_EQ_INT(c.built, 1);
    CHECK_EQ_INT(c.n_rows, n_rows);
    CHECK_EQ_INT(c.n_texts, 2 * n_rows + 1);
    check_cache_rows(&c, tok, samples, sample_every);
    data_cache_close(&c);
    t0 = mnrl_now();
    CHECK_MSG(data_cache_open(&opt, CACHE_DIR, tok, 64, stdout, &c, &err) == 0, "%s", err.msg);
    double reopen = mnrl_now() - t0;
    CHECK_EQ_INT(c.built, 0);
    check_cache_rows(&c, tok, samples, sample_every);
    printf("cache build (load + tokenize + write): %.2f s; reopen (checksums + map): %.2f s\n",
           build, reopen);
    data_cache_close(&c);
    tokenizer_free(tok);
}

int main(void) {
    size_t n_rows = SANITIZED ? 100000 : 1000000, sample_every = 997;
    if (SANITIZED) printf("AddressSanitizer build: %zu rows instead of 1,000,000\n", n_rows);
    char(*samples)[3][160] = malloc((n_rows / sample_every + 1) * sizeof *samples);
    double t0 = mnrl_now();
    printf("generate %zu rows: %.2f s\n", n_rows, generate(n_rows, samples, sample_every));
    check_dataset(n_rows, samples, sample_every);
    check_cache(n_rows, samples, sample_every);
    if (system("rm -rf " CACHE_DIR " " TSV) != 0) CHECK(0);
    free(samples);
    printf("total %.1f s\n", mnrl_now() - t0);
    TEST_END();
}
