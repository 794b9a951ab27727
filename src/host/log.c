// log.c — the progress bar.
#include "mnrl/log.h"

#include <string.h>
#include <unistd.h>

#include "mnrl/common.h"

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
