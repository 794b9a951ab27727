// train.h — the training program (DESIGN §2 "Data flow of one step"): sampler → packed
// step → encoder forward → MNRL loss → backward → clip → AdamW → log, with STS
// evaluation before, during and after training and the sentence-transformers export.
#ifndef MNRL_TRAIN_H
#define MNRL_TRAIN_H

#include "mnrl/common.h"
#include "mnrl/config.h"
#include "mnrl/dist.h"

// Trains as cfg says and writes cfg->output.dir (metrics.jsonl, final/). command_line is
// recorded in the model card. Progress and step lines go to stderr/stdout.
// dist: the ranks, from dist_init (world 1: one process); every rank calls train_run, the
// global batch train.batch_size is split over them (train.c's top), and rank 0 alone
// prints, evaluates and writes. After a failure on any rank the caller prints the message
// and calls dist_abort, which ends the other ranks.
int train_run(const MnrlConfig *cfg, MnrlDist *dist, const char *command_line, MnrlError *err);

#endif
