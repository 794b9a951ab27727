// cmd_encode.c — `mnrl_cuda encode MODEL_DIR --output FILE.npy`: one embedding per input
// line (mean pooling, as SentenceTransformer(MODEL_DIR).encode without normalisation),
// written as a float32 [lines, hidden] NumPy file.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/cli.h"
#include "mnrl/encode.h"
#include "mnrl/npy.h"
#include "mnrl/textio.h"

static const char encode_usage[] =
    "usage: mnrl_cuda encode MODEL_DIR --output FILE.npy [--input FILE] [--max-seq-length N]\n"
    "                        [--batch-size N]\n"
    "\n"
    "Embeds every line of the input (one sentence per line) with MODEL_DIR and writes a\n"
    "float32 NumPy array [lines, hidden] (np.load reads it), row i for line i: the mean-\n"
    "pooled last hidden states, as SentenceTransformer(MODEL_DIR).encode gives them before\n"
    "any Normalize module. CPU backend.\n"
    "\n"
    "  --output FILE.npy    where the embeddings go (written atomically)\n"
    "  --input FILE         text, plain or .gz (default: standard input)\n"
    "  --max-seq-length N   tokens per sentence (default: the folder's\n"
    "                       sentence_bert_config.json, else the tokenizer's limit)\n"
    "  --batch-size N       sentences per forward pass (default 128)\n";

// Every line of path, kept in one growing buffer: texts[i] points into *storage.
typedef struct {
    char *storage;
    size_t used, cap;
    size_t *offset, *lens;
    size_t n, n_cap;
} Lines;

static int read_lines(const char *path, Lines *lines, MnrlError *err) {
    LineReader r;
    if (line_reader_open(&r, path, err) != 0) return -1;
    char *line;
    size_t len;
    int rc;
    while ((rc = line_reader_next(&r, &line, &len, err)) == 1) {
        if (lines->used + len + 1 > lines->cap) {
            lines->cap = 2 * (lines->used + len + 1);
            lines->storage = mnrl_realloc(lines->storage, lines->cap);
        }
        if (lines->n == lines->n_cap) {
            lines->n_cap = lines->n_cap ? 2 * lines->n_cap : 1024;
            lines->offset = mnrl_realloc(lines->offset, lines->n_cap * sizeof *lines->offset);
            lines->lens = mnrl_realloc(lines->lens, lines->n_cap * sizeof *lines->lens);
        }
        memcpy(lines->storage + lines->used, line, len + 1);
        lines->offset[lines->n] = lines->used;
        lines->lens[lines->n++] = len;
        lines->used += len + 1;
    }
    line_reader_close(&r);
    return rc < 0 ? -1 : 0;
}

static int encode_lines(FolderEncoder *fe, const Lines *lines, const char *output, MnrlError *err) {
    size_t H = (size_t)fe->model.C;
    const char **texts = mnrl_calloc(lines->n, sizeof *texts);
    for (size_t i = 0; i < lines->n; i++) texts[i] = lines->storage + lines->offset[i];
    float *embeddings = mnrl_calloc(lines->n * H, sizeof *embeddings);
    int rc = encoder_run(&fe->encoder, texts, lines->lens, lines->n, embeddings, err);
    int64_t shape[2] = {(int64_t)lines->n, (int64_t)H};
    if (rc == 0) rc = npy_write(output, embeddings, 2, shape, NPY_F32, err);
    if (rc == 0) fprintf(stderr, "encoded %zu sentences into %s [%zu, %zu]\n", lines->n, output, lines->n, H);
    free(embeddings);
    free(texts);
    return rc;
}

int mnrl_cmd_encode(int argc, char **argv) {
    const char *input = "-", *output = NULL;
    MnrlFolderArgs args = {.batch_size = 128};
    MnrlError err;
    for (int i = 1; i < argc; i++) {
        int missing = 0, taken;
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(encode_usage, stdout);
            return 0;
        } else if ((v = mnrl_cli_option_value(argc, argv, &i, "--input", &missing))) {
            input = v;
        } else if ((v = mnrl_cli_option_value(argc, argv, &i, "--output", &missing))) {
            output = v;
        } else if (missing) {
            mnrl_fail(&err, "a value is missing after %s", argv[i]);
            return mnrl_cli_usage_error("encode", err.msg);
        } else if ((taken = mnrl_cli_folder_arg(argc, argv, &i, &args, &err)) != 1) {
            if (taken == 0) mnrl_fail(&err, "unknown option '%s'", argv[i]);
            return mnrl_cli_usage_error("encode", err.msg);
        }
    }
    if (!args.model_dir) return mnrl_cli_usage_error("encode", "missing MODEL_DIR");
    if (!output) return mnrl_cli_usage_error("encode", "missing --output FILE.npy");
    Lines lines = {0};
    FolderEncoder fe;
    int rc = read_lines(input, &lines, &err);
    if (rc == 0) rc = folder_encoder_open(&fe, args.model_dir, (int)args.max_seq_length, (int)args.batch_size, &err);
    if (rc == 0) {
        rc = encode_lines(&fe, &lines, output, &err);
        folder_encoder_close(&fe);
    }
    if (rc != 0) fprintf(stderr, "mnrl_cuda encode: %s\n", err.msg);
    free(lines.storage);
    free(lines.offset);
    free(lines.lens);
    return rc == 0 ? 0 : 1;
}
