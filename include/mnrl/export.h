// export.h — the trained model as a sentence-transformers folder: OUT/final, which
// `SentenceTransformer("OUT/final")` loads unchanged (DESIGN §2 "Output").
//
// Layout: the one sentence-transformers 2.x-5.x save() writes and most Hub models use
// (goldens from ST 5.1.2's own save(), tests/reference/make_export_goldens.py); ST 6.x
// loads it unchanged, whereas the layout ST 6.x saves cannot be read by ST <= 5:
//   config.json                        the base model's, "architectures": ["BertModel"]
//   model.safetensors                  F32, HF BertModel names (params_save_safetensors)
//   vocab.txt tokenizer_config.json special_tokens_map.json tokenizer.json
//                                      byte copies from the base folder (those present;
//                                      vocab.txt is required)
//   modules.json                       Transformer at "", mean Pooling at "1_Pooling"
//   sentence_bert_config.json          max_seq_length, do_lower_case false
//   1_Pooling/config.json              mean pooling, word_embedding_dimension = hidden
//   config_sentence_transformers.json  model_type, __version__, prompts, similarity "cosine"
//   README.md                          model card
//
// Crash safety: the folder is written as OUT/final.tmp-PID (every file fsync'd, then the
// folder itself); then an existing OUT/final is renamed to OUT/final.old-PID, the new
// folder renamed to OUT/final, OUT fsync'd, and OUT/final.old-PID removed. So OUT/final is
// always either the complete old folder or the complete new one; a crash between the two
// renames leaves no OUT/final but both complete folders under their temporary names. A
// failure before the renames removes OUT/final.tmp-PID and leaves OUT/final untouched.
#ifndef MNRL_EXPORT_H
#define MNRL_EXPORT_H

#include <stdint.h>

#include "mnrl/common.h"
#include "mnrl/config.h"
#include "mnrl/params.h"

// STS Spearman correlations ×100 (as ST reports them) for the model card; NAN: not measured.
typedef struct {
    double dev_before, dev_after;
    double test_before, test_after;
} ExportScores;

typedef struct {
    const char *out_dir;          // the run's output folder; the model goes to out_dir/final
    const char *folder;           // or, when not NULL, to this folder (out_dir unused)
    const char *base_model_dir;   // the HF folder training started from: its config.json
                                  // and tokenizer files are copied
    const MnrlConfig *config;     // data, recipe, loss and hyper-parameters for the card;
                                  // model.max_seq_length goes to sentence_bert_config.json
    int64_t train_rows;           // training rows after the recipe
    int64_t steps;                // optimizer steps trained
    const ExportScores *scores;   // NULL: no evaluation ran
    const char *command_line;     // the command that trained, for the card; NULL: not known
} ExportInfo;

// The version of sentence-transformers whose save() layout export_model follows.
#define EXPORT_ST_LAYOUT_VERSION "5.1.2"

// Writes info->out_dir/final (or info->folder) from the parameters (table layout, fp32). The base folder's
// config.json must describe the same architecture as table (else an error says which
// number differs); max_seq_length must fit its max_position_embeddings.
int export_model(const ExportInfo *info, const ParamTable *table, const float *params, MnrlError *err);

#endif
