// export.c — the sentence-transformers output folder (layout and crash safety: export.h).
#include "mnrl/export.h"

#include <errno.h>
#include <stdbool.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mnrl/bert_config.h"
#include "mnrl/dataset.h"
#include "mnrl/log.h"

enum { PATH_CAP = 4096 };

// Tokenizer files copied byte for byte when the base folder has them. vocab.txt is
// required: our tokenizer trained from it, and ST needs it when tokenizer.json is absent.
static const char *const TOKENIZER_FILES[] = {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                                              "tokenizer.json"};

static int join(char *out, const char *dir, const char *name, MnrlError *err) {
    if (mnrl_path_join(out, PATH_CAP, dir, name) != 0) return mnrl_fail(err, "%s/%s: path too long", dir, name);
    return 0;
}

// Writes value (a reference is stolen) as dir/name, indented as ST writes that file.
static int write_json(const char *dir, const char *name, json_t *value, int indent, MnrlError *err) {
    char path[PATH_CAP];
    if (join(path, dir, name, err) != 0) {
        json_decref(value);
        return -1;
    }
    char *text = mnrl_json_dumps_exact(value, JSON_INDENT(indent) | JSON_PRESERVE_ORDER);
    json_decref(value);
    size_t len = strlen(text);
    text = mnrl_realloc(text, len + 2);
    memcpy(text + len, "\n", 2);
    int rc = mnrl_write_file_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}

// Raw bytes (mnrl_read_file would inflate a gzip file; a copy must not change anything).
static int copy_file(const char *src, const char *dst, MnrlError *err) {
    FILE *f = fopen(src, "rb");
    if (!f) return mnrl_fail(err, "%s: cannot open: %s", src, strerror(errno));
    size_t cap = 1 << 16, len = 0, n;
    char *data = mnrl_malloc(cap);
    while ((n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) data = mnrl_realloc(data, cap *= 2);
    }
    int failed = ferror(f);
    fclose(f);
    int rc = failed ? mnrl_fail(err, "%s: read failed", src) : mnrl_write_file_atomic(dst, data, len, err);
    free(data);
    return rc;
}

// The base folder's config.json with every key kept as it was, except "architectures":
// the exported weights are a plain BertModel (no pooler or pre-training heads), which is
// also what ST's save() records.
static int write_model_config(const char *base_dir, const char *dir, MnrlError *err) {
    char path[PATH_CAP];
    if (join(path, base_dir, "config.json", err) != 0) return -1;
    json_error_t jerr;
    json_t *root = json_load_file(path, 0, &jerr);
    if (!root) return mnrl_fail(err, "%s:%d: invalid JSON: %s", path, jerr.line, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return mnrl_fail(err, "%s: expected a JSON object", path);
    }
    json_object_set_new(root, "architectures", json_pack("[s]", "BertModel"));
    return write_json(dir, "config.json", root, 2, err);
}

static int copy_tokenizer_files(const char *base_dir, const char *dir, MnrlError *err) {
    for (size_t i = 0; i < sizeof TOKENIZER_FILES / sizeof *TOKENIZER_FILES; i++) {
        char src[PATH_CAP], dst[PATH_CAP];
        if (join(src, base_dir, TOKENIZER_FILES[i], err) != 0 || join(dst, dir, TOKENIZER_FILES[i], err) != 0) return -1;
        if (i > 0 && !mnrl_file_exists(src)) continue;
        if (copy_file(src, dst, err) != 0) return -1;
    }
    return 0;
}

static json_t *module_entry(int idx, const char *path, const char *type) {
    char name[16];
    snprintf(name, sizeof name, "%d", idx);
    return json_pack("{s:i,s:s,s:s,s:s}", "idx", idx, "name", name, "path", path, "type", type);
}

