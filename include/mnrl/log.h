// log.h — what the user sees while work runs (DESIGN §3).
// Progress: on a terminal a bar redrawn in place with the rate and an ETA; otherwise
// (logs, CI) a few plain lines at 25%, 50%, 75% and the end; nothing at all when quiet
// (out NULL, as tests use).
// StepLog: the training log. One llm.c-style line per log_every steps, on a terminal with
// the progress bar and ETA kept on the bottom line; every step and evaluation also as one
// JSON object per line in OUT/metrics.jsonl.
#ifndef MNRL_LOG_H
#define MNRL_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "mnrl/common.h"

typedef struct {
    FILE *out;           // NULL: quiet
    int tty;             // out is a terminal: redraw one line with '\r'
    char label[64];
    char unit[16];       // what is counted ("texts")
    uint64_t total, done;
    double t_start, t_drawn;  // mnrl_now() at begin and at the last terminal redraw
    int quarters_printed;     // plain mode: 25% marks already printed
} Progress;

void progress_begin(Progress *p, FILE *out, const char *label, const char *unit, uint64_t total);
// Sets the count done so far; draws at most ten times a second on a terminal.
void progress_update(Progress *p, uint64_t done);
// Completes the bar (done = total) with the elapsed time and the mean rate.
void progress_end(Progress *p);

// The line progress_update draws, for now = seconds since begin:
// "label  42% [########..........] 4,200/10,000 texts | 1.2k texts/s | ETA 0:05".
void progress_format(const Progress *p, double elapsed, char *buf, size_t cap);

// v with thousands separators: 1234567 -> "1,234,567" (as the step lines print counts).
void mnrl_format_count(uint64_t v, char *buf, size_t cap);

// ---- the training log ------------------------------------------------------------------

// One optimizer step's figures.
typedef struct {
    int64_t step;         // 1-based over the whole run (a resumed run goes on counting)
    double epoch;         // fractional: steps done / steps per epoch, as ST's trainer logs it
    double loss;
    double grad_norm;     // global norm before clipping
    double lr;
    double ms;            // wall time of the step
    double tokens_per_s;  // real tokens (no padding) per second
    double seqs_per_s;    // texts embedded per second (rows × columns)
    double mfu;           // model FLOPs utilisation in [0, 1]; NAN: not measured, not shown
} StepStats;

typedef struct {
    FILE *out;            // NULL: quiet
    bool tty;             // out is a terminal: keep the progress bar on the bottom line
    FILE *metrics;        // OUT/metrics.jsonl; NULL when no output folder was given
    char metrics_path[4096];
    int64_t total_steps;
    int64_t first_step;   // steps done before this session (resume), for the rate and ETA
    int log_every;
    double t_start, t_drawn;
    bool bar_shown;       // the bar is on screen and must be cleared before a line
} StepLog;

// Starts the log of a run of total_steps steps, start_step of them already done (0, or
// the resumed checkpoint's step). out_dir: metrics.jsonl is created there or appended to
// (resume), NULL for none; records of steps after start_step (left by a run that went on
// past its checkpoint) and a partial last line are cut off first, so that no step is
// logged twice. A step line is printed for the first step of the session, every
// log_every-th step and the last one.
int steplog_open(StepLog *log, FILE *out, const char *out_dir, int64_t total_steps, int64_t start_step,
                 int log_every, MnrlError *err);
// Logs a step: the line when due, the bar on a terminal, the metrics line (flushed) always.
// Non-finite numbers are written to metrics.jsonl as null. Fails only when writing the
// metrics file fails.
int steplog_step(StepLog *log, const StepStats *s, MnrlError *err);
// Logs an evaluation (Spearman and Pearson ×100) of split after step.
int steplog_eval(StepLog *log, int64_t step, const char *split, double spearman, double pearson, MnrlError *err);
// Prints a line of news (a checkpoint written) above the bar, as of step.
void steplog_note(StepLog *log, int64_t step, const char *line);
// Leaves the bar's final state on its own line and closes metrics.jsonl.
int steplog_close(StepLog *log, MnrlError *err);

// "step 120/4411 | loss 1.2345 | norm 0.84 | lr 1.2e-05 | 95 ms | 41,200 tok/s | 1,310 seq/s"
// then " | MFU 38%" when s->mfu is measured. Steps under 10 ms show a decimal ("4.2 ms").
void steplog_format_step(const StepStats *s, int64_t total_steps, char *buf, size_t cap);
// "eval step 500/4411 | dev | spearman 84.12 | pearson 83.90"
void steplog_format_eval(int64_t step, int64_t total_steps, const char *split, double spearman, double pearson,
                         char *buf, size_t cap);

#endif
