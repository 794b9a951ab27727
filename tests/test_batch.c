// test_batch.c — step packing (batch.c): rows of a hand-made pre-tokenized cache packed
// column-major (all anchors, all positives, then each negative column) with the right
// cu_seqlens, limits enforced; a packed step cut into chunks (cached MNRL) by sentence and
// token limits; plain text lists packed in chunks by sentence and token limits, each
// text's ids equal to the tokenizer's own encoding.
#include <string.h>

#include "mnrl/batch.h"
#include "test.h"

// 4 rows x 3 columns over 6 texts; text t has t + 2 tokens, token i of text t = 100·t + i.
#define N_ROWS 4
#define N_COLS 3
#define N_TEXTS 6
static const uint32_t text_ids[N_ROWS * N_COLS] = {0, 1, 2, 3, 4, 5, 1, 0, 5, 2, 3, 4};

static void make_cache(DataCache *c, DataCacheHeader *h, uint64_t *offset, uint16_t *tokens) {
    memset(c, 0, sizeof *c);
    memset(h, 0, sizeof *h);
    h->token_bytes = 2;
    offset[0] = 0;
    for (uint32_t t = 0; t < N_TEXTS; t++) {
        offset[t + 1] = offset[t] + t + 2;
        for (uint32_t i = 0; i < t + 2; i++) tokens[offset[t] + i] = (uint16_t)(100 * t + i);
    }
    c->header = h;
    c->n_rows = N_ROWS;
    c->n_cols = N_COLS;
    c->n_texts = N_TEXTS;
    c->text_id = text_ids;
    c->offset = offset;
    c->tokens = tokens;
}

static void test_rows(void) {
    DataCache cache;
    DataCacheHeader header;
    uint64_t offset[N_TEXTS + 1];
    uint16_t tokens[64];
    make_cache(&cache, &header, offset, tokens);
    PackedBatch pb;
    MnrlError err = {{0}};
    CHECK(batch_init_for_cache(&pb, &cache, 3, 8, &err) == 0);
    CHECK_EQ_INT(pb.max_seqs, 9);
    // Token capacity: per column the 3 longest texts. Column 0 holds texts 0 3 1 2
    // (2 5 3 4 tokens): 5+4+3; column 1 texts 1 4 0 3 (3 6 2 5): 6+5+3; column 2 texts
    // 2 5 5 4 (4 7 7 6): 7+7+6. 46, not 3·3·8 = 72.
    CHECK_EQ_INT(pb.max_tokens, 46);
    // No 3 of the 4 rows need more (brute force over every choice).
    int most = 0;
    for (int skip = 0; skip < N_ROWS; skip++) {
        int sum = 0;
        for (int r = 0; r < N_ROWS; r++)
            for (int c = 0; r != skip && c < N_COLS; c++) sum += (int)text_ids[r * N_COLS + c] + 2;
        if (sum > most) most = sum;
    }
    CHECK_EQ_INT(most, 45);
    CHECK(pb.max_tokens >= most);

    const uint32_t rows[3] = {2, 0, 3};
    CHECK(batch_pack_rows(&pb, &cache, rows, 3, &err) == 0);
    // Column-major: anchors of rows 2, 0, 3, then their positives, then their negatives.
    const uint32_t expect_text[9] = {1, 0, 2, 0, 1, 3, 5, 2, 4};
    CHECK_EQ_INT(pb.S, 9);
    CHECK_EQ_INT(pb.rows, 3);
    CHECK_EQ_INT(pb.cols, 3);
    int t = 0, ok = 1;
    for (int s = 0; s < 9; s++) {
        int len = (int)expect_text[s] + 2;
        CHECK_EQ_INT(pb.cu_seqlens[s], t);
        for (int i = 0; i < len; i++) ok &= pb.ids[t + i] == (int32_t)(100 * expect_text[s] + (uint32_t)i);
        t += len;
    }
    CHECK(ok);
    CHECK_EQ_INT(pb.cu_seqlens[9], t);
    CHECK_EQ_INT(pb.T, t);
    CHECK_EQ_INT(pb.max_len, 7);

    // Too many rows for the buffers; a row index outside the data; a text over max_seqlen.
    const uint32_t four[4] = {0, 1, 2, 3};
    CHECK(batch_pack_rows(&pb, &cache, four, 4, &err) == -1);
    CHECK_CONTAINS(err.msg, "4 rows of 3 texts exceed the 9 sentences");
    const uint32_t outside[1] = {4};
    CHECK(batch_pack_rows(&pb, &cache, outside, 1, &err) == -1);
    CHECK_CONTAINS(err.msg, "row 4 is outside the data's 4 rows");
    batch_free(&pb);
    CHECK(batch_init_for_cache(&pb, &cache, 3, 6, &err) == 0);  // lengths capped at 6: 5+4+3 + 6+5+3 + 6+6+6
    CHECK_EQ_INT(pb.max_tokens, 44);
    const uint32_t long_text[1] = {1};  // row 1 = texts 3, 4, 5: text 5 has 7 tokens
    CHECK(batch_pack_rows(&pb, &cache, long_text, 1, &err) == -1);
    CHECK_CONTAINS(err.msg, "text 5 has 7 tokens, outside 1..6");
    batch_free(&pb);
    CHECK(batch_init(&pb, 4, 5, 6, &err) == -1);
    CHECK_CONTAINS(err.msg, "tokens 5 >= max_seq_length");
    CHECK(batch_init_for_cache(&pb, &cache, (size_t)1 << 40, 64, &err) == -1);
    CHECK_CONTAINS(err.msg, "do not fit one packed step");
}