// modules.json, sentence_bert_config.json, 1_Pooling/config.json and
// config_sentence_transformers.json: keys, order and values as ST 5.1.2's save() writes
// them (tests/data/export/st_saved), except __version__ (ours, see below).
static int write_st_files(const char *dir, int hidden, int max_seq_length, MnrlError *err) {
    json_t *modules = json_pack("[o,o]", module_entry(0, "", "sentence_transformers.models.Transformer"),
                                module_entry(1, "1_Pooling", "sentence_transformers.models.Pooling"));
    if (write_json(dir, "modules.json", modules, 2, err) != 0) return -1;
    // do_lower_case is ST's own lower-casing of the text before the tokenizer, not the
    // tokenizer's (that one travels in the copied tokenizer files). Training applied none,
    // so false keeps ST's inference preprocessing identical to training.
    json_t *bert = json_pack("{s:i,s:b}", "max_seq_length", max_seq_length, "do_lower_case", 0);
    if (write_json(dir, "sentence_bert_config.json", bert, 4, err) != 0) return -1;
    char pooling_dir[PATH_CAP];
    if (join(pooling_dir, dir, "1_Pooling", err) != 0) return -1;
    if (mkdir(pooling_dir, 0755) != 0) return mnrl_fail(err, "%s: cannot create directory: %s", pooling_dir, strerror(errno));
    json_t *pooling = json_pack("{s:i,s:b,s:b,s:b,s:b,s:b,s:b,s:b}", "word_embedding_dimension", hidden,
                                "pooling_mode_cls_token", 0, "pooling_mode_mean_tokens", 1, "pooling_mode_max_tokens", 0,
                                "pooling_mode_mean_sqrt_len_tokens", 0, "pooling_mode_weightedmean_tokens", 0,
                                "pooling_mode_lasttoken", 0, "include_prompt", 1);
    if (write_json(pooling_dir, "config.json", pooling, 4, err) != 0 || mnrl_fsync_dir(pooling_dir, err) != 0) return -1;
    // ST reads only __version__.sentence_transformers (to warn when a model is newer than
    // the library): it names the layout we follow; mnrl_cuda says what wrote the folder.
    // transformers/pytorch versions are left out: neither made these weights.
    json_t *st = json_pack("{s:s,s:{s:s,s:s},s:{s:s,s:s},s:n,s:s}", "model_type", "SentenceTransformer", "__version__",
                           "sentence_transformers", EXPORT_ST_LAYOUT_VERSION, "mnrl_cuda", MNRL_VERSION, "prompts",
                           "query", "", "document", "", "default_prompt_name", "similarity_fn_name", "cosine");
    return write_json(dir, "config_sentence_transformers.json", st, 2, err);
}

// ---- the model card --------------------------------------------------------------------

static void card_score_row(FILE *f, const char *split, double before, double after) {
    if (isnan(before) && isnan(after)) return;
    char b[32] = "—", a[32] = "—";
    if (!isnan(before)) snprintf(b, sizeof b, "%.2f", before);
    if (!isnan(after)) snprintf(a, sizeof a, "%.2f", after);
    fprintf(f, "| %s | %s | %s |\n", split, b, a);
}

static void card_evaluation(FILE *f, const ExportInfo *info) {
    const ExportScores *s = info->scores;
    if (!s) return;
    const MnrlEvalConfig *e = &info->config->eval;
    fprintf(f, "## Evaluation\n\n");
    fprintf(f, "Spearman correlation ×100 between the cosine similarity of the two embeddings and the gold "
               "score on `%s` (as sentence-transformers' `EmbeddingSimilarityEvaluator` reports it):\n\n", e->sts_file);
    fprintf(f, "| split | before training | after training |\n|---|---|---|\n");
    card_score_row(f, e->dev_split, s->dev_before, s->dev_after);
    card_score_row(f, e->test_split, s->test_before, s->test_after);
    fprintf(f, "\n");
}

static void card_data(FILE *f, const ExportInfo *info) {
    const MnrlDataConfig *d = &info->config->data;
    DataFormat format = d->format;
    if (dataset_detect_format(d->train, d->format, &format, NULL) != 0) format = d->format;
    char rows[32];
    mnrl_format_count((uint64_t)info->train_rows, rows, sizeof rows);
    fprintf(f, "- **Training data:** `%s` (%s", d->train, data_format_name(format));
    if (format == DATA_FORMAT_ALLNLI) fprintf(f, ", recipe `%s`, split `%s`", data_recipe_name(d->recipe), d->split);
    fprintf(f, "), %s rows%s\n", rows, d->max_rows > 0 ? " (capped by data.max_rows)" : "");
}

static void card_hyperparameters(FILE *f, const MnrlConfig *c, int64_t steps) {
    const MnrlTrainConfig *t = &c->train;
    char warmup[64], dropout[64];
    if (t->warmup_steps >= 0) snprintf(warmup, sizeof warmup, "%lld steps", (long long)t->warmup_steps);
    else snprintf(warmup, sizeof warmup, "%g%% of the steps", 100.0 * t->warmup_ratio);
    if (t->dropout == MNRL_DROPOUT_FROM_MODEL) snprintf(dropout, sizeof dropout, "from config.json");
    else snprintf(dropout, sizeof dropout, "%g", t->dropout);
    fprintf(f, "| hyper-parameter | value |\n|---|---|\n");
    fprintf(f, "| batch size (global, in-batch negatives) | %d |\n", t->batch_size);
    fprintf(f, "| epochs | %d |\n| steps trained | %lld |\n", t->epochs, (long long)steps);
    fprintf(f, "| max_seq_length | %d |\n", c->model.max_seq_length);
    fprintf(f, "| optimizer | AdamW (β1 %g, β2 %g, ε %g) |\n", t->adam_beta1, t->adam_beta2, t->adam_eps);
    fprintf(f, "| learning rate | %g |\n| schedule | linear warmup (%s), then linear decay to 0 |\n", t->lr, warmup);
    fprintf(f, "| weight decay | %g (not on biases and LayerNorm weights) |\n", t->weight_decay);
    fprintf(f, "| max grad norm | %g |\n| gradient accumulation | %d |\n", t->max_grad_norm, t->grad_accum_steps);
    fprintf(f, "| dropout | %s |\n| seed | %lld |\n", dropout, (long long)t->seed);
    fprintf(f, "| GPU precision | %s |\n\n", c->model.precision == MNRL_PRECISION_BF16 ? "bf16 (fp32 master weights)" : "fp32");
}

