// test_sampler.c — the NoDuplicates sampler against sentence-transformers' own
// NoDuplicatesBatchSampler (tests/data/sampler/st_batches.txt, made by
// tests/reference/make_sampler_goldens.py), plus properties ST's golden cannot show:
// no duplicate text in a batch, every row once per epoch, per-epoch orders, seeds, seek,
// rank slices and the degenerate inputs.
#include "mnrl/sampler.h"
#include "test.h"

static unsigned long next_number(char **p) {
    char *end;
    unsigned long v = strtoul(*p, &end, 10);
    if (end == *p) {
        fprintf(stderr, "st_batches.txt: expected a number near \"%.30s\"\n", *p);
        exit(1);
    }
    *p = end;
    return v;
}

static uint32_t *read_numbers(char **p, size_t count) {
    uint32_t *v = mnrl_malloc((count ? count : 1) * sizeof *v);
    for (size_t i = 0; i < count; i++) v[i] = (uint32_t)next_number(p);
    return v;
}

// One golden case: same permutations in, same batches out, same number of passes drawn.
static void check_case(char **p) {
    char name[128];
    int used_chars = 0;
    if (sscanf(*p, " case %127s%n", name, &used_chars) != 1) {
        fprintf(stderr, "st_batches.txt: expected a case near \"%.30s\"\n", *p);
        exit(1);
    }
    *p += used_chars;
    size_t rows = next_number(p), cols = next_number(p), texts = next_number(p);
    size_t batch = next_number(p);
    int drop_last = (int)next_number(p);
    size_t orders_used = next_number(p);
    uint32_t *ids = read_numbers(p, rows * cols);
    uint32_t *orders = read_numbers(p, 3 * rows);
    *p = strstr(*p, "batches") + strlen("batches");
    size_t n_batches = next_number(p);

    Sampler s;
    MnrlError err;
    int ok = sampler_init(&s, ids, rows, cols, (uint32_t)texts, batch, drop_last, 7, &err) == 0;
    CHECK_MSG(ok, "%s: %s", name, err.msg);
    if (!ok) exit(1);
    sampler_begin_epoch_with_orders(&s, 0, orders, 3);
    uint32_t *got = mnrl_malloc(batch * sizeof *got);
    size_t mismatches = 0;
    for (size_t b = 0; b < n_batches; b++) {
        size_t want_n = next_number(p);
        uint32_t *want = read_numbers(p, want_n);
        size_t n = sampler_next_batch(&s, got);
        if (n != want_n || memcmp(got, want, n * sizeof *got) != 0) {
            if (!mismatches) fprintf(stderr, "%s: batch %zu differs (size %zu vs %zu)\n", name, b, n, want_n);
            mismatches++;
        }
        free(want);
    }
    CHECK_MSG(mismatches == 0, "%s: %zu of %zu batches differ from ST", name, mismatches, n_batches);
    CHECK_MSG(sampler_next_batch(&s, got) == 0, "%s: more batches than ST", name);
    CHECK_MSG(sampler_stats(&s)->passes == orders_used, "%s: %u passes, ST drew %zu", name,
              sampler_stats(&s)->passes, orders_used);
    CHECK_MSG(sampler_stats(&s)->batches == n_batches, "%s: stats count %llu batches", name,
              (unsigned long long)sampler_stats(&s)->batches);
    *p = strstr(*p, "end") + 3;
    free(got);
    free(ids);
    free(orders);
    sampler_free(&s);
}

static void test_st_golden(void) {
    char *data;
    size_t len;
    MnrlError err;
    if (mnrl_read_file(MNRL_TEST_DATA_DIR "/sampler/st_batches.txt", &data, &len, &err) != 0)
        SKIP("golden missing: %s (run tests/reference/make_sampler_goldens.py)", err.msg);
    int cases = 0;
    for (char *p = strstr(data, "\ncase "); p; p = strstr(p, "\ncase ")) {
        check_case(&p);
        cases++;
    }
    CHECK_EQ_INT(cases, 60);
    free(data);
}

// A triplet table like AllNLI: each anchor twice, positives mostly distinct, negatives
// from a smaller pool, so deferrals happen at a realistic rate.
static uint32_t *make_triplets(size_t rows, uint64_t seed, uint32_t *n_texts) {
    uint32_t *ids = mnrl_malloc(rows * 3 * sizeof *ids);
    uint64_t rng = seed;
    uint32_t anchors = (uint32_t)(rows / 2), positives = (uint32_t)rows, negatives = (uint32_t)(rows / 4);
    for (size_t r = 0; r < rows; r++) {
        ids[3 * r] = (uint32_t)(r / 2);
        ids[3 * r + 1] = anchors + (uint32_t)mnrl_rand_below(&rng, positives);
        ids[3 * r + 2] = anchors + positives + (uint32_t)mnrl_rand_below(&rng, negatives);
    }
    *n_texts = anchors + positives + negatives;
    return ids;
}

