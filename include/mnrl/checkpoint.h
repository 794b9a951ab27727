// checkpoint.h — training checkpoints (DESIGN §2 "Checkpoints"): what a run needs to go on
// exactly where it stopped, written so that a crash, a kill or a full disk at any moment
// never leaves a checkpoint that looks complete but is not.
//
// OUT/checkpoints/step-NNNNNNN/ (the step, zero-padded to 7 digits):
//   model.safetensors                 fp32 master weights, HF BertModel names (the export's)
//   optimizer.exp_avg.safetensors     AdamW first moments (torch's exp_avg), the same names
//   optimizer.exp_avg_sq.safetensors  AdamW second moments (exp_avg_sq)
//   train_config.json                 the run's resolved config (config_to_json)
//   state.json                        CheckpointState, the format and the library version
//   DONE                              written last: the checkpoint is complete
//
// Writing: the files go to OUT/checkpoints/.tmp-step-NNNNNNN (each written, fsync'd and
// renamed by mnrl_write_file_atomic), that folder is fsync'd and renamed to step-NNNNNNN,
// OUT/checkpoints is fsync'd, then DONE is written (fsync'd, and its folder). On a failure
// the folders this write created are removed and the older checkpoints stay untouched; a
// crash leaves at most a .tmp-* folder (never read) or a step folder without DONE (refused
// by --resume); the next write removes both. After DONE the checkpoints of later steps
// (left by a run this one was resumed over) and the oldest complete ones beyond `keep`
// are removed.
#ifndef MNRL_CHECKPOINT_H
#define MNRL_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "mnrl/common.h"
#include "mnrl/config.h"
#include "mnrl/params.h"

// Where the training loop stands after `step` optimizer steps (plain data: it is broadcast
// to every rank as bytes).
typedef struct {
    int64_t step;             // optimizer steps done; the next forward's dropout step index
    int64_t total_steps;      // the schedule length of the run that wrote it
    uint64_t epoch;           // the epoch the next batch comes from
    uint64_t epoch_batches;   // batches of that epoch drawn so far (sampler_seek's position)
    uint64_t epoch_seed;      // its permutation's seed (train.seed + epoch)
    uint64_t sampler_rng;     // the sampler's generator state there (checked after the seek)
    int64_t adam_step;        // AdamW steps taken (skipped non-finite steps not counted)
    int64_t bad_steps;        // consecutive non-finite steps up to here
    uint64_t rows_left_over;  // rows of short batches that did not split over the ranks
    uint64_t data_rows;       // training rows, and the source file's CRC-32 (data cache)
    uint64_t data_crc;
    uint64_t tokenizer;       // the tokenizer's fingerprint (vocabulary, lower-casing)
    uint64_t config_hash;     // config_resume_hash
    int64_t seed;             // train.seed: with step it keys every dropout mask (rng.h)
    int world_size;
    double dev_before, test_before;  // STS Spearman of the untrained model; NAN: none
    char version[32];         // MNRL_VERSION of the writer
} CheckpointState;

// A checkpoint to write (host buffers in the table layout, table->n_floats floats each).
typedef struct {
    const char *out_dir;   // output.dir: the checkpoint goes to out_dir/checkpoints
    const CheckpointState *state;
    const ParamTable *table;
    const float *params, *exp_avg, *exp_avg_sq;
    const char *config_json;  // config_to_json of the run
    int keep;                 // checkpoint.keep: complete checkpoints left afterwards
} CheckpointWrite;

// Writes out_dir/checkpoints/step-NNNNNNN as described at the top; dir (capacity cap)
// receives its path. An error names the path that failed and says the older checkpoints
// are unchanged.
int checkpoint_write(const CheckpointWrite *w, char *dir, size_t cap, MnrlError *err);

// 0 when dir is a checkpoint folder holding DONE; else an error naming dir and what is
// wrong, followed by instead (what the user can do).
int checkpoint_check_complete(const char *dir, const char *instead, MnrlError *err);

// The checkpoint --resume names: "latest" is the complete checkpoint of the highest step in
// out_dir/checkpoints (an error when there is none); anything else is a checkpoint folder,
// which must exist and hold DONE. dir (capacity cap) receives its path.
int checkpoint_find(const char *out_dir, const char *which, char *dir, size_t cap, MnrlError *err);

// Reads dir's state.json and tensors into *state and the host buffers (table layout,
// table->n_floats floats each, padding zeroed). Errors name the file and what is wrong.
int checkpoint_read(const char *dir, const ParamTable *table, CheckpointState *state, float *params,
                    float *exp_avg, float *exp_avg_sq, MnrlError *err);

// Refuses a checkpoint of another world size or of a config that differs in a key of
// config_resume_hash (naming the key and both values, from its train_config.json).
int checkpoint_check_config(const char *dir, const CheckpointState *state, const MnrlConfig *cfg, int world,
                            MnrlError *err);

// 1 when dir is one of out_dir/checkpoints' folders (however spelled), i.e. resuming
// from it continues out_dir's own run.
int checkpoint_in_run(const char *dir, const char *out_dir);

// The step of the newest complete checkpoint in out_dir/checkpoints; -1 when there is none.
int64_t checkpoint_latest_step(const char *out_dir);

#endif