static void card_usage(FILE *f) {
    fprintf(f, "## Usage\n\n```python\nfrom sentence_transformers import SentenceTransformer\n\n"
               "model = SentenceTransformer(\"path/to/this/folder\")\n"
               "sentences = [\"A man is eating food.\", \"A man is eating a piece of bread.\", \"A man is riding a horse.\"]\n"
               "embeddings = model.encode(sentences)\nprint(embeddings.shape)\n"
               "print(model.similarity(embeddings, embeddings))\n```\n\n");
}

static void card_write(FILE *f, const ExportInfo *info, int hidden) {
    const MnrlConfig *c = info->config;
    fprintf(f, "---\ntags:\n- sentence-transformers\n- sentence-similarity\n- feature-extraction\n"
               "pipeline_tag: sentence-similarity\nlibrary_name: sentence-transformers\n---\n\n");
    fprintf(f, "# Sentence embedding model fine-tuned from `%s`\n\n", info->base_model_dir);
    fprintf(f, "Fine-tuned with Multiple Negatives Ranking Loss by mnrl_cuda %s. It maps sentences to a "
               "%d-dimensional dense vector space; compare embeddings with cosine similarity.\n\n", MNRL_VERSION, hidden);
    fprintf(f, "## Model details\n\n- **Base model:** `%s`\n- **Maximum sequence length:** %d tokens\n"
               "- **Output dimensionality:** %d\n- **Similarity function:** cosine\n"
               "- **Architecture:** Transformer (BertModel) → mean Pooling (sentence-transformers %s layout)\n\n",
            info->base_model_dir, c->model.max_seq_length, hidden, EXPORT_ST_LAYOUT_VERSION);
    card_usage(f);
    card_evaluation(f, info);
    fprintf(f, "## Training\n\n");
    card_data(f, info);
    fprintf(f, "- **Loss:** %s (scale %g, similarity `cos_sim`; the other rows' positives and every "
               "hard negative of the batch are the negatives)\n\n",
            c->loss.symmetric ? "MultipleNegativesSymmetricRankingLoss" : "MultipleNegativesRankingLoss", c->loss.scale);
    card_hyperparameters(f, c, info->steps);
    if (info->command_line) fprintf(f, "Command:\n\n```bash\n%s\n```\n", info->command_line);
}

static int write_card(const char *dir, const ExportInfo *info, int hidden, MnrlError *err) {
    char path[PATH_CAP], *text = NULL;
    size_t len = 0;
    if (join(path, dir, "README.md", err) != 0) return -1;
    FILE *f = open_memstream(&text, &len);
    if (!f) return mnrl_fail(err, "%s: cannot build the model card: %s", path, strerror(errno));
    card_write(f, info, hidden);
    fclose(f);
    int rc = mnrl_write_file_atomic(path, text, len, err);
    free(text);
    return rc;
}

// ---- the folder ------------------------------------------------------------------------

// The base folder must describe the model being exported, and max_seq_length must fit it.
static int check_inputs(const ExportInfo *info, const ParamTable *table, MnrlError *err) {
    char path[PATH_CAP];
    BertConfig base;
    if (join(path, info->base_model_dir, "config.json", err) != 0 || bert_config_load(path, &base, err) != 0) return -1;
    const BertConfig *ours = &table->config;
    const struct {
        const char *key;
        int base, ours;
    } numbers[] = {
        {"vocab_size", base.vocab_size, ours->vocab_size},
        {"hidden_size", base.hidden_size, ours->hidden_size},
        {"num_hidden_layers", base.num_hidden_layers, ours->num_hidden_layers},
        {"num_attention_heads", base.num_attention_heads, ours->num_attention_heads},
        {"intermediate_size", base.intermediate_size, ours->intermediate_size},
        {"max_position_embeddings", base.max_position_embeddings, ours->max_position_embeddings},
        {"type_vocab_size", base.type_vocab_size, ours->type_vocab_size},
    };
    for (size_t i = 0; i < sizeof numbers / sizeof *numbers; i++) {
        if (numbers[i].base != numbers[i].ours) {
            return mnrl_fail(err, "%s: %s is %d but the trained model has %d; export with the base folder the model was trained from",
                             path, numbers[i].key, numbers[i].base, numbers[i].ours);
        }
    }
    int max_seq_length = info->config->model.max_seq_length;
    if (max_seq_length < 2 || max_seq_length > base.max_position_embeddings) {
        return mnrl_fail(err, "model.max_seq_length %d does not fit the model's %d positions (%s)", max_seq_length,
                         base.max_position_embeddings, path);
    }
    return 0;
}

