// cmd_train.c — `mnrl_cuda [train] CONFIG.json [--resume latest|DIR] ...`: loads the
// configuration and runs the training program (train.c).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/cli.h"
#include "mnrl/config.h"
#include "mnrl/dist.h"
#include "mnrl/train.h"

static void print_train_help(void) {
    printf("usage: mnrl_cuda [train] CONFIG.json [--set section.key=value]... "
           "[--resume latest|DIR] [--print-config]\n"
           "\n"
           "Fine-tunes the model of CONFIG.json with Multiple Negatives Ranking Loss.\n"
           "\n"
           "options:\n"
           "%s"
           "  --resume latest|DIR     continue a run from its newest checkpoint in\n"
           "                          output.dir/checkpoints, or from the checkpoint folder\n"
           "                          DIR; the config must be the one that wrote it (only\n"
           "                          train.epochs, train.max_steps and the evaluation,\n"
           "                          logging, checkpoint, output and path keys may change)\n"
           "  -h, --help              this text\n"
           "\n"
           "Relative paths in a config are relative to the working directory.\n"
           "Writes output.dir/metrics.jsonl, checkpoints to output.dir/checkpoints (every\n"
           "checkpoint.every_steps steps and at the end) and the trained model to\n"
           "output.dir/final. SIGINT, SIGTERM or SIGUSR1 stop training after the current\n"
           "step with a checkpoint and print the command that resumes it.\n",
           mnrl_cli_config_options_help);
}

// Appends arg to line, in single quotes when the shell would split or expand it.
static void append_word(char *line, const char *arg) {
    int plain = arg[0] != '\0' && strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                              "0123456789_-+=.,/:@%") == strlen(arg);
    strcat(line, " ");
    if (plain) {
        strcat(line, arg);
        return;
    }
    strcat(line, "'");
    for (const char *c = arg; *c; c++) strcat(line, *c == '\'' ? "'\\''" : (char[]){*c, '\0'});
    strcat(line, "'");
}

// "mnrl_cuda train" and argv[1..argc), quoted for the shell, then tail (may be "").
static char *join_command_line(int argc, char **argv, const char *tail) {
    size_t len = strlen("mnrl_cuda train") + strlen(tail) + 1;
    for (int i = 1; i < argc; i++) len += 4 * strlen(argv[i]) + 3;
    char *line = mnrl_malloc(len);
    strcpy(line, "mnrl_cuda train");
    for (int i = 1; i < argc; i++) append_word(line, argv[i]);
    strcat(line, tail);
    return line;
}

// Takes --resume VALUE (or --resume=VALUE) out of argv, leaving the config options.
// Returns 0, or the exit code of a usage error (printed).
static int take_resume(int *argc, char **argv, const char **resume) {
    int kept = 1;
    for (int i = 1; i < *argc; i++) {
        int missing = 0;
        const char *value = mnrl_cli_option_value(*argc, argv, &i, "--resume", &missing);
        if (missing || (value && value[0] == '\0')) {
            return mnrl_cli_usage_error("train", "--resume needs a value: latest, or a checkpoint folder");
        }
        if (value && *resume) return mnrl_cli_usage_error("train", "--resume is given twice");
        if (value) *resume = value;
        else argv[kept++] = argv[i];
    }
    *argc = kept;
    return 0;
}

int mnrl_cmd_train(int argc, char **argv) {
    char *command_line = join_command_line(argc, argv, "");
    const char *resume = NULL;
    int exit_code = take_resume(&argc, argv, &resume);
    MnrlConfig cfg;
    if (exit_code == 0) exit_code = mnrl_cli_config_command(argc, argv, "train", print_train_help, &cfg);
    if (exit_code != MNRL_CLI_CONTINUE) {
        free(command_line);
        return exit_code;
    }
    char *resume_command = join_command_line(argc, argv, " --resume latest");
    TrainInvocation inv = {.command_line = command_line, .resume = resume, .resume_command = resume_command};
    MnrlError err;
    MnrlDist dist;
    exit_code = 0;
    // The collectives work on the backend's buffers: host memory (MPI) for the CPU backend,
    // device memory (NCCL) for CUDA (dist.h). Under mpirun every rank
    // runs this, and a failure on one rank ends them all after its message.
    if (dist_init(&dist, &cfg.dist, cfg.output.dir, train_dist_memory(&cfg), &err) != 0 ||
        train_run(&cfg, &dist, &inv, &err) != 0) {
        if (dist.world > 1) fprintf(stderr, "mnrl_cuda train: rank %d of %d: %s\n", dist.rank, dist.world, err.msg);
        else fprintf(stderr, "mnrl_cuda train: %s\n", err.msg);
        exit_code = 1;
        dist_abort(&dist, exit_code);
    }
    dist_close(&dist);
    free(resume_command);
    free(command_line);
    config_free(&cfg);
    return exit_code;
}