// Runs one epoch; checks that no batch repeats a text and returns how often each row came.
static void run_epoch(Sampler *s, uint64_t epoch, uint32_t *seen, uint32_t *first_batch) {
    uint32_t *batch = mnrl_malloc(s->batch_size * sizeof *batch);
    uint32_t *text_batch = mnrl_malloc(s->n_texts * sizeof *text_batch);
    for (uint32_t t = 0; t < s->n_texts; t++) text_batch[t] = UINT32_MAX;
    memset(seen, 0, s->n_rows * sizeof *seen);
    sampler_begin_epoch(s, epoch);
    size_t n, duplicates = 0;
    uint32_t b = 0;
    while ((n = sampler_next_batch(s, batch)) > 0) {
        if (b == 0) memcpy(first_batch, batch, n * sizeof *batch);
        for (size_t i = 0; i < n; i++) {
            seen[batch[i]]++;
            const uint32_t *texts = s->text_ids + (size_t)batch[i] * s->n_cols;
            for (size_t c = 0; c < s->n_cols; c++) {
                // A text may repeat within its own row, never across rows of one batch.
                int own = 0;
                for (size_t c2 = 0; c2 < c; c2++) own |= texts[c2] == texts[c];
                if (!own && text_batch[texts[c]] == b) duplicates++;
                text_batch[texts[c]] = b;
            }
        }
        b++;
    }
    CHECK_MSG(duplicates == 0, "epoch %llu: %zu duplicate texts in batches",
              (unsigned long long)epoch, duplicates);
    free(batch);
    free(text_batch);
}

static void test_properties(void) {
    size_t rows = 20000, batch = 64;
    uint32_t n_texts;
    uint32_t *ids = make_triplets(rows, 11, &n_texts);
    Sampler s, same, other;
    MnrlError err;
    CHECK(sampler_init(&s, ids, rows, 3, n_texts, batch, 0, 42, &err) == 0);
    CHECK(sampler_init(&same, ids, rows, 3, n_texts, batch, 0, 42, &err) == 0);
    CHECK(sampler_init(&other, ids, rows, 3, n_texts, batch, 0, 43, &err) == 0);
    uint32_t *seen = mnrl_malloc(rows * sizeof *seen);
    uint32_t first[3][64], first_same[64], first_other[64];
    for (int epoch = 0; epoch < 3; epoch++) {
        run_epoch(&s, (uint64_t)epoch, seen, first[epoch]);
        size_t wrong = 0;
        for (size_t r = 0; r < rows; r++) wrong += seen[r] != 1;
        CHECK_MSG(wrong == 0, "epoch %d: %zu rows not seen exactly once", epoch, wrong);
        const SamplerStats *st = sampler_stats(&s);
        CHECK_EQ_INT(st->rows_yielded, rows);
        CHECK_EQ_INT(st->rows_dropped, 0);
        CHECK_EQ_INT(st->passes, 1);
        CHECK(st->rows_deferred > 0 && st->rows_deferred < rows / 10);
        CHECK(st->batches >= sampler_expected_batches(&s));
    }
    CHECK(memcmp(first[0], first[1], sizeof first[0]) != 0);
    CHECK(memcmp(first[1], first[2], sizeof first[1]) != 0);
    run_epoch(&same, 1, seen, first_same);
    CHECK(memcmp(first[1], first_same, sizeof first_same) == 0);
    run_epoch(&other, 1, seen, first_other);
    CHECK(memcmp(first[1], first_other, sizeof first_other) != 0);

    // drop_last: only full batches; every row is yielded or counted as dropped.
    Sampler d;
    CHECK(sampler_init(&d, ids, rows, 3, n_texts, 96, 1, 42, &err) == 0);
    sampler_begin_epoch(&d, 0);
    uint32_t big[96];
    size_t n, short_batches = 0;
    while ((n = sampler_next_batch(&d, big)) > 0) short_batches += n != 96;
    const SamplerStats *st = sampler_stats(&d);
    CHECK_EQ_INT(short_batches, 0);
    CHECK_EQ_INT(st->batches, rows / 96);
    CHECK_EQ_INT(st->rows_yielded - st->rows_resampled + st->rows_dropped, rows);
    sampler_free(&d);
    sampler_free(&s);
    sampler_free(&same);
    sampler_free(&other);
    free(seen);
    free(ids);
}