static int write_folder(const char *dir, const ExportInfo *info, const ParamTable *table, const float *params,
                        MnrlError *err) {
    char path[PATH_CAP];
    if (join(path, dir, "model.safetensors", err) != 0) return -1;
    if (params_save_safetensors(table, params, path, ST_F32, err) != 0) return -1;
    if (write_model_config(info->base_model_dir, dir, err) != 0) return -1;
    if (copy_tokenizer_files(info->base_model_dir, dir, err) != 0) return -1;
    if (write_st_files(dir, table->config.hidden_size, info->config->model.max_seq_length, err) != 0) return -1;
    if (write_card(dir, info, table->config.hidden_size, err) != 0) return -1;
    return mnrl_fsync_dir(dir, err);
}

// final := staging, keeping the old final until the new one is in place (export.h).
static int swap_into_place(const char *out_dir, const char *staging, const char *final, MnrlError *err) {
    char previous[PATH_CAP];
    if (snprintf(previous, sizeof previous, "%s.old-%ld", final, (long)getpid()) >= (int)sizeof previous) {
        return mnrl_fail(err, "%s: path too long", final);
    }
    bool had_final = mnrl_file_exists(final);
    if (had_final && rename(final, previous) != 0) {
        return mnrl_fail(err, "%s: cannot move the previous export aside: %s", final, strerror(errno));
    }
    if (rename(staging, final) != 0) {
        mnrl_fail(err, "%s: cannot rename %s into place: %s", final, staging, strerror(errno));
        if (had_final) rename(previous, final);
        return -1;
    }
    if (mnrl_fsync_dir(out_dir, err) != 0) return -1;
    if (had_final && mnrl_remove_tree(previous, err) != 0) {
        return mnrl_fail_context(err, "%s is complete, but the previous export could not be removed", final);
    }
    return 0;
}

// The model folder's path and the folder that holds it (created when missing, fsync'd
// after the rename).
static int folder_paths(const ExportInfo *info, char *final, char *parent, MnrlError *err) {
    if (!info->folder) {
        snprintf(parent, PATH_CAP, "%s", info->out_dir);
        return join(final, info->out_dir, "final", err);
    }
    if (snprintf(final, PATH_CAP, "%s", info->folder) >= PATH_CAP) return mnrl_fail(err, "%s: path too long", info->folder);
    size_t len = strlen(final);
    while (len > 1 && final[len - 1] == '/') final[--len] = '\0';  // "out/" names out
    const char *slash = strrchr(final, '/');
    if (!slash) snprintf(parent, PATH_CAP, ".");
    else if (slash == final) snprintf(parent, PATH_CAP, "/");
    else snprintf(parent, PATH_CAP, "%.*s", (int)(slash - final), final);
    return 0;
}

int export_model(const ExportInfo *info, const ParamTable *table, const float *params, MnrlError *err) {
    char final[PATH_CAP], parent[PATH_CAP], staging[PATH_CAP];
    if (folder_paths(info, final, parent, err) != 0) return -1;
    if (snprintf(staging, sizeof staging, "%s.tmp-%ld", final, (long)getpid()) >= (int)sizeof staging) {
        return mnrl_fail(err, "%s: path too long", final);
    }
    if (check_inputs(info, table, err) != 0 || mnrl_mkdir_p(parent, err) != 0 ||
        mnrl_remove_tree(staging, err) != 0) {
        return mnrl_fail_context(err, "exporting %s", final);
    }
    if (mkdir(staging, 0755) != 0) {
        return mnrl_fail(err, "exporting %s: %s: cannot create directory: %s", final, staging, strerror(errno));
    }
    if (write_folder(staging, info, table, params, err) != 0 || swap_into_place(parent, staging, final, err) != 0) {
        mnrl_remove_tree(staging, NULL);
        return mnrl_fail_context(err, "exporting %s", final);
    }
    return 0;
}
