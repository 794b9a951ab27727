// log.h — what the user sees while work runs. For now a progress bar: on a terminal a bar
// redrawn in place with the rate and an ETA; otherwise (logs, CI) a few plain lines at
// 25%, 50%, 75% and the end; nothing at all when quiet (out NULL, as tests use).
#ifndef MNRL_LOG_H
#define MNRL_LOG_H

#include <stdint.h>
#include <stdio.h>

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

#endif
