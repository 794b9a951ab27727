// cmd_eval.c — `mnrl_cuda eval MODEL_DIR`: STS evaluation of a model folder (a trained
// OUT/final or any HF/sentence-transformers BERT folder): Spearman and Pearson ×100 of the
// cosine similarities against the gold scores, per split, as sentence-transformers'
// EmbeddingSimilarityEvaluator reports them.
#include <stdio.h>
#include <string.h>

#include "mnrl/cli.h"
#include "mnrl/dataset.h"
#include "mnrl/encode.h"
#include "mnrl/eval.h"

#define MAX_SPLITS 16

static const char eval_usage[] =
    "usage: mnrl_cuda eval MODEL_DIR [--sts-file FILE] [--split NAME]... [--max-seq-length N]\n"
    "                      [--batch-size N]\n"
    "\n"
    "Evaluates MODEL_DIR on an STS file: the cosine similarity of each pair's embeddings\n"
    "against the gold score, Spearman and Pearson x100 (sentence-transformers'\n"
    "EmbeddingSimilarityEvaluator), one line per split. CPU backend.\n"
    "\n"
    "  MODEL_DIR            model folder (config.json, model.safetensors, vocab.txt, ...)\n"
    "  --sts-file FILE      STS file, plain or .gz (default data/stsbenchmark.tsv.gz):\n"
    "                       split genre dataset year sid score sentence1 sentence2, or any\n"
    "                       TSV whose header names sentence1, sentence2 and score\n"
    "  --split NAME         a split to evaluate, repeatable (default: dev and test; a file\n"
    "                       without a split column is evaluated whole)\n"
    "  --max-seq-length N   tokens per sentence (default: the folder's\n"
    "                       sentence_bert_config.json, else the tokenizer's limit)\n"
    "  --batch-size N       sentences per forward pass (default 128)\n";

static int evaluate_split(FolderEncoder *fe, const char *sts_file, const char *split, MnrlError *err) {
    StsSet set;
    if (sts_load(sts_file, split, &set, err) != 0) return -1;
    StsEvaluator ev;
    sts_evaluator_init(&ev, &set, (size_t)fe->model.C);
    StsScores scores;
    int rc = sts_evaluate(&ev, &fe->encoder, &scores, err);
    if (rc == 0) {
        printf("%s %s: spearman %.2f | pearson %.2f | %zu pairs\n", sts_file, split[0] ? split : "(all)",
               scores.spearman, scores.pearson, scores.pairs);
    }
    sts_evaluator_free(&ev);
    sts_free(&set);
    return rc;
}

int mnrl_cmd_eval(int argc, char **argv) {
    const char *sts_file = "data/stsbenchmark.tsv.gz";
    const char *splits[MAX_SPLITS];
    int n_splits = 0;
    MnrlFolderArgs args = {.batch_size = 128};
    MnrlError err;
    for (int i = 1; i < argc; i++) {
        int missing = 0, taken;
        const char *v;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(eval_usage, stdout);
            return 0;
        } else if ((v = mnrl_cli_option_value(argc, argv, &i, "--sts-file", &missing))) {
            sts_file = v;
        } else if ((v = mnrl_cli_option_value(argc, argv, &i, "--split", &missing))) {
            if (n_splits == MAX_SPLITS) return mnrl_cli_usage_error("eval", "too many --split options");
            splits[n_splits++] = v;
        } else if (missing) {
            mnrl_fail(&err, "a value is missing after %s", argv[i]);
            return mnrl_cli_usage_error("eval", err.msg);
        } else if ((taken = mnrl_cli_folder_arg(argc, argv, &i, &args, &err)) != 1) {
            if (taken == 0) mnrl_fail(&err, "unknown option '%s'", argv[i]);
            return mnrl_cli_usage_error("eval", err.msg);
        }
    }
    if (!args.model_dir) return mnrl_cli_usage_error("eval", "missing MODEL_DIR");
    if (n_splits == 0) {
        splits[n_splits++] = "dev";
        splits[n_splits++] = "test";
    }
    FolderEncoder fe;
    if (folder_encoder_open(&fe, args.model_dir, (int)args.max_seq_length, (int)args.batch_size, &err) != 0) {
        fprintf(stderr, "mnrl_cuda eval: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    for (int s = 0; s < n_splits && rc == 0; s++) rc = evaluate_split(&fe, sts_file, splits[s], &err);
    if (rc != 0) fprintf(stderr, "mnrl_cuda eval: %s\n", err.msg);
    folder_encoder_close(&fe);
    return rc == 0 ? 0 : 1;
}
