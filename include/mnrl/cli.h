// cli.h — subcommand entry points. main.c parses the subcommand name and hands the
// remaining arguments to one of these; each returns the process exit code.
#ifndef MNRL_CLI_H
#define MNRL_CLI_H

// mnrl_cuda tokenize MODEL_DIR [--input FILE] [--max-seq-length N]
int mnrl_cmd_tokenize(int argc, char **argv);

#endif
