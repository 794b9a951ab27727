// bench_tokenizer.c — single-thread tokenizer throughput: every line of TEXTS encoded
// PASSES times with max_len 512 (usage: bench_tokenizer MODEL_DIR TEXTS [PASSES]).
// bench/tokenizer.sh runs it next to HF tokenizers on the same texts.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/common.h"
#include "mnrl/textio.h"
#include "mnrl/tokenizer.h"

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer MODEL_DIR TEXTS [PASSES]\n");
        return 2;
    }
    int passes = argc > 3 ? atoi(argv[3]) : 5;
    MnrlError err;
    Tokenizer *tok;
    char *data;
    size_t len;
    if (tokenizer_load(argv[1], &tok, &err) != 0 || mnrl_read_file(argv[2], &data, &len, &err) != 0) {
        fprintf(stderr, "bench_tokenizer: %s\n", err.msg);
        return 1;
    }
    // Line starts and lengths, so that the timed loop does nothing but encode.
    size_t n_lines = 0, cap = 1024;
    size_t *start = mnrl_malloc(cap * sizeof *start), *length = mnrl_malloc(cap * sizeof *length);
    for (size_t at = 0; at < len;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t end = nl ? (size_t)(nl - data) : len;
        if (n_lines == cap) {
            cap *= 2;
            start = mnrl_realloc(start, cap * sizeof *start);
            length = mnrl_realloc(length, cap * sizeof *length);
        }
        start[n_lines] = at;
        length[n_lines++] = end - at;
        at = end + 1;
    }
    int32_t ids[512];
    long long total_ids = 0;
    double t0 = mnrl_now();
    for (int p = 0; p < passes; p++)
        for (size_t i = 0; i < n_lines; i++) total_ids += tokenizer_encode(tok, data + start[i], length[i], 512, ids);
    double seconds = mnrl_now() - t0;
    double sentences = (double)n_lines * passes;
    printf("ours: %.0f sentences in %.3f s = %.0f sentences/s, %.1f ids/sentence (1 thread)\n", sentences, seconds,
           sentences / seconds, (double)total_ids / sentences);
    free(start);
    free(length);
    free(data);
    tokenizer_free(tok);
    return 0;
}
