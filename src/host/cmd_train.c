// cmd_train.c — `mnrl_cuda [train] CONFIG.json ...`. Until the trainer lands it loads and
// validates the configuration, prints it with --print-config, and says what is missing.
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/cli.h"
#include "mnrl/config.h"

static void print_train_help(void) {
    printf("usage: mnrl_cuda [train] CONFIG.json [--set section.key=value]... "
           "[--print-config]\n"
           "\n"
           "Fine-tunes the model of CONFIG.json with Multiple Negatives Ranking Loss.\n"
           "\n"
           "options:\n"
           "%s"
           "  -h, --help              this text\n"
           "\n"
           "Relative paths in a config are relative to the working directory.\n"
           "Training itself arrives with the CPU trainer; this version validates and\n"
           "prints configurations.\n",
           mnrl_cli_config_options_help);
}

int mnrl_cmd_train(int argc, char **argv) {
    MnrlConfigArgs args = {0};
    MnrlError err;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_train_help();
            mnrl_cli_config_args_free(&args);
            return 0;
        }
        int taken = mnrl_cli_config_arg(argc, argv, &i, &args, &err);
        if (taken == 0) {
            mnrl_fail(&err, "unknown option %s; see mnrl_cuda train --help", argv[i]);
        }
        if (taken <= 0) {
            fprintf(stderr, "mnrl_cuda train: %s\n", err.msg);
            mnrl_cli_config_args_free(&args);
            return 2;
        }
    }
    if (!args.config_path && !args.print_config) {
        fprintf(stderr, "mnrl_cuda train: no CONFIG.json given, e.g. mnrl_cuda "
                        "configs/nli.json; see mnrl_cuda train --help\n");
        mnrl_cli_config_args_free(&args);
        return 2;
    }
    MnrlConfig cfg;
    int rc = mnrl_cli_load_config(&args, &cfg, &err);
    bool print_config = args.print_config;
    mnrl_cli_config_args_free(&args);
    if (rc != 0) {
        fprintf(stderr, "mnrl_cuda train: %s\n", err.msg);
        return 1;
    }
    if (print_config) {
        char *text = config_to_json(&cfg);
        puts(text);
        free(text);
        config_free(&cfg);
        return 0;
    }
    fprintf(stderr, "mnrl_cuda train: the configuration is valid (hash %016" PRIx64 "), but "
                    "training is not available yet in this version: it arrives with the CPU "
                    "trainer. --print-config shows the resolved configuration.\n",
            config_hash(&cfg));
    config_free(&cfg);
    return 2;
}
