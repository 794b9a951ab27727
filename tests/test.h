// test.h — the few macros every tests/test_*.c uses. A failed CHECK prints file:line and
// the values, counts the failure and goes on; main returns non-zero when any failed.
// SKIP prints why and exits 77, which ctest reports as "Skipped" (never a silent pass).
#ifndef MNRL_TEST_H
#define MNRL_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mnrl/common.h"

static int test_failures = 0;
static int test_checks = 0;

#define CHECK(cond)                                                              \
    do {                                                                         \
        test_checks++;                                                           \
        if (!(cond)) {                                                           \
            test_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                        \
    } while (0)

#define CHECK_MSG(cond, ...)                                                     \
    do {                                                                         \
        test_checks++;                                                           \
        if (!(cond)) {                                                           \
            test_failures++;                                                     \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                       \
    do {                                                                         \
        long long va_ = (long long)(a), vb_ = (long long)(b);                    \
        CHECK_MSG(va_ == vb_, "%s = %lld, %s = %lld", #a, va_, #b, vb_);         \
    } while (0)

#define CHECK_STR(a, b)                                                          \
    do {                                                                         \
        const char *sa_ = (a), *sb_ = (b);                                       \
        CHECK_MSG(sa_ && sb_ && strcmp(sa_, sb_) == 0, "\"%s\" vs \"%s\"",       \
                  sa_ ? sa_ : "(null)", sb_ ? sb_ : "(null)");                   \
    } while (0)

// Substring check, for error messages.
#define CHECK_CONTAINS(haystack, needle)                                         \
    do {                                                                         \
        const char *h_ = (haystack), *n_ = (needle);                             \
        CHECK_MSG(h_ && strstr(h_, n_) != NULL, "\"%s\" does not contain \"%s\"", \
                  h_ ? h_ : "(null)", n_);                                       \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                    \
    do {                                                                         \
        double da_ = (double)(a), db_ = (double)(b);                             \
        CHECK_MSG(fabs(da_ - db_) <= (tol), "%s = %.17g, %s = %.17g, tol %g",    \
                  #a, da_, #b, db_, (double)(tol));                              \
    } while (0)

#define SKIP(...)                                                                \
    do {                                                                         \
        printf("SKIPPED: ");                                                     \
        printf(__VA_ARGS__);                                                     \
        printf("\n");                                                            \
        exit(77);                                                                \
    } while (0)

// Writes a NUL-terminated string to a file in the working directory (tests' inputs);
// a failure to write ends the test, since nothing after it would mean anything.
static inline void test_write_file(const char *path, const char *content) {
    FILE *f = fopen(path, "wb");
    if (!f || fputs(content, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

// 1 when files a and b (plain or gzip, as mnrl_read_file reads them) hold the same bytes;
// otherwise 0, naming both files and their sizes on stderr.
static inline int test_same_file_bytes(const char *a, const char *b) {
    char *da, *db;
    size_t la, lb;
    MnrlError err;
    if (mnrl_read_file(a, &da, &la, &err) != 0) return 0;
    if (mnrl_read_file(b, &db, &lb, &err) != 0) {
        free(da);
        return 0;
    }
    int same = la == lb && memcmp(da, db, la) == 0;
    if (!same) fprintf(stderr, "%s (%zu bytes) differs from %s (%zu bytes)\n", a, la, b, lb);
    free(da);
    free(db);
    return same;
}

// Ends main: prints the tally and returns the exit code.
#define TEST_END()                                                               \
    do {                                                                         \
        printf("%d checks, %d failed\n", test_checks, test_failures);            \
        return test_failures ? 1 : 0;                                            \
    } while (0)

#endif
