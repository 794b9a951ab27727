// table_reader.h — records of a delimited text file with a header line: TSV (tab, no
// quoting, one record per line) or CSV (RFC 4180: comma, fields in double quotes may hold
// commas, doubled quotes and line breaks). Every record is checked to be UTF-8 before it
// is split. Plain or gzip files, through LineReader.
#ifndef MNRL_TABLE_READER_H
#define MNRL_TABLE_READER_H

#include <stddef.h>

#include "mnrl/common.h"
#include "mnrl/textio.h"

typedef enum { TABLE_TSV, TABLE_CSV } TableDialect;

// What is wrong with a malformed record (TABLE_MALFORMED).
typedef enum { TABLE_BAD_UTF8, TABLE_BAD_QUOTING } TableProblem;

enum { TABLE_EOF = 0, TABLE_RECORD = 1, TABLE_MALFORMED = 2 };

typedef struct {
    LineReader lines;
    TableDialect dialect;
    size_t line_no;        // first line of the record last returned
    char *record;          // CSV: the record's lines joined by "\n", unquoted in place
    size_t record_cap;
    char **field;          // the fields of the record last returned (NUL-terminated)
    size_t n_fields, field_cap;
    TableProblem problem;  // set with TABLE_MALFORMED
} TableReader;

int table_reader_open(TableReader *t, const char *path, TableDialect dialect, MnrlError *err);
// Reads the next record: TABLE_RECORD with t->field / t->n_fields set (valid until the
// next call), TABLE_EOF, TABLE_MALFORMED with a "FILE:LINE: ..." message in err (the
// caller decides to skip or fail), or -1 on a read error.
int table_reader_next(TableReader *t, MnrlError *err);
void table_reader_close(TableReader *t);

// Index of the field named name among the n header fields, or -1.
int table_find_column(char *const *header, size_t n, const char *name);
// Writes the header's names as "a, b, c" into out (for "columns present:" messages).
void table_list_columns(char *const *header, size_t n, char *out, size_t cap);

#endif
