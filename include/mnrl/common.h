// common.h — error reporting, checked allocation, hashing, files and clocks shared by
// every module. Convention: a function that can fail returns 0 on success and -1 on
// failure after writing a complete, user-facing message into its MnrlError
// ("FILE:LINE: what is wrong; what to do"). Only main() prints errors and exits.
#ifndef MNRL_COMMON_H
#define MNRL_COMMON_H

#include <stddef.h>
#include <stdint.h>

// C linkage when included from C++ (the .cu kernel files report errors through mnrl_fail).
#ifdef __cplusplus
extern "C" {
#endif

#define MNRL_ERROR_MAX 2048

typedef struct {
    char msg[MNRL_ERROR_MAX];
} MnrlError;

// Formats the message into err (when err is not NULL) and returns -1, so that
// `return mnrl_fail(err, "...", ...);` reports and fails in one statement.
int mnrl_fail(MnrlError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Prefixes an existing message: "context: previous message".
int mnrl_fail_context(MnrlError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// Allocation that cannot return NULL: out of memory prints the size and aborts, since
// no caller can do anything useful without the memory it asked for.
void *mnrl_malloc(size_t bytes);
void *mnrl_calloc(size_t count, size_t size);
void *mnrl_realloc(void *ptr, size_t bytes);
char *mnrl_strdup(const char *s);
// Zeroed memory whose address is a multiple of alignment (a power of two, at least
// sizeof(void *)), for buffers that vector or GPU-style kernels index; release with free().
void *mnrl_aligned_calloc(size_t alignment, size_t bytes);

// 64-bit FNV-1a over bytes, then a final avalanche (splitmix64) so low bits are usable as
// hash-table buckets. Stable across runs and machines (used in cache headers too).
uint64_t mnrl_hash64(const void *data, size_t len, uint64_t seed);

// splitmix64 step: a tiny seeded generator for permutations and recipe draws.
uint64_t mnrl_splitmix64(uint64_t *state);
// Uniform integer in [0, bound) without modulo bias; bound > 0.
uint64_t mnrl_rand_below(uint64_t *state, uint64_t bound);

// Reads a whole file (plain or gzip, detected by content) into a NUL-terminated buffer.
int mnrl_read_file(const char *path, char **out_data, size_t *out_len, MnrlError *err);

// Writes data to path atomically: path.tmp.PID is written, fsync'd and renamed over path,
// so a reader never sees a half-written file. (Tests can make it fail: MNRL_TEST_FAIL_WRITE
// in common.c.)
int mnrl_write_file_atomic(const char *path, const void *data, size_t len, MnrlError *err);

int mnrl_file_exists(const char *path);
// Creates directory path and any missing parents (mode 0755), like `mkdir -p`.
int mnrl_mkdir_p(const char *path, MnrlError *err);
// Joins a directory and a file name into out (capacity cap); returns -1 when it does not fit.
int mnrl_path_join(char *out, size_t cap, const char *dir, const char *name);

// fsync of a directory, so that the entries created or renamed in it are on disk.
int mnrl_fsync_dir(const char *path, MnrlError *err);
// Removes path and, when it is a directory, everything below it (like `rm -rf`; symbolic
// links are removed, never followed). A path that does not exist is not an error.
int mnrl_remove_tree(const char *path, MnrlError *err);

// jansson's json_dumps (flags as there) printing every real with the fewest digits (15..17)
// at which all of them read back exactly: 0.1, not 0.10000000000000001. Caller frees.
struct json_t;
char *mnrl_json_dumps_exact(const struct json_t *value, size_t flags);

// Edit distance (Levenshtein plus adjacent transpositions, i.e. optimal string alignment)
// between two byte strings, for "did you mean" suggestions.
size_t mnrl_edit_distance(const char *a, const char *b);

// The candidate closest to typed when it is close enough to be a plausible misspelling
// (distance <= 1, or <= a third of typed's length), else NULL. Ties go to the first.
const char *mnrl_closest_match(const char *typed, const char *const *candidates, size_t n);

// Monotonic clock in seconds.
double mnrl_now(void);

#ifdef __cplusplus
}
#endif

#endif
