// test_data_cache.c — the pre-tokenized cache: rows and token ids read back equal to
// dataset_load + tokenizer_encode; rebuilt when the source, max_seq_length, the recipe or
// the file itself changes (truncated, corrupted, another version), reused otherwise; the
// skip summary survives; and the progress bar's lines.
#include <stdint.h>
#include <unistd.h>

#include "mnrl/data_cache.h"
#include "mnrl/log.h"
#include "test.h"

#define SNLI MNRL_SOURCE_DIR "/data/snli_dev_test.tsv.gz"
#define VOCAB_DIR MNRL_SOURCE_DIR "/models/bert-base-uncased"
#define CACHE_DIR "dc_cache/nested"

static Tokenizer *tok;

// Every row and every text's tokens of the cache equal a fresh dataset_load + encode.
static void check_matches_source(const DataCache *c, const DataOptions *opt, int max_len) {
    Dataset ds;
    MnrlError err;
    CHECK_MSG(dataset_load(opt, &ds, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(c->n_rows, ds.n_rows);
    CHECK_EQ_INT(c->n_cols, ds.n_cols);
    CHECK_EQ_INT(c->n_texts, ds.texts.n);
    CHECK(memcmp(c->text_id, ds.text_id, ds.n_rows * ds.n_cols * sizeof *ds.text_id) == 0);
    int32_t *want = malloc((size_t)max_len * sizeof *want);
    int32_t *got = malloc((size_t)max_len * sizeof *got);
    size_t same = 0, longest = 0;
    for (uint32_t t = 0; t < ds.texts.n; t++) {
        size_t len;
        const char *text = dataset_text(&ds, t, &len);
        int n = tokenizer_encode(tok, text, len, max_len, want);
        uint32_t m = data_cache_tokens(c, t, got);
        same += (int)m == n && data_cache_length(c, t) == m &&
                memcmp(want, got, m * sizeof *got) == 0;
        if (m > longest) longest = m;
    }
    CHECK_EQ_INT(same, ds.texts.n);
    CHECK(longest <= (size_t)max_len);
    CHECK_STR(c->skip_summary, ds.skip_summary);
    free(want);
    free(got);
    dataset_free(&ds);
}

static int open_cache(const DataOptions *opt, int max_len, DataCache *c) {
    MnrlError err;
    int rc = data_cache_open(opt, CACHE_DIR, tok, max_len, NULL, c, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    return rc;
}

// Rewrites bytes of the cache file at offset (negative: from the end).
static void damage(const char *path, long offset, const char *bytes, size_t n) {
    FILE *f = fopen(path, "r+b");
    fseek(f, offset, offset < 0 ? SEEK_END : SEEK_SET);
    fwrite(bytes, 1, n, f);
    fclose(f);
}

static void check_snli_cache(void) {
    DataOptions opt = data_options_default(SNLI);
    opt.split = "dev";
    DataCache c;
    if (open_cache(&opt, 75, &c) < 0) return;
    CHECK_EQ_INT(c.built, 1);
    CHECK_EQ_INT(c.header->token_bytes, 2);
    check_matches_source(&c, &opt, 75);
    char path[1024];
    snprintf(path, sizeof path, "%s", c.path);
    data_cache_close(&c);

    open_cache(&opt, 75, &c);  // unchanged: mapped as is
    CHECK_EQ_INT(c.built, 0);
    CHECK_STR(c.path, path);
    data_cache_close(&c);

    open_cache(&opt, 16, &c);  // shorter sequences: another cache, truncated texts
    CHECK_EQ_INT(c.built, 1);
    CHECK(strcmp(c.path, path) != 0);
    check_matches_source(&c, &opt, 16);
    data_cache_close(&c);

    opt.recipe = DATA_RECIPE_PAIRS;
    open_cache(&opt, 75, &c);
    CHECK_EQ_INT(c.built, 1);
    CHECK_EQ_INT(c.n_cols, 2);
    check_matches_source(&c, &opt, 75);
    data_cache_close(&c);
    opt.recipe = DATA_RECIPE_TRIPLETS;

    struct {
        long offset;
        const char *bytes;
        const char *reason;
    } damages[] = {
        {-5, "\x7f", "payload checksum mismatch (corrupt)"},
        {8, "\x09", "written by another cache format version"},
        {0, "GARBAGE!", "not a data cache file"},
        {40, "\x01", "corrupt header"},
    };
    for (size_t i = 0; i < sizeof damages / sizeof damages[0]; i++) {
        damage(path, damages[i].offset, damages[i].bytes, strlen(damages[i].bytes));
        open_cache(&opt, 75, &c);
        CHECK_EQ_INT(c.built, 1);
        CHECK_STR(c.rebuild_reason, damages[i].reason);
        data_cache_close(&c);
    }
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(truncate(path, size / 2) == 0);
    open_cache(&opt, 75, &c);
    CHECK_EQ_INT(c.built, 1);
    CHECK_STR(c.rebuild_reason, "truncated or overlong");
    check_matches_source(&c, &opt, 75);
    data_cache_close(&c);
    CHECK(truncate(path, 20) == 0);
    open_cache(&opt, 75, &c);
    CHECK_EQ_INT(c.built, 1);
    CHECK_STR(c.rebuild_reason, "truncated");
    data_cache_close(&c);
}

// A changed source rebuilds the same cache file; the skip summary is kept in the cache.
static void check_source_change(void) {
    test_write_file("dc_rows.tsv", "anchor\tpositive\tnegative\n"
                              "A man plays.\tSomeone plays.\tNobody plays.\n"
                              "only\ttwo\n"
                              "Cats sleep.\tA cat is asleep.\tCats run.\n");
    DataOptions opt = data_options_default("dc_rows.tsv");
    opt.on_error = DATA_ON_ERROR_SKIP;
    DataCache c;
    if (open_cache(&opt, 32, &c) < 0) return;
    CHECK_EQ_INT(c.built, 1);
    CHECK_STR(c.rebuild_reason, "no cache file yet");
    CHECK_EQ_INT(c.n_rows, 2);
    CHECK_STR(c.skip_summary, "skipped 1 malformed row (1 wrong field count); first: "
                              "dc_rows.tsv:3: expected 3 tab-separated fields (as in the "
                              "header), got 2");
    check_matches_source(&c, &opt, 32);
    char path[1024];
    snprintf(path, sizeof path, "%s", c.path);
    data_cache_close(&c);
    open_cache(&opt, 32, &c);
    CHECK_EQ_INT(c.built, 0);
    CHECK_CONTAINS(c.skip_summary, "skipped 1 malformed row");
    data_cache_close(&c);

    test_write_file("dc_rows.tsv", "anchor\tpositive\tnegative\n"
                              "A man plays.\tSomeone plays.\tNobody plays.\n"
                              "Cats sleep.\tA cat is asleep.\tCats run!\n");
    open_cache(&opt, 32, &c);
    CHECK_EQ_INT(c.built, 1);
    CHECK_STR(c.rebuild_reason, "the source file changed");
    CHECK_STR(c.path, path);
    CHECK_STR(c.skip_summary, "");
    check_matches_source(&c, &opt, 32);
    data_cache_close(&c);

    opt.seed = 1;  // any row option changes the file name
    open_cache(&opt, 32, &c);
    CHECK_EQ_INT(c.built, 1);
    CHECK(strcmp(c.path, path) != 0);
    data_cache_close(&c);

    MnrlError err;
    opt.path = "dc_missing.tsv";
    CHECK(data_cache_open(&opt, CACHE_DIR, tok, 32, NULL, &c, &err) < 0);
    CHECK_CONTAINS(err.msg, "dc_missing.tsv: cannot open");
    opt.path = "dc_rows.tsv";
    opt.anchor_column = "query";
    CHECK(data_cache_open(&opt, CACHE_DIR, tok, 32, NULL, &c, &err) < 0);
    CHECK_CONTAINS(err.msg, "no column \"query\"");
}

static void check_progress(void) {
    Progress p;
    progress_begin(&p, NULL, "tokenizing", "texts", 10000);
    p.done = 4200;
    char line[256];
    progress_format(&p, 2.0, line, sizeof line);
    CHECK_STR(line, "tokenizing  42% [##########..............] 4,200/10,000 texts | 2.1k "
                    "texts/s | ETA 0:03");
    p.done = 100;
    progress_format(&p, 3600.0, line, sizeof line);
    CHECK_STR(line, "tokenizing   1% [........................] 100/10,000 texts | 0 texts/s | "
                    "ETA 99:00:00");
    FILE *f = tmpfile();
    progress_begin(&p, f, "tokenizing", "texts", 1000);
    for (uint64_t done = 0; done <= 1000; done += 10) progress_update(&p, done);
    progress_end(&p);
    rewind(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += buf[i] == '\n';
    CHECK_EQ_INT(lines, 5);  // begin, 25%, 50%, 75%, end
    CHECK(strncmp(buf, "tokenizing: 1000 texts\ntokenizing  25% [######", 46) == 0);
    CHECK_CONTAINS(buf, "\ntokenizing  75% [##################......] 750/1,000 texts");
    CHECK_CONTAINS(buf, "\ntokenizing: 1,000 texts in ");
    CHECK(strchr(buf, '\r') == NULL);
}

int main(void) {
    // Every run starts from no cache, so that "built" means what the checks expect.
    if (system("rm -rf dc_cache") != 0) return 1;
    check_progress();
    MnrlError err;
    if (tokenizer_load(VOCAB_DIR, &tok, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    check_snli_cache();
    check_source_change();
    tokenizer_free(tok);
    TEST_END();
}
