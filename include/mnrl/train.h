// train.h — the training program (DESIGN §2 "Data flow of one step"): sampler → packed
// step → encoder forward → MNRL loss → backward → clip → AdamW → log, with STS
// evaluation before, during and after training and the sentence-transformers export.
#ifndef MNRL_TRAIN_H
#define MNRL_TRAIN_H

#include "mnrl/common.h"
#include "mnrl/config.h"
#include "mnrl/dist.h"

// How train_run was asked to run.
typedef struct {
    const char *command_line;    // the command as typed, for the model card
    const char *resume;          // --resume: NULL (a new run), "latest" or a checkpoint folder
    const char *resume_command;  // the command that continues this run (the stop message)
} TrainInvocation;

// Trains as cfg says and writes cfg->output.dir (metrics.jsonl, batch_order.txt,
// checkpoints/, final/). Progress and step lines go to stderr/stdout.
// dist: the ranks, from dist_init (world 1: one process); every rank calls train_run, the
// global batch train.batch_size is split over them (train.c's top), and rank 0 alone
// prints, evaluates and writes. After a failure on any rank the caller prints the message
// and calls dist_abort, which ends the other ranks.
// A step is an optimizer step: train.grad_accum_steps batches (train.c's top).
// Checkpoints (checkpoint.h) are written every checkpoint.every_steps steps and at the end;
// inv->resume continues from one exactly (on the CPU backend bit for bit). SIGINT, SIGTERM
// and SIGUSR1 while it runs stop it after the current step with a checkpoint, a message
// naming inv->resume_command, and a return of 0 (the same signal twice ends it at once).
int train_run(const MnrlConfig *cfg, MnrlDist *dist, const TrainInvocation *inv, MnrlError *err);

// Optimizer steps of an epoch of `batches` batches at train.grad_accum_steps = accum_steps:
// ceil(batches / accum_steps), the last one taking the batches left over (the sampler keeps
// a short final batch, so the epoch keeps a short final step; train.c's top).
int64_t train_steps_per_epoch(uint64_t batches, int accum_steps);

// Where the backend that train_run will pick for cfg (model.backend, and for "auto" whether
// a GPU is usable) keeps its buffers, so the caller can give dist_init the matching memory:
// host memory for the CPU backend (MPI collectives), device memory for CUDA (NCCL, with
// this rank's GPU selected before the backend starts).
MnrlDistMemory train_dist_memory(const MnrlConfig *cfg);

#endif
