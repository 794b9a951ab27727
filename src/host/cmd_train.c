// cmd_train.c — `mnrl_cuda [train] CONFIG.json ...`: loads the configuration and runs the
// training program (train.c).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/cli.h"
#include "mnrl/config.h"
#include "mnrl/dist.h"
#include "mnrl/train.h"

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
           "Writes output.dir/metrics.jsonl and the trained model to output.dir/final.\n",
           mnrl_cli_config_options_help);
}

// The command as typed, for the model card ("mnrl_cuda train configs/nli.json --set ...").
static char *join_command_line(int argc, char **argv) {
    size_t len = strlen("mnrl_cuda train") + 1;
    for (int i = 1; i < argc; i++) len += strlen(argv[i]) + 1;
    char *line = mnrl_malloc(len);
    strcpy(line, "mnrl_cuda train");
    for (int i = 1; i < argc; i++) {
        strcat(line, " ");
        strcat(line, argv[i]);
    }
    return line;
}

int mnrl_cmd_train(int argc, char **argv) {
    MnrlConfig cfg;
    int exit_code = mnrl_cli_config_command(argc, argv, "train", print_train_help, &cfg);
    if (exit_code != MNRL_CLI_CONTINUE) return exit_code;
    char *command_line = join_command_line(argc, argv);
    MnrlError err;
    MnrlDist dist;
    exit_code = 0;
    // The CPU backend's collectives work on host memory (dist.h); under mpirun every rank
    // runs this, and a failure on one rank ends them all after its message.
    if (dist_init(&dist, &cfg.dist, cfg.output.dir, MNRL_DIST_HOST_MEMORY, &err) != 0 ||
        train_run(&cfg, &dist, command_line, &err) != 0) {
        if (dist.world > 1) fprintf(stderr, "mnrl_cuda train: rank %d of %d: %s\n", dist.rank, dist.world, err.msg);
        else fprintf(stderr, "mnrl_cuda train: %s\n", err.msg);
        exit_code = 1;
        dist_abort(&dist, exit_code);
    }
    dist_close(&dist);
    free(command_line);
    config_free(&cfg);
    return exit_code;
}