// Cuts step into chunks of chunk's capacities; *sizes receives each chunk's sentences.
// Checks that every chunk is its stretch of the step, rebased, and knows where it sits.
static int cut_chunks(PackedBatch *chunk, const PackedBatch *step, int *sizes) {
    int n = 0, ok = 1;
    for (int first = 0; first < step->S; n++) {
        int k = batch_pack_chunk(chunk, step, first);
        CHECK(k >= 1);
        if (k < 1) break;
        int t0 = step->cu_seqlens[first];
        ok &= chunk->S == k && chunk->first_seq == first && chunk->first_token == t0 &&
              chunk->S <= chunk->max_seqs && chunk->T <= chunk->max_tokens &&
              chunk->T == step->cu_seqlens[first + k] - t0 &&
              memcmp(chunk->ids, step->ids + t0, (size_t)chunk->T * sizeof *chunk->ids) == 0;
        for (int s = 0; s <= k; s++) ok &= chunk->cu_seqlens[s] == step->cu_seqlens[first + s] - t0;
        sizes[n] = k;
        first += k;
    }
    CHECK(ok);
    CHECK_EQ_INT(batch_pack_chunk(chunk, step, step->S), 0);
    return n;
}

static void test_chunks(void) {
    DataCache cache;
    DataCacheHeader header;
    uint64_t offset[N_TEXTS + 1];
    uint16_t tokens[64];
    make_cache(&cache, &header, offset, tokens);
    PackedBatch step, chunk;
    MnrlError err = {{0}};
    CHECK(batch_init_for_cache(&step, &cache, 3, 8, &err) == 0);
    const uint32_t rows[3] = {2, 0, 3};
    CHECK(batch_pack_rows(&step, &cache, rows, 3, &err) == 0);  // lengths 3 2 4 | 2 3 5 | 7 4 6
    // One row's worth: 3 sentences, the longest text of each column: 5 + 6 + 7 tokens.
    CHECK(batch_init_for_cache(&chunk, &cache, 1, 8, &err) == 0);
    CHECK_EQ_INT(chunk.max_seqs, 3);
    CHECK_EQ_INT(chunk.max_tokens, 18);
    int sizes[9];
    CHECK_EQ_INT(cut_chunks(&chunk, &step, sizes), 3);  // 9, 10 and 17 tokens
    CHECK(sizes[0] == 3 && sizes[1] == 3 && sizes[2] == 3);
    batch_free(&chunk);
    // 9 tokens: cut by tokens, 3 2 4 | 2 3 | 5 | 7 | 4 | 6.
    CHECK(batch_init(&chunk, 9, 9, 8, &err) == 0);
    CHECK_EQ_INT(cut_chunks(&chunk, &step, sizes), 6);
    CHECK(sizes[0] == 3 && sizes[1] == 2 && sizes[2] == 1 && sizes[5] == 1);
    // Packing the buffer as a whole step again forgets that it was a chunk.
    const uint32_t row0[1] = {0};  // texts of 2, 3 and 4 tokens
    CHECK(batch_pack_rows(&chunk, &cache, row0, 1, &err) == 0);
    CHECK(chunk.first_seq == 0 && chunk.first_token == 0);
    batch_free(&chunk);
    batch_free(&step);
}

static void test_texts(void) {
    Tokenizer *tok = NULL;
    MnrlError err = {{0}};
    int rc = tokenizer_load(MNRL_SOURCE_DIR "/models/bert-base-uncased", &tok, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc != 0) return;
    const char *texts[] = {"A man is playing a guitar.", "Hi", "",
                           "The quick brown fox jumps over the lazy dog again and again.",
                           "Two dogs run.", "short"};
    size_t n = sizeof texts / sizeof texts[0], lens[6];
    for (size_t i = 0; i < n; i++) lens[i] = strlen(texts[i]);
    PackedBatch pb;
    // At most 3 sentences / 16 tokens per chunk, every text truncated to 8 tokens.
    CHECK(batch_init(&pb, 3, 16, 8, &err) == 0);
    int32_t want[8];
    size_t chunk_sizes[6], n_chunks = 0, done = 0;
    int all_equal = 1;
    while (done < n) {
        size_t k = batch_pack_texts(&pb, tok, texts + done, lens + done, n - done);
        CHECK(k >= 1);
        if (k == 0) break;
        CHECK_EQ_INT(pb.S, (int)k);
        CHECK(pb.T <= 16);
        for (size_t i = 0; i < k; i++) {
            int len = tokenizer_encode(tok, texts[done + i], lens[done + i], 8, want);
            all_equal &= pb.cu_seqlens[i + 1] - pb.cu_seqlens[i] == len &&
                         memcmp(pb.ids + pb.cu_seqlens[i], want, (size_t)len * sizeof *want) == 0;
        }
        chunk_sizes[n_chunks++] = k;
        done += k;
    }
    CHECK(all_equal);
    // Lengths 9->8 ([CLS] a man is playing a guitar . [SEP] truncated), 3, 2 | 8, 5 | 3:
    // the first chunk is full at 3 sentences; 8 + 5 = 13 tokens leave no room for "short".
    CHECK_EQ_INT(n_chunks, 3);
    CHECK_EQ_INT(chunk_sizes[0], 3);
    CHECK_EQ_INT(chunk_sizes[1], 2);
    CHECK_EQ_INT(chunk_sizes[2], 1);
    CHECK_EQ_INT(batch_pack_texts(&pb, tok, texts, lens, 0), 0);
    batch_free(&pb);
    tokenizer_free(tok);
}

int main(void) {
    test_rows();
    test_chunks();
    test_texts();
    TEST_END();
}
