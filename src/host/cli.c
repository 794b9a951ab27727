// cli.c — the options every config-driven subcommand shares (see include/mnrl/cli.h).
#include "mnrl/cli.h"

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
