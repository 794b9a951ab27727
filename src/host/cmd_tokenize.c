// cmd_tokenize.c — `mnrl_cuda tokenize` (being written; see include/mnrl/cli.h).
#include <stdio.h>

#include "mnrl/cli.h"

int mnrl_cmd_tokenize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "mnrl_cuda tokenize: not built yet\n");
    return 2;
}
