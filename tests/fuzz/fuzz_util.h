// fuzz_util.h — helpers shared by the libFuzzer targets (tests/fuzz/fuzz_*.c, built and run
// by scripts/fuzz.sh): the readers under test take paths, so each input is written to a
// scratch file first; invariants that must hold on success abort, so libFuzzer reports them.
#ifndef MNRL_FUZZ_UTIL_H
#define MNRL_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// A scratch file of this process named with suffix (e.g. ".tsv"), made once; later calls
// with the same slot reuse it. Four slots, so a target can keep several files apart.
static inline const char *fuzz_scratch_path(int slot, const char *suffix) {
    static char paths[4][256];
    if (paths[slot][0] == '\0') {
        const char *dir = getenv("TMPDIR");
        snprintf(paths[slot], sizeof paths[slot], "%s/mnrl_fuzz_%d_%d%s", dir && *dir ? dir : "/tmp",
                 (int)getpid(), slot, suffix);
    }
    return paths[slot];
}

static inline void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

// An invariant of the code under test failed: print it and abort (a libFuzzer finding).
#define FUZZ_ASSERT(cond)                                                                   \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);    \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

// A message that names a file must be non-empty and NUL-terminated within MNRL_ERROR_MAX.
#define FUZZ_ASSERT_MESSAGE(err) FUZZ_ASSERT((err).msg[0] != '\0' && memchr((err).msg, 0, sizeof (err).msg))

#endif
