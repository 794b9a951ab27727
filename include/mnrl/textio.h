// textio.h — line-oriented reading of plain or gzip text files with line numbers, for
// every reader of user data (datasets, STS files, tokenize input) so that errors can say
// "FILE:LINE: what is wrong".
#ifndef MNRL_TEXTIO_H
#define MNRL_TEXTIO_H

#include <stddef.h>

#include "mnrl/common.h"

typedef struct {
    void *gz;          // gzFile; plain files are read through it transparently
    char path[1024];   // for messages
    size_t line_no;    // 1-based number of the line last returned
    char *buf;         // raw bytes read from the file; grows to hold the longest line
    size_t cap;        // capacity of buf
    size_t start;      // first unconsumed byte of buf
    size_t end;        // one past the last valid byte of buf
    int eof;           // the file has been read to its end
} LineReader;

// Opens path ("-" means standard input).
int line_reader_open(LineReader *r, const char *path, MnrlError *err);
// Reads the next line without its "\n" (and a "\r" before it). Returns 1 with *line and
// *len set (the buffer is reused by the next call), 0 at end of file, -1 on a read error.
// A NUL byte inside a line is an error, since no text format here allows one.
int line_reader_next(LineReader *r, char **line, size_t *len, MnrlError *err);
void line_reader_close(LineReader *r);

// Returns 1 when s[0..len) is valid UTF-8 (no overlongs, surrogates or code points
// above U+10FFFF); otherwise 0 with *bad_offset set to the first offending byte.
int mnrl_utf8_valid(const char *s, size_t len, size_t *bad_offset);

#endif
