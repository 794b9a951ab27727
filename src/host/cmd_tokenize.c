// cmd_tokenize.c — `mnrl_cuda tokenize MODEL_DIR [--input FILE] [--max-seq-length N]`:
// one line of token ids per input line, exactly as HF's tokenizer gives them (for
// debugging and for checking parity from outside).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/cli.h"
#include "mnrl/textio.h"
#include "mnrl/tokenizer.h"

static const char *tokenize_usage =
    "usage: mnrl_cuda tokenize MODEL_DIR [--input FILE] [--max-seq-length N]\n"
    "\n"
    "Prints the token ids of each input line ([CLS] ... [SEP], space-separated), one line\n"
    "per input line, as Hugging Face's BertTokenizerFast with truncation gives them.\n"
    "\n"
    "  MODEL_DIR             folder with vocab.txt (and tokenizer_config.json, tokenizer.json)\n"
    "  --input FILE          text file, plain or .gz (default: standard input)\n"
    "  --max-seq-length N    at most N ids per line, N >= 2 (default: the model's\n"
    "                        model_max_length, else 512)\n";

static int usage_error(const char *fmt, const char *arg) {
    char message[512];
    snprintf(message, sizeof message, fmt, arg);
    return mnrl_cli_usage_error("tokenize", message);
}

int mnrl_cmd_tokenize(int argc, char **argv) {
    const char *model_dir = NULL, *input = "-", *max_arg = NULL;
    for (int i = 1; i < argc; i++) {
        int missing = 0;
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(tokenize_usage, stdout);
            return 0;
        } else if ((v = mnrl_cli_option_value(argc, argv, &i, "--input", &missing))) {
            input = v;
        } else if ((v = mnrl_cli_option_value(argc, argv, &i, "--max-seq-length", &missing))) {
            max_arg = v;
        } else if (missing) {
            return usage_error("%s needs a value", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("unknown option '%s'", argv[i]);
        } else if (model_dir) {
            return usage_error("unexpected argument '%s'; give exactly one MODEL_DIR", argv[i]);
        } else {
            model_dir = argv[i];
        }
    }
    if (!model_dir) return usage_error("%smissing MODEL_DIR", "");
    long max_len = 0;
    if (max_arg && mnrl_cli_parse_long(max_arg, 2, 1000000, &max_len) != 0)
        return usage_error("--max-seq-length must be an integer in [2, 1000000], got '%s'", max_arg);

    MnrlError err;
    Tokenizer *tok;
    if (tokenizer_load(model_dir, &tok, &err) != 0) {
        fprintf(stderr, "mnrl_cuda tokenize: %s\n", err.msg);
        return 1;
    }
    if (!max_arg) max_len = tokenizer_model_max_length(tok);
    LineReader reader;
    if (line_reader_open(&reader, input, &err) != 0) {
        fprintf(stderr, "mnrl_cuda tokenize: %s\n", err.msg);
        tokenizer_free(tok);
        return 1;
    }
    int32_t *ids = mnrl_malloc((size_t)max_len * sizeof *ids);
    char *line;
    size_t len;
    int rc;
    while ((rc = line_reader_next(&reader, &line, &len, &err)) == 1) {
        int n = tokenizer_encode(tok, line, len, (int)max_len, ids);
        for (int k = 0; k < n; k++) printf(k ? " %d" : "%d", (int)ids[k]);
        putchar('\n');
    }
    if (rc < 0) fprintf(stderr, "mnrl_cuda tokenize: %s\n", err.msg);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "mnrl_cuda tokenize: cannot write the output: %s\n", strerror(errno));
        rc = -1;
    }
    free(ids);
    line_reader_close(&reader);
    tokenizer_free(tok);
    return rc < 0 ? 1 : 0;
}
