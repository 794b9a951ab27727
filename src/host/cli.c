// cli.c — the options every config-driven subcommand shares (see include/mnrl/cli.h).
#include "mnrl/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char mnrl_cli_config_options_help[] =
    "  CONFIG.json             the run configuration (keys: docs/config.md)\n"
    "  --set section.key=VALUE override one key; VALUE is read as JSON when it parses\n"
    "                          (numbers, true/false, null, [arrays]), else as a string;\n"
    "                          repeatable, applied in order after the file\n"
    "  --print-config          print the fully resolved configuration (a valid config\n"
    "                          file) and exit; without CONFIG.json it prints the embedded\n"
    "                          default, configs/demo.json\n";

int mnrl_cli_config_arg(int argc, char **argv, int *i, MnrlConfigArgs *args, MnrlError *err) {
    const char *arg = argv[*i];
    if (strcmp(arg, "--print-config") == 0) {
        args->print_config = true;
        return 1;
    }
    const char *assignment = NULL;
    if (strcmp(arg, "--set") == 0) {
        if (*i + 1 >= argc) return mnrl_fail(err, "--set needs a section.key=value after it");
        assignment = argv[++*i];
    } else if (strncmp(arg, "--set=", 6) == 0) {
        assignment = arg + 6;
    }
    if (assignment) {
        // At most argc assignments exist, so one allocation holds them all.
        if (!args->sets) args->sets = mnrl_calloc((size_t)argc, sizeof *args->sets);
        args->sets[args->n_sets++] = assignment;
        return 1;
    }
    if (arg[0] == '-') return 0;
    if (args->config_path) {
        return mnrl_fail(err, "two configs given (%s and %s); merge them, or override single "
                              "keys with --set", args->config_path, arg);
    }
    args->config_path = arg;
    return 1;
}

int mnrl_cli_load_config(const MnrlConfigArgs *args, MnrlConfig *cfg, MnrlError *err) {
    int rc = args->config_path
                 ? config_load(args->config_path, args->sets, args->n_sets, cfg, err)
                 : config_from_string(MNRL_DEMO_CONFIG_NAME, mnrl_demo_config_json, args->sets,
                                      args->n_sets, cfg, err);
    if (rc == 0 && cfg->warnings) fprintf(stderr, "warning: %s\n", cfg->warnings);
    return rc;
}

void mnrl_cli_config_args_free(MnrlConfigArgs *args) {
    free(args->sets);
    memset(args, 0, sizeof *args);
}

int mnrl_cli_config_command(int argc, char **argv, const char *name, void (*print_help)(void),
                            MnrlConfig *cfg) {
    MnrlConfigArgs args = {0};
    MnrlError err;
    int exit_code = MNRL_CLI_CONTINUE;
    for (int i = 1; i < argc && exit_code == MNRL_CLI_CONTINUE; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            print_help();
            exit_code = 0;
            break;
        }
        int taken = mnrl_cli_config_arg(argc, argv, &i, &args, &err);
        if (taken == 0) {
            mnrl_fail(&err, "unknown option %s; see mnrl_cuda %s --help", argv[i], name);
        }
        if (taken <= 0) {
            fprintf(stderr, "mnrl_cuda %s: %s\n", name, err.msg);
            exit_code = 2;
        }
    }
    if (exit_code == MNRL_CLI_CONTINUE && !args.config_path && !args.print_config) {
        fprintf(stderr, "mnrl_cuda %s: no CONFIG.json given, e.g. mnrl_cuda %s "
                        "configs/nli.json; see mnrl_cuda %s --help\n", name, name, name);
        exit_code = 2;
    }
    if (exit_code == MNRL_CLI_CONTINUE) {
        if (mnrl_cli_load_config(&args, cfg, &err) != 0) {
            fprintf(stderr, "mnrl_cuda %s: %s\n", name, err.msg);
            exit_code = 1;
        } else if (args.print_config) {
            char *text = config_to_json(cfg);
            puts(text);
            free(text);
            config_free(cfg);
            exit_code = 0;
        }
    }
    mnrl_cli_config_args_free(&args);
    return exit_code;
}

void mnrl_cli_data_options(const MnrlConfig *cfg, DataOptions *opt) {
    *opt = data_options_default(cfg->data.train);
    opt->format = cfg->data.format;
    opt->recipe = cfg->data.recipe;
    opt->split = cfg->data.split;
    opt->anchor_column = cfg->data.anchor_column;
    opt->positive_column = cfg->data.positive_column;
    opt->negative_columns = (const char *const *)cfg->data.negative_columns;
    opt->n_negative_columns = (size_t)cfg->data.n_negative_columns;
    opt->max_rows = (uint64_t)cfg->data.max_rows;
    opt->on_error = cfg->data.on_error;
    opt->seed = (uint64_t)cfg->train.seed;
}

const char *mnrl_cli_option_value(int argc, char **argv, int *i, const char *name, int *missing) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return NULL;
    if (argv[*i][n] == '=') return argv[*i] + n + 1;
    if (argv[*i][n] != '\0') return NULL;
    if (*i + 1 >= argc) {
        *missing = 1;
        return NULL;
    }
    return argv[++*i];
}

int mnrl_cli_parse_long(const char *text, long min, long max, long *out) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end || value < min || value > max) return -1;
    *out = value;
    return 0;
}

int mnrl_cli_usage_error(const char *command, const char *message) {
    fprintf(stderr, "mnrl_cuda %s: %s\nRun 'mnrl_cuda %s --help' for usage.\n", command, message,
            command);
    return 2;
}

int mnrl_cli_folder_arg(int argc, char **argv, int *i, MnrlFolderArgs *args, MnrlError *err) {
    int missing = 0;
    const char *v;
    if ((v = mnrl_cli_option_value(argc, argv, i, "--max-seq-length", &missing))) {
        if (mnrl_cli_parse_long(v, 2, 8192, &args->max_seq_length) != 0)
            return mnrl_fail(err, "--max-seq-length must be an integer in [2, 8192], got '%s'", v);
        return 1;
    }
    if (!missing && (v = mnrl_cli_option_value(argc, argv, i, "--batch-size", &missing))) {
        if (mnrl_cli_parse_long(v, 1, 65536, &args->batch_size) != 0)
            return mnrl_fail(err, "--batch-size must be an integer in [1, 65536], got '%s'", v);
        return 1;
    }
    if (missing) return mnrl_fail(err, "a value is missing after %s", argv[*i]);
    if (argv[*i][0] == '-' && argv[*i][1] != '\0') return 0;
    if (args->model_dir) {
        return mnrl_fail(err, "give exactly one MODEL_DIR; unexpected '%s'", argv[*i]);
    }
    args->model_dir = argv[*i];
    return 1;
}
