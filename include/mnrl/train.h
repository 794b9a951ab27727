// train.h — the training program (DESIGN §2 "Data flow of one step"): sampler → packed
// step → encoder forward → MNRL loss → backward → clip → AdamW → log, with STS
// evaluation before, during and after training and the sentence-transformers export.
#ifndef MNRL_TRAIN_H
#define MNRL_TRAIN_H

#include "mnrl/common.h"
#include "mnrl/config.h"

// Trains as cfg says and writes cfg->output.dir (metrics.jsonl, final/). command_line is
// recorded in the model card. Progress and step lines go to stderr/stdout.
int train_run(const MnrlConfig *cfg, const char *command_line, MnrlError *err);

#endif
