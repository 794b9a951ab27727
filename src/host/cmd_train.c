// cmd_train.c — `mnrl_cuda [train] CONFIG.json ...`. Until the trainer lands it loads and
// validates the configuration, prints it with --print-config, and says what is missing.
#include <inttypes.h>
#include <stdio.h>

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
    MnrlConfig cfg;
    int exit_code = mnrl_cli_config_command(argc, argv, "train", print_train_help, &cfg);
    if (exit_code != MNRL_CLI_CONTINUE) return exit_code;
    fprintf(stderr, "mnrl_cuda train: the configuration is valid (hash %016" PRIx64 "), but "
                    "training is not available yet in this version: it arrives with the CPU "
                    "trainer. `mnrl_cuda prepare` checks the data; --print-config shows the "
                    "resolved configuration.\n",
            config_hash(&cfg));
    config_free(&cfg);
    return 2;
}
