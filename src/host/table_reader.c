// table_reader.c — TSV and RFC 4180 CSV records over LineReader.
#include "mnrl/table_reader.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int table_reader_open(TableReader *t, const char *path, TableDialect dialect, MnrlError *err) {
    memset(t, 0, sizeof *t);
    t->dialect = dialect;
    if (line_reader_open(&t->lines, path, err) < 0) return -1;
    t->field_cap = 16;
    t->field = mnrl_malloc(t->field_cap * sizeof *t->field);
    return 0;
}

void table_reader_close(TableReader *t) {
    line_reader_close(&t->lines);
    free(t->record);
    free(t->field);
    memset(t, 0, sizeof *t);
}

static void push_field(TableReader *t, char *start) {
    if (t->n_fields == t->field_cap) {
        t->field_cap *= 2;
        t->field = mnrl_realloc(t->field, t->field_cap * sizeof *t->field);
    }
    t->field[t->n_fields++] = start;
}

static int check_utf8(TableReader *t, const char *s, size_t len, MnrlError *err) {
    size_t bad;
    if (mnrl_utf8_valid(s, len, &bad)) return 0;
    t->problem = TABLE_BAD_UTF8;
    return mnrl_fail(err, "%s:%zu: not valid UTF-8 at byte offset %zu of the %s; the file "
                     "must be UTF-8 text", t->lines.path, t->line_no, bad,
                     t->dialect == TABLE_CSV ? "record" : "line");
}

// TSV: the line itself, split at every tab.
static int next_tsv(TableReader *t, MnrlError *err) {
    char *line;
    size_t len;
    int got = line_reader_next(&t->lines, &line, &len, err);
    if (got <= 0) return got;
    t->line_no = t->lines.line_no;
    t->n_fields = 0;
    if (check_utf8(t, line, len, err) < 0) return TABLE_MALFORMED;
    push_field(t, line);
    for (char *tab = strchr(line, '\t'); tab; tab = strchr(tab + 1, '\t')) {
        *tab = '\0';
        push_field(t, tab + 1);
    }
    return TABLE_RECORD;
}

static void append_record(TableReader *t, size_t *used, const char *s, size_t len) {
    if (*used + len + 2 > t->record_cap) {
        t->record_cap = 2 * (*used + len + 2);
        t->record = mnrl_realloc(t->record, t->record_cap);
    }
    memcpy(t->record + *used, s, len);
    *used += len;
    t->record[*used] = '\0';
}

// Whether a quoted field is still open after scanning s, continuing from the state of the
// previous line (*open, *field_start): a quote opens a field only at the field's start.
static void scan_quotes(const char *s, size_t n, int *open, int *field_start) {
    for (size_t i = 0; i < n; i++) {
        if (*open) {
            if (s[i] == '"' && i + 1 < n && s[i + 1] == '"') i++;  // a doubled quote
            else if (s[i] == '"') *open = 0;
        } else if (s[i] == ',') {
            *field_start = 1;
            continue;
        } else if (s[i] == '"' && *field_start) {
            *open = 1;
        }
        *field_start = 0;
    }
}

// CSV: joins lines while a quoted field is open (a line break inside quotes continues the
// record), so that a record's first line is known for messages.
static int read_csv_record(TableReader *t, size_t *len, MnrlError *err) {
    char *line;
    size_t line_len, used = 0;
    int open = 0, field_start = 1;
    int got = line_reader_next(&t->lines, &line, &line_len, err);
    if (got <= 0) return got;
    t->line_no = t->lines.line_no;
    for (;;) {
        append_record(t, &used, line, line_len);
        scan_quotes(line, line_len, &open, &field_start);
        if (!open) break;
        got = line_reader_next(&t->lines, &line, &line_len, err);
        if (got < 0) return -1;
        if (got == 0) {
            t->problem = TABLE_BAD_QUOTING;
            mnrl_fail(err, "%s:%zu: a quoted field is never closed (end of file reached); "
                      "close it with a double quote", t->lines.path, t->line_no);
            return TABLE_MALFORMED;
        }
        append_record(t, &used, "\n", 1);
    }
    *len = used;
    return TABLE_RECORD;
}

static int bad_quoting(TableReader *t, MnrlError *err, const char *what) {
    t->problem = TABLE_BAD_QUOTING;
    return mnrl_fail(err, "%s:%zu: %s (RFC 4180: a field containing quotes must be quoted "
                     "as a whole, its quotes doubled)", t->lines.path, t->line_no, what);
}

// Splits the record at commas outside quotes and removes the quoting in place.
static int split_csv(TableReader *t, MnrlError *err) {
    char *in = t->record, *out = t->record;
    t->n_fields = 0;
    for (;;) {
        push_field(t, out);
        if (*in == '"') {
            for (in++;; in++) {
                if (*in == '\0') return bad_quoting(t, err, "a quoted field is never closed");
                if (*in == '"' && in[1] != '"') break;
                if (*in == '"') in++;  // a doubled quote stands for one
                *out++ = *in;
            }
            in++;
            if (*in != ',' && *in != '\0') {
                return bad_quoting(t, err, "unexpected character after a closing quote");
            }
        } else {
            for (; *in != ',' && *in != '\0'; in++) {
                if (*in == '"') return bad_quoting(t, err, "a quote inside an unquoted field");
                *out++ = *in;
            }
        }
        int last = *in == '\0';
        *out++ = '\0';
        if (last) return 0;
        in++;
    }
}

static int next_csv(TableReader *t, MnrlError *err) {
    size_t len;
    int got = read_csv_record(t, &len, err);
    if (got != TABLE_RECORD) return got;
    if (check_utf8(t, t->record, len, err) < 0) return TABLE_MALFORMED;
    if (split_csv(t, err) < 0) return TABLE_MALFORMED;
    return TABLE_RECORD;
}

int table_reader_next(TableReader *t, MnrlError *err) {
    return t->dialect == TABLE_CSV ? next_csv(t, err) : next_tsv(t, err);
}

int table_find_column(char *const *header, size_t n, const char *name) {
    for (size_t i = 0; i < n; i++) {
        if (strcmp(header[i], name) == 0) return (int)i;
    }
    return -1;
}

void table_list_columns(char *const *header, size_t n, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++) {
        int w = snprintf(out + used, cap - used, "%s%s", i ? ", " : "", header[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}
