// textio.c — buffered line reader over zlib (plain and .gz alike) and UTF-8 validation.
#include "mnrl/textio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

int line_reader_open(LineReader *r, const char *path, MnrlError *err) {
    memset(r, 0, sizeof *r);
    int is_stdin = strcmp(path, "-") == 0;
    snprintf(r->path, sizeof r->path, "%s", is_stdin ? "<stdin>" : path);
    r->gz = is_stdin ? gzdopen(dup(STDIN_FILENO), "rb") : gzopen(path, "rb");
    if (!r->gz) return mnrl_fail(err, "%s: cannot open: %s", r->path, strerror(errno));
    r->cap = 1 << 17;
    r->buf = mnrl_malloc(r->cap);
    return 0;
}

// Moves the unconsumed tail to the front, grows the buffer when it is full, and reads
// more bytes. Returns the number of bytes added (0 at end of file) or -1 on error.
static int refill(LineReader *r, MnrlError *err) {
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end < (1 << 16)) {
        r->cap *= 2;
        r->buf = mnrl_realloc(r->buf, r->cap);
    }
    int n = gzread(r->gz, r->buf + r->end, (unsigned)(r->cap - r->end - 1));
    if (n < 0) {
        int code;
        const char *why = gzerror(r->gz, &code);
        return mnrl_fail(err, "%s:%zu: read failed: %s", r->path, r->line_no + 1,
                         code == Z_ERRNO ? strerror(errno) : why);
    }
    if (n == 0) r->eof = 1;
    r->end += (size_t)n;
    return n;
}

int line_reader_next(LineReader *r, char **line, size_t *len, MnrlError *err) {
    size_t scanned = r->start;
    char *nl;
    while (!(nl = memchr(r->buf + scanned, '\n', r->end - scanned))) {
        if (r->eof) break;
        scanned = r->end - r->start;  // offsets are relative to start after refill
        if (refill(r, err) < 0) return -1;
        scanned += r->start;
    }
    size_t stop = nl ? (size_t)(nl - r->buf) : r->end;
    if (!nl && stop == r->start) return 0;  // end of file, nothing left
    char *text = r->buf + r->start;
    size_t n = stop - r->start;
    r->start = nl ? stop + 1 : stop;
    r->line_no++;
    if (memchr(text, '\0', n)) {
        return mnrl_fail(err, "%s:%zu: line contains a NUL byte; text files must not",
                         r->path, r->line_no);
    }
    if (n > 0 && text[n - 1] == '\r') n--;
    text[n] = '\0';  // overwrites the '\n' (or the spare byte kept by refill)
    *line = text;
    *len = n;
    return 1;
}

void line_reader_close(LineReader *r) {
    if (r->gz) gzclose(r->gz);
    free(r->buf);
    memset(r, 0, sizeof *r);
}

int mnrl_utf8_valid(const char *s, size_t len, size_t *bad_offset) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { need = 3; cp = c & 0x07; min = 0x10000; }
        else goto bad;
        if (i + need >= len) goto bad;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xC0) != 0x80) goto bad;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) goto bad;
        i += need + 1;
        continue;
    bad:
        if (bad_offset) *bad_offset = i;
        return 0;
    }
    return 1;
}
