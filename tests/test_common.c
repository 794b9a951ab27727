// test_common.c — line reader (plain, gzip, long lines, CRLF, NUL), UTF-8 validation,
// atomic writes and hashing, each against values computed independently here.
#include <unistd.h>
#include <zlib.h>

#include "mnrl/common.h"
#include "mnrl/textio.h"
#include "test.h"

static void write_bytes(const char *path, const char *data, size_t len, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, data, (unsigned)len);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(data, 1, len, f);
        fclose(f);
    }
}

static void test_lines(int gz) {
    const char *path = gz ? "lines.txt.gz" : "lines.txt";
    // A 3 MB line exercises buffer growth; CRLF and a missing final newline too.
    size_t big = 3u << 20;
    size_t total = big + 64;
    char *data = mnrl_malloc(total);
    size_t n = 0;
    n += (size_t)sprintf(data + n, "first\r\n\n");
    memset(data + n, 'x', big);
    n += big;
    n += (size_t)sprintf(data + n, "\nlast");
    write_bytes(path, data, n, gz);

    LineReader r;
    MnrlError err;
    char *line;
    size_t len;
    CHECK(line_reader_open(&r, path, &err) == 0);
    CHECK_EQ_INT(line_reader_next(&r, &line, &len, &err), 1);
    CHECK_STR(line, "first");
    CHECK_EQ_INT(line_reader_next(&r, &line, &len, &err), 1);
    CHECK_EQ_INT(len, 0);
    CHECK_EQ_INT(line_reader_next(&r, &line, &len, &err), 1);
    CHECK_EQ_INT(len, big);
    CHECK(line[0] == 'x' && line[big - 1] == 'x' && line[big] == '\0');
    CHECK_EQ_INT(line_reader_next(&r, &line, &len, &err), 1);
    CHECK_STR(line, "last");
    CHECK_EQ_INT(r.line_no, 4);
    CHECK_EQ_INT(line_reader_next(&r, &line, &len, &err), 0);
    line_reader_close(&r);
    free(data);
    unlink(path);
}

static void test_nul_line(void) {
    write_bytes("nul.txt", "ok\nba\0d\n", 8, 0);
    LineReader r;
    MnrlError err;
    char *line;
    size_t len;
    CHECK(line_reader_open(&r, "nul.txt", &err) == 0);
    CHECK_EQ_INT(line_reader_next(&r, &line, &len, &err), 1);
    CHECK_EQ_INT(line_reader_next(&r, &line, &len, &err), -1);
    CHECK_CONTAINS(err.msg, "nul.txt:2:");
    line_reader_close(&r);
    unlink("nul.txt");
    CHECK(line_reader_open(&r, "does/not/exist.tsv", &err) == -1);
    CHECK_CONTAINS(err.msg, "does/not/exist.tsv: cannot open");
}

static void test_utf8(void) {
    size_t bad = 0;
    CHECK(mnrl_utf8_valid("plain", 5, &bad));
    CHECK(mnrl_utf8_valid("caf\xc3\xa9 \xe4\xb8\xad \xf0\x9f\x98\x80", 14, &bad));
    CHECK(!mnrl_utf8_valid("ab\xff", 3, &bad) && bad == 2);
    CHECK(!mnrl_utf8_valid("\xc0\xaf", 2, &bad) && bad == 0);          // overlong '/'
    CHECK(!mnrl_utf8_valid("x\xed\xa0\x80", 4, &bad) && bad == 1);     // surrogate
    CHECK(!mnrl_utf8_valid("\xf4\x90\x80\x80", 4, &bad) && bad == 0);  // > U+10FFFF
    CHECK(!mnrl_utf8_valid("ok\xe4\xb8", 4, &bad) && bad == 2);        // truncated
}

static void test_files_and_hash(void) {
    MnrlError err;
    CHECK(mnrl_write_file_atomic("atomic.txt", "hello", 5, &err) == 0);
    char *data;
    size_t len;
    CHECK(mnrl_read_file("atomic.txt", &data, &len, &err) == 0);
    CHECK_EQ_INT(len, 5);
    CHECK_STR(data, "hello");
    free(data);
    unlink("atomic.txt");
    CHECK(mnrl_write_file_atomic("no/such/dir/x", "a", 1, &err) == -1);
    CHECK_CONTAINS(err.msg, "no/such/dir/x");
    // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c before the avalanche; the avalanche is
    // splitmix64's finaliser, recomputed here by hand.
    uint64_t z = 0xaf63dc4c8601ec8cULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    CHECK(mnrl_hash64("a", 1, 0) == z);
    uint64_t state = 7;
    int counts[3] = {0, 0, 0};
    for (int i = 0; i < 30000; i++) counts[mnrl_rand_below(&state, 3)]++;
    for (int i = 0; i < 3; i++) CHECK_MSG(counts[i] > 9500 && counts[i] < 10500, "bucket %d: %d", i, counts[i]);
}

static void test_error_context(void) {
    MnrlError err;
    CHECK(mnrl_fail(&err, "line %d: bad", 3) == -1);
    CHECK(mnrl_fail_context(&err, "data.tsv") == -1);
    CHECK_STR(err.msg, "data.tsv: line 3: bad");
    // An over-long message is truncated, never overflowed.
    char big[3000];
    memset(big, 'e', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    mnrl_fail(&err, "%s", big);
    mnrl_fail_context(&err, "ctx");
    CHECK_EQ_INT(strlen(err.msg), MNRL_ERROR_MAX - 1);
    CHECK(strncmp(err.msg, "ctx: eee", 8) == 0);
}

int main(void) {
    test_error_context();
    test_lines(0);
    test_lines(1);
    test_nul_line();
    test_utf8();
    test_files_and_hash();
    TEST_END();
}
