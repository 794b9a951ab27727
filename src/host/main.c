// main.c — the mnrl_cuda command: picks the subcommand and hands it the arguments.
// Adding a subcommand is one row of `subcommands` (and its entry point in cli.h).
#include <stdio.h>
#include <string.h>

#include "mnrl/cli.h"
#include "mnrl/common.h"
#ifdef MNRL_HAVE_CUDA
#include "mnrl/cuda_info.h"
#endif

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Subcommand;

static const Subcommand subcommands[] = {
    {"train", mnrl_cmd_train, "train a model from CONFIG.json (the default subcommand)"},
    {"prepare", mnrl_cmd_prepare, "check the data, cache and batches of CONFIG.json (a dry run)"},
    {"tokenize", mnrl_cmd_tokenize, "print the token ids of text lines, as the HF tokenizer"},
    {"eval", mnrl_cmd_eval, "evaluate a model folder on an STS file (Spearman, Pearson)"},
    {"encode", mnrl_cmd_encode, "embed text lines with a model folder into a .npy file"},
    {"export", mnrl_cmd_export, "write a sentence-transformers folder from a checkpoint"},
};
#define N_SUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

static void print_help(FILE *out) {
    fprintf(out,
            "mnrl_cuda %s: fine-tunes sentence-embedding models with Multiple Negatives\n"
            "Ranking Loss.\n"
            "\n"
            "usage: mnrl_cuda [train] CONFIG.json [--set section.key=value]... "
            "[--resume latest|DIR] [--print-config]\n"
            "       mnrl_cuda SUBCOMMAND [ARGS]...   (mnrl_cuda SUBCOMMAND --help for its "
            "options)\n"
            "       mnrl_cuda --help | --version\n"
            "\n"
            "subcommands:\n",
            MNRL_VERSION);
    for (size_t i = 0; i < N_SUBCOMMANDS; i++) {
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].summary);
    }
    fprintf(out, "\n"
                 "`mnrl_cuda --print-config` prints the embedded default configuration\n"
                 "(configs/demo.json); every key is described in docs/config.md.\n");
}

static void print_version(void) {
    printf("mnrl_cuda %s\n", MNRL_VERSION);
#ifdef __OPTIMIZE__
    const char *build = "optimized";
#else
    const char *build = "debug (unoptimized)";
#endif
#ifdef __SANITIZE_ADDRESS__
    const char *sanitizers = ", ASan+UBSan";
#else
    const char *sanitizers = "";
#endif
#ifdef __clang__
    const char *compiler = "";  // clang's __VERSION__ names itself
#else
    const char *compiler = "gcc ";
#endif
    printf("build: %s%s, compiler %s%s\n", build, sanitizers, compiler, __VERSION__);
#ifdef MNRL_HAVE_CUDA
    char description[1024];
    mnrl_cuda_describe(description, sizeof description);
    printf("CUDA: %s\n", description);
#else
    printf("CUDA: not built (CPU only)\n");
#endif
#ifdef MNRL_HAVE_MPI
    printf("MPI: built\n");
#else
    printf("MPI: not built\n");
#endif
}

static int is_config_path(const char *arg) {
    size_t n = strlen(arg);
    return (n >= 5 && strcmp(arg + n - 5, ".json") == 0) ||
           (n >= 8 && strcmp(arg + n - 8, ".json.gz") == 0);
}

static int unknown_subcommand(const char *name) {
    const char *names[N_SUBCOMMANDS];
    for (size_t i = 0; i < N_SUBCOMMANDS; i++) names[i] = subcommands[i].name;
    const char *close = mnrl_closest_match(name, names, N_SUBCOMMANDS);
    fprintf(stderr, "mnrl_cuda: unknown subcommand \"%s\"", name);
    if (close) fprintf(stderr, " (did you mean \"%s\"?)", close);
    fprintf(stderr, "; the subcommands are");
    for (size_t i = 0; i < N_SUBCOMMANDS; i++) fprintf(stderr, " %s", names[i]);
    fprintf(stderr, ", and a config file must end in .json; see mnrl_cuda --help\n");
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const char *first = argv[1];
    if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0 || strcmp(first, "help") == 0) {
        print_help(stdout);
        return 0;
    }
    if (strcmp(first, "--version") == 0 || strcmp(first, "-V") == 0) {
        print_version();
        return 0;
    }
    for (size_t i = 0; i < N_SUBCOMMANDS; i++) {
        if (strcmp(first, subcommands[i].name) != 0) continue;
        return subcommands[i].run(argc - 1, argv + 1);
    }
    // `train` is the default: a config file or an option first (`mnrl_cuda --print-config`).
    if (is_config_path(first) || first[0] == '-') return mnrl_cmd_train(argc, argv);
    return unknown_subcommand(first);
}