static void test_seek(void) {
    size_t rows = 3000, batch = 32;
    uint32_t n_texts;
    uint32_t *ids = make_triplets(rows, 5, &n_texts);
    Sampler s;
    MnrlError err;
    CHECK(sampler_init(&s, ids, rows, 3, n_texts, batch, 0, 9, &err) == 0);
    size_t max_batches = rows;  // at least one row per batch
    uint32_t *all = mnrl_malloc(max_batches * batch * sizeof *all);
    size_t *sizes = mnrl_malloc(max_batches * sizeof *sizes);
    size_t count = 0;
    sampler_begin_epoch(&s, 4);
    while ((sizes[count] = sampler_next_batch(&s, all + count * batch)) > 0) count++;
    uint32_t got[32];
    size_t resume_points[] = {0, 1, 17, count - 1, count};
    for (size_t k = 0; k < 5; k++) {
        size_t at = resume_points[k];
        CHECK(sampler_seek(&s, 4, at, &err) == 0);
        size_t differ = 0, i = at;
        size_t n;
        while ((n = sampler_next_batch(&s, got)) > 0) {
            differ += i >= count || n != sizes[i] || memcmp(got, all + i * batch, n * sizeof *got) != 0;
            i++;
        }
        CHECK_MSG(differ == 0 && i == count, "resume at %zu: %zu batches differ, %zu seen", at, differ, i);
    }
    CHECK(sampler_seek(&s, 4, count + 1, &err) == -1);
    CHECK_CONTAINS(err.msg, "checkpoint");
    free(all);
    free(sizes);
    free(ids);
    sampler_free(&s);
}

static void test_ranks(void) {
    size_t per_rank;
    MnrlError err;
    CHECK(sampler_per_rank_batch(12, 4, &per_rank, &err) == 0);
    CHECK_EQ_INT(per_rank, 3);
    CHECK(sampler_per_rank_batch(10, 4, &per_rank, &err) == -1);
    CHECK_CONTAINS(err.msg, "not divisible");
    CHECK(sampler_per_rank_batch(10, 0, &per_rank, &err) == -1);

    // 1 rank x batch 2b == 2 ranks x batch b: the slices concatenate to the global batch.
    uint32_t global[8] = {5, 1, 7, 3, 0, 2, 6, 4};
    const uint32_t *slice;
    CHECK_EQ_INT(sampler_rank_slice(global, 8, 4, 0, &slice), 4);
    CHECK(slice == global);
    CHECK_EQ_INT(sampler_rank_slice(global, 8, 4, 1, &slice), 4);
    CHECK(slice == global + 4);
    // A short final batch of 5 over 3 ranks of 3: 3, 2 and 0 rows.
    CHECK_EQ_INT(sampler_rank_slice(global, 5, 3, 0, &slice), 3);
    CHECK_EQ_INT(sampler_rank_slice(global, 5, 3, 1, &slice), 2);
    CHECK(slice == global + 3);
    CHECK_EQ_INT(sampler_rank_slice(global, 5, 3, 2, &slice), 0);
}

static void test_degenerate(void) {
    // Every row shares the anchor: no duplicate-free batch of 2 exists.
    uint32_t same_anchor[] = {0, 1, 0, 2, 3, 0, 0, 4};
    Sampler s;
    MnrlError err;
    CHECK(sampler_init(&s, same_anchor, 4, 2, 5, 2, 0, 1, &err) == -1);
    CHECK_CONTAINS(err.msg, "same text");
    // Batch size 1 is still possible: every row once, one per batch.
    CHECK(sampler_init(&s, same_anchor, 4, 2, 5, 1, 1, 1, &err) == 0);
    sampler_begin_epoch(&s, 0);
    uint32_t row, seen = 0;
    size_t batches = 0;
    while (sampler_next_batch(&s, &row) == 1) {
        seen |= 1u << row;
        batches++;
    }
    CHECK_EQ_INT(batches, 4);
    CHECK_EQ_INT(seen, 15);
    sampler_free(&s);

    uint32_t bad_id[] = {0, 1, 2, 9};
    CHECK(sampler_init(&s, bad_id, 2, 2, 5, 2, 0, 1, &err) == -1);
    CHECK_CONTAINS(err.msg, "text id 9");
    CHECK(sampler_init(&s, bad_id, 2, 2, 10, 0, 0, 1, &err) == -1);
    CHECK_CONTAINS(err.msg, "batch size is 0");
    CHECK(sampler_init(&s, bad_id, 0, 2, 10, 2, 0, 1, &err) == -1);
    CHECK_CONTAINS(err.msg, "no rows");

    // Batch larger than the data, drop_last: ST yields nothing and never resamples.
    uint32_t two[] = {0, 1, 2, 3};
    CHECK(sampler_init(&s, two, 2, 2, 4, 3, 1, 1, &err) == 0);
    sampler_begin_epoch(&s, 0);
    uint32_t out[3];
    CHECK_EQ_INT(sampler_next_batch(&s, out), 0);
    CHECK_EQ_INT(sampler_stats(&s)->rows_dropped, 2);
    CHECK_EQ_INT(sampler_stats(&s)->passes, 1);
    sampler_free(&s);
}

int main(void) {
    test_st_golden();
    test_properties();
    test_seek();
    test_ranks();
    test_degenerate();
    TEST_END();
}
