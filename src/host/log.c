// log.c — the progress bar and the training log.
#include "mnrl/log.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BAR_WIDTH = 24 };

void progress_begin(Progress *p, FILE *out, const char *label, const char *unit, uint64_t total) {
    memset(p, 0, sizeof *p);
    p->out = out;
    p->tty = out && isatty(fileno(out));
    snprintf(p->label, sizeof p->label, "%s", label);
    snprintf(p->unit, sizeof p->unit, "%s", unit);
    p->total = total;
    p->t_start = mnrl_now();
    if (out && !p->tty) {
        fprintf(out, "%s: %llu %s\n", p->label, (unsigned long long)total, p->unit);
        fflush(out);
    }
}

// 1234567 -> "1,234,567".
void mnrl_format_count(uint64_t v, char *buf, size_t cap) {
    char digits[32];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    size_t o = 0;
    for (int i = 0; i < n && o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

// 1234.5 -> "1.2k", 2.5e6 -> "2.5M".
static void short_number(double v, char *buf, size_t cap) {
    if (v >= 1e6) snprintf(buf, cap, "%.1fM", v / 1e6);
    else if (v >= 1e3) snprintf(buf, cap, "%.1fk", v / 1e3);
    else snprintf(buf, cap, "%.0f", v);
}

// Seconds as m:ss or h:mm:ss.
static void clock_time(double seconds, char *buf, size_t cap) {
    unsigned long long s = (unsigned long long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, cap, "%llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
    else snprintf(buf, cap, "%llu:%02llu", s / 60, s % 60);
}

void progress_format(const Progress *p, double elapsed, char *buf, size_t cap) {
    double fraction = p->total ? (double)p->done / (double)p->total : 1.0;
    if (fraction > 1.0) fraction = 1.0;
    char bar[BAR_WIDTH + 1];
    int filled = (int)(fraction * BAR_WIDTH);
    for (int i = 0; i < BAR_WIDTH; i++) bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    char done[32], total[32], rate[32], eta[32] = "?";
    mnrl_format_count(p->done, done, sizeof done);
    mnrl_format_count(p->total, total, sizeof total);
    double per_second = elapsed > 0 ? (double)p->done / elapsed : 0.0;
    short_number(per_second, rate, sizeof rate);
    if (per_second > 0) clock_time((double)(p->total - p->done) / per_second, eta, sizeof eta);
    snprintf(buf, cap, "%s %3d%% [%s] %s/%s %s | %s %s/s | ETA %s", p->label,
             (int)(fraction * 100.0), bar, done, total, p->unit, rate, p->unit, eta);
}

void progress_update(Progress *p, uint64_t done) {
    p->done = done < p->total ? done : p->total;
    if (!p->out) return;
    double now = mnrl_now();
    char line[256];
    if (p->tty) {
        if (now - p->t_drawn < 0.1) return;
        p->t_drawn = now;
        progress_format(p, now - p->t_start, line, sizeof line);
        fprintf(p->out, "\r%s\033[K", line);  // \033[K clears what a longer line left
        fflush(p->out);
        return;
    }
    int quarter = p->total ? (int)(4 * p->done / p->total) : 4;
    if (quarter > p->quarters_printed && quarter < 4) {
        p->quarters_printed = quarter;
        progress_format(p, now - p->t_start, line, sizeof line);
        fprintf(p->out, "%s\n", line);
        fflush(p->out);
    }
}

void progress_end(Progress *p) {
    p->done = p->total;
    if (!p->out) return;
    double elapsed = mnrl_now() - p->t_start;
    char total[32], rate[32];
    mnrl_format_count(p->total, total, sizeof total);
    short_number(elapsed > 0 ? (double)p->total / elapsed : 0.0, rate, sizeof rate);
    fprintf(p->out, "%s%s: %s %s in %.1f s (%s %s/s)\n", p->tty ? "\r\033[K" : "", p->label,
            total, p->unit, elapsed, rate, p->unit);
    fflush(p->out);
}

// ---- the training log ------------------------------------------------------------------

// A rate as a whole count with separators ("41,200"); "?" when not a number.
static void rate_text(double v, char *buf, size_t cap) {
    if (!(v >= 0) || !isfinite(v)) snprintf(buf, cap, "?");
    else mnrl_format_count((uint64_t)llround(v), buf, cap);
}

void steplog_format_step(const StepStats *s, int64_t total_steps, char *buf, size_t cap) {
    char tokens[32], seqs[32], mfu[32] = "";
    rate_text(s->tokens_per_s, tokens, sizeof tokens);
    rate_text(s->seqs_per_s, seqs, sizeof seqs);
    if (!isnan(s->mfu)) snprintf(mfu, sizeof mfu, " | MFU %.0f%%", 100.0 * s->mfu);
    snprintf(buf, cap, "step %lld/%lld | loss %.4f | norm %.2f | lr %.1e | %.*f ms | %s tok/s | %s seq/s%s",
             (long long)s->step, (long long)total_steps, s->loss, s->grad_norm, s->lr, s->ms < 10 ? 1 : 0, s->ms,
             tokens, seqs, mfu);
}

void steplog_format_eval(int64_t step, int64_t total_steps, const char *split, double spearman, double pearson,
                         char *buf, size_t cap) {
    snprintf(buf, cap, "eval step %lld/%lld | %s | spearman %.2f | pearson %.2f", (long long)step,
             (long long)total_steps, split, spearman, pearson);
}

// Cuts path after the last whole record of a step <= last_step. Records are in step order,
// so a run that went on past its checkpoint left its later steps (and maybe a partial
// line) at the end: a resumed run would otherwise log those steps twice.
static int trim_metrics(const char *path, int64_t last_step, MnrlError *err) {
    if (!mnrl_file_exists(path)) return 0;
    char *text;
    size_t len, keep = 0;
    if (mnrl_read_file(path, &text, &len, err) != 0) return -1;
    for (;;) {
        const char *line = text + keep, *end = memchr(line, '\n', len - keep);
        const char *tail = strncmp(line, "{\"step\":", 8) == 0 ? line + 8 : NULL;
        if (!end || !tail || strtoll(tail, NULL, 10) > last_step) break;
        keep = (size_t)(end + 1 - text);
    }
    free(text);
    if (keep < len && truncate(path, (off_t)keep) != 0) {
        return mnrl_fail(err, "%s: cannot cut it at step %lld: %s", path, (long long)last_step, strerror(errno));
    }
    return 0;
}

int steplog_open(StepLog *log, FILE *out, const char *out_dir, int64_t total_steps, int64_t start_step,
                 int log_every, MnrlError *err) {
    memset(log, 0, sizeof *log);
    log->out = out;
    log->tty = out && isatty(fileno(out));
    log->total_steps = total_steps;
    log->first_step = start_step;
    log->log_every = log_every > 0 ? log_every : 1;
    log->t_start = mnrl_now();
    if (!out_dir) return 0;
    if (mnrl_mkdir_p(out_dir, err) != 0) return -1;
    if (mnrl_path_join(log->metrics_path, sizeof log->metrics_path, out_dir, "metrics.jsonl") != 0) {
        return mnrl_fail(err, "%s/metrics.jsonl: path too long", out_dir);
    }
    // Append: a resumed run continues the file, after dropping the records of the steps
    // it will train again.
    if (trim_metrics(log->metrics_path, start_step, err) != 0) return -1;
    log->metrics = fopen(log->metrics_path, "a");
    if (!log->metrics) return mnrl_fail(err, "%s: cannot open for appending: %s", log->metrics_path, strerror(errno));
    return 0;
}

// One metrics.jsonl record, built flat by hand so that each number prints with its own
// fewest exact digits (jansson would print all of a record at the widest precision).
typedef struct {
    char text[1024];
    size_t len;
} Record;

static void record_append(Record *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void record_append(Record *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->text + r->len, sizeof r->text - r->len, fmt, ap);
    va_end(ap);
    if (n > 0) r->len += (size_t)n;
    if (r->len >= sizeof r->text) r->len = sizeof r->text - 1;  // truncated (only a huge split name)
}

static void record_key(Record *r, const char *key) { record_append(r, "%s\"%s\":", r->len ? "," : "{", key); }

static void record_integer(Record *r, const char *key, int64_t v) {
    record_key(r, key);
    record_append(r, "%lld", (long long)v);
}

// The fewest digits that read back exactly; whole numbers without an exponent. JSON has
// no NaN or infinity: those are written as null.
static void record_number(Record *r, const char *key, double v) {
    record_key(r, key);
    if (!isfinite(v)) {
        record_append(r, "null");
        return;
    }
    if (v == trunc(v) && fabs(v) < 1e15) {
        record_append(r, "%.0f", v);
        return;
    }
    int precision = 1;
    char digits[40];
    do snprintf(digits, sizeof digits, "%.*g", precision, v);
    while (strtod(digits, NULL) != v && ++precision <= 17);
    record_append(r, "%s", digits);
}

static void record_string(Record *r, const char *key, const char *value) {
    json_t *string = json_string(value);
    char *quoted = string ? json_dumps(string, JSON_ENCODE_ANY) : NULL;
    record_key(r, key);
    record_append(r, "%s", quoted ? quoted : "null");
    free(quoted);
    json_decref(string);
}

// Appends the record as one line of metrics.jsonl, flushed.
static int write_record(StepLog *log, Record *r, MnrlError *err) {
    if (!log->metrics) return 0;
    if (fprintf(log->metrics, "%s}\n", r->text) < 0 || fflush(log->metrics) != 0) {
        return mnrl_fail(err, "%s: write failed: %s", log->metrics_path, strerror(errno));
    }
    return 0;
}

// The bottom line: progress over the whole run, rate and ETA over this session's steps.
static void draw_bar(StepLog *log, int64_t step) {
    Progress p;
    memset(&p, 0, sizeof p);
    snprintf(p.label, sizeof p.label, "train");
    snprintf(p.unit, sizeof p.unit, "steps");
    p.total = (uint64_t)log->total_steps;
    p.done = (uint64_t)(step < log->total_steps ? step : log->total_steps);
    // progress_format's rate is done / elapsed; scaling elapsed by step / (steps of this
    // session) makes it this session's rate, so a resumed run gets a true ETA.
    double elapsed = mnrl_now() - log->t_start;
    int64_t session = step - log->first_step;
    if (session > 0) elapsed *= (double)step / (double)session;
    char line[256];
    progress_format(&p, elapsed, line, sizeof line);
    fprintf(log->out, "\r%s\033[K", line);
    fflush(log->out);
    log->bar_shown = true;
    log->t_drawn = mnrl_now();
}

// Prints a line above the bar (the bar is redrawn by the caller) or as a plain line.
static void print_line(StepLog *log, const char *line) {
    fprintf(log->out, "%s%s\n", log->bar_shown ? "\r\033[K" : "", line);
    fflush(log->out);
    log->bar_shown = false;
}

int steplog_step(StepLog *log, const StepStats *s, MnrlError *err) {
    if (log->out) {
        bool due = s->step % log->log_every == 0 || s->step == log->total_steps || s->step == log->first_step + 1;
        if (due) {
            char line[256];
            steplog_format_step(s, log->total_steps, line, sizeof line);
            print_line(log, line);
        }
        if (log->tty && (due || mnrl_now() - log->t_drawn >= 0.1)) draw_bar(log, s->step);
    }
    Record r = {.len = 0};
    record_integer(&r, "step", s->step);
    record_number(&r, "epoch", s->epoch);
    record_number(&r, "loss", s->loss);
    record_number(&r, "grad_norm", s->grad_norm);
    record_number(&r, "lr", s->lr);
    record_number(&r, "ms", s->ms);
    record_number(&r, "tokens_per_s", s->tokens_per_s);
    record_number(&r, "seqs_per_s", s->seqs_per_s);
    if (!isnan(s->mfu)) record_number(&r, "mfu", s->mfu);
    return write_record(log, &r, err);
}

void steplog_note(StepLog *log, int64_t step, const char *line) {
    if (!log->out) return;
    print_line(log, line);
    if (log->tty && step > log->first_step) draw_bar(log, step);
}

int steplog_eval(StepLog *log, int64_t step, const char *split, double spearman, double pearson, MnrlError *err) {
    if (log->out) {
        char line[256];
        steplog_format_eval(step, log->total_steps, split, spearman, pearson, line, sizeof line);
        print_line(log, line);
        if (log->tty && step > log->first_step) draw_bar(log, step);
    }
    Record r = {.len = 0};
    record_integer(&r, "step", step);
    record_string(&r, "split", split);
    record_number(&r, "spearman", spearman);
    record_number(&r, "pearson", pearson);
    return write_record(log, &r, err);
}

int steplog_close(StepLog *log, MnrlError *err) {
    if (log->out && log->bar_shown) {
        fputc('\n', log->out);
        fflush(log->out);
        log->bar_shown = false;
    }
    if (!log->metrics) return 0;
    int rc = fclose(log->metrics) == 0 ? 0 : mnrl_fail(err, "%s: closing failed: %s", log->metrics_path, strerror(errno));
    log->metrics = NULL;
    return rc;
}
