// cli.h — subcommand entry points. main.c parses the subcommand name and hands the
// remaining arguments to one of these (argv[0] is the subcommand's name, or the program's
// for the default `train`); each returns the process exit code and prints its own errors.
#ifndef MNRL_CLI_H
#define MNRL_CLI_H

#include <stdbool.h>

#include "mnrl/common.h"
#include "mnrl/config.h"

// mnrl_cuda tokenize MODEL_DIR [--input FILE] [--max-seq-length N]
int mnrl_cmd_tokenize(int argc, char **argv);

// mnrl_cuda eval MODEL_DIR [--sts-file FILE] [--split NAME]... [--max-seq-length N] [--batch-size N]
int mnrl_cmd_eval(int argc, char **argv);

// mnrl_cuda encode MODEL_DIR --output FILE.npy [--input FILE] [--max-seq-length N] [--batch-size N]
int mnrl_cmd_encode(int argc, char **argv);

// mnrl_cuda export CHECKPOINT_DIR --output DIR: a checkpoint as a sentence-transformers folder.
int mnrl_cmd_export(int argc, char **argv);

// mnrl_cuda [train] CONFIG.json [--set section.key=value]... [--print-config]
int mnrl_cmd_train(int argc, char **argv);

// mnrl_cuda prepare CONFIG.json [--set section.key=value]... [--print-config]
int mnrl_cmd_prepare(int argc, char **argv);

// ---- shared by the subcommands that run from a config -----------------------------------

// The config options: `CONFIG.json`, `--set section.key=value` (repeatable),
// `--print-config`. Each command loops over its arguments, offers each one to
// mnrl_cli_config_arg and handles the ones it declines itself.
typedef struct {
    const char *config_path;  // NULL: none given (the embedded demo, for --print-config)
    const char **sets;        // "section.key=value" in command-line order (into argv)
    int n_sets;
    bool print_config;
} MnrlConfigArgs;

// Takes argv[*i] (and for --set its value, advancing *i) when it is a config option or
// the config path: returns 1 when taken, 0 when it is something else, -1 on error.
int mnrl_cli_config_arg(int argc, char **argv, int *i, MnrlConfigArgs *args, MnrlError *err);

// Loads args->config_path, or the embedded demo config when none was given, with the
// --set overrides; prints the config's warnings to stderr.
int mnrl_cli_load_config(const MnrlConfigArgs *args, MnrlConfig *cfg, MnrlError *err);

void mnrl_cli_config_args_free(MnrlConfigArgs *args);

// The whole front of a config-driven subcommand `name`: parses CONFIG, --set,
// --print-config and --help, loads the config, and handles --help and --print-config
// itself. Returns MNRL_CLI_CONTINUE with *cfg loaded when the command should run;
// otherwise the exit code (0 after --help or --print-config, 1 for a config error, 2 for
// a usage error), its messages already printed.
#define MNRL_CLI_CONTINUE (-1)
int mnrl_cli_config_command(int argc, char **argv, const char *name, void (*print_help)(void),
                            MnrlConfig *cfg);

// The data section of cfg as the data module's options (strings borrowed from cfg; the
// triplet recipe's partner draws use train.seed).
void mnrl_cli_data_options(const MnrlConfig *cfg, DataOptions *opt);

// The value of "--name VALUE" or "--name=VALUE" at argv[*i] (advancing *i past a separate
// value); NULL when argv[*i] is another argument, or, with *missing set, when the value
// is missing.
const char *mnrl_cli_option_value(int argc, char **argv, int *i, const char *name, int *missing);

// A whole decimal integer in [min, max]; -1 otherwise.
int mnrl_cli_parse_long(const char *text, long min, long max, long *out);

// Prints "mnrl_cuda COMMAND: MESSAGE" and the pointer to --help; returns 2 (usage error).
int mnrl_cli_usage_error(const char *command, const char *message);

// The arguments shared by the commands that run a model folder (eval, encode).
typedef struct {
    const char *model_dir;
    long max_seq_length;  // 0: the folder's own (see folder_encoder_open)
    long batch_size;
} MnrlFolderArgs;

// Takes argv[*i] when it is MODEL_DIR, --max-seq-length N or --batch-size N: returns 1
// when taken, 0 for another option (the command's own), -1 on a usage error (in err).
int mnrl_cli_folder_arg(int argc, char **argv, int *i, MnrlFolderArgs *args, MnrlError *err);

// The lines of --help that describe the config options.
extern const char mnrl_cli_config_options_help[];

// The name of the embedded demo config in messages.
#define MNRL_DEMO_CONFIG_NAME "(embedded configs/demo.json)"

#endif
